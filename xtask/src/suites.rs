//! The QEMU test suites under `tests/qemu/suites/`: one root task (one image) per suite,
//! booted on every configuration of the test matrix.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Mutex, mpsc},
    thread,
};

use kaal_build::{
    Bin, Workspace,
    archive::Component,
    image::{Image, link_image},
    qemu::{self, Console, QemuConfig},
    runner::{QmpAction, RunOptions, SerialInput, run_captured},
    serial,
};

use crate::{
    Result, Tally,
    args::Args,
    log_dir, root,
    tamper::{self, DtbEdit},
};

/// Package of the test kernel.
const TEST_KERNEL: &str = "kaal-test-kernel";

/// Lines of a failed run's log printed on the terminal.
const TAIL_LINES: usize = 30;

/// One suite directory.
#[derive(Clone, Debug)]
struct Suite {
    /// Directory name (`ipc` for `suites/ipc`).
    name: String,
    /// Package and binary name: `suite-<name>`.
    package: String,
    /// Lines of `expect.txt`.
    expected: Vec<String>,
    /// Further binaries of the suite's package to put in its component archive, named
    /// one per line in `components.txt`.
    components: Vec<String>,
    /// The suite's `system.toml`, if it has one: checked and embedded as the archive's
    /// `system` entry for the broker.
    system: Option<PathBuf>,
    /// Run on the covering matrix only (every CPU, GIC and EL once) rather than the full
    /// one: `matrix = covering` in `suite.txt`, for long suites.
    covering: bool,
    /// Per-run timeout from `suite.txt` (`timeout = SECS`), if longer than the default.
    timeout: Option<std::time::Duration>,
    /// `powerdown_after = TEXT` in `suite.txt`: once the console shows TEXT, the harness
    /// presses the machine's power button (QMP `system_powerdown`); the run must then end
    /// with QEMU exiting 0.
    powerdown_after: Option<String>,
    /// `disk = MIB` in `suite.txt`: each configuration gets a fresh zero-filled raw disk
    /// image of that size in `target/qemu-disks/`, attached as a virtio block device.
    disk_mib: Option<u64>,
    /// `disk_fat_after_boot = N` in `suite.txt`: after boot N passed, the harness
    /// formats the disk image as FAT (`kaal_build::disk::create_fat_image`), so that
    /// the boots before see a zero-filled disk and the ones after a fresh FAT volume.
    /// Interactively (`cargo xtask qemu SUITE`) the image is FAT from the start.
    disk_fat_after_boot: Option<u32>,
    /// `boots = N` in `suite.txt` (default 1): the configuration is booted N times on
    /// the same disk image, each boot with `kaal.test.boot=<n>`; every boot must pass,
    /// `expect.txt` is checked against the last one.
    boots: u32,
    /// Which boot of `boots` this run is (set on the copy that [`run_boots`] runs).
    boot: Option<(u32, u32)>,
    /// Further boot arguments: `bootargs = ...` in `suite.txt`.
    bootargs: Option<String>,
    /// `report = TEXT` in `suite.txt`: console lines starting with TEXT are shown in the
    /// test output after a pass (a figure the suite computed, e.g. its fuzzing count).
    report: Option<String>,
    /// `expect_exit = N` in `suite.txt` (default 0): the exit status QEMU must end with,
    /// for a suite whose last step deliberately stops the kernel (its report is checked
    /// through `expect.txt`; the `[suite]` summary must still come first).
    expect_exit: i32,
    /// `serial_input_after = TEXT` and `serial_input_bytes = N`: once the console shows
    /// TEXT, the harness types N bytes of [`serial_pattern`] on the serial line.
    serial_input: Option<(String, usize)>,
    /// `dtb_set = /NODE PROPERTY CELL...` in `suite.txt`: each run boots with QEMU's own
    /// device tree for its configuration (`dumpdtb`) with that property changed
    /// (`-dtb`; see [`tamper::edit_dtb`]).
    dtb_set: Option<DtbEdit>,
    /// `corrupt_root_task = WHAT` in `suite.txt`: the root task's image is corrupted
    /// before it is packed (see [`tamper::corrupt_elf`]); the kernel must refuse it, so
    /// a run passes on QEMU's exit status `expect_exit` with no `[test]` or `[suite]`
    /// line and `expect.txt` in the log ([`serial::judge_refused`]).
    corrupt_root_task: Option<String>,
    /// `secure = on` in `suite.txt`: every run boots at EL3 (`secure=on`), which the
    /// kernel must refuse with a message; judged like `corrupt_root_task`.
    secure: bool,
    /// `refused = on` in `suite.txt`: the suite's own runtime refuses to run its root
    /// task's `main` (`suites/badabi`); judged like `corrupt_root_task`.
    refused: bool,
}

