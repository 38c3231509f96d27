//! Host steps: `cargo test --workspace --all-features` and `cargo publish --workspace --dry-run`.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

use kaal_build::process;

use crate::{Tally, args::Args, root};

/// Runs the workspace's host tests, counting the tests of every `test result:` line.
/// A run that fails without a failed test (a build error) counts as one failure.
pub fn test(_args: &Args) -> Tally {
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .args(["test", "--workspace", "--all-features"]);
    run_counted(cmd, "cargo test --workspace --all-features")
}

/// The loom models of `kaal-ipc` (its own build, with `--cfg loom`, in its own target
/// directory so the normal build stays cached).
pub fn loom(_args: &Args) -> Tally {
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root().join("target").join("loom"))
        .args(["test", "-p", "kaal-ipc", "--release", "--test", "loom"]);
    run_counted(cmd, "loom models of kaal-ipc")
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
    let mut cmd = process::cargo();
    cmd.current_dir(root())
        .args(["publish", "--workspace", "--dry-run", "--allow-dirty"]);
    println!("$ {}", process::display(&cmd));
    let ok = process::run(&mut cmd)
        .map_err(|e| eprintln!("publish: {e}"))
        .is_ok();
    Tally::one(ok)
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
