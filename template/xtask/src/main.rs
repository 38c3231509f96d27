//! Builds the {{project-name}} image, boots it in QEMU, tests it and debugs it.
//!
//! ```text
//! cargo xtask run   [QEMU options]       boot; the shell is on this terminal
//! cargo xtask build [--mem MIB]          build the image, print the kernel's path
//! cargo xtask test  [QEMU options]       boot with a scripted shell session and check it
//! cargo xtask debug [--batch FILE] [--component NAME]... [--port PORT] [QEMU options]
//!                                        boot under GDB (QEMU's GDB stub + gdb-multiarch)
//!
//! QEMU options: --cpu cortex-a53|cortex-a72|max  --mem MIB  --smp N  --gic 2|3  --el2
//! ```
//!
//! The image holds the root task (the broker), every component `system.toml` names (the
//! package `components/IMAGE` for each `[components.NAME]`) and `system.toml` itself,
//! checked for a machine with `--mem` MiB of RAM. When standard input is not a terminal,
//! `run` feeds it to the shell: `printf 'ps\npoweroff\n' | cargo xtask run`.
#![forbid(unsafe_code)]

mod scripted;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use kaal_build::{
    Bin, Workspace,
    image::{Image, ImageSpec, build_image},
    qemu::{self, QemuConfig},
};

const USAGE: &str = "usage: cargo xtask run   [--cpu cortex-a53|cortex-a72|max] [--mem MIB] [--smp N] [--gic 2|3] [--el2]
       cargo xtask build [--mem MIB]
       cargo xtask test  [QEMU options]
       cargo xtask debug [--batch FILE] [--component NAME]... [--port PORT] [QEMU options]";

/// The project's name.
pub const NAME: &str = "{{project-name}}";
/// The CPU QEMU emulates unless `--cpu` says otherwise (chosen when the project was
/// generated).
const DEFAULT_CPU: &str = "{{cpu}}";
/// RAM in MiB unless `--mem` says otherwise.
const DEFAULT_MEMORY_MIB: u32 = {{memory_mib}};
/// Cores unless `--smp` says otherwise.
const DEFAULT_CORES: u32 = {{cores}};
/// Whether the system has the virtio-blk driver and the file server, so QEMU gets a disk.
pub const STORAGE: bool = {{storage}};
/// Whether the sensor/monitor example is part of the system.
pub const EXAMPLES: bool = {{examples}};

/// The system description, relative to the workspace root.
const SYSTEM: &str = "system.toml";
/// The disk image `run` attaches (created, as an empty FAT file system, when missing).
const DISK: &str = "disk.img";
/// Size of a disk image created for `run` or `test`.
pub const DISK_BYTES: u64 = 32 << 20;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run(args: Vec<String>) -> Result<ExitCode> {
    let (command, options) = args.split_first().ok_or(USAGE)?;
    let options = Options::parse(options)?;
    kaal_build::tools::ensure_all()?;
    let root = root();
    match command.as_str() {
        "build" => {
            let image = build(&options.qemu)?;
            println!("{}", image.kernel.display());
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            let image = build(&options.qemu)?;
            let mut config = options.qemu.clone();
            if STORAGE {
                let disk = root.join(DISK);
                if kaal_build::disk::ensure_fat_image(&disk, DISK_BYTES)?
                    == kaal_build::disk::Ensured::Created
                {
                    eprintln!("created {} ({} MiB, FAT)", disk.display(), DISK_BYTES >> 20);
                }
                config = config.disk(disk);
            }
            let status = qemu::run_interactive(&config, &image.kernel)?;
            Ok(exit_code(status.code()))
        }
        "test" => {
            let image = build(&options.qemu)?;
            scripted::test(&options.qemu, &image)
        }
        "debug" => {
            let image = build(&options.qemu)?;
            let mut config = options.qemu.clone();
            if STORAGE {
                let disk = root.join(DISK);
                kaal_build::disk::ensure_fat_image(&disk, DISK_BYTES)?;
                config = config.disk(disk);
            }
            let mut debug = kaal_build::debug::DebugOptions {
                batch: options.batch.clone(),
                components: options.components.clone(),
                ..Default::default()
            };
            if let Some(port) = options.port {
                debug.port = port;
            }
            let status = kaal_build::debug::debug(&config, &image, &debug)?;
            Ok(exit_code(status.code()))
        }
        _ => Err(USAGE.into()),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the xtask lives in <workspace>/xtask")
        .to_path_buf()
}

/// Builds the image for `config`'s memory size: the kernel, the root task and every
/// component `system.toml` names.
pub fn build(config: &QemuConfig) -> Result<Image> {
    let root = root();
    let ram_bytes = u64::from(config.memory_mib) << 20;
    let system = kaal_build::system::load(&root.join(SYSTEM), ram_bytes)?;
    let mut spec = ImageSpec::new(NAME, "kernel")
        .root_task(Bin::package("root-task"))
        .system(root.join(SYSTEM))
        .ram_bytes(ram_bytes);
    let mut images: Vec<&str> = Vec::new();
    for component in &system.components {
        if !images.contains(&component.image.as_str()) {
            images.push(&component.image);
        }
    }
    for image in images {
        if !root.join("components").join(image).join("Cargo.toml").is_file() {
            return Err(format!(
                "{SYSTEM}: component image `{image}` has no package: expected components/{image}/Cargo.toml"
            )
            .into());
        }
        spec = spec.component(image, image);
    }
    Ok(build_image(&Workspace::new(&root), &spec)?)
}

/// A process's exit code as ours.
fn exit_code(code: Option<i32>) -> ExitCode {
    ExitCode::from(code.map_or(1, |c| c.clamp(0, 255) as u8))
}

/// Parsed command-line options.
struct Options {
    qemu: QemuConfig,
    batch: Option<PathBuf>,
    components: Vec<String>,
    port: Option<u16>,
}

impl Options {
    fn parse(options: &[String]) -> Result<Self> {
        let mut config = QemuConfig::default()
            .cpu(DEFAULT_CPU.parse()?)
            .memory_mib(DEFAULT_MEMORY_MIB)
            .smp(DEFAULT_CORES)
            // The kernel keeps the UART for its messages and hands it to the console
            // driver too.
            .bootarg("kaal.console=shared");
        let mut batch = None;
        let mut components = Vec::new();
        let mut port = None;
        let mut it = options.iter();
        while let Some(option) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{option} needs a value"));
            match option.as_str() {
                "--mem" => {
                    config.memory_mib = value()?.trim_end_matches(['M', 'm']).parse()?;
                }
                "--cpu" => config.cpu = value()?.parse()?,
                "--gic" => config.gic = value()?.parse()?,
                "--smp" => config.smp = value()?.parse()?,
                "--el2" => config.el2 = true,
                "--batch" => batch = Some(PathBuf::from(value()?)),
                "--component" => components.push(value()?.clone()),
                "--port" => port = Some(value()?.parse()?),
                _ => return Err(format!("unknown option `{option}`\n{USAGE}").into()),
            }
        }
        Ok(Self {
            qemu: config,
            batch,
            components,
            port,
        })
    }
}

/// The shell's prompt: a scripted session types after it.
pub fn shell_prompt() -> &'static str {
    "kaal> "
}
