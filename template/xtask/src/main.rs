//! Builds the {{project-name}} image and boots it in QEMU.
//!
//! ```text
//! cargo xtask run   [--mem MIB] [--cpu cortex-a53|cortex-a72|max] [--gic 2|3] [--el2] [--smp N]
//! cargo xtask build [--mem MIB]
//! ```
//!
//! The image holds the root task (the broker), the components of [`COMPONENTS`] and the
//! system description `system.toml`, checked for a machine with `--mem` MiB of RAM.
#![forbid(unsafe_code)]

use std::{path::Path, process::ExitCode};

use kaal_build::{
    Bin, Workspace,
    image::{ImageSpec, build_image},
    qemu::{self, QemuConfig},
};

const USAGE: &str = "usage: cargo xtask run [--mem MIB] [--cpu cortex-a53|cortex-a72|max] [--gic 2|3] [--el2] [--smp N]
       cargo xtask build [--mem MIB]";

/// The components the broker starts: each is a package under `components/` whose binary
/// has its name, packed as the archive entry of that name (`image` in `system.toml`).
/// Add a new component here, to the workspace members and to `system.toml`.
const COMPONENTS: &[&str] = &["sensor", "monitor"];

/// The system description, relative to the workspace root.
const SYSTEM: &str = "system.toml";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (command, options) = args.split_first().ok_or(USAGE)?;
    let config = parse_options(options)?;
    kaal_build::tools::ensure_all()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let mut spec = ImageSpec::new("{{project-name}}", "kernel")
        .root_task(Bin::package("root-task"))
        .system(root.join(SYSTEM))
        .ram_bytes(u64::from(config.memory_mib) << 20);
    for component in COMPONENTS {
        spec = spec.component(*component, *component);
    }
    match command.as_str() {
        "build" => {
            let image = build_image(&Workspace::new(root), &spec)?;
            println!("{}", image.kernel.display());
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            let image = build_image(&Workspace::new(root), &spec)?;
            let status = qemu::run_interactive(&config, &image.kernel)?;
            Ok(ExitCode::from(
                status.code().map_or(1, |c| c.clamp(0, 255) as u8),
            ))
        }
        _ => Err(USAGE.into()),
    }
}

fn parse_options(options: &[String]) -> Result<QemuConfig, Box<dyn std::error::Error>> {
    let mut config = QemuConfig::default();
    let mut it = options.iter();
    while let Some(option) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{option} needs a value"));
        match option.as_str() {
            "--mem" => config.memory_mib = value()?.trim_end_matches(['M', 'm']).parse()?,
            "--cpu" => config.cpu = value()?.parse()?,
            "--gic" => config.gic = value()?.parse()?,
            "--smp" => config.smp = value()?.parse()?,
            "--el2" => config.el2 = true,
            _ => return Err(format!("unknown option `{option}`\n{USAGE}").into()),
        }
    }
    Ok(config)
}
