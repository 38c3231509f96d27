//! The architecture seam. Portable kernel code reaches the machine only through the
//! names defined here, which each architecture module defines alike: `mmu`, `gic`,
//! `exceptions`, `timer`, `psci`, `semihosting`, `pl011`, `context`, `esr`,
//! `page_table`, and the functions `wait_for_interrupt`, `interrupt_pending`,
//! `save_fp`, `restore_fp` and `trap_user_fp`.
//!
//! KaaL runs on AArch64; a host build (tests) gets [`host`], a simulated machine whose
//! RAM is host memory, so that the kernel's logic runs under `cargo test` and Miri.
//! Another architecture would add a module exporting the same names and be selected
//! here, once.

pub mod aarch64;
#[cfg(target_os = "none")]
pub use aarch64::*;

#[cfg(not(target_os = "none"))]
pub mod host;
#[cfg(not(target_os = "none"))]
pub use host::*;
