//! `cargo xtask bench`: guest instruction counts of kernel operations (a benchmark, not
//! a test). Method in `docs/benchmarks.md`.

use std::process::ExitCode;

use kaal_build::{
    Bin, Workspace,
    archive::Component,
    image::link_image,
    qemu::{Console, Cpu, QemuConfig},
    runner::{RunOptions, run_captured},
};

use crate::{Result, root};

/// seL4's figures in the same setup, for comparison (instructions per operation).
const SEL4: [(&str, u64); 4] = [
    ("null_syscall", 91),
    ("call_reply_recv_round_trip", 415),
    ("signal_higher_priority_waiter", 566),
    ("yield_to_same_priority", 329),
];

/// What a goal is set on: a `[bench]` figure (instructions) or the kernel's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Measure {
    /// The `[bench]` figure of this name, in guest instructions.
    Figure(&'static str),
    /// [`KernelSize::loadable`] of the benchmark kernel, in bytes.
    KernelLoadableBytes,
}

/// One row of the goal table: a figure, the most it may be, and seL4's where known.
struct Goal {
    what: &'static str,
    measure: Measure,
    at_most: u64,
    sel4: Option<u64>,
}

/// The kernel's goals (`cargo xtask bench` prints each with the figure of this run).
const GOALS: [Goal; 7] = [
    Goal {
        what: "null system call",
        measure: Measure::Figure("null_syscall"),
        at_most: 80,
        sel4: Some(91),
    },
    Goal {
        what: "call + reply-recv, same address space",
        measure: Measure::Figure("call_reply_recv_round_trip"),
        at_most: 360,
        sel4: Some(415),
    },
    Goal {
        what: "call + reply-recv, two processes",
        measure: Measure::Figure("call_reply_recv_round_trip_two_processes"),
        at_most: 380,
        sel4: None,
    },
    Goal {
        what: "yield to a same-priority thread",
        measure: Measure::Figure("yield_to_same_priority"),
        at_most: 300,
        sel4: Some(329),
    },
    Goal {
        what: "signal to a higher-priority waiter",
        measure: Measure::Figure("signal_higher_priority_waiter"),
        at_most: 500,
        sel4: Some(566),
    },
    Goal {
        what: "kernel loadable size (KiB)",
        measure: Measure::KernelLoadableBytes,
        at_most: 128 * 1024,
        sel4: None,
    },
    Goal {
        what: "boot: QEMU start to root task main",
        measure: Measure::Figure("boot_to_root_task_main"),
        at_most: 2_000_000,
        sel4: None,
    },
];

/// The bytes of a kernel ELF file's loadable segments (`PT_LOAD`), by kind. The bytes
/// a segment holds in the file (`p_filesz`) count; what it adds zeroed in memory
/// (`p_memsz - p_filesz`: `.bss`, the stacks and the boot heap) does not, and neither
/// does the embedded component archive (read-only data that is the system's, not the
/// kernel's), which is reported on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KernelSize {
    /// Executable segments (`.text`, the boot stub's `.text.boot`).
    text: u64,
    /// Read-only segments (`.rodata`) without the archive.
    rodata: u64,
    /// Writable segments' initialised part (`.data`).
    data: u64,
    /// Zero-initialised memory the writable segments add (`.bss`): not counted.
    bss: u64,
    /// The embedded component archive: not counted.
    archive: u64,
}

impl KernelSize {
    /// Text, read-only data and data: what the goal is set on.
    fn loadable(&self) -> u64 {
        self.text + self.rodata + self.data
    }

