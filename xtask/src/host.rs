//! Host steps: clippy, `cargo test --workspace --all-features` and `cargo publish --workspace --dry-run`.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

use kaal_build::process;

use crate::{Tally, args::Args, root};

/// Runs the workspace's host tests, counting the tests of every `test result:` line.
/// They include the stable replay of the fuzz corpora (`fuzz/targets`, a workspace
/// member; the `cargo fuzz` workspace in `fuzz/` itself is nightly-only and not built).
/// A run that fails without a failed test (a build error) counts as one failure.
pub fn test(_args: &Args) -> Tally {
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .args(["test", "--workspace", "--all-features"]);
    run_counted(cmd, "cargo test --workspace --all-features")
}

/// Clippy with warnings denied, three tests: the host build of the workspace
/// (`--all-targets --all-features`), the kernel for `aarch64-unknown-none-softfloat`
/// (with its test hooks) and the `no_std` crates for `aarch64-unknown-none`, and every
/// QEMU suite and benchmark (the `tests/qemu` workspace, which also builds the
/// template's components) for `aarch64-unknown-none`.
pub fn clippy(_args: &Args) -> Tally {
    let deny = ["--", "-D", "warnings"];
    let kernel = [
        "--target",
        "aarch64-unknown-none-softfloat",
        "-p",
        "kaal-kernel",
    ];
    let runs: [(&str, std::path::PathBuf, Vec<&str>); 4] = [
        (
            "host",
            root(),
            vec!["--workspace", "--all-targets", "--all-features"],
        ),
        (
            "aarch64 kernel and no_std crates",
            root(),
            [&kernel[..], &["--features", "kaal-kernel/test-hooks"]].concat(),
        ),
        // Without the hooks' code: what a shipped kernel compiles.
        ("aarch64 kernel without test hooks", root(), kernel.to_vec()),
        (
            "QEMU suites and benchmarks",
            root().join("tests").join("qemu"),
            vec![
                "--target",
                "aarch64-unknown-none",
                "--workspace",
                "--exclude",
                "kaal-test-kernel",
            ],
        ),
    ];
    let mut tally = Tally::default();
    for (what, dir, args) in runs {
        let mut cmd = process::cargo();
        cmd.current_dir(dir).arg("clippy").args(args).args(deny);
        println!("$ {}", process::display(&cmd));
        let mut ok = process::status(&mut cmd).is_ok_and(|s| s.success());
        if ok && what.starts_with("aarch64") {
            // The user-space crates, for the target their tasks build for.
            let mut cmd = process::cargo();
            cmd.current_dir(root())
                .args(["clippy", "--target", "aarch64-unknown-none"]);
            for krate in [
                "kaal-abi",
                "kaal-bootinfo",
                "kaal-ipc",
                "kaal-user",
                "kaal-broker",
                "kaal-dddk",
            ] {
                cmd.args(["-p", krate]);
            }
            cmd.args(deny);
            println!("$ {}", process::display(&cmd));
            ok = process::status(&mut cmd).is_ok_and(|s| s.success());
        }
        if !ok {
            eprintln!("clippy ({what}): warnings or errors (see above)");
        }
        tally += Tally::one(ok);
    }
    tally
}

/// The loom models of `kaal-ipc` and of `kaal-user`'s lock (their own build, with
/// `--cfg loom`, in its own target directory so the normal build stays cached).
pub fn loom(_args: &Args) -> Tally {
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root().join("target").join("loom"))
        .args([
            "test",
            "-p",
            "kaal-ipc",
            "-p",
            "kaal-user",
            "--release",
            "--test",
            "loom",
        ]);
    run_counted(cmd, "loom models of kaal-ipc and kaal-user")
}

