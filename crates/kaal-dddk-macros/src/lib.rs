//! # kaal-dddk-macros (skeleton)
//!
//! Procedural macros for the KaaL driver development kit: `#[derive(Driver)]` with
//! `#[platform(compatible = "...")]`, `#[pci(vendor = .., device = ..)]` and
//! `#[resources(...)]` attributes. The macro crate will be a thin shim over a code
//! generator that is tested on its own with golden tests.
//!
//! It exports nothing yet: the runtime (`kaal-dddk`) it generates code for depends on the
//! kernel object model, which comes first.
#![forbid(unsafe_code)]
