//! The boot path: from the boot stub to the root task running at EL0.

use crate::arch::context::UserContext;
use crate::arch::exceptions::{enter_user, install_vectors};
use crate::arch::gic::{Gic, GicRegisters};
use crate::arch::mmu::{KERNEL_BASE, install_kernel_table, phys_to_virt, virt_to_phys, zero_ram};
use crate::arch::page_table::{PAGE_SIZE, PageAttrs, TranslationTable};
use crate::arch::timer;
use crate::capability::{
    CSpace, Capability, ObjectType, Rights, SLOT_SIZE_BITS, SlotRef, split_into_untyped,
};
use crate::frame_allocator::PhysRange;
use crate::kernel::{Kernel, Services};
use crate::memory::{FRAMES, LinearTables, allocate_zeroed_frame, ram_bytes_mut};
use crate::objects::{self, KernelObjects};
use crate::platform::{self, DeviceNode, DeviceTree, GicDescription, Platform};
use crate::thread::{CSPACE_SLOT, Tcb, VSPACE_SLOT};
use crate::{Config, console, heap, kernel, kprintln, loader};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_abi::{layout, slots};
use kaal_bootinfo::archive::Archive;
use kaal_bootinfo::{
    ArchiveInfo, BOOT_INFO_MAX_BYTES, BOOT_INFO_VADDR, BootInfoInput, DeviceDesc, InitialCaps,
    SlotRange, SystemFacts, UntypedRegion, write_boot_info,
};

/// Where QEMU puts the device tree for a bare-metal ELF boot: the start of RAM.
const DEFAULT_DTB_PHYS: u64 = 0x4000_0000;
/// ASID of the root task.
const ROOT_ASID: u16 = 1;
const _: () = assert!(KERNEL_BASE > layout::USER_END);

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

fn symbol(address: *const u8) -> u64 {
    address as u64
}

unsafe extern "Rust" {
    fn __kaal_kernel_config() -> &'static Config;
}

/// The exception level the kernel was started at, for the test hooks.
#[cfg(all(feature = "test-hooks", debug_assertions))]
static BOOT_EL: AtomicU64 = AtomicU64::new(0);

/// Called by the boot stub, in the high half with the early map, on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn kaal_kernel_start(dtb_register: u64, boot_el: u64) -> ! {
    install_vectors();
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    BOOT_EL.store(boot_el, Ordering::Relaxed);
    // SAFETY: `entry!` in the kernel binary defines this function.
    let config = unsafe { __kaal_kernel_config() };
    crate::set_semihosting(config.semihosting);
    // SAFETY: the early map covers the first GiB of the physical address space as device
    // memory, which holds the QEMU virt PL011 named by the configuration.
    unsafe { console::init(phys_to_virt(config.early_uart_phys) as usize) };
    kprintln!();
    kprintln!("KaaL kernel {} (aarch64) starting", crate::VERSION);
    match boot_el {
        2 => kprintln!("  entered at EL2, running at EL1"),
        3 => refuse_el3(),
        _ => kprintln!("  entered at EL{boot_el}"),
    }
    boot(config, dtb_register)
}

fn find_device_tree(dtb_register: u64) -> Result<&'static [u8], &'static str> {
    for candidate in [dtb_register, DEFAULT_DTB_PHYS] {
        if candidate == 0 || candidate % 8 != 0 || candidate >= (3 << 30) {
            continue;
        }
        let header_address = phys_to_virt(candidate) as *const [u8; 8];
        // SAFETY: the early map covers [0, 3 GiB) of physical memory, so eight bytes at
        // an aligned candidate below that are mapped and readable.
        let header = unsafe { header_address.read() };
        if let Some(size) = platform::blob_size(&header) {
            if candidate + size as u64 > 3 << 30 {
                return Err("device tree extends beyond the early map");
            }
            // SAFETY: the blob's own header says it is `size` bytes long; the range is
            // inside the early map and the kernel reserves it before allocating frames.
            return Ok(unsafe { core::slice::from_raw_parts(header_address.cast::<u8>(), size) });
        }
    }
    Err("no device tree found in x0 or at the start of RAM")
}

