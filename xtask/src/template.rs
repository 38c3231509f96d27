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

/// The crates a generated project depends on by version; local builds patch them to the
/// workspace.
const PATCHED: [&str; 4] = ["kaal-kernel", "kaal-user", "kaal-bootinfo", "kaal-build"];

/// Renders the template into `<parent>/<NAME>` with cargo-generate (keeping an existing
/// `target/` there) and adds a `[patch.crates-io]` section to its `.cargo/config.toml` that
/// points the `kaal-*` dependencies at this workspace. Returns the project directory.
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
    let config = dir.join(".cargo").join("config.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&patch_section(&root().join("crates")));
    std::fs::write(&config, text)?;
    Ok(dir)
}

/// The `[patch.crates-io]` section for crates under `crates_dir`.
fn patch_section(crates_dir: &Path) -> String {
    let mut s = String::from(
        "\n# Added by `cargo xtask`: build against the local KaaL crates.\n[patch.crates-io]\n",
    );
    for name in PATCHED {
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
/// and 1 GiB checking the RAM line and the readiness line. One test for render + build,
/// one per boot.
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
                failed: 3,
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
    for mib in [256u32, 1024] {
        tally += Tally::one(boot_check(&dir, mib, args));
    }
    tally
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
    };
    let expected = [format!("RAM: {mib} MiB"), format!("{NAME} is ready.")];
    let (ok, reasons, output) = match run_captured(cmd, &options) {
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
            (reasons.is_empty(), reasons, Some(output))
        }
        Err(e) => (false, vec![e.to_string()], None),
    };
    if ok {
        println!(
            "template: boot with -m {mib}M ok: found `{}` and `{}`",
            expected[0], expected[1]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_section_points_at_local_crates() {
        let s = patch_section(Path::new("/src/kaal/crates"));
        assert!(s.contains("[patch.crates-io]\n"));
        assert!(s.contains("kaal-kernel = { path = \"/src/kaal/crates/kaal-kernel\" }\n"));
        assert!(s.contains("kaal-build = { path = \"/src/kaal/crates/kaal-build\" }\n"));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
