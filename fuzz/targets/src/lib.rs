//! # kaal-fuzz-targets: the bodies of KaaL's parser fuzz targets
//!
//! Every parser that reads bytes someone else wrote has one function here that feeds it
//! arbitrary bytes and, when it accepts them, walks everything the parsed value offers
//! and asserts what must hold: every borrowed slice inside the input, counts within
//! their limits, no arithmetic overflow, and a write-then-parse round trip that gives
//! the same value back. A panic is a bug, in the parser or in this crate's invariants.
//!
//! The functions are driven two ways:
//!
//! * by libFuzzer, through the `cargo fuzz` targets in `fuzz/fuzz_targets/` (nightly;
//!   see `fuzz/README.md`);
//! * on stable, by this crate's tests, which replay every file of `fuzz/corpus/<target>/`
//!   and a few thousand mutations of them (part of `cargo xtask test`).
//!
//! [`TARGETS`] lists them by the name of their fuzz target and corpus directory.

use std::collections::BTreeSet;

use kaal_bootinfo::archive::{self, Archive, ArchiveBuilder};
use kaal_bootinfo::loader::{self, LoadPlan, PAGE_SIZE, Rules, Window};
use kaal_bootinfo::startup::{Grant, MAX_GRANT_NAME_BYTES, StartupInfo, StartupWriter};
use kaal_bootinfo::system::SystemDescription;
use kaal_bootinfo::{
    ArchiveInfo, BOOT_INFO_MAX_BYTES, BootInfo, BootInfoInput, DeviceDesc, InitialCaps,
    MAX_IRQS_PER_DEVICE, SystemFacts, UntypedRegion, boot_info_to_vec, write_boot_info,
};
use kaal_ipc::{Notify, SharedRing, Spin};
use kaal_kernel::platform::{self, Platform};

/// A fuzz target body: parses `data` and checks what the parser returned.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `cargo fuzz` target and `fuzz/corpus/` directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("boot_info", boot_info),
    ("archive", archive),
    ("system_description", system_description),
    ("startup_record", startup_record),
    ("elf_plan", elf_plan),
    ("device_tree", device_tree),
    ("ring_attach", ring_attach),
];

/// Whether `part` lies inside `whole` (the same allocation, in bounds).
fn inside(whole: &[u8], part: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let end = start + whole.len();
    let part_start = part.as_ptr() as usize;
    part.is_empty() || (part_start >= start && part_start + part.len() <= end)
}

/// `kaal_bootinfo::BootInfo::from_bytes`: the boot-info area the kernel hands the root
/// task.
pub fn boot_info(data: &[u8]) {
    let Ok(info) = BootInfo::from_bytes(data) else {
        return;
    };
    let area = info.as_bytes();
    assert_eq!(area.as_ptr(), data.as_ptr());
    assert_eq!(area.len(), info.total_size());
    assert!(info.total_size() <= data.len());
    assert!(info.header_size() <= info.total_size());
    assert_eq!(info.version().0, kaal_bootinfo::VERSION_MAJOR);
    assert!(inside(area, info.kernel_version().as_bytes()));
    assert!(inside(area, info.bootargs().as_bytes()));

    let untyped: Vec<UntypedRegion> = info.untyped().collect();
    assert_eq!(untyped.len(), info.untyped_count());
    assert_eq!(info.untyped().len(), info.untyped_count());
    for region in &untyped {
        assert!(region.base.checked_add(region.size_bytes).is_some());
    }

    let devices: Vec<_> = info.devices().collect();
    assert_eq!(devices.len(), info.device_count());
    assert_eq!(info.devices().len(), info.device_count());
    let mut irq_lists = Vec::with_capacity(devices.len());
    for device in &devices {
        assert!(device.base.checked_add(device.size_bytes).is_some());
        assert!(inside(area, device.compatible.as_bytes()));
        let irqs: Vec<u32> = device.irqs().collect();
        assert_eq!(irqs.len(), device.irq_count());
        assert!(irqs.len() <= MAX_IRQS_PER_DEVICE as usize);
        for entry in device.compatible_list() {
            assert!(!entry.is_empty() && !entry.contains('\0'));
            assert!(device.is_compatible(entry));
            let first = info.find_device(entry).expect("a listed device is found");
            assert!(first.is_compatible(entry));
        }
        let _ = format!("{device:?}");
        irq_lists.push(irqs);
    }

    // Written back, the same description parses to the same facts (when it is within the
    // writer's limits, which the parser does not enforce).
    let descs: Vec<DeviceDesc<'_>> = devices
        .iter()
        .zip(&irq_lists)
        .map(|(d, irqs)| DeviceDesc {
            base: d.base,
            size_bytes: d.size_bytes,
            irqs,
            compatible: d.compatible,
        })
        .collect();
    let input = BootInfoInput {
        system: info.system(),
        kernel_version: info.kernel_version(),
        bootargs: info.bootargs(),
        untyped: &untyped,
        devices: &descs,
        caps: info.caps(),
        archive: info.archive(),
    };
    if let Ok(bytes) = boot_info_to_vec(&input) {
        let again = BootInfo::from_bytes(&bytes).expect("written boot info parses");
        assert_same_boot_info(&again, &input);
    }
}