fn boot(config: &'static Config, dtb_register: u64) -> ! {
    let blob = find_device_tree(dtb_register).unwrap_or_else(|problem| panic!("{problem}"));
    let tree = platform::parse_blob(blob).unwrap_or_else(|error| panic!("{error}"));
    let platform = Platform::from_fdt(&tree).unwrap_or_else(|error| panic!("{error}"));
    let dtb_phys = virt_to_phys(blob.as_ptr() as u64);
    kprintln!("  device tree at {dtb_phys:#x} ({} bytes)", blob.len());
    for region in platform.memory() {
        kprintln!(
            "  RAM {:#x}..{:#x} ({} MiB)",
            region.start,
            region.end,
            region.size() >> 20
        );
    }
    kprintln!(
        "  {} CPU(s); bootargs \"{}\"",
        platform.cpu_count,
        platform.bootargs
    );

    let image = PhysRange {
        start: virt_to_phys(symbol(&raw const __kernel_start)),
        end: virt_to_phys(symbol(&raw const __kernel_end)),
    };
    {
        let mut frames = FRAMES.lock();
        for region in platform.memory() {
            frames
                .add(*region)
                .unwrap_or_else(|error| panic!("{error}"));
        }
        frames
            .reserve(PhysRange::new(dtb_phys, blob.len() as u64))
            .expect("reserve device tree");
        frames.reserve(image).expect("reserve kernel image");
        kprintln!(
            "  kernel image {:#x}..{:#x}; {} MiB free",
            image.start,
            image.end,
            frames.free_bytes() >> 20
        );
    }
    heap::init();

    let kernel_table = build_kernel_map(&platform, image);
    // SAFETY: the new map covers the kernel image (same virtual addresses), all RAM
    // (which holds the boot stack and the device tree) and every device used below.
    unsafe { install_kernel_table(kernel_table.root()) };
    kprintln!("  MMU: kernel map installed (high half, W^X, devices nGnRE)");

    let gic_registers = match platform.gic {
        GicDescription::V2 {
            distributor,
            cpu_interface,
        } => GicRegisters::V2 {
            distributor: phys_to_virt(distributor.start) as usize,
            cpu_interface: phys_to_virt(cpu_interface.start) as usize,
        },
        GicDescription::V3 {
            distributor,
            redistributor,
        } => GicRegisters::V3 {
            distributor: phys_to_virt(distributor.start) as usize,
            redistributor: phys_to_virt(redistributor.start) as usize,
        },
    };
    // SAFETY: the frames are mapped as device memory by the kernel map; on GICv3 the boot
    // stub allowed EL1 to use the system-register interface.
    let mut gic = unsafe { Gic::new(gic_registers) };
    gic.enable(platform.virtual_timer_irq);
    // Other CPUs wake this one (a thread placed here made ready, a request) with an SGI.
    gic.enable(crate::arch::gic::IPI_SGI);
    crate::smp::SGI_TARGETS[0].store(gic.this_cpu_target(), Ordering::Relaxed);
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    crate::arch::test_hooks::arm(
        platform.bootargs,
        BOOT_EL.load(Ordering::Relaxed),
        gic_registers,
    );
    let frequency = timer::frequency_hz();
    timer::allow_user_counter_access();
    let tick_period = frequency / u64::from(config.tick_hz);
    kprintln!(
        "  GICv{}; timer IRQ {} at {} Hz, tick {} Hz; PSCI {:?}",
        gic.version(),
        platform.virtual_timer_irq,
        frequency,
        config.tick_hz,
        platform.psci
    );

    let empty_user_table = allocate_zeroed_frame().expect("empty user table");
    // The boot stub's identity map is still in TTBR0, with global entries user code could
    // reach were one cached (a speculative walk may do so): replace it with the empty
    // table, then drop every cached translation, so none of it can come back.
    // SAFETY: the kernel runs in the upper half (TTBR1) and no longer touches the
    // identity map; an empty table maps nothing.
    unsafe { crate::arch::mmu::install_user_table(empty_user_table, 0) };
    crate::arch::mmu::flush_tlb();
    let online = start_secondaries(&platform, &gic, kernel_table.root(), empty_user_table);
    kprintln!("  {online} of {} CPU(s) online", platform.cpu_count);
    crate::smp::set_online(online_mask(), empty_user_table);
    SECONDARY_TIMER.store(
        u64::from(platform.virtual_timer_irq) << 32 | u64::from(config.tick_hz),
        Ordering::Relaxed,
    );
    // SAFETY: the one store of kernel objects, moved into the kernel.
    let objects = unsafe { KernelObjects::new() };
    let mut kernel = Kernel::new(
        Services {
            gic,
            timer_irq: platform.virtual_timer_irq,
            tick_period,
            psci: platform.psci,
            semihosting: config.semihosting,
            empty_user_table,
            ram: platform.memory().to_vec(),
        },
        objects,
    );
    // The device list is read from the tree once.
    let devices: Vec<DeviceNode<'_>> = platform::devices(&tree).collect();
    load_root_task(config, &platform, &tree, &devices, &mut kernel);
    kernel::install(kernel);
    // Boot is the heap's only user: no system call may allocate (see `heap`).
    heap::seal();
    timer::arm(tick_period);
    // The other CPUs join: each enters its scheduler (and idles until a thread is
    // placed on it).
    KERNEL_RUNNING.store(true, Ordering::Release);
    kernel::with_kernel(|kernel| {
        for cpu in (1..platform::MAX_CPUS).filter(|&cpu| crate::smp::is_online(cpu)) {
            crate::smp::poke(&kernel.services.gic, cpu);
        }
    });
    kernel::schedule();
    kprintln!("  starting root task at EL0");
    // SAFETY: `schedule` installed the root thread's context; the boot stack's contents
    // are not needed any more.
    unsafe { enter_user() }
}