    /// Reads the program headers of the ELF64 little-endian file `elf`, in which the
    /// component archive `archive` is embedded (found by its bytes, in one segment).
    fn of(elf: &[u8], archive: &[u8]) -> Result<Self> {
        let field = |at: usize, size: usize| -> Result<u64> {
            let bytes = elf
                .get(at..at + size)
                .ok_or("kernel ELF shorter than its headers")?;
            let mut word = [0u8; 8];
            word[..size].copy_from_slice(bytes);
            Ok(u64::from_le_bytes(word))
        };
        if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
            return Err("the kernel is not an ELF64 little-endian file".into());
        }
        let archive_at =
            find(elf, archive).ok_or("the component archive is not in the kernel ELF")?;
        let (phoff, phentsize, phnum) = (field(32, 8)?, field(54, 2)?, field(56, 2)?);
        let mut size = KernelSize::default();
        let mut archive_found = false;
        for index in 0..phnum {
            let at = (phoff + index * phentsize) as usize;
            if field(at, 4)? != 1 {
                continue; // not PT_LOAD
            }
            let flags = field(at + 4, 4)?;
            let (offset, filesz, memsz) =
                (field(at + 8, 8)?, field(at + 32, 8)?, field(at + 40, 8)?);
            let mut bytes = filesz;
            let holds_archive = !archive.is_empty()
                && offset <= archive_at as u64
                && archive_at as u64 + archive.len() as u64 <= offset + filesz;
            if holds_archive {
                bytes -= archive.len() as u64;
                archive_found = true;
            }
            const PF_X: u64 = 1;
            const PF_W: u64 = 2;
            if flags & PF_X != 0 {
                size.text += bytes;
            } else if flags & PF_W != 0 {
                size.data += bytes;
            } else {
                size.rodata += bytes;
            }
            size.bss += memsz.saturating_sub(filesz);
        }
        if !archive_found && !archive.is_empty() {
            return Err("the component archive is not inside a loadable segment".into());
        }
        size.archive = archive.len() as u64;
        Ok(size)
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

/// The goal table: per goal, the figure of this run (if it was measured), the goal,
/// seL4's figure and whether the goal is met.
fn goal_table(results: &[(String, u64)], kernel: Option<&KernelSize>) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<40} {:>11} {:>13} {:>6}  {}",
        "goal", "KaaL", "goal", "seL4", "status"
    )];
    for goal in &GOALS {
        let (value, shown, limit) = match goal.measure {
            Measure::Figure(name) => {
                let value = results.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                (value, value.map(grouped), grouped(goal.at_most))
            }
            Measure::KernelLoadableBytes => {
                let value = kernel.map(KernelSize::loadable);
                (value, value.map(kib), kib(goal.at_most))
            }
        };
        let status = match value {
            Some(value) if value <= goal.at_most => "met",
            Some(_) => "not met",
            None => "not measured",
        };
        lines.push(format!(
            "{:<40} {:>11} {:>13} {:>6}  {status}",
            goal.what,
            shown.unwrap_or_else(|| "-".into()),
            format!("<= {limit}"),
            goal.sel4.map_or_else(|| "-".into(), grouped),
        ));
    }
    lines
}

/// Linux 6.1 in the same QEMU setup: a SysV shared-memory ring with futex wake-ups
/// between two processes, one message each way (figure from the project's issue
/// tracker; KaaL does not rebuild Linux here).
const LINUX_RING_ROUND_TRIP: u64 = 14_286;

/// `[bench]` figures: name and guest instructions.
type Figures = Vec<(String, u64)>;

/// Builds one benchmark image (a root task package, its components and its
/// `system.toml`, if any) and returns its `[bench]` lines, and for `bench-kernel` the
/// size of its kernel.
fn run_image(
    ws: &Workspace,
    package: &str,
    qemu_args: &[&str],
    disk_mib: Option<u64>,
) -> Result<(Figures, Option<KernelSize>)> {
    run_image_on(ws, package, qemu_args, disk_mib, &Machine::default())
}

/// How a benchmark image's machine differs from the single-CPU `-icount` default.
#[derive(Clone, Debug)]
struct Machine {
    /// CPUs (`-smp`).
    cpus: u32,
    /// Whether time is counted in instructions (`-icount`); otherwise the CPUs run at
    /// once in real time, and the image reports ratios (`[bench-ratio]` lines).
    icount: bool,
    /// Boot arguments.
    bootargs: &'static str,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            cpus: 1,
            icount: true,
            bootargs: "",
        }
    }
}