/// Checks that `info` says what `input` said.
fn assert_same_boot_info(info: &BootInfo<'_>, input: &BootInfoInput<'_>) {
    assert_eq!(info.system(), input.system);
    assert_eq!(info.kernel_version(), input.kernel_version);
    assert_eq!(info.bootargs(), input.bootargs);
    assert_eq!(info.caps(), input.caps);
    assert_eq!(info.archive(), input.archive);
    assert!(info.untyped().eq(input.untyped.iter().copied()));
    assert_eq!(info.device_count(), input.devices.len());
    for (got, want) in info.devices().zip(input.devices) {
        assert_eq!(got.base, want.base);
        assert_eq!(got.size_bytes, want.size_bytes);
        assert_eq!(got.compatible, want.compatible);
        assert!(got.irqs().eq(want.irqs.iter().copied()));
    }
}

/// `kaal_bootinfo::archive::Archive::parse`: the component archive the kernel embeds.
pub fn archive(data: &[u8]) {
    let Ok(archive) = Archive::parse(data) else {
        return;
    };
    let bytes = archive.as_bytes();
    assert_eq!(bytes.as_ptr(), data.as_ptr());
    assert_eq!(bytes.len(), archive.total_size());
    assert!(archive.total_size() <= data.len());
    assert!(archive.len() <= archive::MAX_ENTRIES);
    assert_eq!(archive.is_empty(), archive.entries().next().is_none());
    assert_eq!(archive.entries().len(), archive.len());
    let table_end = archive::ARCHIVE_HEADER_SIZE + archive.len() * archive::ENTRY_HEADER_SIZE;
    let mut names = BTreeSet::new();
    let mut builder = ArchiveBuilder::new();
    for entry in archive.entries() {
        assert!(!entry.name.is_empty() && entry.name.len() <= archive::MAX_NAME_BYTES);
        assert!(names.insert(entry.name), "duplicate name {:?}", entry.name);
        assert!(inside(bytes, entry.data));
        let offset = entry.data.as_ptr() as usize - bytes.as_ptr() as usize;
        assert!(entry.data.is_empty() || offset >= table_end);
        assert!(entry.data.is_empty() || offset.is_multiple_of(archive::DATA_ALIGN));
        let found = archive.get(entry.name).expect("a listed entry is found");
        assert_eq!(found.as_ptr(), entry.data.as_ptr());
        assert_eq!(found.len(), entry.data.len());
        builder
            .add(entry.name, entry.data)
            .expect("a parsed entry can be packed again");
    }
    assert_eq!(names.len(), archive.len());

    // Packed again, the entries parse back the same.
    let packed = builder.finish();
    let again = Archive::parse(&packed).expect("a packed archive parses");
    assert!(again.entries().eq(archive.entries()));
}

/// `kaal_bootinfo::system::SystemDescription::decode`: the system description the broker
/// reads from the archive.
pub fn system_description(data: &[u8]) {
    let Ok(system) = SystemDescription::decode(data) else {
        return;
    };
    let mut components = BTreeSet::new();
    for c in &system.components {
        assert!(!c.name.is_empty() && !c.image.is_empty());
        assert!(components.insert(c.name.as_str()));
        assert_eq!(system.component(&c.name), Some(c));
        for d in &c.devices {
            assert!(system.device(d).is_some());
        }
    }
    let mut devices = BTreeSet::new();
    for d in &system.devices {
        assert!(!d.name.is_empty());
        assert!(devices.insert(d.name.as_str()));
    }
    let mut links = BTreeSet::new();
    for ch in &system.channels {
        assert!(links.insert(ch.name.as_str()));
        assert!(ch.capacity.is_power_of_two() && ch.capacity <= 1 << 30);
        assert!(ch.element_bytes > 0 && ch.element_align.is_power_of_two());
        assert!(components.contains(ch.producer.as_str()));
        assert!(components.contains(ch.consumer.as_str()));
        assert_ne!(ch.producer, ch.consumer);
    }
    for e in &system.endpoints {
        assert!(links.insert(e.name.as_str()));
        assert!(components.contains(e.server.as_str()));
        let clients: BTreeSet<_> = e.clients.iter().collect();
        assert_eq!(clients.len(), e.clients.len());
    }

    // Encoded again, it decodes to the same description. (A newer minor version may carry
    // service bits this version does not know, which only that version's decoder accepts.)
    let encoded = system.encode();
    let minor = u16::from_le_bytes([data[10], data[11]]);
    let lenient = minor > kaal_bootinfo::system::SYSTEM_VERSION_MINOR;
    if !lenient {
        assert_eq!(SystemDescription::decode(&encoded).as_ref(), Ok(&system));
    }
}