/// The CPUs running the kernel: bit `n` for CPU `n` (the boot CPU is 0, the others are
/// numbered 1.. in the order the device tree lists them).
static CPUS_ONLINE: AtomicU64 = AtomicU64::new(1);
/// The kernel map's root and the empty user table, for starting CPUs to install.
static SECONDARY_KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
static SECONDARY_USER_TABLE: AtomicU64 = AtomicU64::new(0);
/// Each starting CPU's GIC frames (its own GICv3 redistributor), set before it starts.
static SECONDARY_GIC: spin::Mutex<[Option<GicRegisters>; platform::MAX_CPUS]> =
    spin::Mutex::new([None; platform::MAX_CPUS]);
/// The CPUs that answered the boot CPU's SGI: bit `n` for CPU `n`.
static CPUS_ANSWERED: AtomicU64 = AtomicU64::new(1);
/// How long the boot CPU waits for a CPU it started to report, and then to answer an
/// SGI, in milliseconds each (host time under an emulator without `-icount`: generous,
/// for a loaded machine).
const SECONDARY_START_MS: u64 = 1000;

/// Each CPU's start, as the boot CPU and the CPU agree on it: the boot CPU marks it
/// `PENDING` before `CPU_ON` and `ABANDONED` if it gave up waiting; the CPU moves it
/// from `PENDING` to `STARTED` before it touches anything shared, or, finding it
/// abandoned, stops there. So a CPU the boot CPU left out never runs kernel code that
/// matters, however late it comes.
static SECONDARY_STATE: [core::sync::atomic::AtomicU8; platform::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU8::new(0) }; platform::MAX_CPUS];
const PENDING: u8 = 1;
const STARTED: u8 = 2;
const ABANDONED: u8 = 3;

/// Waits until `bit` is set in `flags`, for at most [`SECONDARY_START_MS`].
fn wait_for_bit(flags: &AtomicU64, bit: u64) -> bool {
    let deadline = timer::counter() + timer::frequency_hz() * SECONDARY_START_MS / 1000;
    while flags.load(Ordering::Acquire) & bit == 0 {
        if timer::counter() > deadline {
            return false;
        }
        crate::smp::relax();
    }
    true
}

/// Starts every other CPU the device tree lists through PSCI `CPU_ON`, one at a time,
/// and checks that each answers an SGI (so interrupts reach it); returns how many CPUs
/// run and answer, this one included. A CPU that does not start, report or answer in
/// time ([`SECONDARY_START_MS`] each) is named with the reason and left out: the system
/// runs on the rest.
fn start_secondaries(platform: &Platform<'_>, gic: &Gic, kernel_root: u64, user_table: u64) -> u32 {
    use aarch64_cpu::registers::{MPIDR_EL1, Readable};
    let (Some(conduit), Some(cpu_on)) = (platform.psci, platform.psci_cpu_on) else {
        if platform.cpu_count > 1 {
            kprintln!("  no PSCI CPU_ON in the device tree: the other CPUs stay off");
        }
        return 1;
    };
    if platform.cpu_count as usize > platform.cpu_affinities().len() {
        kprintln!(
            "  {} CPU(s) listed, {} of them with an affinity the kernel takes (at most {}, one stack each)",
            platform.cpu_count,
            platform.cpu_affinities().len(),
            platform::MAX_CPUS
        );
    }
    SECONDARY_KERNEL_ROOT.store(kernel_root, Ordering::Release);
    SECONDARY_USER_TABLE.store(user_table, Ordering::Release);
    // Aff3 (bits 32..40) and Aff2..Aff0, as the `reg` of a `cpu` node gives them.
    let me = MPIDR_EL1.get() & 0xff_00ff_ffff;
    let region = match platform.gic {
        GicDescription::V3 { redistributor, .. } => redistributor.size() as usize,
        GicDescription::V2 { .. } => 0,
    };
    for (number, affinity) in platform.secondary_cpus(me) {
        // SAFETY: the kernel map maps the whole redistributor region as device memory.
        let Some(registers) = (unsafe { gic.registers().for_cpu(affinity, region) }) else {
            kprintln!(
                "  CPU {number} (affinity {affinity:#x}) not started: no GIC redistributor names it"
            );
            continue;
        };
        SECONDARY_GIC.lock()[number as usize] = Some(registers);
        let state = &SECONDARY_STATE[number as usize];
        state.store(PENDING, Ordering::Release);
        // The tables' addresses are visible to the started CPU: stores before the
        // PSCI call (a barrier of its own on real firmware; a fence for the model).
        core::sync::atomic::fence(Ordering::SeqCst);
        let entry = crate::arch::secondary_entry();
        if let Err(code) = crate::arch::psci::cpu_on(conduit, cpu_on, affinity, entry, number) {
            kprintln!("  CPU {number} (affinity {affinity:#x}) did not start: PSCI error {code}");
            continue;
        }
        let bit = 1 << number;
        if !wait_for_bit(&CPUS_ONLINE, bit) {
            let abandoned = state
                .compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            // (Not abandoned: it started just now, and reports in a moment.)
            if abandoned || !wait_for_bit(&CPUS_ONLINE, bit) {
                kprintln!(
                    "  CPU {number} (affinity {affinity:#x}) started but did not report within {SECONDARY_START_MS} ms: left out"
                );
                continue;
            }
        }
        let target = crate::smp::SGI_TARGETS[number as usize].load(Ordering::Acquire);
        gic.send_sgi(crate::arch::gic::IPI_SGI, target);
        if !wait_for_bit(&CPUS_ANSWERED, bit) {
            kprintln!(
                "  CPU {number} (affinity {affinity:#x}) runs but did not answer an interrupt within {SECONDARY_START_MS} ms: not counted"
            );
        }
    }
    cpus_online()
}