fn run_image_on(
    ws: &Workspace,
    package: &str,
    qemu_args: &[&str],
    disk_mib: Option<u64>,
    machine: &Machine,
) -> Result<(Figures, Option<KernelSize>)> {
    let dir = root()
        .join("tests/qemu/benches")
        .join(package.trim_start_matches("bench-"));
    let elf = ws.build_user(&[Bin::package(package)])?.remove(0);
    let mut components = vec![Component::new(kaal_build::ROOT_TASK, elf)];
    let extra: Vec<String> = std::fs::read_to_string(dir.join("components.txt"))
        .map(|text| kaal_build::serial::parse_expectations(&text))
        .unwrap_or_default();
    if !extra.is_empty() {
        let bins: Vec<Bin> = extra.iter().map(|bin| Bin::new(package, bin)).collect();
        for (bin, elf) in extra.iter().zip(ws.build_user(&bins)?) {
            components.push(Component::new(bin.as_str(), elf));
        }
    }
    let system = dir.join("system.toml");
    if system.is_file() {
        let out = ws
            .root()
            .join("target/kaal-systems")
            .join(format!("{package}.system"));
        kaal_build::system::compile(&system, &out, 256 << 20)?;
        components.push(Component::new(kaal_build::system::SYSTEM_ENTRY, out));
    }
    let image = link_image(ws, package, &Bin::package("kaal-test-kernel"), &components)?;
    let mut kernel_size = None;
    if package == "bench-kernel" {
        let size = KernelSize::of(
            &std::fs::read(&image.kernel)?,
            &std::fs::read(&image.archive)?,
        )?;
        println!(
            "kernel (bench-kernel, benchmark profile): {} KiB loadable = text {} + read-only data {} + data {} KiB (the file bytes of the ELF's PT_LOAD segments); not counted: the embedded component archive, {} KiB (its ELF files without debug information), and {} KiB of zero-initialised memory (.bss: stacks, boot heap)",
            kib(size.loadable()),
            kib(size.text),
            kib(size.rodata),
            kib(size.data),
            kib(size.archive),
            kib(size.bss),
        );
        kernel_size = Some(size);
    }
    let mut config = QemuConfig::default().cpu(Cpu::CortexA53).smp(machine.cpus);
    if !machine.bootargs.is_empty() {
        config = config.bootarg(machine.bootargs);
    }
    config.extra_args = qemu_args.iter().map(|a| (*a).to_owned()).collect();
    if let Some(mib) = disk_mib {
        let dir = ws.root().join("target/qemu-disks");
        std::fs::create_dir_all(&dir)?;
        let disk = dir.join(format!("{package}.img"));
        std::fs::File::create(&disk)?.set_len(mib << 20)?;
        config.disk = Some(disk);
    }
    let mut command = config.command(&image.kernel, Console::Captured);
    // `sleep=off`: virtual time never runs with real time while the CPU is idle but
    // jumps to the next timer. This matters at start-up, where QEMU otherwise lets the
    // clock run for a host-dependent while before the first instruction (the boot figure
    // varied by half a million). Only where every figure is a count of instructions:
    // the disk image's figure includes the host's I/O time on purpose.
    let icount = if disk_mib.is_some() || machine.cpus > 1 {
        "shift=0"
    } else {
        "shift=0,sleep=off"
    };
    if machine.icount {
        command.args(["-icount", icount]);
    }
    let options = RunOptions {
        timeout: std::time::Duration::from_secs(300),
        echo: false,
        qmp: None,
        input: None,
    };
    let output = run_captured(command, &options)?;
    let results: Figures = output
        .stdout
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("[bench] ")?;
            let (name, value) = rest.split_once(": ")?;
            // A figure may be followed by a note in parentheses.
            let value = value.split(" (").next()?;
            let count = value.strip_suffix(" instructions")?.parse().ok()?;
            Some((name.to_owned(), count))
        })
        .collect();
    // Figures with a note on how they were made are shown whole, and ratios as they are.
    for line in output.stdout.lines().map(str::trim) {
        if (line.starts_with("[bench] ") && line.contains(" instructions ("))
            || line.starts_with("[bench-ratio] ")
        {
            println!("{line}");
        }
    }
    let ratios = output.stdout.contains("[bench-ratio] ");
    if (results.is_empty() && !ratios) || !output.stdout.contains("[bench] done") {
        eprintln!("{}", output.stdout);
        return Err(format!("the benchmark {package} did not finish").into());
    }
    Ok((results, kernel_size))
}