/// `kaal_bootinfo::startup::StartupInfo::parse`: the start-up record a component reads.
pub fn startup_record(data: &[u8]) {
    let Ok(info) = StartupInfo::parse(data) else {
        return;
    };
    let name = info.component_name();
    assert!(name.len() <= MAX_GRANT_NAME_BYTES);
    assert!(inside(data, name.as_bytes()));
    if let Some((vaddr, bytes)) = info.heap() {
        assert!(vaddr != 0 && bytes != 0);
    }
    let grants: Vec<Grant<'_>> = info.grants().collect();
    for grant in &grants {
        assert!(!grant.name.is_empty() && grant.name.len() <= MAX_GRANT_NAME_BYTES);
        assert!(!grant.name.contains('\0'));
        assert!(inside(data, grant.name.as_bytes()));
        let found = info
            .find(grant.name, grant.kind)
            .expect("a listed grant is found");
        assert_eq!((found.name, found.kind), (grant.name, grant.kind));
    }

    // Written again, the record lists the same grants.
    if name.is_empty() {
        return;
    }
    let mut buffer = vec![0u8; 64 + 128 * (grants.len() + 1)];
    let mut writer = StartupWriter::new(&mut buffer, name, info.component_id(), info.generation())
        .expect("the buffer holds the header and the first entry");
    writer.argument(info.argument());
    if let Some((vaddr, bytes)) = info.heap() {
        writer.heap(vaddr, bytes);
    }
    for grant in &grants {
        writer.push(grant).expect("the buffer holds every grant");
    }
    let used = writer.finish();
    let again = StartupInfo::parse(&buffer[..used]).expect("a written record parses");
    assert_eq!(again.component_name(), name);
    assert_eq!(again.component_id(), info.component_id());
    assert_eq!(again.generation(), info.generation());
    assert_eq!(again.argument(), info.argument());
    assert_eq!(again.heap(), info.heap());
    assert!(again.grants().eq(grants.iter().copied()));
}

/// Windows like those the loaders reserve beside an image.
const WINDOWS: [Window; 3] = [
    Window::new("stack", 0x3f_ffff_0000, 0x40_0000_0000),
    Window::new("start-up record", 0x0f00_0000, 0x0f00_1000),
    Window::new("boot info", 0x1000_0000, 0x1001_0000),
];

/// `kaal_bootinfo::loader::plan`, the ELF planner of the kernel (root task) and of
/// `kaal-user` (every process), under the kernel's rules, rules like `kaal-user`'s, and
/// rules that allow the whole address space (to reach the overflow edges).
pub fn elf_plan(data: &[u8]) {
    let archive_bytes = data.len() as u64;
    if let Ok(plan) = kaal_kernel::loader::plan_root_task(data, archive_bytes, 16 << 20) {
        let windows = kaal_kernel::loader::root_task_windows(archive_bytes);
        let rules = Rules {
            user_start: kaal_abi::layout::USER_START,
            user_end: kaal_abi::layout::USER_END,
            reserved: &windows,
            max_bytes: 16 << 20,
        };
        check_plan(data, &plan, &rules);
    }
    let user = Rules {
        user_start: PAGE_SIZE,
        user_end: 1 << 39,
        reserved: &WINDOWS,
        max_bytes: 64 << 20,
    };
    if let Ok(plan) = loader::plan(data, &user) {
        check_plan(data, &plan, &user);
    }
    let anything = Rules {
        user_start: 0,
        user_end: u64::MAX,
        reserved: &[],
        max_bytes: u64::MAX,
    };
    if let Ok(plan) = loader::plan(data, &anything) {
        check_plan(data, &plan, &anything);
    }
}