/// The CPUs that run the kernel and answered the boot CPU's SGI, the boot CPU included.
fn cpus_online() -> u32 {
    online_mask().count_ones()
}

/// [`cpus_online`] as a mask: bit `n` for CPU `n`.
fn online_mask() -> u64 {
    CPUS_ONLINE.load(Ordering::Acquire) & CPUS_ANSWERED.load(Ordering::Acquire)
}

/// Set by the boot CPU once the kernel's state is installed: the other CPUs then enter
/// their schedulers.
static KERNEL_RUNNING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// The timer's interrupt (bits 32..) and tick rate (bits 0..32), for the other CPUs.
static SECONDARY_TIMER: AtomicU64 = AtomicU64::new(0);

/// Where a secondary CPU enters Rust (from `kaal_secondary_entry` in the boot stub), on
/// its own kernel stack, in the high half through the early map, interrupts masked.
/// It moves to the final kernel map and an empty user table, brings up its GIC
/// interface (the kernel's SGI enabled) and timer (off; EL0 may read the counter),
/// reports itself online and waits, answering SGIs, until the boot CPU has installed
/// the kernel; then it turns on its timer and enters its scheduler, like the boot CPU.
#[unsafe(no_mangle)]
extern "C" fn kaal_secondary_start(cpu: u64) -> ! {
    install_vectors();
    if SECONDARY_STATE[cpu as usize]
        .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // The boot CPU gave up on this CPU: it stays out, touching nothing shared.
        loop {
            aarch64_cpu::asm::wfi();
        }
    }
    // SAFETY: the boot CPU built the final kernel map before it started this CPU; it maps
    // this CPU's kernel stack and the kernel image at the addresses the early map does.
    unsafe { install_kernel_table(SECONDARY_KERNEL_ROOT.load(Ordering::Acquire)) };
    // SAFETY: the empty table maps nothing; the kernel runs in the high half.
    unsafe {
        crate::arch::mmu::install_user_table(SECONDARY_USER_TABLE.load(Ordering::Acquire), 0)
    };
    crate::arch::mmu::flush_tlb();
    timer::disable();
    timer::allow_user_counter_access();
    let registers = SECONDARY_GIC.lock()[cpu as usize].expect("set before the CPU started");
    // SAFETY: this CPU's frames, mapped as device memory for good; the boot CPU set up
    // the distributor, and its EL2 stub (if any) let EL1 use the GICv3 registers.
    let mut gic = unsafe { Gic::new_secondary(registers) };
    gic.enable(crate::arch::gic::IPI_SGI);
    crate::smp::SGI_TARGETS[cpu as usize].store(gic.this_cpu_target(), Ordering::Relaxed);
    CPUS_ONLINE.fetch_or(1 << cpu, Ordering::Release);
    // Interrupts stay masked (PSTATE.I): `wfi` halts the CPU until one is pending at
    // its interface (an emulator stops the vCPU instead of spinning, as on `wfe`), and
    // reading the acknowledge register takes it without an exception.
    while !KERNEL_RUNNING.load(Ordering::Acquire) {
        aarch64_cpu::asm::wfi();
        loop {
            let id = gic.acknowledge();
            if id >= crate::arch::gic::SPURIOUS_START {
                break;
            }
            if id == crate::arch::gic::IPI_SGI {
                CPUS_ANSWERED.fetch_or(1 << cpu, Ordering::Release);
            }
            gic.end_of_interrupt(id);
        }
    }
    if !crate::smp::is_online(cpu as usize) {
        // It answered too late to be counted: it stays out.
        loop {
            aarch64_cpu::asm::wfi();
        }
    }
    let timer_setting = SECONDARY_TIMER.load(Ordering::Relaxed);
    let (timer_irq, tick_hz) = ((timer_setting >> 32) as u32, timer_setting as u32);
    gic.enable(timer_irq);
    timer::arm(timer::frequency_hz() / u64::from(tick_hz.max(1)));
    kernel::schedule();
    // SAFETY: `schedule` installed a thread's context on this CPU; nothing on this CPU's
    // kernel stack is needed any more.
    unsafe { enter_user() }
}