/// The bytes a suite's serial input carries: byte `i` is `(i * 31 + 7) % 251`, so that
/// the guest can check every byte and its order.
fn serial_pattern(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// RAM the test configurations give the smallest machine; a suite's `system.toml` must
/// fit it.
const TEST_RAM_BYTES: u64 = 256 << 20;

/// `key = value` lines of a suite's `suite.txt`.
fn suite_option(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

fn qemu_workspace() -> Workspace {
    Workspace::new(root().join("tests").join("qemu"))
}

/// The suites under `tests/qemu/suites`, sorted by name.
fn discover() -> Result<Vec<Suite>> {
    let dir = root().join("tests/qemu/suites");
    let mut suites = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(suites),
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    };
    for entry in entries {
        let path = entry?.path();
        if !path.join("Cargo.toml").is_file() {
            continue;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let expected = match std::fs::read_to_string(path.join("expect.txt")) {
            Ok(text) => serial::parse_expectations(&text),
            Err(_) => Vec::new(),
        };
        let components = match std::fs::read_to_string(path.join("components.txt")) {
            Ok(text) => serial::parse_expectations(&text),
            Err(_) => Vec::new(),
        };
        let options = std::fs::read_to_string(path.join("suite.txt")).unwrap_or_default();
        let timeout = match suite_option(&options, "timeout") {
            Some(secs) => Some(std::time::Duration::from_secs(secs.parse().map_err(
                |_| format!("{}: timeout `{secs}` is not seconds", path.display()),
            )?)),
            None => None,
        };
        let disk_mib =
            match suite_option(&options, "disk") {
                Some(mib) => Some(mib.parse::<u64>().ok().filter(|&mib| mib > 0).ok_or_else(
                    || format!("{}: disk `{mib}` is not a size in MiB", path.display()),
                )?),
                None => None,
            };
        let boots = match suite_option(&options, "boots") {
            Some(n) => n.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("{}: boots `{n}` is not a positive number", path.display())
            })?,
            None => 1,
        };
        let disk_fat_after_boot = match suite_option(&options, "disk_fat_after_boot") {
            Some(n) => Some(n.parse::<u32>().map_err(|_| {
                format!(
                    "{}: disk_fat_after_boot `{n}` is not a boot number",
                    path.display()
                )
            })?),
            None => None,
        };
        let expect_exit = match suite_option(&options, "expect_exit") {
            Some(n) => n.parse::<i32>().map_err(|_| {
                format!(
                    "{}: expect_exit `{n}` is not an exit status",
                    path.display()
                )
            })?,
            None => 0,
        };
        let dtb_set = match suite_option(&options, "dtb_set") {
            Some(text) => {
                Some(DtbEdit::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        let system = path.join("system.toml");
        suites.push(Suite {
            dtb_set,
            corrupt_root_task: suite_option(&options, "corrupt_root_task"),
            secure: suite_option(&options, "secure").as_deref() == Some("on"),
            refused: suite_option(&options, "refused").as_deref() == Some("on"),
            expect_exit,
            package: format!("suite-{name}"),
            name,
            expected,
            components,
            system: system.is_file().then_some(system),
            covering: suite_option(&options, "matrix").as_deref() == Some("covering"),
            timeout,
            powerdown_after: suite_option(&options, "powerdown_after"),
            disk_mib,
            disk_fat_after_boot,
            boots,
            boot: None,
            bootargs: suite_option(&options, "bootargs"),
            report: suite_option(&options, "report"),
            serial_input: match (
                suite_option(&options, "serial_input_after"),
                suite_option(&options, "serial_input_bytes"),
            ) {
                (Some(after), Some(bytes)) => Some((
                    after,
                    bytes.parse().map_err(|_| {
                        format!(
                            "{}: serial_input_bytes `{bytes}` is not a number",
                            path.display()
                        )
                    })?,
                )),
                _ => None,
            },
        });
    }
    suites.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(suites)
}

/// Builds the images of `suites`: all components in one cargo call (falling back to one
/// call per suite if that fails, so that one broken suite does not hide the others), then
/// one kernel per suite. Returns each suite with its image or the error.
fn build(ws: &Workspace, suites: &[Suite]) -> Vec<(Suite, Result<Image, String>)> {
    let bins: Vec<Bin> = suites.iter().map(|s| Bin::package(&s.package)).collect();
    let elfs: Vec<Result<PathBuf, String>> = match ws.build_user(&bins) {
        Ok(elfs) => elfs.into_iter().map(Ok).collect(),
        Err(_) => bins
            .iter()
            .map(|b| {
                ws.build_user(std::slice::from_ref(b))
                    .map(|mut v| v.remove(0))
                    .map_err(|e| e.to_string())
            })
            .collect(),
    };
    suites
        .iter()
        .zip(elfs)
        .map(|(suite, elf)| {
            let image = elf.and_then(|elf| {
                let elf = match &suite.corrupt_root_task {
                    Some(what) => {
                        let corrupt = ws
                            .root()
                            .join("target")
                            .join("kaal-corrupt")
                            .join(format!("{}-root-task.elf", suite.name));
                        tamper::corrupt_elf(&elf, &corrupt, what).map_err(|e| e.to_string())?;
                        corrupt
                    }
                    None => elf,
                };
                let mut components = vec![Component::new(kaal_build::ROOT_TASK, elf)];
                let extra: Vec<Bin> = suite
                    .components
                    .iter()
                    .map(|bin| Bin::new(&suite.package, bin))
                    .collect();
                if !extra.is_empty() {
                    let elfs = ws.build_user(&extra).map_err(|e| e.to_string())?;
                    for (bin, elf) in suite.components.iter().zip(elfs) {
                        components.push(Component::new(bin.as_str(), elf));
                    }
                }
                if let Some(system) = &suite.system {
                    let out = ws
                        .root()
                        .join("target")
                        .join("kaal-systems")
                        .join(format!("{}.system", suite.name));
                    let description = kaal_build::system::compile(system, &out, TEST_RAM_BYTES)
                        .map_err(|e| e.to_string())?;
                    let images: Vec<(String, PathBuf)> = components
                        .iter()
                        .map(|c| (c.name.clone(), c.elf.clone()))
                        .collect();
                    kaal_build::driver::check_drivers(system, &description, &images)
                        .map_err(|e| e.to_string())?;
                    components.push(Component::new(kaal_build::system::SYSTEM_ENTRY, out));
                }
                link_image(ws, &suite.package, &Bin::package(TEST_KERNEL), &components)
                    .map_err(|e| e.to_string())
            });
            (suite.clone(), image)
        })
        .collect()
}

/// The configurations to run: the full matrix, the covering one for a long suite, or
/// one with `--quick`.
fn configs(args: &Args, suite: &Suite) -> Vec<QemuConfig> {
    if args.quick {
        vec![QemuConfig::default()]
    } else if suite.covering {
        QemuConfig::covering_matrix()
    } else {
        QemuConfig::test_matrix()
    }
}

/// Adds the boot arguments the suites read: the RAM size, and the host's time (Unix
/// seconds) for the real-time clock driver to be checked against.
fn with_test_bootargs(config: &QemuConfig) -> QemuConfig {
    let mib = config.memory_mib;
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    config
        .clone()
        .bootarg(&format!("kaal.test.ram_mib={mib}"))
        .bootarg(&format!("kaal.test.cpus={}", config.smp))
        .bootarg(&format!("kaal.test.unix_time={unix_time}"))
}

/// `cargo xtask test` step: every suite on every configuration, each run one test.
pub fn test(args: &Args) -> Tally {
    match test_inner(args) {
        Ok(tally) => tally,
        Err(e) => {
            eprintln!("qemu: {e}");
            Tally::one(false)
        }
    }
}

fn test_inner(args: &Args) -> Result<Tally> {
    kaal_build::tools::ensure_all()?;
    let mut suites = discover()?;
    if !args.suites.is_empty() {
        suites.retain(|s| args.suites.contains(&s.name));
    }
    if suites.is_empty() {
        println!("qemu: no suites under tests/qemu/suites");
        return Ok(Tally::default());
    }
    let ws = qemu_workspace();
    let mut tally = Tally::default();
    let mut jobs = Vec::new();
    for (suite, image) in build(&ws, &suites) {
        let configs = configs(args, &suite);
        match image {
            Ok(image) => jobs.extend(
                configs
                    .iter()
                    .map(|c| (suite.clone(), image.kernel.clone(), c.clone())),
            ),
            Err(e) => {
                // The suite's runs cannot happen: count each as failed.
                eprintln!("qemu: {} does not build: {e}", suite.package);
                tally.failed += configs.len() as u32;
            }
        }
    }
    // Longest runs first, so that they do not end up alone at the tail.
    jobs.sort_by_key(|(suite, _, _)| std::cmp::Reverse(suite.timeout));
    let mut combinations: Vec<String> = jobs.iter().map(|(_, _, c)| c.label()).collect();
    combinations.sort();
    combinations.dedup();
    println!(
        "qemu: {} runs ({} suites), {} at a time; configurations: {}",
        jobs.len(),
        suites.len(),
        args.jobs,
        combinations.join(", ")
    );
    let queue = Mutex::new(jobs.into_iter());
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 0..args.jobs {
            let tx = tx.clone();
            let queue = &queue;
            scope.spawn(move || {
                while let Some((suite, kernel, config)) =
                    queue.lock().ok().and_then(|mut q| q.next())
                {
                    let ok = run_boots(&suite, &kernel, &config, args);
                    if tx.send(ok).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for ok in rx {
            tally += Tally::one(ok);
        }
    });
    Ok(tally)
}

/// Where the disk images of suites with `disk = MIB` go (created).
fn disk_dir() -> Result<PathBuf> {
    let dir = root().join("target").join("qemu-disks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Creates (or empties) the raw image `path`: `mib` MiB of zeros (a sparse file).
fn create_disk(path: &Path, mib: u64) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.set_len(mib << 20)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// Runs one suite on one configuration, one test: `boots` boots in a row (each judged
/// by [`run_one`], `expect.txt` only against the last), all on one fresh disk image if
/// the suite has `disk`. The image is named after the configuration and this process
/// (so that concurrent harnesses do not share it), removed after a pass, kept after a
/// failure.
fn run_boots(suite: &Suite, kernel: &Path, config: &QemuConfig, args: &Args) -> bool {
    let label = config.label();
    let mut config = config.clone();
    if let Some(mib) = suite.disk_mib {
        let image = disk_dir().and_then(|dir| {
            let image = dir.join(format!("{}-{label}-{}.img", suite.name, std::process::id()));
            create_disk(&image, mib).map(|()| image)
        });
        match image {
            Ok(image) => config.disk = Some(image),
            Err(e) => {
                print!(
                    "qemu: {:<24} {label:<26} FAILED\n    disk image: {e}\n",
                    suite.package
                );
                return false;
            }
        }
    }
    let mut ok = true;
    for boot in 1..=suite.boots {
        let mut this = suite.clone();
        let mut config = config.clone();
        if suite.boots > 1 {
            this.boot = Some((boot, suite.boots));
            config = config.bootarg(&format!("kaal.test.boot={boot}"));
            if boot < suite.boots {
                this.expected.clear();
            }
        }
        if !run_one(&this, kernel, &config, args) {
            ok = false;
            break;
        }
        if let (Some(image), Some(mib)) = (&config.disk, suite.disk_mib)
            && suite.disk_fat_after_boot == Some(boot)
            && let Err(e) = kaal_build::disk::create_fat_image(image, mib << 20)
        {
            print!(
                "qemu: {:<24} {label:<26} FAILED\n    formatting the disk image as FAT: {e}\n",
                suite.package
            );
            ok = false;
            break;
        }
    }
    if let Some(image) = &config.disk {
        if ok {
            let _ = std::fs::remove_file(image);
        } else {
            println!("    disk image kept: {}", image.display());
        }
    }
    ok
}

/// Writes the device tree of a `dtb_set` suite for `config` (booting `kernel`) to
/// `target/qemu-dtbs/<name>.dtb`: QEMU's own tree for that configuration with `edit`
/// applied ([`tamper::edit_dtb`]).
fn edited_dtb(config: &QemuConfig, kernel: &Path, edit: &DtbEdit, name: &str) -> Result<PathBuf> {
    let dir = root().join("target").join("qemu-dtbs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dumped = dir.join(format!("{name}-qemu.dtb"));
    config.dump_dtb(kernel, &dumped)?;
    let blob = std::fs::read(&dumped).map_err(|e| format!("{}: {e}", dumped.display()))?;
    let _ = std::fs::remove_file(&dumped);
    let edited = dir.join(format!("{name}.dtb"));
    std::fs::write(&edited, tamper::edit_dtb(&blob, edit)?)
        .map_err(|e| format!("{}: {e}", edited.display()))?;
    Ok(edited)
}

/// Runs one suite on one configuration, prints the verdict and keeps the log of a failure.
fn run_one(suite: &Suite, kernel: &Path, config: &QemuConfig, args: &Args) -> bool {
    let mut config = with_test_bootargs(config);
    config.secure = suite.secure;
    let label = match suite.boot {
        Some((boot, _)) => format!("{}-boot{boot}", config.label()),
        None => config.label(),
    };
    if let Some(bootargs) = &suite.bootargs {
        config = config.bootarg(bootargs);
    }
    if let Some(edit) = &suite.dtb_set {
        let name = format!("{}-{label}-{}", suite.name, std::process::id());
        match edited_dtb(&config, kernel, edit, &name) {
            Ok(dtb) => config.dtb = Some(dtb),
            Err(e) => {
                print!(
                    "qemu: {:<24} {label:<26} FAILED\n    device tree: {e}\n",
                    suite.package
                );
                return false;
            }
        }
    }
    let qmp = suite.powerdown_after.as_ref().map(|after| {
        let socket = std::env::temp_dir().join(format!(
            "kaal-qmp-{}-{label}-{}.sock",
            suite.name,
            std::process::id()
        ));
        let _ = std::fs::remove_file(&socket);
        config.qmp_socket = Some(socket.clone());
        QmpAction {
            socket,
            after: after.clone(),
            command: "system_powerdown".into(),
        }
    });
    let cmd = config.command(kernel, Console::Captured);
    let options = RunOptions {
        timeout: suite.timeout.map_or(args.timeout, |t| t.max(args.timeout)),
        echo: false,
        qmp,
        input: suite
            .serial_input
            .as_ref()
            .map(|(after, bytes)| SerialInput {
                after: after.clone(),
                bytes: serial_pattern(*bytes),
            }),
    };
    let run = run_captured(cmd, &options);
    if let Some(action) = &options.qmp {
        let _ = std::fs::remove_file(&action.socket);
    }
    let reasons = match run {
        Ok(output) => {
            let reasons = if suite.corrupt_root_task.is_some() || suite.secure || suite.refused {
                serial::judge_refused(&output, &suite.expected, suite.expect_exit)
            } else {
                serial::judge_exit(&output, &suite.expected, suite.expect_exit)
            };
            if reasons.is_empty() {
                if let Some(dtb) = &config.dtb {
                    let _ = std::fs::remove_file(dtb);
                }
                let mut text = format!(
                    "qemu: {:<24} {label:<26} ok ({:.1} s)\n",
                    suite.package,
                    output.elapsed.as_secs_f64()
                );
                if let Some(prefix) = &suite.report {
                    for line in output.stdout.lines().map(str::trim_end) {
                        if line.starts_with(prefix.as_str()) {
                            text.push_str(&format!("    {line}\n"));
                        }
                    }
                }
                print!("{text}");
                return true;
            }
            let log = log_dir().join(format!("{}-{label}.log", suite.name));
            let saved = match output.save_log(&log) {
                Ok(()) => log.display().to_string(),
                Err(e) => format!("(log not saved: {e})"),
            };
            let mut text = format!("qemu: {:<24} {label:<26} FAILED\n", suite.package);
            for r in &reasons {
                text.push_str(&format!("    {r}\n"));
            }
            text.push_str(&format!(
                "    log: {saved}\n    --- last {TAIL_LINES} lines ---\n"
            ));
            for line in output.tail(TAIL_LINES).lines() {
                text.push_str(&format!("    | {line}\n"));
            }
            if let Some(dtb) = &config.dtb {
                text.push_str(&format!("    device tree kept: {}\n", dtb.display()));
            }
            text
        }
        Err(e) => format!("qemu: {:<24} {label:<26} FAILED\n    {e}\n", suite.package),
    };
    // One print call, so that the report of a parallel run is not interleaved.
    print!("{reasons}");
    false
}

/// `cargo xtask qemu SUITE [options]`: build one suite and boot it, interactively or
/// (`--check`) as a judged test run.
pub fn interactive(args: Args) -> Result<ExitCode> {
    let [name] = args.positional.as_slice() else {
        return Err("usage: cargo xtask qemu SUITE [--cpu ..] [--gic ..] [--el2] [--mem ..] [--smp ..] [--check]".into());
    };
    let name = name.trim_start_matches("suite-");
    kaal_build::tools::ensure_all()?;
    let suites = discover()?;
    let Some(suite) = suites.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = suites.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("no suite `{name}`; suites: {}", names.join(", ")).into());
    };
    let ws = qemu_workspace();
    let (_, image) = build(&ws, std::slice::from_ref(suite)).remove(0);
    let image = image?;
    if args.check {
        return Ok(if run_boots(suite, &image.kernel, &args.qemu, &args) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut config = with_test_bootargs(&args.qemu);
    if let Some(bootargs) = &suite.bootargs {
        config = config.bootarg(bootargs);
    }
    if let Some(edit) = &suite.dtb_set {
        let dtb = edited_dtb(
            &config,
            &image.kernel,
            edit,
            &format!("{}-interactive", suite.name),
        )?;
        println!(
            "qemu: device tree {} (QEMU's, with {} of {} changed)",
            dtb.display(),
            edit.property,
            edit.node
        );
        config.dtb = Some(dtb);
    }
    if let Some(mib) = suite.disk_mib {
        // Kept between interactive boots, so that a second boot sees what the first wrote.
        let image = disk_dir()?.join(format!("{}-interactive.img", suite.name));
        if suite.disk_fat_after_boot.is_some() {
            kaal_build::disk::ensure_fat_image(&image, mib << 20)?;
        } else if !image.is_file() {
            create_disk(&image, mib)?;
        }
        println!(
            "qemu: disk image {} (kept between boots; delete it for a fresh disk)",
            image.display()
        );
        config.disk = Some(image);
    }
    let status = qemu::run_interactive(&config, &image.kernel)?;
    println!("\nqemu: exited with {status}");
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn blk_suite_gets_a_disk_and_two_boots() {
        let suites = super::discover().unwrap();
        let blk = suites.iter().find(|s| s.name == "blk").unwrap();
        assert_eq!((blk.disk_mib, blk.boots, blk.covering), (Some(8), 2, true));
        let drivers = suites.iter().find(|s| s.name == "drivers").unwrap();
        assert_eq!((drivers.disk_mib, drivers.boots), (None, 1));
    }
}