/// Checks every rule [`loader::plan`] promises for `plan`, made from `image` under
/// `rules`, and copies every file byte the way a loader does.
fn check_plan(image: &[u8], plan: &LoadPlan, rules: &Rules<'_>) {
    let segments = plan.segments();
    assert!(!segments.is_empty() && segments.len() <= loader::MAX_SEGMENTS);
    assert!(
        segments
            .iter()
            .any(|s| s.execute && plan.entry() >= s.vaddr && plan.entry() - s.vaddr < s.mem_size),
        "entry point outside every executable segment"
    );
    let mut total: u64 = 0;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for (i, s) in segments.iter().enumerate() {
        assert!(!(s.write && s.execute), "W^X");
        assert!(s.file_size <= s.mem_size);
        let file_end = s.file_offset.checked_add(s.file_size).expect("file end");
        assert!(file_end <= image.len() as u64);
        let end = s.vaddr.checked_add(s.mem_size).expect("segment end");
        assert!(s.vaddr >= rules.user_start && end <= rules.user_end);
        let (first, last) = s.page_span();
        assert!(first <= s.vaddr && last >= end && first.is_multiple_of(PAGE_SIZE));
        assert!(last.is_multiple_of(PAGE_SIZE));
        assert_eq!(s.page_bytes(), last - first);
        total = total.checked_add(s.page_bytes()).expect("total memory");
        for w in rules.reserved {
            let (w_start, w_end) = (
                w.start & !(PAGE_SIZE - 1),
                w.end
                    .checked_next_multiple_of(PAGE_SIZE)
                    .unwrap_or(u64::MAX),
            );
            assert!(
                w_start >= w_end || last <= w_start || w_end <= first,
                "segment {} meets the {} window",
                s.index,
                w.name
            );
        }
        for other in &segments[..i] {
            let (o_first, o_last) = other.page_span();
            assert!(last <= o_first || o_last <= first, "segments share a page");
            assert!(other.index < s.index);
        }
        // Copy the file bytes page by page, as the loaders do; pages past the file bytes
        // are zero. Only the pages holding file bytes are walked (the image bounds them).
        let mut copied: u64 = 0;
        let file_pages_end = s
            .vaddr
            .saturating_add(s.file_size)
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(last)
            .min(last);
        let mut at = first;
        while at < file_pages_end {
            if let Some((offset, range)) = s.file_bytes_in_page(at) {
                assert!(range.start <= range.end && range.end <= image.len());
                assert!(range.start as u64 >= s.file_offset && range.end as u64 <= file_end);
                let len = range.end - range.start;
                assert!(offset + len <= PAGE_SIZE as usize);
                page[offset..offset + len].copy_from_slice(&image[range]);
                copied += len as u64;
            }
            at += PAGE_SIZE;
        }
        assert_eq!(copied, s.file_size);
        if file_pages_end < last {
            assert_eq!(s.file_bytes_in_page(last - PAGE_SIZE), None);
        }
    }
    assert_eq!(total, plan.memory_bytes());
    assert!(total <= rules.max_bytes);
}

/// `kaal_kernel::platform`: the kernel's reading of the device tree, then the boot info it
/// writes from it (as the kernel's boot does) read back by the root task's parser.
pub fn device_tree(data: &[u8]) {
    let Ok(tree) = platform::parse_blob(data) else {
        return;
    };
    let header: &[u8; 8] = data[..8].try_into().expect("a parsed blob has a header");
    let size = platform::blob_size(header).expect("a parsed blob has the magic");
    assert!(size <= data.len());

    let devices: Vec<_> = platform::devices(&tree).collect();
    let mut irq_lists = Vec::with_capacity(devices.len());
    for device in &devices {
        assert!(device.region.size() > 0);
        assert!(device.region.start <= device.region.end);
        assert!(inside(data, device.compatible.as_bytes()));
        irq_lists.push(platform::interrupt_ids(device.node).collect::<Vec<u32>>());
    }

    let Ok(machine) = Platform::from_fdt(&tree) else {
        return;
    };
    let memory = machine.memory();
    assert!(!memory.is_empty() && memory.len() <= platform::MAX_MEMORY_REGIONS);
    for region in memory {
        assert!(region.size() > 0);
    }
    let ram_bytes = machine.ram_bytes();
    assert!(ram_bytes >= memory[0].size());
    assert!(machine.cpu_count >= 1);
    assert!(inside(data, machine.bootargs.as_bytes()));
    let _ = format!("{machine:?}");

    let descs: Vec<DeviceDesc<'_>> = devices
        .iter()
        .zip(&irq_lists)
        .map(|(d, irqs)| d.desc(irqs))
        .collect();
    let untyped = [UntypedRegion {
        base: memory[0].start,
        size_bytes: memory[0].size(),
        is_device: false,
    }];
    let input = BootInfoInput {
        system: SystemFacts {
            ram_base: memory[0].start,
            ram_bytes,
            cpu_count: machine.cpu_count,
            cpus_online: machine.cpu_affinities().len().max(1) as u32,
            timer_frequency_hz: 62_500_000,
        },
        kernel_version: kaal_kernel::VERSION,
        bootargs: machine.bootargs,
        untyped: &untyped,
        devices: &descs,
        caps: InitialCaps::default(),
        archive: ArchiveInfo::default(),
    };
    let mut buffer = vec![0u8; BOOT_INFO_MAX_BYTES];
    // The kernel stops with the writer's error if the tree describes more than fits.
    if let Ok(used) = write_boot_info(&mut buffer, &input) {
        let info = BootInfo::from_bytes(&buffer[..used]).expect("written boot info parses");
        assert_same_boot_info(&info, &input);
    }
}