fn build_kernel_map(platform: &Platform<'_>, image: PhysRange) -> TranslationTable {
    let memory = &mut LinearTables;
    let mut table = TranslationTable::new(memory).expect("kernel root table");
    let mut map = |start: u64, end: u64, attrs: PageAttrs| {
        if start < end {
            table
                .map_range(memory, phys_to_virt(start), start, end - start, attrs)
                .unwrap_or_else(|error| panic!("kernel map {start:#x}..{end:#x}: {error}"));
        }
    };
    let text = (
        virt_to_phys(symbol(&raw const __text_start)),
        virt_to_phys(symbol(&raw const __text_end)),
    );
    let rodata = (
        virt_to_phys(symbol(&raw const __rodata_start)),
        virt_to_phys(symbol(&raw const __rodata_end)),
    );
    let data = virt_to_phys(symbol(&raw const __data_start));
    for region in platform.memory() {
        let (start, end) = (region.start, region.end);
        if image.end <= start || image.start >= end {
            map(start, end, PageAttrs::KERNEL_DATA);
            continue;
        }
        map(start, image.start.max(start), PageAttrs::KERNEL_DATA);
        // The boot stub's pages are plain data once the high half runs.
        map(image.start, text.0, PageAttrs::KERNEL_DATA);
        map(text.0, text.1, PageAttrs::KERNEL_TEXT);
        map(rodata.0, rodata.1, PageAttrs::KERNEL_RODATA);
        // The guard pages below the kernel stack and the exception stack stay unmapped:
        // running off the end of a stack faults instead of overwriting what lies below.
        let mut from = data;
        for guard in crate::arch::stack_guard_pages() {
            let guard = virt_to_phys(guard);
            map(from, guard, PageAttrs::KERNEL_DATA);
            from = guard + PAGE_SIZE;
        }
        map(from, image.end, PageAttrs::KERNEL_DATA);
        map(image.end, end, PageAttrs::KERNEL_DATA);
    }
    let mut devices = Vec::from([platform.uart]);
    match platform.gic {
        GicDescription::V2 {
            distributor,
            cpu_interface,
        } => devices.extend([distributor, cpu_interface]),
        GicDescription::V3 {
            distributor,
            redistributor,
        } => devices.extend([distributor, redistributor]),
    }
    for device in devices {
        let start = device.start & !(PAGE_SIZE - 1);
        map(
            start,
            device.end.next_multiple_of(PAGE_SIZE),
            PageAttrs::KERNEL_DEVICE,
        );
    }
    table
}

/// Stops the boot when the kernel was started at EL3 (QEMU `-machine virt,secure=on`
/// with no firmware). The boot stub dropped to the normal world only so that this can be
/// said: nothing gave the GIC's interrupts to the normal world (at reset they all belong
/// to the secure one, and only EL3 can hand them over), so no timer tick or device
/// interrupt would ever reach the kernel.
fn refuse_el3() -> ! {
    kprintln!(
        "[kaal] entered at EL3 with no firmware: the GIC's interrupts still belong to the \
         secure world, so KaaL cannot run; start it at EL2 or EL1 (through firmware such \
         as TF-A, or QEMU virt without secure=on); halting"
    );
    halt(1)
}

/// Ends the boot: ends QEMU with `status` through semihosting when it is configured,
/// else waits for interrupts forever.
fn halt(status: u32) -> ! {
    if crate::semihosting_enabled() {
        // SAFETY: semihosting was configured as available.
        unsafe { crate::arch::semihosting::exit(status) }
    }
    loop {
        crate::arch::wait_for_interrupt();
    }
}

/// Stops the boot on a root task image the loader refuses: prints why and halts (ends
/// QEMU through semihosting when it is configured). A bad image is a configuration
/// error, not a kernel fault, so this is not a panic.
fn refuse_root_task(name: &str, error: impl core::fmt::Display) -> ! {
    kprintln!("[kaal] root task \"{name}\" refused: {error}; halting");
    halt(1)
}