/// The kernel's host suite and kaal-ipc's tests under Miri (undefined behaviour,
/// aliasing of the object store's references, the ring's unsafe slot accesses), where
/// the machine has a nightly toolchain with the Miri component; where the nightly toolchain lacks Miri (rustup cannot fetch it offline),
/// under AddressSanitizer instead (out-of-bounds and freed-memory accesses, leaks); with
/// no nightly toolchain at all, skipped with a note.
pub fn sanitize(_args: &Args) -> Tally {
    let nightly = |args: &[&str]| {
        std::process::Command::new("rustup")
            .args(["run", "nightly"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut cmd = std::process::Command::new("rustup");
    cmd.current_dir(root()).args(["run", "nightly", "cargo"]);
    if nightly(&["cargo", "miri", "--version"]) {
        cmd.env("CARGO_TARGET_DIR", root().join("target").join("miri"))
            // The suite reads its device-tree fixtures from files (isolation off); the
            // kernel names objects by physical address, turned into pointers through
            // the simulated linear map (exposed provenance, on purpose).
            .env(
                "MIRIFLAGS",
                "-Zmiri-ignore-leaks -Zmiri-disable-isolation -Zmiri-permissive-provenance",
            )
            .args(["miri", "test", "-p", "kaal-kernel", "--lib"]);
        let mut tally = run_counted(cmd, "the kernel's host suite under Miri");
        // kaal-ipc's ring protocol, hostile-peer and thread tests (the tests that need
        // processes, /proc or memfds are ignored under Miri), few property cases.
        let mut ipc = std::process::Command::new("rustup");
        ipc.current_dir(root())
            .args(["run", "nightly", "cargo"])
            .env("CARGO_TARGET_DIR", root().join("target").join("miri"))
            .env("MIRIFLAGS", "-Zmiri-ignore-leaks -Zmiri-disable-isolation")
            .env("PROPTEST_CASES", "4")
            .args([
                "miri",
                "test",
                "-p",
                "kaal-ipc",
                "--features",
                "std",
                "--lib",
                "--test",
                "hostile",
                "--test",
                "model",
                "--test",
                "threads",
            ]);
        tally += run_counted(ipc, "kaal-ipc's tests under Miri");
        return tally;
    }
    if !nightly(&["rustc", "--version"]) {
        println!(
            "sanitize: skipped: no nightly toolchain here (with one: \
             `rustup component add miri --toolchain nightly`, then \
             `cargo +nightly miri test -p kaal-kernel --lib`)"
        );
        return Tally::default();
    }
    println!(
        "sanitize: the nightly toolchain has no Miri component here; \
         running the kernel's host suite under AddressSanitizer instead"
    );
    // Sanitizers need an explicit target (so that build scripts are built without one).
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    cmd.env("CARGO_TARGET_DIR", root().join("target").join("asan"))
        .env("RUSTFLAGS", "-Zsanitizer=address")
        .args(["test", "-p", "kaal-kernel", "--lib", "--target", &host]);
    run_counted(cmd, "the kernel's host suite under AddressSanitizer")
}

/// Runs a `cargo test` command, echoing it and counting its `test result:` lines. A run
/// that fails without a failed test (a build error) counts as one failure.
fn run_counted(mut cmd: std::process::Command, what: &str) -> Tally {
    cmd.stdout(Stdio::piped());
    println!("$ {}", process::display(&cmd));
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("host: cannot run cargo: {e}");
            return Tally::one(false);
        }
    };
    let mut tally = Tally::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(t) = parse_test_result(&line) {
                tally += t;
            }
        }
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    if !ok && tally.failed == 0 {
        eprintln!("host: {what} failed");
        tally.failed += 1;
    }
    tally
}

/// Counts from a libtest summary line:
/// `test result: ok. 17 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; ...`.
pub fn parse_test_result(line: &str) -> Option<Tally> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut tally = Tally::default();
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match what {
            "passed" => tally.passed = n.parse().ok()?,
            "failed" => tally.failed = n.parse().ok()?,
            _ => {}
        }
    }
    Some(tally)
}

/// `cargo publish --workspace --dry-run --allow-dirty`: one test.
pub fn publish_dry_run(_args: &Args) -> Tally {
    forget_packaged_workspace_crates();
    // Its own, empty target directory: verify builds of our crates as registry
    // packages are fingerprinted by version alone, so older builds would be reused.
    let target = root().join("target").join("publish");
    let _ = std::fs::remove_dir_all(&target);
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .env("CARGO_TARGET_DIR", &target)
        .args(["publish", "--workspace", "--dry-run", "--allow-dirty"]);
    println!("$ {}", process::display(&cmd));
    let ok = process::run(&mut cmd)
        .map_err(|e| eprintln!("publish: {e}"))
        .is_ok();
    Tally::one(ok)
}

/// `cargo publish --workspace --dry-run` verifies each crate against the others through a
/// temporary local registry, which cargo extracts under `$CARGO_HOME/registry/src/-<hash>/`
/// and never re-extracts for the same version. Our crates stay at one version while they
/// change, so a later run would verify against stale sources: forget those extractions,
/// (`publish_dry_run` also builds in a target directory of its own, emptied first).
fn forget_packaged_workspace_crates() {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(sources) = home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return;
    };
    for registry in registries.flatten() {
        // Local-registry overlays are named `-<hash>`; crates.io's are not.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            if krate.file_name().to_string_lossy().starts_with("kaal-") {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_summaries() {
        let ok = "test result: ok. 17 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.31s";
        assert_eq!(
            parse_test_result(ok),
            Some(Tally {
                passed: 17,
                failed: 0
            })
        );
        let bad = "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(
            parse_test_result(bad),
            Some(Tally {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
    }
}