/// A region for a ring: owned, zeroed, aligned to 256 bytes (more than any ring below
/// needs), holding a copy of the fuzz input.
#[repr(C, align(256))]
#[derive(Clone, Copy)]
struct Block([u8; 256]);

/// An element with an alignment above the header's cache line, so its slot array starts
/// past the header.
#[repr(C, align(256))]
#[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
struct Wide([u8; 256]);

/// `kaal_ipc::SharedRing::attach`: a ring header another process wrote, attached as
/// several ring types (each accepts only its own geometry), then used from both ends.
pub fn ring_attach(data: &[u8]) {
    attach_and_use::<u64, 16>(data, |i| i as u64);
    attach_and_use::<u8, 1>(data, |i| i as u8);
    attach_and_use::<[u32; 3], 64>(data, |i| [i as u32; 3]);
    attach_and_use::<Wide, 2>(data, |i| Wide([i as u8; 256]));
}

/// Copies `data` into an aligned region (zero-padded to the ring's size) and attaches a
/// `SharedRing<T, N>` to it; if the header is accepted, drains the ring, fills it and
/// drains it again, checking the counts.
fn attach_and_use<T, const N: usize>(data: &[u8], item: fn(usize) -> T)
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable + Copy + Send,
{
    let size = SharedRing::<T, N>::REGION_SIZE;
    let blocks = size.max(data.len()).div_ceil(size_of::<Block>());
    let mut region = vec![Block([0; 256]); blocks];
    let base = region.as_mut_ptr().cast::<u8>();
    // SAFETY: `region` holds `blocks * 256 >= data.len()` bytes.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), base, data.len()) };
    // The input's length is the region's, so short inputs exercise the size check.
    let len = data.len();
    // SAFETY: `base` is valid for reads and writes of `len` initialised bytes while
    // `region` lives (to the end of this function), and nothing else touches the region
    // while the attachment and its endpoints live.
    let Ok(attached) = (unsafe { SharedRing::<T, N>::attach(base, len) }) else {
        return;
    };
    assert!(len >= size);
    assert!((base as usize).is_multiple_of(SharedRing::<T, N>::REGION_ALIGN));
    let queued = attached.ring_len();
    assert!(queued <= N);
    let Ok((mut tx, mut rx)) = attached.split(Spin) else {
        return;
    };
    drain(&mut rx, queued);
    let mut pushed = 0;
    while tx.try_push(item(pushed)).is_ok() {
        pushed += 1;
        assert!(pushed <= N, "pushed past the capacity");
    }
    assert_eq!(pushed, N);
    assert_eq!(tx.len(), N);
    for i in 0..N {
        let got = rx.try_pop().expect("a pushed item pops");
        assert!(got.as_bytes() == item(i).as_bytes());
    }
    assert!(rx.try_pop().is_err());
    drop((tx, rx));
    drop(region);
}

/// Pops everything a ring attached with `queued` items holds.
fn drain<T, const N: usize, R, W>(rx: &mut kaal_ipc::Consumer<T, N, R, W>, queued: usize)
where
    R: kaal_ipc::RingHandle<T, N>,
    W: Notify,
{
    let mut popped = 0;
    while rx.try_pop().is_ok() {
        popped += 1;
        assert!(popped <= N, "popped past the capacity");
    }
    assert_eq!(popped, queued);
    assert!(rx.is_empty());
}
