//! Writes the generated seeds of the fuzz corpora:
//!
//! ```text
//! cargo run -p kaal-fuzz-targets --example seeds -- fuzz/corpus [COMPONENTS.kaal]
//! ```
//!
//! * `boot_info/`: the boot info the kernel writes for each device tree in
//!   `device_tree/` (QEMU `virt` trees), as its boot does;
//! * `startup_record/`: a start-up record with one grant of every kind;
//! * `ring_attach/`: ring regions of every ring type the target attaches, made by
//!   `SharedRing::init_in` and used (items queued, indices wrapped);
//! * `elf_plan/`: small well-formed executables;
//! * `archive/`: an archive of the executables in `elf_plan/`, the first system
//!   description in `system_description/` and a text file.
//!
//! With a component archive built by `kaal-build` (`target/kaal/<system>/components.kaal`
//! of a generated project), also writes each of its entries to `elf_plan/` (or
//! `system_description/` for the `system` entry) as `real-<name>`; strip debug
//! information from the executables afterwards (`llvm-strip`) to keep the corpus small.

use std::path::{Path, PathBuf};

use kaal_bootinfo::archive::{Archive, ArchiveBuilder};
use kaal_bootinfo::startup::{Grant, GrantKind, StartupWriter};
use kaal_bootinfo::{
    ArchiveInfo, BootInfoInput, DeviceDesc, InitialCaps, SlotRange, SystemFacts, UntypedRegion,
    boot_info_to_vec,
};
use kaal_ipc::{SharedRing, Spin};
use kaal_kernel::platform::{self, Platform};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create corpus directory");
    std::fs::write(dir.join(name), bytes).expect("write seed");
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

