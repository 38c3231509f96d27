//! Make sure the host tools an image build needs are installed.
//!
//! * The Rust targets [`KERNEL_TARGET`] and [`USER_TARGET`]: added with `rustup target add`.
//! * `qemu-system-aarch64`: installed with `apt-get` when running as root on a Debian-like
//!   system; otherwise [`Error::MissingTool`] carries the exact command to run.
//! * `gdb-multiarch` (only for [`crate::debug`]): installed like QEMU, with [`ensure_gdb`].
//! * `cargo-generate` (only for rendering the project template): `cargo install`.
//!
//! Each check is cheap when the tool is already there.

use std::process::{Command, Stdio};

use crate::{
    Error, KERNEL_TARGET, Result, USER_TARGET,
    process::{self, display},
};

/// Name of the QEMU binary used to boot images.
pub const QEMU: &str = "qemu-system-aarch64";

/// Debian package that provides [`QEMU`].
pub const QEMU_DEBIAN_PACKAGE: &str = "qemu-system-arm";

/// Name of the debugger [`crate::debug`] runs: a GDB that knows AArch64.
pub const GDB: &str = "gdb-multiarch";

/// Debian package that provides [`GDB`].
pub const GDB_DEBIAN_PACKAGE: &str = "gdb-multiarch";

/// Version requirement used when installing `cargo-generate`.
pub const CARGO_GENERATE_VERSION: &str = "~0.23";

/// Ensures both Rust targets and QEMU are installed.
pub fn ensure_all() -> Result<()> {
    ensure_rust_targets(&[KERNEL_TARGET, USER_TARGET])?;
    ensure_qemu()
}

/// Adds the missing ones among `targets` with `rustup target add`.
pub fn ensure_rust_targets(targets: &[&str]) -> Result<()> {
    let mut list = Command::new("rustup");
    list.args(["target", "list", "--installed"]);
    let out = match list.output() {
        Ok(out) if out.status.success() => out,
        _ => {
            // No rustup (a distribution's Rust, say): let the build tell if a target is missing.
            return Ok(());
        }
    };
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing = missing_targets(&installed, targets);
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("kaal-build: installing Rust targets: {}", missing.join(" "));
    let mut add = Command::new("rustup");
    add.args(["target", "add"]).args(&missing);
    process::run(&mut add)
}

/// The entries of `wanted` that are not lines of `installed` (the output of
/// `rustup target list --installed`).
pub fn missing_targets<'a>(installed: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect()
}

/// Whether `program --version` runs and succeeds.
pub fn has_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this process runs as root (`id -u` prints 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The shell command that installs QEMU on Debian or Ubuntu.
pub fn qemu_install_command(as_root: bool) -> String {
    apt_install_command(QEMU_DEBIAN_PACKAGE, as_root)
}

/// The shell command that installs [`GDB`] on Debian or Ubuntu.
pub fn gdb_install_command(as_root: bool) -> String {
    apt_install_command(GDB_DEBIAN_PACKAGE, as_root)
}

/// `apt-get update && apt-get install -y PACKAGE`, with `sudo` unless `as_root`.
fn apt_install_command(package: &str, as_root: bool) -> String {
    let sudo = if as_root { "" } else { "sudo " };
    format!("{sudo}apt-get update && {sudo}apt-get install -y {package}")
}

/// Ensures [`QEMU`] is on `PATH`, installing it with `apt-get` when running as root.
pub fn ensure_qemu() -> Result<()> {
    ensure_apt_program(QEMU, QEMU_DEBIAN_PACKAGE)
}

/// Ensures [`GDB`] (`gdb-multiarch`) is on `PATH`, installing it with `apt-get` when
/// running as root; otherwise [`Error::MissingTool`] carries the command to run.
pub fn ensure_gdb() -> Result<()> {
    ensure_apt_program(GDB, GDB_DEBIAN_PACKAGE)
}

/// Ensures `program` runs, installing Debian package `package` with `apt-get` when it
/// does not and this process runs as root.
fn ensure_apt_program(program: &str, package: &str) -> Result<()> {
    if has_program(program) {
        return Ok(());
    }
    let missing = || Error::MissingTool {
        tool: program.to_owned(),
        install: apt_install_command(package, is_root()),
    };
    if !is_root() || !has_program("apt-get") {
        return Err(missing());
    }
    eprintln!("kaal-build: {program} is missing; installing {package} with apt-get");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        cmd
    };
    process::run(&mut apt(&["update"]))?;
    process::run(&mut apt(&["install", "-y", package]))?;
    if has_program(program) {
        Ok(())
    } else {
        Err(missing())
    }
}

/// Ensures `cargo generate` works, installing `cargo-generate` with
/// `cargo install cargo-generate --version "~0.23" --locked` if it does not.
pub fn ensure_cargo_generate() -> Result<()> {
    let mut probe = process::cargo();
    probe
        .args(["generate", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if probe.status().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    let mut install = process::cargo();
    install.args([
        "install",
        "cargo-generate",
        "--version",
        CARGO_GENERATE_VERSION,
        "--locked",
    ]);
    eprintln!(
        "kaal-build: cargo-generate is missing; running `{}`",
        display(&install)
    );
    process::run(&mut install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_targets() {
        let installed = "aarch64-unknown-none\nx86_64-unknown-linux-gnu\n";
        assert_eq!(
            missing_targets(installed, &[KERNEL_TARGET, USER_TARGET]),
            vec![KERNEL_TARGET]
        );
        assert!(
            missing_targets(
                "aarch64-unknown-none-softfloat\naarch64-unknown-none",
                &[KERNEL_TARGET, USER_TARGET]
            )
            .is_empty()
        );
    }

    #[test]
    fn install_command_uses_sudo_unless_root() {
        assert_eq!(
            qemu_install_command(true),
            "apt-get update && apt-get install -y qemu-system-arm"
        );
        assert_eq!(
            qemu_install_command(false),
            "sudo apt-get update && sudo apt-get install -y qemu-system-arm"
        );
        assert_eq!(
            gdb_install_command(false),
            "sudo apt-get update && sudo apt-get install -y gdb-multiarch"
        );
    }
}
