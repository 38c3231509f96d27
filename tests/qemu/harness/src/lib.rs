//! The in-guest side of the QEMU test protocol (see `tests/qemu/README.md`): runs named
//! tests, prints `[test] NAME ... ok` or `[test] NAME ... FAILED: REASON`, then
//! `[suite] SUITE: N passed, M failed`, and ends QEMU with status 0 only if nothing failed.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use kaal_user::{println, sys};

/// The outcome of one test: `Err` carries the reason.
pub type TestResult = Result<(), String>;

/// Fails the test with a formatted reason unless `condition` holds.
#[macro_export]
macro_rules! check {
    ($condition:expr, $($reason:tt)*) => {
        if !$condition {
            return Err(alloc::format!($($reason)*));
        }
    };
}

/// A suite being run.
pub struct Suite {
    name: &'static str,
    passed: u32,
    failed: u32,
}

impl Suite {
    /// Starts a suite.
    pub fn new(name: &'static str) -> Self {
        println!("[suite] {name}: starting");
        Self {
            name,
            passed: 0,
            failed: 0,
        }
    }

    /// Runs one test.
    pub fn run(&mut self, test: &str, body: impl FnOnce() -> TestResult) {
        match body() {
            Ok(()) => {
                self.passed += 1;
                println!("[test] {test} ... ok");
            }
            Err(reason) => {
                self.failed += 1;
                println!("[test] {test} ... FAILED: {reason}");
            }
        }
    }

    /// Prints the summary without ending QEMU; returns whether every test passed. For a
    /// suite whose run ends another way (the machine switched off by its system).
    pub fn report(self) -> bool {
        println!(
            "[suite] {}: {} passed, {} failed",
            self.name, self.passed, self.failed
        );
        self.failed == 0
    }

    /// Prints the summary and ends QEMU with the suite's status.
    pub fn finish(self) -> i32 {
        println!(
            "[suite] {}: {} passed, {} failed",
            self.name, self.passed, self.failed
        );
        let status = u32::from(self.failed != 0);
        let error = sys::debug_exit(status);
        println!("[suite] could not exit the emulator: {error}");
        status as i32
    }
}

/// Reads `key=value` from the boot arguments.
pub fn bootarg<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix(key)?.strip_prefix('='))
}