/// A fresh frame for the root task holding `bytes` at `offset` and zeroes everywhere
/// else (RAM holds anything at reset on real hardware). Only the bytes not copied are
/// zeroed, with [`zero_ram`] (a cache block an instruction): most of the root task's
/// memory is zero-initialised data (the runtime's heap) and its stack.
fn filled_frame(offset: usize, bytes: &[u8]) -> u64 {
    let frame = FRAMES
        .lock()
        .allocate()
        .unwrap_or_else(|error| panic!("loading root task: {error}"));
    let page = PAGE_SIZE as usize;
    let end = offset + bytes.len();
    assert!(
        end <= page,
        "{} bytes at {offset} overflow a page",
        bytes.len()
    );
    // SAFETY: the frame is RAM in the linear map (normal memory), just allocated and
    // used by nothing else; `[0, offset)`, `[offset, end)` and `[end, page)` are in it.
    unsafe {
        let base = phys_to_virt(frame) as *mut u8;
        zero_ram(base, offset);
        ram_bytes_mut(frame + offset as u64, bytes.len()).copy_from_slice(bytes);
        zero_ram(base.add(end), page - end);
    }
    frame
}

/// Maps the pages of `segment` into `table`, each a fresh frame into which the
/// segment's bytes are copied straight from `elf` (the image the plan was made from),
/// zero-filled around them.
fn load_segment(table: &mut TranslationTable, elf: &[u8], segment: &loader::Segment) {
    let attrs = PageAttrs::user(segment.write, segment.execute);
    let (start, end) = segment.page_span();
    table
        .map_pages(
            &mut LinearTables,
            start,
            (end - start) / PAGE_SIZE,
            attrs,
            // The planner keeps `offset + range.len()` within the page.
            |page| match segment.file_bytes_in_page(page) {
                Some((offset, range)) => filled_frame(offset, &elf[range]),
                None => filled_frame(0, &[]),
            },
        )
        .unwrap_or_else(|error| panic!("mapping root task pages {start:#x}..{end:#x}: {error}"));
}

/// Copies `bytes` into fresh frames mapped at `vaddr` with `attrs` (zero-filling the
/// mapping up to `size`).
fn map_copy(table: &mut TranslationTable, vaddr: u64, size: u64, bytes: &[u8], attrs: PageAttrs) {
    table
        .map_pages(
            &mut LinearTables,
            vaddr,
            size.div_ceil(PAGE_SIZE),
            attrs,
            |page| {
                let from = ((page - vaddr) as usize).min(bytes.len());
                let to = ((page - vaddr + PAGE_SIZE) as usize).min(bytes.len());
                filled_frame(0, &bytes[from..to])
            },
        )
        .unwrap_or_else(|error| panic!("mapping root task pages from {vaddr:#x}: {error}"));
}