fn boot_infos(corpus: &Path) {
    let mut trees: Vec<PathBuf> = std::fs::read_dir(corpus.join("device_tree"))
        .expect("device_tree corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    trees.sort();
    for path in trees {
        let blob = std::fs::read(&path).expect("read tree");
        let Ok(tree) = platform::parse_blob(&blob) else {
            continue;
        };
        let Ok(machine) = Platform::from_fdt(&tree) else {
            continue;
        };
        let nodes: Vec<_> = platform::devices(&tree).collect();
        let irqs: Vec<Vec<u32>> = nodes
            .iter()
            .map(|d| platform::interrupt_ids(d.node).collect())
            .collect();
        let devices: Vec<DeviceDesc<'_>> = nodes
            .iter()
            .zip(&irqs)
            .map(|(d, irqs)| d.desc(irqs))
            .collect();
        let ram = machine.memory()[0];
        let untyped = [
            UntypedRegion {
                base: ram.start + (16 << 20),
                size_bytes: ram.size() - (16 << 20),
                is_device: false,
            },
            UntypedRegion {
                base: 0x0a00_0000,
                size_bytes: 0x4000,
                is_device: true,
            },
        ];
        let input = BootInfoInput {
            system: SystemFacts {
                ram_base: ram.start,
                ram_bytes: machine.ram_bytes(),
                cpu_count: machine.cpu_count,
                cpus_online: machine.cpu_affinities().len().max(1) as u32,
                timer_frequency_hz: 62_500_000,
            },
            kernel_version: kaal_kernel::VERSION,
            bootargs: if machine.bootargs.is_empty() {
                "console=pl011 quiet"
            } else {
                machine.bootargs
            },
            untyped: &untyped,
            devices: &devices,
            caps: InitialCaps {
                untyped: SlotRange {
                    start: 16,
                    count: 1,
                },
                device_untyped: SlotRange {
                    start: 17,
                    count: 1,
                },
                first_free: 18,
            },
            archive: ArchiveInfo {
                phys_base: 0x4080_0000,
                size_bytes: 0x2_0000,
                user_vaddr: kaal_abi::layout::ARCHIVE_VADDR,
            },
        };
        let bytes = boot_info_to_vec(&input).expect("boot info");
        let stem = path.file_stem().expect("name").to_string_lossy();
        write(&corpus.join("boot_info"), &format!("{stem}.bin"), &bytes);
    }
}

fn startup_record(corpus: &Path) {
    let mut buffer = [0u8; 4096];
    let mut writer = StartupWriter::new(&mut buffer, "console", 3, 1).expect("writer");
    writer.argument(0x0900_0000);
    writer.heap(0x3000_0000, 1 << 20);
    for (name, kind) in [
        ("console", GrantKind::EndpointServer),
        ("log", GrantKind::EndpointClient),
        ("input", GrantKind::ChannelProducer),
        ("output", GrantKind::ChannelConsumer),
        ("uart", GrantKind::Device),
        ("timer-irq", GrantKind::Irq),
        ("broker", GrantKind::Broker),
    ] {
        writer
            .push(&Grant::new(name, kind).slots([20, 21, 0, 0]).values([
                0x1000_0000,
                0x4000,
                64,
                8 | 8 << 32,
            ]))
            .expect("grant");
    }
    let used = writer.finish();
    write(
        &corpus.join("startup_record"),
        "console.bin",
        &buffer[..used],
    );
}

#[repr(C, align(256))]
#[derive(Clone, Copy)]
struct Block([u8; 256]);

#[repr(C, align(256))]
#[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
struct Wide([u8; 256]);

/// A ring of `SharedRing<T, N>` made by `init_in`, after `cycles` items went through it
/// and `left` more were queued.
fn ring<T, const N: usize>(corpus: &Path, name: &str, item: T, cycles: usize, left: usize)
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable + Copy + Send,
{
    let size = SharedRing::<T, N>::REGION_SIZE;
    let mut region = vec![Block([0; 256]); size.div_ceil(256)];
    let base = region.as_mut_ptr().cast::<u8>();
    // SAFETY: the region is owned, aligned, `size` bytes long and used only here.
    let attached = unsafe { SharedRing::<T, N>::init_in(base, size) }.expect("init");
    let (mut tx, mut rx) = attached.split(Spin).expect("split");
    for _ in 0..cycles {
        assert!(tx.try_push(item).is_ok(), "push");
        assert!(rx.try_pop().is_ok(), "pop");
    }
    for _ in 0..left {
        assert!(tx.try_push(item).is_ok(), "push");
    }
    // Leave both ends open, as a live peer would.
    std::mem::forget((tx, rx));
    // SAFETY: `size` initialised bytes of `region`.
    let bytes = unsafe { std::slice::from_raw_parts(base, size) };
    write(&corpus.join("ring_attach"), name, bytes);
}

/// A little-endian ELF64 AArch64 executable: `(flags, vaddr, offset, filesz, memsz)` per
/// `PT_LOAD` segment, entry at the first segment.
fn elf(segments: &[(u32, u64, u64, u64, u64)], file_bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&segments[0].1.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    for &(flags, vaddr, offset, filesz, memsz) in segments {
        let mut ph = [0u8; 56];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes());
        ph[4..8].copy_from_slice(&flags.to_le_bytes());
        ph[8..16].copy_from_slice(&offset.to_le_bytes());
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
        ph[32..40].copy_from_slice(&filesz.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
        out.extend_from_slice(&ph);
    }
    out.resize(file_bytes.max(out.len()), 0);
    for (i, byte) in out.iter_mut().enumerate().skip(0x200) {
        *byte = (i * 7) as u8;
    }
    out
}

fn elves(corpus: &Path) {
    let elves = vec![
        (
            "text-rodata-data-bss".to_string(),
            elf(
                &[
                    (5, 0x40_0000, 0x200, 0x300, 0x300),
                    (4, 0x40_1000, 0x500, 0x80, 0x80),
                    (6, 0x40_2010, 0x580, 0x40, 0x5000),
                ],
                0x600,
            ),
        ),
        (
            "one-segment".to_string(),
            elf(&[(5, 0x1_0000, 0, 0x400, 0x400)], 0x400),
        ),
    ];
    for (name, bytes) in &elves {
        write(&corpus.join("elf_plan"), name, bytes);
    }
}

fn archive(corpus: &Path) {
    let mut builder = ArchiveBuilder::new();
    let mut elves: Vec<PathBuf> = std::fs::read_dir(corpus.join("elf_plan"))
        .expect("elf_plan corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    elves.sort();
    for path in elves {
        let name = path.file_name().expect("name").to_string_lossy();
        let name = name.strip_prefix("real-").unwrap_or(&name);
        builder
            .add(name, &std::fs::read(&path).expect("read executable"))
            .expect("add");
    }
    let mut systems: Vec<PathBuf> = std::fs::read_dir(corpus.join("system_description"))
        .map(|dir| dir.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    systems.sort();
    if let Some(path) = systems.first() {
        builder
            .add("system", &std::fs::read(path).expect("read system"))
            .expect("add");
    }
    builder.add("motd.txt", b"hello from KaaL\n").expect("add");
    write(
        &corpus.join("archive"),
        "components.kaal",
        &builder.finish(),
    );
}

/// Writes each entry of a real component archive as a seed.
fn real_archive(corpus: &Path, path: &Path) {
    let bytes = std::fs::read(path).expect("read archive");
    let archive = Archive::parse(&bytes).expect("a component archive");
    for entry in archive.entries() {
        let dir = if entry.name == "system" {
            "system_description"
        } else {
            "elf_plan"
        };
        write(
            &corpus.join(dir),
            &format!("real-{}", entry.name),
            entry.data,
        );
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let corpus = PathBuf::from(args.next().expect("usage: seeds CORPUS_DIR [COMPONENTS]"));
    if let Some(path) = args.next() {
        real_archive(&corpus, Path::new(&path));
    }
    boot_infos(&corpus);
    startup_record(&corpus);
    ring::<u64, 16>(&corpus, "u64x16-wrapped", 0x1122_3344_5566_7788, 21, 5);
    ring::<u64, 16>(&corpus, "u64x16-full", 7, 0, 16);
    ring::<u8, 1>(&corpus, "u8x1", 0xaa, 3, 1);
    ring::<[u32; 3], 64>(&corpus, "u32x3x64", [1, 2, 3], 100, 10);
    ring::<Wide, 2>(&corpus, "wide", Wide([0x5a; 256]), 1, 1);
    elves(&corpus);
    archive(&corpus);
}
