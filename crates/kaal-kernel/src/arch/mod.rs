//! The architecture seam. KaaL supports AArch64; another architecture would add a module
//! exporting the same names and be selected here, once.

pub mod aarch64;
pub use aarch64::*;
