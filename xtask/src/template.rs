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
    runner::{RunOptions, run_captured},
    tools,
};

use crate::{Result, Tally, args::Args, log_dir, root};

/// Project name the template is rendered with.
pub const NAME: &str = "kaal-demo";

/// The line the template's monitor component prints when its count agrees with the
/// sensor's: `monitor: 1000 samples, sum S; sensor agrees`.
const MONITOR_PREFIX: &str = "monitor: 1000 samples, sum ";
const MONITOR_SUFFIX: &str = "; sensor agrees";

/// Renders the template into `<parent>/<NAME>` with cargo-generate (keeping an existing
/// `target/` there) and adds a `[patch.crates-io]` section to its `.cargo/config.toml` that
/// points the `kaal-*` crates of its `[workspace.dependencies]` at this workspace (crates
/// they use in turn come along as path dependencies). Returns the project directory.
pub fn render(parent: &Path) -> Result<PathBuf> {
    tools::ensure_cargo_generate()?;
    let dir = parent.join(NAME);
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
        ]);
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
    let dir = render(&root().join("target").join("template-run"))?;
    let mut args = vec!["run".to_owned()];
    args.extend_from_slice(options);
    let mut cmd = project_xtask(&dir, &args);
    println!("$ (cd {}; {})", dir.display(), process::display(&cmd));
    let status = process::status(&mut cmd)?;
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

/// `cargo xtask test` step: render with real cargo-generate, build, and boot at 256 MiB
/// and 1 GiB checking the RAM line, the monitor component's line (its count agreed with
/// the sensor's) and the readiness line. One test for render + build, one for a
/// malformed `system.toml`, one per boot.
pub fn smoke_test(args: &Args) -> Tally {
    let dir = match tools::ensure_all()
        .and(Ok(()))
        .map_err(Into::into)
        .and_then(|()| render(&root().join("target").join("template-smoke")))
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("template: {e}");
            return Tally {
                passed: 0,
                failed: 4,
            };
        }
    };
    let mut build = project_xtask(&dir, &["build".to_owned()]);
    println!("$ (cd {}; {})", dir.display(), process::display(&build));
    if let Err(e) = process::run(&mut build) {
        eprintln!("template: build failed: {e}");
        return Tally {
            passed: 0,
            failed: 3,
        };
    }
    let mut tally = Tally::one(true);
    println!("template: rendered and built {NAME}");
    tally += Tally::one(malformed_description_fails_the_build(&dir));
    for mib in [256u32, 1024] {
        tally += Tally::one(boot_check(&dir, mib, args));
    }
    tally
}

/// `cargo xtask build` in the generated project refuses a `system.toml` with a misspelt
/// key, naming the file, the line and the problem; the file is restored afterwards.
fn malformed_description_fails_the_build(dir: &Path) -> bool {
    let path = dir.join("system.toml");
    let Ok(original) = std::fs::read_to_string(&path) else {
        println!("template: no system.toml in the generated project");
        return false;
    };
    let anchor = "[components.monitor]\n";
    let Some(at) = original.find(anchor) else {
        println!("template: system.toml has no [components.monitor] table");
        return false;
    };
    let insert = at + anchor.len();
    let line = original[..insert].lines().count() + 1;
    let broken = format!("{}prio = 3\n{}", &original[..insert], &original[insert..]);
    if std::fs::write(&path, broken).is_err() {
        return false;
    }
    let mut build = project_xtask(dir, &["build".to_owned()]);
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

/// Boots the generated project with `--mem <mib>` and checks its output.
fn boot_check(dir: &Path, mib: u32, args: &Args) -> bool {
    let cmd = project_xtask(
        dir,
        &["run".to_owned(), "--mem".to_owned(), mib.to_string()],
    );
    // The timeout also covers cargo checking that the build is fresh.
    let options = RunOptions {
        timeout: args.timeout + Duration::from_secs(60),
        echo: false,
        qmp: None,
        input: None,
    };
    let expected = [format!("RAM: {mib} MiB"), format!("{NAME} is ready.")];
    let (ok, reasons, output, monitor) = match run_captured(cmd, &options) {
        Ok(output) => {
            let mut reasons: Vec<String> = Vec::new();
            if !output.success() {
                reasons.push(format!("QEMU ended with {}", output.termination));
            }
            for e in &expected {
                if !output.stdout.contains(e.as_str()) {
                    reasons.push(format!("expected `{e}` in the output"));
                }
            }
            let monitor = monitor_line(&output.stdout).map(str::to_owned);
            if monitor.is_none() {
                reasons.push(format!(
                    "expected `{MONITOR_PREFIX}S{MONITOR_SUFFIX}` in the output"
                ));
            }
            (reasons.is_empty(), reasons, Some(output), monitor)
        }
        Err(e) => (false, vec![e.to_string()], None, None),
    };
    if ok {
        println!(
            "template: boot with -m {mib}M ok: found `{}`, `{}` and `{}`",
            expected[0],
            monitor.unwrap_or_default(),
            expected[1]
        );
        return true;
    }
    println!("template: boot with -m {mib}M FAILED");
    for r in reasons {
        println!("    {r}");
    }
    if let Some(output) = output {
        let log = log_dir().join(format!("template-{mib}m.log"));
        match output.save_log(&log) {
            Ok(()) => println!("    log: {}", log.display()),
            Err(e) => println!("    (log not saved: {e})"),
        }
        for line in output.tail(30).lines() {
            println!("    | {line}");
        }
    }
    false
}

/// The monitor's line in `output`, `monitor: 1000 samples, sum S; sensor agrees` with a
/// number `S`, if it is there.
fn monitor_line(output: &str) -> Option<&str> {
    output.lines().map(str::trim_end).find(|line| {
        line.strip_prefix(MONITOR_PREFIX)
            .and_then(|rest| rest.strip_suffix(MONITOR_SUFFIX))
            .is_some_and(|sum| !sum.is_empty() && sum.bytes().all(|b| b.is_ascii_digit()))
    })
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
        for member in members.trim_end_matches(']').split(',') {
            let member = member.trim().trim_matches('"');
            let text = std::fs::read_to_string(template.join(member).join("Cargo.toml")).unwrap();
            for line in text.lines().filter(|l| l.starts_with("kaal-")) {
                assert!(line.contains(".workspace = true"), "{member}: {line}");
            }
        }
    }

    #[test]
    fn monitor_line_is_found() {
        let out =
            "RAM: 256 MiB at 0x40000000\r\nmonitor: 1000 samples, sum 21249500; sensor agrees\r\n";
        assert_eq!(
            monitor_line(out),
            Some("monitor: 1000 samples, sum 21249500; sensor agrees")
        );
        assert_eq!(
            monitor_line("monitor: 999 samples, sum 5; sensor agrees"),
            None
        );
        assert_eq!(
            monitor_line("monitor: 1000 samples, sum 5; sensor says 999, sum 5"),
            None
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
