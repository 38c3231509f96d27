//! Process start, heap and panic handling.

use crate::sync::Mutex;
use crate::{BootInfo, HEAP_BYTES, sys};
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::ptr::NonNull;
use linked_list_allocator::Heap;

core::arch::global_asm!(
    r#"
.section .text._start, "ax"
.global _start
_start:
    mov     x29, #0
    mov     x30, #0
    bl      kaal_user_start
1:  b       1b
"#
);

#[repr(C, align(16))]
struct HeapMemory([u8; HEAP_BYTES]);
static mut HEAP_MEMORY: HeapMemory = HeapMemory([0; HEAP_BYTES]);

/// The task's heap: a first-fit list allocator behind a lock whose waiters sleep (see
/// [`crate::sync`]), so a thread that allocates while a preempted thread of lower
/// priority is in the middle of an allocation lets it finish instead of spinning.
struct RuntimeHeap(Mutex<Heap>);

// SAFETY: every allocation and deallocation goes through the lock to the one
// `linked_list_allocator::Heap`, which returns blocks of the layout's size and alignment
// from memory handed to it once at start-up, and takes back only blocks it gave.
unsafe impl GlobalAlloc for RuntimeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block `alloc` returned with this layout.
            unsafe { self.0.lock().deallocate(ptr, layout) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: RuntimeHeap = RuntimeHeap(Mutex::new(Heap::empty()));

/// The heap's lock (to give it a notification).
pub(crate) fn heap_lock() -> &'static Mutex<Heap> {
    &ALLOCATOR.0
}

/// Runs `f` with the heap's lock held (a test hook: see `crate::test_hooks`).
pub(crate) fn with_heap_locked<R>(f: impl FnOnce() -> R) -> R {
    let _heap = ALLOCATOR.0.lock();
    f()
}

unsafe extern "Rust" {
    fn __kaal_user_main() -> i32;
    /// The ABI version this task was built for: [`kaal_abi::ABI_VERSION`], or for a test
    /// the version its `entry!(main, claimed_abi = ...)` claims. `entry!` and
    /// `component!` define it (with this type), in the task's own crate, so reading it
    /// is safe.
    safe static __KAAL_USER_BUILT_FOR_ABI: kaal_abi::AbiVersion;
}

static START_ARGUMENTS: spin::Once<(usize, usize)> = spin::Once::new();

/// The boot info, for a task the kernel started as the root task (`x0` is its address).
pub fn boot_info() -> Result<BootInfo<'static>, kaal_bootinfo::BootInfoError> {
    let (address, size) = start_arguments();
    if address as u64 != kaal_bootinfo::BOOT_INFO_VADDR {
        return Err(kaal_bootinfo::BootInfoError::TooShort {
            needed: 8,
            available: 0,
        });
    }
    // SAFETY: the kernel maps `size` bytes of boot info read-only at BOOT_INFO_VADDR in
    // the root task for its whole life, and never changes them.
    let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, size) };
    BootInfo::from_bytes(bytes)
}

/// The component archive the kernel mapped read-only into the root task.
pub fn components()
-> Result<kaal_bootinfo::archive::Archive<'static>, kaal_bootinfo::archive::ArchiveError> {
    let size = boot_info()
        .map(|boot| boot.archive())
        .ok()
        .filter(|a| a.user_vaddr != 0)
        .map_or(0, |a| a.size_bytes);
    if size == 0 {
        return kaal_bootinfo::archive::Archive::parse(&[]);
    }
    // SAFETY: the boot info says the kernel mapped `size` bytes of archive read-only at
    // `ARCHIVE_VADDR` for the root task's whole life; nothing writes them.
    let bytes = unsafe {
        core::slice::from_raw_parts(kaal_abi::layout::ARCHIVE_VADDR as *const u8, size as usize)
    };
    kaal_bootinfo::archive::Archive::parse(bytes)
}

/// `x0` and `x1` as the task started.
pub fn start_arguments() -> (usize, usize) {
    START_ARGUMENTS.get().copied().unwrap_or((0, 0))
}

type StartupRecord =
    Result<kaal_bootinfo::startup::StartupInfo<'static>, kaal_bootinfo::startup::StartupError>;

/// The start-up record as parsed once: `None` for a task started without one.
static STARTUP: spin::Once<Option<StartupRecord>> = spin::Once::new();

/// The start-up record this task was started with, if any, valid or not.
fn startup_record() -> Option<StartupRecord> {
    use kaal_bootinfo::startup::{STARTUP_MAX_BYTES, STARTUP_VADDR, StartupInfo};
    *STARTUP.call_once(|| {
        let (address, size) = start_arguments();
        if address as u64 != STARTUP_VADDR || size == 0 || size > STARTUP_MAX_BYTES {
            return None;
        }
        // SAFETY: a task started with `x0 = STARTUP_VADDR` was started by the broker,
        // which maps `size` (at most one page) bytes of start-up record read-only there
        // for the component's whole life and never changes them.
        let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, size) };
        Some(StartupInfo::parse(bytes))
    })
}

