//! # kaal-dddk (skeleton)
//!
//! The KaaL driver development kit runtime. It will provide what `#[derive(Driver)]`
//! (from `kaal-dddk-macros`) generates code against: owned MMIO regions and IRQ lines
//! that prove the broker granted them, register blocks declared with `tock-registers`,
//! DMA buffers, and the driver lifecycle (probe, serve requests, handle interrupts).
//!
//! It is empty on purpose until the kernel object model and the broker exist: the first
//! drivers (PL011, PL031, PL061, virtio-blk) will be written against real capabilities,
//! not against a mock.
#![no_std]
#![forbid(unsafe_code)]
