//! The project template: render it with cargo-generate, point it at the local crates,
//! and build, boot or smoke-test the result.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use kaal_build::{
    process,
    runner::{RunOptions, SerialInput, run_captured},
    tools,
};

use crate::{Result, Tally, args::Args, log_dir, root};

/// Project name the template is rendered with.
pub const NAME: &str = "kaal-demo";

/// One answer to each of the template's placeholders (`template/cargo-generate.toml`).
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// Names the rendered directory.
    pub label: &'static str,
    /// `cpu`.
    pub cpu: &'static str,
    /// `memory_mib`.
    pub memory_mib: u32,
    /// `cores`.
    pub cores: u32,
    /// `storage`: the virtio-blk driver and the FAT file server.
    pub storage: bool,
    /// `examples`: the sensor/monitor example.
    pub examples: bool,
}

impl Variant {
    /// The `--define` arguments of cargo-generate.
    fn defines(&self) -> Vec<String> {
        [
            format!("cpu={}", self.cpu),
            format!("memory_mib={}", self.memory_mib),
            format!("cores={}", self.cores),
            format!("storage={}", self.storage),
            format!("examples={}", self.examples),
        ]
        .into_iter()
        .flat_map(|d| ["--define".to_owned(), d])
        .collect()
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu={} memory_mib={} cores={} storage={} examples={}",
            self.cpu, self.memory_mib, self.cores, self.storage, self.examples
        )
    }
}

/// The template's defaults: everything in.
pub const FULL: Variant = Variant {
    label: "full",
    cpu: "cortex-a72",
    memory_mib: 256,
    cores: 1,
    storage: true,
    examples: true,
};

/// A covering set of placeholder answers: both values of each boolean placeholder that
/// changes code (every one of their four combinations), every CPU, several memory sizes
/// and core counts.
pub const VARIANTS: [Variant; 4] = [
    FULL,
    Variant {
        label: "no-storage",
        cpu: "cortex-a53",
        memory_mib: 1024,
        cores: 2,
        storage: false,
        examples: true,
    },
    Variant {
        label: "no-examples",
        cpu: "max",
        memory_mib: 512,
        cores: 4,
        storage: true,
        examples: false,
    },
    Variant {
        label: "minimal",
        cpu: "cortex-a53",
        memory_mib: 128,
        cores: 1,
        storage: false,
        examples: false,
    },
];

/// Renders the template into `<parent>/<NAME>` with cargo-generate and `variant`'s
/// answers (keeping an existing `target/` there) and adds a `[patch.crates-io]` section
/// to its `.cargo/config.toml` that points the `kaal-*` crates of its
/// `[workspace.dependencies]` at this workspace (crates they use in turn come along as
/// path dependencies). Returns the project directory.
pub fn render(parent: &Path, variant: &Variant) -> Result<PathBuf> {
    tools::ensure_cargo_generate()?;
    let dir = parent.join(NAME);
    // Files of an earlier rendering that this variant leaves out must not linger.
    for sub in ["components", "protocol", "xtask", "kernel", "root-task"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    std::fs::create_dir_all(&dir)?;
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .args([
            "generate",
            "--path",
            "template",
            "--name",
            NAME,
            "--destination",
        ])
        .arg(&dir)
        .args([
            "--init",
            "--overwrite",
            "--silent",
            "--vcs",
            "none",
            "--no-workspace",
        ])
        .args(variant.defines());
    println!("$ {}", process::display(&cmd));
    process::run(&mut cmd)?;
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let crates_dir = root().join("crates");
    let names = kaal_dependencies(&manifest);
    if let Some(name) = names.iter().find(|n| !crates_dir.join(n).is_dir()) {
        return Err(format!(
            "the template depends on `{name}`, which is not a crate of this workspace"
        )
        .into());
    }
    let config = dir.join(".cargo").join("config.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&patch_section(&crates_dir, &names));
    std::fs::write(&config, text)?;
    Ok(dir)
}

/// The `kaal-*` keys of the `[workspace.dependencies]` table of a workspace manifest.
fn kaal_dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_table = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_table = line == "[workspace.dependencies]";
        } else if in_table {
            let key = line
                .split(['=', '.'])
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if key.starts_with("kaal-") && !names.iter().any(|n| n == key) {
                names.push(key.to_owned());
            }
        }
    }
    names
}

