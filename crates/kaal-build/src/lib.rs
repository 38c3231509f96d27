//! # kaal-build: build and boot KaaL images from the host
//!
//! A KaaL image is two files: a kernel ELF and, embedded in it, a component archive
//! holding the user programs (the root task first among them). This crate holds the
//! host-side steps that make and boot such an image, so that a project's `xtask` is a
//! few lines:
//!
//! 1. [`tools`]: make sure the Rust targets and QEMU are installed (installing what it can).
//! 2. [`Workspace::build_user`]: build the components with cargo for [`USER_TARGET`].
//! 3. [`archive::pack`]: pack them into a component archive.
//! 4. [`Workspace::build_kernel`]: build the kernel for [`KERNEL_TARGET`] with
//!    `KAAL_COMPONENTS` pointing at the archive.
//! 5. [`qemu::QemuConfig`]: boot it, interactively ([`qemu::run_interactive`]) or as a
//!    test with a timeout and a captured serial log ([`runner::run_captured`]), whose
//!    output [`serial`] parses.
//!
//! [`image::build_image`] does steps 2 to 4 in one call. [`debug::debug`] boots an image
//! paused under QEMU's GDB stub with `gdb-multiarch` attached, the symbols of the kernel
//! and of every component loaded.
//!
//! [`system`] checks a system's `system.toml` (its components, devices, channels and
//! endpoints) and compiles it into the binary description the root task reads;
//! [`image::ImageSpec::system`] has [`image::build_image`] do that too, before it builds
//! anything, and embed the result in the archive for the broker.
//!
//! [`system::write_accessors`], called from a component's build script, generates typed
//! accessors for the component's grants, so that a misspelt grant name is a compile error.
//!
//! [`driver::read_metadata`] reads what `#[derive(Driver)]` recorded in a driver's binary
//! (its name, the devices it drives, the resources it needs) without running it.
//!
//! ```no_run
//! use kaal_build::{image::{build_image, ImageSpec}, qemu::{self, QemuConfig}, Workspace};
//!
//! # fn main() -> Result<(), kaal_build::Error> {
//! kaal_build::tools::ensure_all()?;
//! let ws = Workspace::new(".");
//! let image = build_image(&ws, &ImageSpec::new("demo", "kernel").component("root-task", "root-task"))?;
//! let status = qemu::run_interactive(&QemuConfig::default().memory_mib(256), &image.kernel)?;
//! std::process::exit(status.code().unwrap_or(1));
//! # }
//! ```
#![forbid(unsafe_code)]

mod accessors;
pub mod archive;
pub mod debug;
pub mod disk;
pub mod driver;
mod error;
pub mod image;
pub mod process;
pub mod qemu;
pub mod runner;
pub mod serial;
pub mod system;
pub mod tools;
mod workspace;

pub use error::{Error, Result};
pub use workspace::{Bin, Workspace};

/// Target triple the kernel is built for (the kernel never touches FP/SIMD registers).
pub const KERNEL_TARGET: &str = "aarch64-unknown-none-softfloat";

/// Target triple user components (root task, drivers, test suites) are built for.
pub const USER_TARGET: &str = "aarch64-unknown-none";

/// Environment variable that carries the absolute path of the component archive into the
/// kernel build (`include_bytes!(env!("KAAL_COMPONENTS"))`).
pub const COMPONENTS_ENV: &str = "KAAL_COMPONENTS";

/// Name of the archive entry the kernel starts as its first task.
pub const ROOT_TASK: &str = "root-task";
