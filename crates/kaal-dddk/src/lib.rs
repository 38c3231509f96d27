//! # kaal-dddk: the KaaL driver development kit
//!
//! Drivers are components of a broker-built system. A driver declares its resources on a
//! struct with `#[derive(Driver)]` (from `kaal-dddk-macros`, re-exported here) and
//! implements the lifecycle hooks of [`Driver`]; [`run`] probes it from the component's
//! grants and serves its requests and interrupts.
//!
//! * [`Mmio`]: a register block ([`register_block!`], over `tock-registers`) over a
//!   granted device region, checked against the region's size: holding one proves the
//!   region was granted.
//! * [`IrqLine`]: a granted interrupt line (wait, acknowledge; it cannot be re-routed).
//! * [`DmaBuffer`]: physically contiguous memory from the broker with its physical
//!   address, and cache maintenance for devices that do not snoop.
//!
//! The only `unsafe` of a driver stack lives in [`Mmio`]'s dereference and
//! [`DmaBuffer`]'s slices and cache operations; drivers are `#![forbid(unsafe_code)]`.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! #![forbid(unsafe_code)]
//! use kaal_dddk::{Driver, Mmio, Request, tock_registers::{registers::ReadOnly, interfaces::Readable}};
//!
//! kaal_dddk::register_block! {
//!     Registers { (0x000 => data: ReadOnly<u32>), (0x004 => @END), }
//! }
//!
//! #[derive(Driver)]
//! #[driver(name = "pl031")]
//! #[platform(compatible = "arm,pl031")]
//! struct Pl031 {
//!     #[mmio]
//!     registers: Mmio<Registers>,
//! }
//!
//! impl kaal_dddk::Driver for Pl031 {
//!     fn request(&mut self, _: &Request) -> Result<[u64; 4], kaal_abi::Error> {
//!         Ok([u64::from(self.registers.data.get()), 0, 0, 0])
//!     }
//! }
//!
//! kaal_user::component!(main);
//! fn main(_: u64) -> i32 {
//!     kaal_dddk::run::<Pl031>()
//! }
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

mod dma;
mod driver;
mod error;
mod irq;
mod mmio;
mod registers;
mod resources;
mod virtio;

pub use dma::DmaBuffer;
pub use driver::{CRASH, Driver, FAULT_INJECTION, Request, SHUTDOWN, run};
pub use error::DriverError;
pub use irq::IrqLine;
pub use kaal_dddk_macros::Driver;
pub use mmio::Mmio;
pub use registers::{RegisterBlock, RegisterCell};
pub use resources::{DriverMetadata, Probe, Resources};
pub use tock_registers;
pub use virtio::{
    KaalHal, VirtioBlk, VirtioMmioHeader, add_dma_memory, dma_free_bytes, mmio_transport,
    virtio_drivers,
};

/// Not public API: what [`register_block!`] expands to.
#[doc(hidden)]
pub mod __private {
    /// Seals [`RegisterBlock`](crate::RegisterBlock): implemented only by
    /// [`register_block!`](crate::register_block).
    pub trait Sealed {}

    /// Compiles only for a register cell.
    pub const fn assert_cell<T: crate::RegisterCell>() {}
}
