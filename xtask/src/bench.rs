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

/// Linux 6.1 in the same QEMU setup: a SysV shared-memory ring with futex wake-ups
/// between two processes, one message each way (figure from the project's issue
/// tracker; KaaL does not rebuild Linux here).
const LINUX_RING_ROUND_TRIP: u64 = 14_286;

/// Builds one benchmark image (a root task package, its components and its
/// `system.toml`, if any) and returns its `[bench]` lines.
fn run_image(
    ws: &Workspace,
    package: &str,
    qemu_args: &[&str],
    disk_mib: Option<u64>,
) -> Result<Vec<(String, u64)>> {
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
    if package == "bench-kernel" {
        let archive = std::fs::metadata(&image.archive)?.len();
        println!(
            "kernel image (bench-kernel, benchmark profile): {} KiB loadable, of which {} KiB the component archive (debug information stripped)",
            kaal_build::image::loadable_bytes(&image.kernel)? / 1024,
            archive / 1024
        );
    }
    let mut config = QemuConfig::default().cpu(Cpu::CortexA53);
    config.extra_args = qemu_args.iter().map(|a| (*a).to_owned()).collect();
    if let Some(mib) = disk_mib {
        let dir = ws.root().join("target/qemu-disks");
        std::fs::create_dir_all(&dir)?;
        let disk = dir.join(format!("{package}.img"));
        std::fs::File::create(&disk)?.set_len(mib << 20)?;
        config.disk = Some(disk);
    }
    let mut command = config.command(&image.kernel, Console::Captured);
    command.args(["-icount", "shift=0"]);
    let options = RunOptions {
        timeout: std::time::Duration::from_secs(300),
        echo: false,
        qmp: None,
        input: None,
    };
    let output = run_captured(command, &options)?;
    let results: Vec<(String, u64)> = output
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
    // Figures with a note on how they were made are shown whole.
    for line in output.stdout.lines().map(str::trim) {
        if line.starts_with("[bench] ") && line.contains(" instructions (") {
            println!("{line}");
        }
    }
    if results.is_empty() || !output.stdout.contains("[bench] done") {
        eprintln!("{}", output.stdout);
        return Err(format!("the benchmark {package} did not finish").into());
    }
    Ok(results)
}

/// Builds the benchmark images and runs them under `-icount shift=0`; with an argument,
/// only the images whose name contains it (`cargo xtask bench retype`).
pub fn run(rest: &[String]) -> Result<ExitCode> {
    kaal_build::tools::ensure_all()?;
    let ws = Workspace::new(root().join("tests").join("qemu")).profile("benchmark");
    let filter = rest.first().map(String::as_str).unwrap_or("");
    let run_image = |ws: &Workspace, package: &str, qemu_args: &[&str], disk_mib| {
        if package.contains(filter) {
            run_image(ws, package, qemu_args, disk_mib)
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
    println!("guest instructions per operation (qemu virt, cortex-a53, -smp 1, -icount shift=0)");
    println!(
        "{:<32} {:>8} {:>8} {:>8}",
        "operation", "KaaL", "seL4", "KaaL/seL4"
    );
    for (name, count) in &results {
        match SEL4.iter().find(|(n, _)| n == name) {
            Some((_, sel4)) => println!(
                "{name:<32} {count:>8} {sel4:>8} {:>8.2}",
                *count as f64 / *sel4 as f64
            ),
            None => println!("{name:<32} {count:>8} {:>8} {:>8}", "-", "-"),
        }
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