/// The start-up record, for a component the broker started (`x0` is its address).
/// [`StartupError::BadMagic`](kaal_bootinfo::startup::StartupError::BadMagic) for a task
/// started without one.
pub fn startup() -> Result<crate::startup::Startup, kaal_bootinfo::startup::StartupError> {
    match startup_record() {
        Some(record) => record.map(crate::startup::Startup::new),
        None => Err(kaal_bootinfo::startup::StartupError::BadMagic),
    }
}

/// Ends the task without running `main`: prints `[runtime] {why}`, ends QEMU under test
/// (`debug_exit`, which fails harmlessly elsewhere) and then the thread, both with
/// [`crate::EXIT_REFUSED`].
fn refuse(why: core::fmt::Arguments<'_>) -> ! {
    let mut console = crate::Console::new();
    let _ = writeln!(console, "[runtime] {why}");
    console.flush();
    let _ = sys::debug_exit(crate::EXIT_REFUSED);
    // A component the broker started reports its end, as `run_component` does after
    // `main`, so that the broker frees it and applies its policy instead of counting it
    // as running.
    if let Ok(record) = startup()
        && let Ok(broker) = record.broker()
    {
        let _ = broker.exit(crate::EXIT_REFUSED as i32);
    }
    sys::thread_exit(u64::from(crate::EXIT_REFUSED))
}

/// Refuses to start unless the kernel's ABI version is one this task can run on
/// ([`kaal_abi::is_compatible`] with the version it was built for).
fn check_abi_version() {
    let built_for = __KAAL_USER_BUILT_FOR_ABI;
    match sys::abi_version() {
        Ok(kernel) if kaal_abi::is_compatible(built_for, kernel) => {}
        Ok(kernel) => refuse(format_args!(
            "built for KaaL ABI {built_for} but the kernel provides ABI {kernel}: not starting"
        )),
        Err(kaal_abi::Error::UnknownSyscall) => refuse(format_args!(
            "built for KaaL ABI {built_for} but the kernel predates ABI 1.0 (it has no \
             abi_version call): not starting"
        )),
        Err(error) => refuse(format_args!(
            "built for KaaL ABI {built_for} but the kernel reports no ABI version \
             ({error}): not starting"
        )),
    }
}

/// Called by `_start` with the kernel's arguments: the boot info's address and size,
/// or (for a component) the start-up record's.
#[unsafe(no_mangle)]
extern "C" fn kaal_user_start(boot_info: usize, boot_info_bytes: usize) -> ! {
    START_ARGUMENTS.call_once(|| (boot_info, boot_info_bytes));
    let heap = startup_record()
        .and_then(Result::ok)
        .and_then(|record| record.heap());
    match heap {
        // SAFETY: the broker mapped `bytes` of fresh read-write memory at `vaddr` for this
        // component alone, for its whole life; runs once, before any allocation.
        Some((vaddr, bytes)) => unsafe {
            ALLOCATOR.0.lock().init(vaddr as *mut u8, bytes as usize)
        },
        // SAFETY: runs once, first thing, before any allocation; nothing else uses
        // HEAP_MEMORY.
        None => unsafe {
            ALLOCATOR
                .0
                .lock()
                .init((&raw mut HEAP_MEMORY).cast::<u8>(), HEAP_BYTES)
        },
    }
    let own = crate::process::CHILD_OWN_SLOTS;
    crate::cap::init_slots(crate::cap::SlotAllocator::new(own.start, own.end));
    if boot_info as u64 == kaal_bootinfo::BOOT_INFO_VADDR && boot_info_bytes != 0 {
        // Started by the kernel as the root task: its console is in the root task's slot,
        // also when the boot info is rejected (so that `entry!` can say why).
        sys::set_console_slot(kaal_abi::slots::CONSOLE);
    }
    if let Ok(boot) = self::boot_info() {
        crate::cap::init_slots(crate::cap::SlotAllocator::from_boot_info(&boot));
        if let Some(untyped) = crate::cap::largest_ram_untyped(&boot) {
            crate::thread::set_thread_memory(untyped);
        }
    }
    // With the heap and the console ready, so that a refusal can say why: first the
    // kernel's ABI, then (for a component the broker started) the start-up record.
    check_abi_version();
    if let Some(Err(error)) = startup_record() {
        refuse(format_args!(
            "start-up record rejected: {error}: not starting"
        ));
    }
    // SAFETY: `entry!` or `component!` defines `__kaal_user_main` with this signature.
    let code = unsafe { __kaal_user_main() };
    sys::thread_exit(code as u64)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut console = crate::Console::new();
    let _ = writeln!(
        console,
        "[runtime] thread {} panicked: {info}",
        sys::thread_id().0
    );
    console.flush();
    // A component's panic is a fault: its supervisor (the broker) restarts it or keeps
    // it down as its policy says.
    if matches!(STARTUP.get(), Some(Some(Ok(_)))) {
        sys::raise_memory_fault();
    }
    // Under test, a panic ends the run with a failure; elsewhere only this thread ends.
    let _ = sys::debug_exit(101);
    sys::thread_exit(101)
}
