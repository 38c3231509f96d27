//! # kaal-broker (skeleton)
//!
//! The root task's library for KaaL systems. It will hold the policy that turns the
//! boot-time capabilities the kernel hands the root task into a running system:
//!
//! * handing out devices (an MMIO frame plus its IRQ handler) to the driver that owns them,
//! * allocating memory from untyped capabilities,
//! * creating endpoints and `kaal-ipc` ring channels between components,
//! * spawning components described by a checked system description, and restarting a
//!   component when it faults.
//!
//! None of this exists yet: it needs the kernel object model (capabilities, untyped
//! memory, endpoints), which lands first. Until then this crate deliberately exports
//! nothing, so that no one builds on an API that does not work.
#![no_std]
#![forbid(unsafe_code)]
