//! KaaL workspace automation.
//!
//! ```text
//! cargo xtask run  [--mem MIB] [--cpu CPU] [--gic 2|3] [--el2] [--smp N]
//! cargo xtask test [--quick] [--skip clippy,host,book,loom,sanitize,qemu,debug,template,publish] [--suite NAME] [--jobs N] [--timeout SECS]
//! cargo xtask qemu SUITE [--mem MIB] [--cpu CPU] [--gic 2|3] [--el2] [--smp N] [--check]
//! cargo xtask bench
//! ```
#![forbid(unsafe_code)]

mod args;
mod bench;
mod book;
mod debug;
mod host;
mod suites;
mod tally;
mod tamper;
mod template;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use args::Args;
use tally::Tally;

const USAGE: &str = "\
usage: cargo xtask <command>

  run   [QEMU options]      render the template, build it against the local crates and boot it
  test  [--quick] [--skip clippy,host,book,loom,sanitize,qemu,debug,template,publish] [--suite NAME] [--jobs N] [--timeout SECS]
                            host tests, the book's samples, QEMU suites, a GDB session, template smoke test, publish dry run
  qemu  SUITE [QEMU options] [--check]
                            build one QEMU test suite and boot it with the serial console
                            on the terminal (--check: capture and judge it like `test` does)
  bench                     guest instruction counts of kernel operations under -icount

QEMU options: --mem MIB (256) --cpu cortex-a53|cortex-a72|max --gic 2|3 (3) --el2 --smp N (1)";

/// Result type of the commands: any error, printed by `main`.
pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(argv: Vec<String>) -> Result<ExitCode> {
    let Some((command, rest)) = argv.split_first() else {
        println!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    match command.as_str() {
        "run" => template::run(rest),
        "test" => test(Args::parse(rest)?),
        "qemu" => suites::interactive(Args::parse(rest)?),
        "bench" => bench::run(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}").into()),
    }
}

/// `cargo xtask test`: every step, then the `N passed, M failed` line.
fn test(args: Args) -> Result<ExitCode> {
    let mut total = Tally::default();
    type Step = fn(&Args) -> Tally;
    let steps: &[(&str, Step)] = &[
        ("clippy", host::clippy),
        ("host", host::test),
        ("book", book::test),
        ("loom", host::loom),
        ("sanitize", host::sanitize),
        ("qemu", suites::test),
        ("debug", debug::test),
        ("template", template::smoke_test),
        ("publish", host::publish_dry_run),
    ];
    if let Some(unknown) = args
        .skip
        .iter()
        .find(|s| !steps.iter().any(|(name, _)| name == s))
    {
        let names: Vec<&str> = steps.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "--skip: no step `{unknown}` (the steps: {})",
            names.join(", ")
        )
        .into());
    }
    let mut report = Vec::new();
    for &(name, step) in steps {
        if args.skip.iter().any(|s| s == name) {
            continue;
        }
        banner(&format!("{name}: starting"));
        let tally = step(&args);
        banner(&format!("{name}: {tally}"));
        report.push((name, tally));
        total += tally;
    }
    println!();
    for (name, tally) in &report {
        println!("  {name:<9} {tally}");
    }
    println!("{total}");
    Ok(if total.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a step banner.
pub fn banner(text: &str) {
    println!("\n==== xtask {text}");
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Where logs of failed runs go.
pub fn log_dir() -> PathBuf {
    root().join("target").join("qemu-logs")
}
