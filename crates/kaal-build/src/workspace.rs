//! Building the user components and the kernel of one cargo workspace.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{COMPONENTS_ENV, Error, KERNEL_TARGET, Result, USER_TARGET, process};

/// One binary target of one package, e.g. `Bin::new("root-task", "root-task")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bin {
    /// Cargo package name (`-p`).
    pub package: String,
    /// Binary name (`--bin`); also the file name of the built ELF.
    pub bin: String,
}

impl Bin {
    /// The binary `bin` of package `package`.
    pub fn new(package: impl Into<String>, bin: impl Into<String>) -> Self {
        Bin {
            package: package.into(),
            bin: bin.into(),
        }
    }

    /// A package whose binary has the package's name.
    pub fn package(name: impl Into<String>) -> Self {
        let name = name.into();
        Bin {
            bin: name.clone(),
            package: name,
        }
    }
}

/// A cargo workspace holding a kernel binary and user components.
///
/// Builds always pass an explicit `--target-dir`, so the paths of the built ELF files are
/// known without asking cargo. `RUSTFLAGS` and `CARGO_ENCODED_RUSTFLAGS` are removed from
/// the environment of these builds: they would replace the per-target `rustflags` of the
/// workspace's `.cargo/config.toml` that select the linker scripts.
#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
    target_dir: PathBuf,
    profile: String,
    quiet: bool,
}

impl Workspace {
    /// The workspace at `root`, built with the `release` profile into the directory of
    /// the environment variable `CARGO_TARGET_DIR` when it is set (as cargo does), else
    /// into `root/target`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .map_or_else(|| root.join("target"), |dir| root.join(dir));
        Workspace {
            target_dir: std::path::absolute(&target_dir).unwrap_or(target_dir),
            root,
            profile: "release".into(),
            quiet: false,
        }
    }

    /// Builds into `dir` instead of `root/target`.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.target_dir = std::path::absolute(&dir).unwrap_or(dir);
        self
    }

    /// Uses cargo profile `profile` (default `release`).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = profile.into();
        self
    }

    /// Passes `--quiet` to cargo.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cargo target directory builds go to.
    pub fn target_directory(&self) -> &Path {
        &self.target_dir
    }

    /// Directory where [`crate::image::build_image`] puts the files of image `name`.
    pub fn image_dir(&self, name: &str) -> PathBuf {
        self.target_dir.join("kaal").join(name)
    }

    /// Where cargo leaves binary `bin` built for `target`.
    pub fn artifact(&self, target: &str, bin: &str) -> PathBuf {
        let dir = if self.profile == "dev" {
            "debug"
        } else {
            &self.profile
        };
        self.target_dir.join(target).join(dir).join(bin)
    }

    /// A `cargo build` command for `target` in this workspace (no packages selected yet).
    pub fn cargo_build(&self, target: &str) -> Command {
        let mut cmd = process::cargo();
        cmd.current_dir(&self.root)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .arg("build")
            .args(["--target", target, "--profile", &self.profile])
            .arg("--target-dir")
            .arg(&self.target_dir);
        if self.quiet {
            cmd.arg("--quiet");
        }
        cmd
    }

    /// Builds `bins` for [`USER_TARGET`] in one cargo invocation and returns their ELF paths,
    /// in the same order.
    pub fn build_user(&self, bins: &[Bin]) -> Result<Vec<PathBuf>> {
        if bins.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.cargo_build(USER_TARGET);
        for b in bins {
            cmd.args(["-p", &b.package]);
        }
        for b in bins {
            cmd.args(["--bin", &b.bin]);
        }
        process::run(&mut cmd)?;
        bins.iter()
            .map(|b| self.existing(self.artifact(USER_TARGET, &b.bin)))
            .collect()
    }

    /// Builds kernel binary `kernel` for [`KERNEL_TARGET`] with `KAAL_COMPONENTS` set to the
    /// absolute path of `archive`, and returns the ELF path.
    ///
    /// The returned file is overwritten by the next kernel build of this workspace; copy it
    /// (as [`crate::image::build_image`] does) to keep several images.
    pub fn build_kernel(&self, kernel: &Bin, archive: &Path) -> Result<PathBuf> {
        let archive = std::path::absolute(archive).map_err(|e| Error::io(archive, e))?;
        let mut cmd = self.cargo_build(KERNEL_TARGET);
        cmd.env(COMPONENTS_ENV, &archive)
            .args(["-p", &kernel.package, "--bin", &kernel.bin]);
        process::run(&mut cmd)?;
        self.existing(self.artifact(KERNEL_TARGET, &kernel.bin))
    }

    fn existing(&self, path: PathBuf) -> Result<PathBuf> {
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_follow_profile() {
        let ws = Workspace::new("/ws");
        assert_eq!(
            ws.artifact(USER_TARGET, "root-task"),
            Path::new("/ws/target/aarch64-unknown-none/release/root-task")
        );
        let ws = ws.profile("dev").target_dir("/t");
        assert_eq!(
            ws.artifact(KERNEL_TARGET, "kernel"),
            Path::new("/t/aarch64-unknown-none-softfloat/debug/kernel")
        );
        assert_eq!(ws.image_dir("demo"), Path::new("/t/kaal/demo"));
    }

    #[test]
    fn user_build_command_selects_every_bin() {
        let ws = Workspace::new("/ws").quiet(true);
        let cmd = ws.cargo_build(USER_TARGET);
        let shown = process::display(&cmd);
        assert!(shown.ends_with(
            "build --target aarch64-unknown-none --profile release --target-dir /ws/target --quiet"
        ), "{shown}");
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/ws")));
    }
}