/// The `[patch.crates-io]` section for crates `names` under `crates_dir`.
fn patch_section(crates_dir: &Path, names: &[String]) -> String {
    let mut s = String::from(
        "\n# Added by `cargo xtask`: build against the local KaaL crates.\n[patch.crates-io]\n",
    );
    for name in names {
        let path = crates_dir.join(name);
        let _ = writeln!(
            s,
            "{name} = {{ path = {} }}",
            toml_string(&path.to_string_lossy())
        );
    }
    s
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut s = String::from('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `cargo xtask` inside the generated project `dir`.
fn project_xtask(dir: &Path, args: &[String]) -> std::process::Command {
    let mut cmd = process::cargo();
    cmd.current_dir(dir).arg("xtask").args(args);
    cmd
}

/// `cargo xtask run [options]`: render the template with its defaults into
/// `target/template-run/`, then run the generated project's own `cargo xtask run` with the
/// serial console on this terminal.
pub fn run(options: &[String]) -> Result<ExitCode> {
    tools::ensure_all()?;
    let dir = render(&root().join("target").join("template-run"), &FULL)?;
    let mut args = vec!["run".to_owned()];
    args.extend_from_slice(options);
    let mut cmd = project_xtask(&dir, &args);
    println!("$ (cd {}; {})", dir.display(), process::display(&cmd));
    let status = process::status(&mut cmd)?;
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

/// Where the renderings of the template test live; they share one target directory.
fn smoke_dir() -> PathBuf {
    root().join("target").join("template-smoke")
}

/// `cargo xtask` in a rendered project, building into the shared target directory.
fn smoke_xtask(dir: &Path, args: &[&str]) -> std::process::Command {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let mut cmd = project_xtask(dir, &args);
    cmd.env("CARGO_TARGET_DIR", smoke_dir().join("target"));
    cmd
}

/// `cargo xtask test` step: for each of [`VARIANTS`], render the template with real
/// cargo-generate and run the generated project's own `cargo xtask test` (it builds the
/// image, boots it, drives its shell with a script: `ps` and the rest, and checks that
/// `poweroff` ends QEMU with 0). On the full variant also: a misspelt key in
/// `system.toml` fails the build; a file written through the shell is on the disk image
/// for the host's mtools and for the next boot; a corrupt disk image gets a clear error.
pub fn smoke_test(args: &Args) -> Tally {
    let mut tally = Tally::default();
    if let Err(e) = tools::ensure_all() {
        eprintln!("template: {e}");
        return Tally::one(false);
    }
    println!("template: placeholder combinations:");
    for variant in &VARIANTS {
        println!("    {:<12} {variant}", variant.label);
    }
    // The renderings share one target directory, and their packages have the same
    // names: cargo leaves each binary at one path, so a project's checks all run right
    // after its own build, before the next project builds.
    for variant in &VARIANTS {
        let parent = smoke_dir().join(variant.label);
        let dir = match render(&parent, variant) {
            Ok(dir) => dir,
            Err(e) => {
                println!("template[{}]: rendering failed: {e}", variant.label);
                tally += Tally::one(false);
                continue;
            }
        };
        let ok = project_test(&dir, variant, args);
        tally += Tally::one(ok);
        if variant.label != FULL.label {
            continue;
        }
        if !ok {
            println!("template: the full variant did not pass; its further checks are skipped");
            tally += Tally {
                passed: 0,
                failed: 6,
            };
            continue;
        }
        tally += Tally::one(malformed_description_fails_the_build(&dir));
        tally += Tally::one(untrusted_dma_fails_the_build(&dir));
        tally += Tally::one(debug_session(&dir, args));
        tally += Tally::one(files_persist(&dir, args));
        tally += Tally::one(corrupt_disk_is_reported(&dir, args));
        tally += Tally::one(newcomer_chapters(args));
    }
    tally
}

/// Follows the book's "Writing a driver" and "Adding a service and a channel" chapters
/// on a freshly generated project (with the template's defaults, as a newcomer gets
/// it): writes their files, appends their `system.toml` tables, then types their shell
/// session into `cargo xtask run` and checks the output they show.
fn newcomer_chapters(args: &Args) -> bool {
    let dir = match render(&smoke_dir().join("newcomer"), &FULL) {
        Ok(dir) => dir,
        Err(e) => {
            println!("template: newcomer: rendering failed: {e}");
            return false;
        }
    };
    let chapter = match crate::book::apply_chapters(&dir) {
        Ok(chapter) => chapter,
        Err(e) => {
            println!("template: newcomer: applying the chapters failed: {e}");
            return false;
        }
    };
    let _ = std::fs::remove_file(dir.join("disk.img"));
    let script = format!("{}poweroff\n", chapter.script());
    let output = match scripted_run(&dir, &script, args) {
        Ok(output) => output,
        Err(e) => {
            println!("template: newcomer: {e}");
            return false;
        }
    };
    let text = output.stdout.replace('\r', "");
    let missing = chapter.missing(&text);
    let ok = output.success() && missing.is_empty();
    if ok {
        println!(
            "template: the book's driver and service chapters, followed on a new project ({} files written), run: {} expected lines seen",
            chapter.files.len(),
            chapter.expect.len()
        );
    } else {
        println!("template: newcomer chapters FAILED; missing: {missing:?}");
        save_and_show(&output, "template-newcomer");
    }
    ok
}

/// Runs the generated project's `cargo xtask test`; passes if it ends with `N passed,
/// 0 failed` and success.
fn project_test(dir: &Path, variant: &Variant, args: &Args) -> bool {
    let cmd = smoke_xtask(dir, &["test"]);
    println!("$ (cd {}; {})", dir.display(), process::display(&cmd));
    // The timeout covers building the project as well.
    let options = RunOptions {
        timeout: args.timeout * 5 + Duration::from_secs(600),
        echo: false,
        qmp: None,
        input: None,
    };
    let output = match run_captured(cmd, &options) {
        Ok(output) => output,
        Err(e) => {
            println!("template[{}]: {e}", variant.label);
            return false;
        }
    };
    let summary = output
        .stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or("no summary line")
        .to_owned();
    let ok = output.success() && summary.ends_with(" 0 failed");
    println!(
        "template[{}]: generated project's `cargo xtask test`: {summary}{}",
        variant.label,
        if ok { "" } else { " FAILED" }
    );
    if !ok {
        save_and_show(&output, &format!("template-{}", variant.label));
    }
    ok
}

/// Saves a failed run's log and prints its tail.
fn save_and_show(output: &kaal_build::runner::RunOutput, name: &str) {
    let log = log_dir().join(format!("{name}.log"));
    match output.save_log(&log) {
        Ok(()) => println!("    log: {}", log.display()),
        Err(e) => println!("    (log not saved: {e})"),
    }
    for line in output.tail(40).lines() {
        println!("    | {line}");
    }
}

/// `cargo xtask run` in the generated project with `script` on its standard input, as
/// `printf SCRIPT | cargo xtask run` does.
fn scripted_run(dir: &Path, script: &str, args: &Args) -> Result<kaal_build::runner::RunOutput> {
    let cmd = smoke_xtask(dir, &["run"]);
    let options = RunOptions {
        timeout: args.timeout + Duration::from_secs(120),
        echo: false,
        qmp: None,
        input: Some(SerialInput {
            // At once, before QEMU even starts: the bytes wait in the pipe.
            after: String::new(),
            bytes: script.as_bytes().to_vec(),
        }),
    };
    Ok(run_captured(cmd, &options)?)
}

/// `printf 'write hello.txt hi\npoweroff\n' | cargo xtask run` creates the disk image and
/// writes the file; the host's `mtype` reads `hi` from the image; the next boot's
/// `cat hello.txt` prints it.
fn files_persist(dir: &Path, args: &Args) -> bool {
    let disk = dir.join("disk.img");
    let _ = std::fs::remove_file(&disk);
    let step = |what: &str, ok: bool, output: Option<&kaal_build::runner::RunOutput>| {
        if !ok {
            println!("template: files: {what} FAILED");
            if let Some(output) = output {
                save_and_show(output, "template-files");
            }
        }
        ok
    };
    let first = match scripted_run(dir, "write hello.txt hi\npoweroff\n", args) {
        Ok(output) => output,
        Err(e) => return step(&format!("first boot: {e}"), false, None),
    };
    if !step(
        "first boot writes hello.txt and powers off",
        first.success() && first.stdout.contains("wrote 3 bytes to hello.txt") && disk.is_file(),
        Some(&first),
    ) {
        return false;
    }
    if !tools::has_program("mtype") {
        return step(
            "mtype is missing (install mtools: `apt-get install -y mtools`; `.ci/run` does)",
            false,
            None,
        );
    }
    let image = format!("{}@@1M", disk.display());
    let mtype =
        process::output(std::process::Command::new("mtype").args(["-i", &image, "::hello.txt"]));
    let host = match mtype {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            return step(
                &format!("mtype: {}", String::from_utf8_lossy(&out.stderr).trim()),
                false,
                None,
            );
        }
        Err(e) => return step(&format!("mtype: {e}"), false, None),
    };
    if !step(
        &format!("mtype reads `hi` from the image (read {host:?})"),
        host.trim_end() == "hi",
        None,
    ) {
        return false;
    }
    let second = match scripted_run(dir, "cat hello.txt\npoweroff\n", args) {
        Ok(output) => output,
        Err(e) => return step(&format!("second boot: {e}"), false, None),
    };
    let shown = second
        .stdout
        .replace('\r', "")
        .split("kaal> cat hello.txt\n")
        .nth(1)
        .is_some_and(|rest| rest.starts_with("hi\n"));
    if !step(
        "the next boot's `cat hello.txt` prints `hi`",
        second.success() && shown,
        Some(&second),
    ) {
        return false;
    }
    println!(
        "template: files: `write hello.txt hi` reached the disk image: mtype read `hi`, the next boot's `cat` printed it"
    );
    true
}

/// Marks the sections of the debug session's output.
const MARK: &str = "KAAL-DEBUG";

/// `cargo xtask debug --batch FILE --component shell` in the generated project: GDB
/// stops at the kernel's Rust entry, then at the shell's `main`, and prints a backtrace
/// with symbols.
fn debug_session(dir: &Path, args: &Args) -> bool {
    let script = smoke_dir().join("session.gdb");
    let text = format!(
        "echo {MARK} kernel\\n\n\
         hbreak *kaal_kernel_start\n\
         continue\n\
         bt 1\n\
         delete\n\
         echo {MARK} main\\n\n\
         kaal-break shell\n\
         continue\n\
         bt\n\
         echo {MARK} end\\n\n"
    );
    let port = match crate::debug::free_port() {
        Ok(port) => port.to_string(),
        Err(e) => {
            println!("template: debug: no free port: {e}");
            return false;
        }
    };
    if std::fs::write(&script, text).is_err() {
        return false;
    }
    let script = script.display().to_string();
    let cmd = smoke_xtask(dir, &["debug", "--batch", &script, "--port", &port]);
    println!("$ (cd {}; {})", dir.display(), process::display(&cmd));
    let options = RunOptions {
        timeout: args.timeout + Duration::from_secs(120),
        ..RunOptions::default()
    };
    let output = match run_captured(cmd, &options) {
        Ok(output) => output,
        Err(e) => {
            println!("template: debug: {e}");
            return false;
        }
    };
    let section = |name: &str| -> Vec<String> {
        let marker = format!("{MARK} {name}");
        output
            .stdout
            .lines()
            .skip_while(|l| l.trim() != marker)
            .skip(1)
            .take_while(|l| !l.starts_with(MARK))
            .map(str::to_owned)
            .collect()
    };
    let kernel = section("kernel");
    let main = section("main");
    let frames: Vec<&String> = main.iter().filter(|l| l.starts_with('#')).collect();
    let stopped_in_kernel = kernel
        .iter()
        .any(|l| l.starts_with("#0") && l.contains("kaal_kernel_start"));
    let stopped_in_shell = frames.first().is_some_and(|l| l.contains("shell::main"));
    let symbolic = frames.iter().any(|l| l.contains("kaal_user_start"));
    let ended = output
        .stdout
        .lines()
        .any(|l| l.trim() == format!("{MARK} end"));
    let ok = stopped_in_kernel && stopped_in_shell && symbolic && ended;
    if ok {
        println!(
            "template: `cargo xtask debug --batch` stopped at `kaal_kernel_start` and at `shell::main`, backtrace of {} frames with symbols",
            frames.len()
        );
    } else {
        println!(
            "template: debug session FAILED (kernel stop: {stopped_in_kernel}, shell main: {stopped_in_shell}, symbols: {symbolic}, ended: {ended})"
        );
        save_and_show(&output, "template-debug");
    }
    ok
}

/// A disk image that holds no FAT file system: `ls` reports it and the system still
/// powers off.
fn corrupt_disk_is_reported(dir: &Path, args: &Args) -> bool {
    let disk = dir.join("disk.img");
    let garbage: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    if std::fs::write(&disk, garbage).is_err() {
        return false;
    }
    let output = scripted_run(dir, "ls\npoweroff\n", args);
    let _ = std::fs::remove_file(&disk);
    let Ok(output) = output else {
        println!("template: corrupt disk: could not run");
        return false;
    };
    let answer = output
        .stdout
        .replace('\r', "")
        .split("kaal> ls\n")
        .nth(1)
        .and_then(|rest| rest.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let ok = output.success() && answer.starts_with("ls: ") && answer.contains("FAT");
    if ok {
        println!("template: a corrupt disk image is reported: `{answer}`");
    } else {
        println!("template: corrupt disk image: expected `ls: ...FAT...`, got `{answer}` FAILED");
        save_and_show(&output, "template-corrupt-disk");
    }
    ok
}

/// `cargo xtask build` in the generated project refuses a `system.toml` that grants the
/// virtio-blk device to a component not trusted with DMA (its `dma = true` removed); the
/// file is restored afterwards.
fn untrusted_dma_fails_the_build(dir: &Path) -> bool {
    let path = dir.join("system.toml");
    let Ok(original) = std::fs::read_to_string(&path) else {
        return false;
    };
    let trusted = "\ndma = true\n";
    if !original.contains(trusted) {
        println!("template: system.toml has no `dma = true` line");
        return false;
    }
    if std::fs::write(&path, original.replacen(trusted, "\n", 1)).is_err() {
        return false;
    }
    let output = process::output(&mut smoke_xtask(dir, &["build"]));
    let restored = std::fs::write(&path, &original).is_ok();
    let Ok(output) = output else {
        return false;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = "can read and write all memory by DMA";
    let ok = !output.status.success() && stderr.contains(expected) && restored;
    if ok {
        println!("template: a DMA-capable device granted without `dma = true` fails the build");
    } else {
        println!(
            "template: granting the virtio disk without `dma = true` did not fail the build FAILED"
        );
        for line in stderr.lines().rev().take(10) {
            println!("    | {line}");
        }
    }
    ok
}

/// `cargo xtask build` in the generated project refuses a `system.toml` with a misspelt
/// key, naming the file, the line and the problem; the file is restored afterwards.
fn malformed_description_fails_the_build(dir: &Path) -> bool {
    let path = dir.join("system.toml");
    let Ok(original) = std::fs::read_to_string(&path) else {
        println!("template: no system.toml in the generated project");
        return false;
    };
    let anchor = "[components.echo]\n";
    let Some(at) = original.find(anchor) else {
        println!("template: system.toml has no [components.echo] table");
        return false;
    };
    let insert = at + anchor.len();
    let line = original[..insert].lines().count() + 1;
    let broken = format!("{}prio = 3\n{}", &original[..insert], &original[insert..]);
    if std::fs::write(&path, broken).is_err() {
        return false;
    }
    let mut build = smoke_xtask(dir, &["build"]);
    let output = process::output(&mut build);
    let restored = std::fs::write(&path, &original).is_ok();
    let Ok(output) = output else {
        println!("template: could not run the build");
        return false;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("system.toml:{line}:1: unknown key `prio`");
    let ok = !output.status.success() && stderr.contains(&expected) && restored;
    if ok {
        println!("template: a misspelt key fails the build: `{expected}`");
    } else {
        println!(
            "template: a misspelt key in system.toml did not fail the build as expected (`{expected}`)"
        );
        for line in stderr.lines().rev().take(10) {
            println!("    | {line}");
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_section_points_at_local_crates() {
        let names = ["kaal-kernel".to_owned(), "kaal-build".to_owned()];
        let s = patch_section(Path::new("/src/kaal/crates"), &names);
        assert!(s.contains("[patch.crates-io]\n"));
        assert!(s.contains("kaal-kernel = { path = \"/src/kaal/crates/kaal-kernel\" }\n"));
        assert!(s.contains("kaal-build = { path = \"/src/kaal/crates/kaal-build\" }\n"));
    }

    #[test]
    fn kaal_dependencies_come_from_the_workspace_table() {
        let manifest = r#"
[workspace]
members = ["kernel"]

[workspace.dependencies]
kaal-kernel = "0.1"
"kaal-user" = { version = "0.1" }
kaal-ipc.version = "0.1"
zerocopy = "0.8"

[dependencies]
kaal-abi = "0.1"
"#;
        assert_eq!(
            kaal_dependencies(manifest),
            ["kaal-kernel", "kaal-user", "kaal-ipc"]
        );
    }

    /// Every `kaal-*` crate the template depends on is one of ours, so it gets patched;
    /// its members name `kaal-*` crates only through the workspace table.
    #[test]
    fn template_dependencies_are_local_crates() {
        let template = root().join("template");
        let manifest = std::fs::read_to_string(template.join("Cargo.toml")).unwrap();
        let names = kaal_dependencies(&manifest);
        for needed in ["kaal-kernel", "kaal-user", "kaal-broker", "kaal-build"] {
            assert!(names.iter().any(|n| n == needed), "{needed} in {names:?}");
        }
        for name in &names {
            assert!(root().join("crates").join(name).is_dir(), "{name}");
        }
        let members = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("members = ["))
            .unwrap();
        let mut packages = Vec::new();
        for member in members.trim_end_matches(']').split(',') {
            let member = member.trim().trim_matches('"');
            match member.strip_suffix("/*") {
                Some(parent) => {
                    for entry in std::fs::read_dir(template.join(parent)).unwrap() {
                        packages.push(entry.unwrap().path());
                    }
                }
                None => packages.push(template.join(member)),
            }
        }
        assert!(packages.len() >= 10, "{packages:?}");
        for package in packages {
            let text = std::fs::read_to_string(package.join("Cargo.toml")).unwrap();
            for line in text
                .lines()
                .filter(|l| l.starts_with("kaal-") || l.starts_with("protocol"))
            {
                assert!(
                    line.contains(".workspace = true") || line.contains("workspace = true,"),
                    "{}: {line}",
                    package.display()
                );
            }
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
