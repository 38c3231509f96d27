//! # kaal-broker: a KaaL system as isolated components
//!
//! The root task's library. It takes over the capabilities the kernel hands the root
//! task (untyped memory, device memory, IRQ control) and turns them into a running
//! system of components described in the image's system description:
//!
//! * each component is its own process (address space, CSpace, thread, stack, heap)
//!   built from the component archive, holding exactly the capabilities the description
//!   grants, which it finds by name through its start-up record;
//! * ring channels (`kaal-ipc` rings in frames mapped into both ends, one notification
//!   per direction), endpoints, devices (MMIO frames plus IRQ) and bare IRQ lines;
//! * supervision: the broker is every component's fault endpoint and restarts a
//!   faulted component per its restart policy with the same grants; a ring channel's
//!   memory belongs to the broker, so what was committed survives the restart;
//! * run-time services over the same endpoint: more memory within the component's
//!   quota, the list of components, exit reports.
//!
//! Underneath sit allocators whose logic is host-tested: a best-fit buddy allocator over
//! untyped memory ([`untyped`]), per-component accounting with quotas ([`accounts`]),
//! CSpace slots ([`slots`]), virtual ranges ([`vspace`]), the device and IRQ registry
//! ([`devices`]) and restart budgets ([`restart`]).
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! #![forbid(unsafe_code)]
//! use kaal_broker::Broker;
//! use kaal_user::BootInfo;
//!
//! kaal_user::entry!(main);
//!
//! fn main(boot: &BootInfo<'_>) -> i32 {
//!     let mut broker = Broker::new(boot).expect("system description");
//!     broker.start_system().expect("components");
//!     broker.serve()
//! }
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod accounts;
pub mod devices;
pub mod restart;
/// CSpace slots: the runtime's allocator, which the broker uses for the root CSpace and
/// for each component's.
pub use kaal_user::slots;
pub mod untyped;
pub mod vspace;

mod broker;
mod component;
mod error;
mod kernel;
mod service;

pub use broker::{
    BROKER, Broker, Channel, DeviceGrant, DeviceId, FAULT_BADGE, IrqGrant, Memory, NamedEndpoint,
    SERVICE_BADGE,
};
pub use component::{Component, GRANT_MAPPINGS, HEAP_VADDR};
pub use error::BrokerError;
pub use kernel::{DeviceFrames, KernelUntyped};
pub use service::Event;