fn load_root_task(
    config: &Config,
    platform: &Platform<'_>,
    tree: &DeviceTree<'_>,
    devices: &[DeviceNode<'_>],
    kernel: &mut Kernel,
) {
    let archive = Archive::parse(config.components)
        .unwrap_or_else(|error| panic!("component archive: {error}"));
    let elf = archive.get(config.root_task).unwrap_or_else(|| {
        panic!(
            "component archive has no entry named \"{}\"",
            config.root_task
        )
    });
    // The archive is copied whole into the root task's address space; the image's
    // segments may take half of what is left: the rest is for their page tables, the
    // stack, the boot info and the root CNode. An archive that leaves no room at all is
    // refused like a bad image (it is the same build input).
    let archive_bytes = (config.components.len() as u64).next_multiple_of(PAGE_SIZE);
    let free = FRAMES.lock().free_bytes();
    if archive_bytes >= free / 2 {
        refuse_root_task(
            config.root_task,
            format_args!(
                "the component archive ({archive_bytes:#x} bytes) leaves too little of the {free:#x} free bytes"
            ),
        );
    }
    let limit = (free - archive_bytes) / 2;
    let plan = loader::plan_root_task(elf, config.components.len() as u64, limit)
        .unwrap_or_else(|error| refuse_root_task(config.root_task, error));
    let mut table = TranslationTable::new(&mut LinearTables).expect("root task table");

    for segment in plan.segments() {
        load_segment(&mut table, elf, segment);
    }
    let stack_bottom = layout::ROOT_STACK_TOP - layout::ROOT_STACK_BYTES;
    map_copy(
        &mut table,
        stack_bottom,
        layout::ROOT_STACK_BYTES,
        &[],
        PageAttrs::user(true, false),
    );
    let archive_size = (config.components.len() as u64).next_multiple_of(PAGE_SIZE);
    map_copy(
        &mut table,
        layout::ARCHIVE_VADDR,
        archive_size,
        config.components,
        PageAttrs::user(false, false),
    );
    kprintln!(
        "  root task \"{}\": entry {:#x}, {} segment(s), {} KiB stack, archive of {} component(s) at {:#x}",
        config.root_task,
        plan.entry(),
        plan.segments().len(),
        layout::ROOT_STACK_BYTES / 1024,
        archive.len(),
        layout::ARCHIVE_VADDR
    );

    // Boot info: map its frames first (mapping may allocate tables), then describe the
    // memory that is left, which is what user space receives. The frames are one block,
    // zeroed, which the boot info is written into in place.
    let boot_info_frame = FRAMES
        .lock()
        .allocate_contiguous(BOOT_INFO_MAX_BYTES as u64, PAGE_SIZE)
        .unwrap_or_else(|error| panic!("boot info: {error}"));
    // SAFETY: the frames are RAM in the linear map, just allocated for the boot info.
    unsafe {
        zero_ram(
            phys_to_virt(boot_info_frame) as *mut u8,
            BOOT_INFO_MAX_BYTES,
        )
    };
    table
        .map_pages(
            &mut LinearTables,
            BOOT_INFO_VADDR,
            BOOT_INFO_MAX_BYTES as u64 / PAGE_SIZE,
            PageAttrs::user(false, false),
            |page| boot_info_frame + (page - BOOT_INFO_VADDR),
        )
        .unwrap_or_else(|error| panic!("mapping the boot info: {error}"));
    // The root thread's TCB comes from boot memory, like the root CNode.
    let thread = allocate_zeroed_frame().unwrap_or_else(|error| panic!("root TCB: {error}"));
    // SAFETY: the frame was just allocated for this TCB alone.
    unsafe { kernel.initialise_tcb(thread) };
    kernel.claim_asid(ROOT_ASID, table.root());
    let (caps, untyped) = build_root_cspace(
        &mut kernel.objects,
        platform,
        tree,
        devices,
        thread,
        table.root(),
    );
    let boot_info_size =
        write_root_boot_info(config, platform, devices, boot_info_frame, caps, &untyped);
    FRAMES.lock().seal();
    kprintln!(
        "  boot info: {boot_info_size} bytes at {BOOT_INFO_VADDR:#x} (frame {boot_info_frame:#x})"
    );
    let root = kernel.objects.tcb_mut(thread);
    root.context = UserContext::new(
        plan.entry(),
        layout::ROOT_STACK_TOP,
        BOOT_INFO_VADDR,
        boot_info_size as u64,
    );
    root.priority = config.root_priority;
    kernel.make_ready(thread);
}

/// Creates the root CNode and fills it: the CNode itself, IRQ control, then untyped
/// capabilities to all free RAM and to device memory the kernel does not use itself.
/// Returns the CSpace root, the slot ranges and the untyped regions in slot order.
fn build_root_cspace(
    objects: &mut KernelObjects,
    platform: &Platform<'_>,
    tree: &DeviceTree<'_>,
    devices: &[DeviceNode<'_>],
    thread: u64,
    table_root: u64,
) -> (InitialCaps, Vec<UntypedRegion>) {
    let radix = slots::ROOT_CNODE_RADIX;
    let bytes = 1u64 << (SLOT_SIZE_BITS + radix);
    let cnode = FRAMES
        .lock()
        .allocate_contiguous(bytes, bytes)
        .unwrap_or_else(|error| panic!("root CNode: {error}"));
    // SAFETY: the frames were just allocated for the root CNode alone.
    unsafe { objects::initialise_cnode(cnode, radix) };
    let root = objects::cnode_capability(cnode, radix);

    let mut regions = Vec::new();
    for range in FRAMES.lock().free_ranges() {
        split_into_untyped(range.start, range.end, |base, bits| {
            regions.push(UntypedRegion {
                base,
                size_bytes: 1 << bits,
                is_device: false,
            });
        });
    }
    let ram_count = regions.len();
    // Device memory: every device's pages, merged, minus what the kernel drives itself.
    // With the boot argument `kaal.console=shared` the console UART is handed out too,
    // for a user-space driver to take its receive side; the kernel goes on writing its
    // own messages to it.
    let share_console = platform
        .bootargs
        .split_whitespace()
        .any(|argument| argument == "kaal.console=shared");
    let mut kernel_devices = Vec::new();
    if !share_console {
        kernel_devices.push(platform.uart);
    }
    match platform.gic {
        GicDescription::V2 {
            distributor,
            cpu_interface,
        } => kernel_devices.extend([distributor, cpu_interface]),
        GicDescription::V3 {
            distributor,
            redistributor,
        } => kernel_devices.extend([distributor, redistributor]),
    }
    // The GIC's other frames stay with the kernel too: an ITS reads and writes its
    // tables by DMA (its holder could write any memory), a v2m frame raises any SPI.
    kernel_devices.extend(
        devices
            .iter()
            .filter(|device| platform::is_interrupt_controller_part(device.compatible))
            .map(|device| device.region),
    );
    // Device memory for user space: never over RAM, a firmware reservation or the
    // kernel's own devices (see `platform::user_device_pages`).
    let reserved: Vec<PhysRange> = tree.memory_reservations().collect();
    // A device kept from user space for anything but being the kernel's own is a fault
    // of the device tree: say which and why.
    for device in devices {
        if let Err(why) =
            platform::device_pages(device.region, &kernel_devices, platform.memory(), &reserved)
            && why != platform::Withheld::KernelDevice
        {
            kprintln!(
                "  device {} ({}) at {:#x}..{:#x}: no device memory for user space, {why}",
                device.node.name(),
                device.compatible.split('\0').next().unwrap_or(""),
                device.region.start,
                device.region.end
            );
        }
    }
    let merged = platform::user_device_pages(
        devices.iter().map(|d| d.region),
        &kernel_devices,
        platform.memory(),
        &reserved,
    );
    for range in &merged {
        split_into_untyped(range.start, range.end, |base, bits| {
            regions.push(UntypedRegion {
                base,
                size_bytes: 1 << bits,
                is_device: true,
            });
        });
    }

    let mut cspace = CSpace::new(objects);
    let mut next = slots::ROOT_CNODE as u32;
    let mut insert = |cap: Capability, next: &mut u32| {
        cspace
            .insert_root(SlotRef::new(cnode, *next), cap)
            .unwrap_or_else(|error| panic!("root CSpace slot {next}: {error}"));
        *next += 1;
    };
    insert(root, &mut next);
    insert(
        Capability::new(ObjectType::IrqControl, 0, Rights::ALL),
        &mut next,
    );
    insert(
        Capability::new(ObjectType::Tcb, thread, Rights::ALL),
        &mut next,
    );
    insert(
        Capability::new(ObjectType::AddressSpace, table_root, Rights::ALL)
            .with_extra(u64::from(ROOT_ASID)),
        &mut next,
    );
    insert(
        Capability::new(ObjectType::SystemControl, 0, Rights::ALL),
        &mut next,
    );
    insert(
        Capability::new(ObjectType::Console, 0, Rights::ALL),
        &mut next,
    );
    debug_assert_eq!(u64::from(next), slots::CONSOLE + 1);
    let untyped_start = next;
    for region in &regions {
        let bits = region.size_bytes.trailing_zeros() as u8;
        let cap = objects::untyped_capability(region.base, bits, region.is_device)
            .unwrap_or_else(|error| panic!("untyped {:#x}: {error}", region.base));
        insert(cap, &mut next);
    }
    let caps = InitialCaps {
        untyped: SlotRange {
            start: untyped_start,
            count: ram_count as u32,
        },
        device_untyped: SlotRange {
            start: untyped_start + ram_count as u32,
            count: (regions.len() - ram_count) as u32,
        },
        first_free: next,
    };
    // The root thread's own CSpace and address-space slots.
    let slot = |index: u64| SlotRef::new(cnode, index as u32);
    for (source, index) in [
        (slots::ROOT_CNODE, CSPACE_SLOT),
        (slots::ROOT_ADDRESS_SPACE, VSPACE_SLOT),
    ] {
        cspace
            .derive(
                slot(source),
                SlotRef::new(Tcb::slots_key(thread), index),
                Rights::ALL,
                None,
            )
            .unwrap_or_else(|error| panic!("root thread slot {index}: {error}"));
    }
    (caps, regions)
}

fn write_root_boot_info(
    config: &Config,
    platform: &Platform<'_>,
    device_nodes: &[DeviceNode<'_>],
    boot_info_frame: u64,
    caps: InitialCaps,
    untyped: &[UntypedRegion],
) -> usize {
    let irq_lists: Vec<Vec<u32>> = device_nodes
        .iter()
        .map(|d| platform::interrupt_ids(d.node).collect())
        .collect();
    let devices: Vec<DeviceDesc<'_>> = device_nodes
        .iter()
        .zip(&irq_lists)
        .map(|(d, irqs)| d.desc(irqs))
        .collect();
    let input = BootInfoInput {
        system: SystemFacts {
            ram_base: platform.memory()[0].start,
            ram_bytes: platform.ram_bytes(),
            cpu_count: platform.cpu_count,
            cpus_online: cpus_online(),
            timer_frequency_hz: timer::frequency_hz(),
        },
        kernel_version: crate::VERSION,
        bootargs: platform.bootargs,
        untyped,
        devices: &devices,
        caps,
        archive: ArchiveInfo {
            phys_base: virt_to_phys(config.components.as_ptr() as u64),
            size_bytes: config.components.len() as u64,
            user_vaddr: layout::ARCHIVE_VADDR,
        },
    };
    // SAFETY: the frames were allocated for the boot info above, and are not yet
    // visible to any running thread.
    let buffer = unsafe { ram_bytes_mut(boot_info_frame, BOOT_INFO_MAX_BYTES) };
    let size = write_boot_info(buffer, &input).unwrap_or_else(|error| panic!("boot info: {error}"));
    kprintln!(
        "  root CSpace: {} RAM and {} device untyped capabilities, first free slot {}; {} device(s) described",
        caps.untyped.count,
        caps.device_untyped.count,
        caps.first_free,
        devices.len()
    );
    size
}
