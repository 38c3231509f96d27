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

/// Builds the benchmark image and runs it under `-icount shift=0`.
pub fn run(_rest: &[String]) -> Result<ExitCode> {
    kaal_build::tools::ensure_all()?;
    let ws = Workspace::new(root().join("tests").join("qemu"));
    let elf = ws.build_user(&[Bin::package("bench-kernel")])?.remove(0);
    let image = link_image(
        &ws,
        "bench-kernel",
        &Bin::package("kaal-test-kernel"),
        &[Component::new(kaal_build::ROOT_TASK, elf)],
    )?;
    let config = QemuConfig::default().cpu(Cpu::CortexA53);
    let mut command = config.command(&image.kernel, Console::Captured);
    command.args(["-icount", "shift=0"]);
    let output = run_captured(command, &RunOptions::default())?;
    let results: Vec<(String, u64)> = output
        .stdout
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("[bench] ")?;
            let (name, value) = rest.split_once(": ")?;
            let count = value.strip_suffix(" instructions")?.parse().ok()?;
            Some((name.to_owned(), count))
        })
        .collect();
    if results.is_empty() || !output.stdout.contains("[bench] done") {
        eprintln!("{}", output.stdout);
        return Err("the benchmark did not finish".into());
    }
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
    Ok(ExitCode::SUCCESS)
}
