//! A lock-free single-producer single-consumer ring that works between
//! threads and between processes, with `no_std` and no allocation at its
//! core.
//!
//! * [`SharedRing`] is the ring: `const fn new`, usable in a `static`, a
//!   `Box`/`Arc`, or a shared-memory region ([`SharedRing::init_in`],
//!   [`SharedRing::attach`]) whose header is validated.
//! * [`Producer`] and [`Consumer`] are its endpoints: single items, slices,
//!   and zero-copy chunks ([`WriteChunk`], [`ReadChunk`]); blocking variants
//!   wait with a [`Notify`] strategy.
//! * [`Channel`], [`Sender`] and [`Receiver`] give the same with channel
//!   names and a futex by default.
//!
//! Indices read from shared memory are validated, so a corrupt or hostile
//! peer produces an error, never undefined behaviour; rings placed in shared
//! memory require items valid for every bit pattern
//! ([`zerocopy::FromBytes`] + [`zerocopy::IntoBytes`] +
//! [`zerocopy::Immutable`]).
//!
//! ```
//! use kaal_ipc::SharedRing;
//!
//! let mut ring = SharedRing::<u32, 1024>::new();
//! let (mut tx, mut rx) = ring.split();
//! std::thread::scope(|s| {
//!     s.spawn(move || for i in 0..10_000 { tx.push(i).unwrap() });
//!     for i in 0..10_000 { assert_eq!(rx.pop(), Ok(i)); }
//! });
//! ```
//!
//! # Features
//!
//! * `alloc`: `Arc` endpoints ([`SharedRing::split_arc`], `Channel::pair`).
//! * `std` (implies `alloc`): the [`Futex`] and [`Park`] notifiers, timeouts,
//!   and the [`shm`] helpers for `memfd` shared memory on Linux.

#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod channel;
mod endpoint;
mod error;
mod notify;
mod ring;
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
pub mod shm;
mod sync;

pub use channel::{Channel, ChannelEnds, Receiver, Sender};
pub use endpoint::{Consumer, DEFAULT_SPIN_LIMIT, PeerState, Producer, ReadChunk, WriteChunk};
pub use error::{
    AlreadySplit, AttachError, CorruptIndices, PopError, PushError, RecvError, RingError, SendError,
};
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
pub use notify::Futex;
#[cfg(all(feature = "std", not(loom)))]
pub use notify::Park;
pub use notify::{DefaultNotify, Notify, Spin};
pub use ring::{Attached, Endpoints, RingHandle, SharedRing, TrustedHandle, layout};
pub use zerocopy;

/// Re-exported so [`Notify`] can be implemented outside this crate (the
/// type is loom's under `cfg(loom)`).
pub use sync::AtomicU32;
