//! The examples of the `kaal-ipc` README, built as an outside crate would
//! build them: this crate depends on `kaal-ipc` (feature `std`) and on what
//! the README tells a user to add, nothing else.
//!
//! * Every Rust block of the README is a doctest of this crate
//!   (`cargo test -p kaal-ipc-examples --doc`).
//! * The `memfd_pair` binary is the README's two-process program, which a
//!   test runs; another test checks that the README shows it unchanged.
//!
//! Linux only (the examples use a memfd). Not published.

#![forbid(unsafe_code)]

/// The `kaal-ipc` README, whose Rust blocks are this crate's doctests.
#[cfg(doctest)]
#[doc = include_str!("../../kaal-ipc/README.md")]
pub struct KaalIpcReadme;