/// Builds the benchmark images and runs them under `-icount shift=0`; with an argument,
/// only the images whose name contains it (`cargo xtask bench retype`).
pub fn run(rest: &[String]) -> Result<ExitCode> {
    kaal_build::tools::ensure_all()?;
    let ws = Workspace::new(root().join("tests").join("qemu")).profile("benchmark");
    let filter = rest.first().map(String::as_str).unwrap_or("");
    let mut kernel = None;
    let mut run_image = |ws: &Workspace, package: &str, qemu_args: &[&str], disk_mib| {
        if package.contains(filter) {
            let (results, size) = run_image(ws, package, qemu_args, disk_mib)?;
            kernel = kernel.or(size);
            Ok::<_, Box<dyn std::error::Error>>(results)
        } else {
            Ok(Vec::new())
        }
    };
    let mut results = run_image(&ws, "bench-kernel", &[], None)?;
    results.extend(run_image(&ws, "bench-broker", &[], None)?);
    // The real-time clock follows the virtual clock, so its alarm fires at a known
    // virtual time and the interrupt latency is a count of instructions.
    results.extend(run_image(
        &ws,
        "bench-drivers",
        &["-rtc", "clock=vm"],
        None,
    )?);
    // Interrupt latency while a lower-priority thread retypes a large untyped: the alarm
    // is due at a known virtual time, as above.
    results.extend(run_image(&ws, "bench-retype", &["-rtc", "clock=vm"], None)?);
    // Virtual time per 4 KiB read: guest instructions plus the host's I/O time while the
    // guest waits (varies with the host).
    results.extend(run_image(&ws, "bench-blk", &[], Some(8))?);
    // Two CPUs: the cross-CPU round trips in instructions, then (in real time, the CPUs
    // running at once) what the kernel lock costs a CPU while the other makes calls too.
    if "bench-smp bench-cores".contains(filter) {
        let two = Machine {
            cpus: 2,
            ..Machine::default()
        };
        results.extend(run_image_on(&ws, "bench-smp", &[], None, &two)?.0);
        results.extend(run_image_on(&ws, "bench-cores", &[], None, &two)?.0);
        let contention = Machine {
            cpus: 2,
            icount: false,
            bootargs: "kaal.bench.mode=contention",
        };
        println!(
            "the kernel lock with the other CPU busy (real time, medians of three, ratio to CPU 0 alone):"
        );
        run_image_on(&ws, "bench-smp", &[], None, &contention)?;
    }
    println!("guest instructions per operation (qemu virt, cortex-a53, -smp 1, -icount shift=0)");
    println!(
        "{:<40} {:>8} {:>8} {:>8}",
        "operation", "KaaL", "seL4", "KaaL/seL4"
    );
    for (name, count) in &results {
        match SEL4.iter().find(|(n, _)| n == name) {
            Some((_, sel4)) => println!(
                "{name:<40} {count:>8} {sel4:>8} {:>8.2}",
                *count as f64 / *sel4 as f64
            ),
            None => println!("{name:<40} {count:>8} {:>8} {:>8}", "-", "-"),
        }
    }
    if kernel.is_some() {
        println!();
        println!("the kernel's goals (seL4: measured in the same setup)");
        for line in goal_table(&results, kernel.as_ref()) {
            println!("{line}");
        }
        println!();
    }
    for (name, what) in [
        ("ring_round_trip_two_processes", "both at one priority"),
        ("ring_round_trip_server_above_client", "server above client"),
    ] {
        if let Some((_, kaal)) = results.iter().find(|(n, _)| n == name) {
            println!(
                "ring round trip between two processes, {what}: KaaL {kaal}, Linux 6.1 (SysV shm ring + futex) {LINUX_RING_ROUND_TRIP}, ratio {:.2}",
                *kaal as f64 / LINUX_RING_ROUND_TRIP as f64
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 file: program headers for `segments` (`p_flags`, `p_offset`,
    /// `p_filesz`, `p_memsz`), then `body` from offset 0x100.
    fn elf(segments: &[(u32, u64, u64, u64)], body: &[u8]) -> Vec<u8> {
        let mut file = vec![0u8; 0x100];
        file[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        file[32..40].copy_from_slice(&64u64.to_le_bytes());
        file[54..56].copy_from_slice(&56u16.to_le_bytes());
        file[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, &(flags, offset, filesz, memsz)) in segments.iter().enumerate() {
            let at = 64 + 56 * i;
            file[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            file[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            file[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            file[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            file[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        file.extend_from_slice(body);
        file
    }

    #[test]
    fn kernel_size_counts_file_bytes_by_kind_without_the_archive() {
        let archive = b"KAAL-ARCHIVE-BYTES";
        let mut body = vec![0xaa; 0x40]; // text
        body.extend_from_slice(&[0xbb; 0x10]); // read-only data before the archive
        body.extend_from_slice(archive);
        body.extend_from_slice(&[0xcc; 0x8]); // data
        let rodata = 0x10 + archive.len() as u64;
        let file = elf(
            &[
                (5, 0x100, 0x40, 0x40),
                (4, 0x140, rodata, rodata),
                (6, 0x140 + rodata, 0x8, 0x1008),
            ],
            &body,
        );
        let size = KernelSize::of(&file, archive).unwrap();
        assert_eq!(
            size,
            KernelSize {
                text: 0x40,
                rodata: 0x10,
                data: 0x8,
                bss: 0x1000,
                archive: archive.len() as u64,
            }
        );
        assert_eq!(size.loadable(), 0x58);
        assert!(KernelSize::of(&file, b"not in the file").is_err());
    }

    #[test]
    fn goal_table_says_met_not_met_and_not_measured() {
        let results = vec![
            ("null_syscall".to_owned(), 80),
            ("call_reply_recv_round_trip".to_owned(), 361),
            ("boot_to_root_task_main".to_owned(), 1_999_999),
        ];
        let size = KernelSize {
            text: 100 * 1024,
            rodata: 20 * 1024,
            data: 9 * 1024,
            ..KernelSize::default()
        };
        let table = goal_table(&results, Some(&size));
        let row = |what: &str| table.iter().find(|l| l.starts_with(what)).unwrap().clone();
        assert!(
            row("null system call").ends_with(" met") && row("null system call").contains(" 91 ")
        );
        assert!(row("call + reply-recv, same").ends_with("not met"));
        assert!(row("call + reply-recv, two").ends_with("not measured"));
        assert!(
            row("kernel loadable size").contains("129.0")
                && row("kernel loadable size").ends_with("not met")
        );
        assert!(row("boot").contains("1,999,999") && row("boot").contains("<= 2,000,000"));
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
    }
}
