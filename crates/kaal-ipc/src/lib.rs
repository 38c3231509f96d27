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
//! # Starting points
//!
//! | you want | write | endpoint types |
//! | --- | --- | --- |
//! | two threads, on the heap | `SharedRing::<T, N>::pair()` | [`HeapProducer`], [`HeapConsumer`] |
//! | a blocking channel | `Channel::<T, N>::pair()` | [`HeapSender`], [`HeapReceiver`] |
//! | no allocation | `ring.split()` or `RING.try_split()` | [`RefProducer`], [`RefConsumer`] |
//! | two processes | `shm::SharedMemory` + `init_ring`/`attach_ring` | [`ShmProducer`], [`ShmConsumer`] |
//! | two processes, endpoints owning the mapping | `into_init_ring`/`into_attached_ring` | `shm::OwnedProducer`, `shm::OwnedConsumer` |
//!
//! Heap rings are built in place ([`SharedRing::new_boxed`],
//! [`SharedRing::new_arc`]): a ring of any size never passes through the
//! stack.
//!
//! # Single items, batches, spinning
//!
//! * [`Producer::try_push`] hands the item back in the error, and tells a
//!   full ring ([`PushError::Full`]) from one whose consumer has gone
//!   ([`PushError::Closed`]). To spin until there is room, spin on `Full`
//!   only, so a closed ring ends the loop:
//!   `while let Err(PushError::Full(v)) = tx.try_push(x) { x = v }`; or call
//!   the blocking [`Producer::push`], which spins with [`Spin`] and returns
//!   on `Closed`.
//! * The batch API is [`Producer::push_slice`] and [`Consumer::pop_slice`]:
//!   one index load and one store per batch, items copied inline. Chunks
//!   ([`Producer::write_chunk`], [`Consumer::read_chunk`]) cost the same and
//!   are for building or reading items in place.
//!
//! # Dead, restarted and hostile peers
//!
//! * A peer that drops its endpoint closes its end: the other side drains
//!   what was sent, then gets `Closed`.
//! * A peer *process* that dies without closing (killed, crashed) is
//!   noticed by the other side's blocking calls within about 150 ms:
//!   [`RecvError::PeerGone`], [`SendError::PeerGone`], [`PeerState::Gone`]
//!   (Linux with `std`, both processes in one PID namespace: each endpoint
//!   records its process id and start time in the header, and the other side
//!   watches that process through a pidfd; a reused id is told apart by the
//!   start time). The identity words are the peer's to write, so this serves
//!   honest peers that crash: a hostile one can hide or fake its death. An
//!   endpoint carried into a forked child records the child at its first
//!   blocked wait or `peer_state` call. On KaaL, where components have no
//!   process ids, the broker closes a dead component's ends or restarts it.
//! * A peer that attaches again is a new generation:
//!   [`PeerState::Restarted`], whether or not the endpoint looked before.
//! * The header carries a fingerprint of the item type ([`type_fingerprint`]:
//!   its name, size and alignment), so two differently named types of equal
//!   layout do not attach to each other's ring; it does not see a type whose
//!   fields changed under the same name.
//! * Whatever a peer writes gives errors, never undefined behaviour; after a
//!   peer scribbled and stopped, [`Consumer::repair`] or [`Producer::repair`]
//!   make the ring usable again without losing what this side holds.
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
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
mod liveness;
mod notify;
mod ring;
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
pub mod shm;
mod sync;

pub use channel::{Channel, ChannelEnds, Receiver, Sender, ShmReceiver, ShmSender};
#[cfg(feature = "alloc")]
pub use channel::{HeapReceiver, HeapSender};
pub use endpoint::{
    Consumer, DEFAULT_SPIN_LIMIT, PeerState, Producer, ReadChunk, Repair, WriteChunk,
};
pub use error::{
    AlreadySplit, AttachError, CorruptIndices, PopError, PushError, RecvError, RingError, SendError,
};
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
pub use notify::Futex;
#[cfg(all(feature = "std", not(loom)))]
pub use notify::Park;
pub use notify::{DefaultNotify, Notify, Spin};
pub use ring::{
    Attached, Endpoints, RingHandle, SharedRing, TrustedHandle, layout, type_fingerprint,
};
pub use zerocopy;

/// The producer of a ring made by [`SharedRing::pair`] (on the heap, shared
/// through an `Arc`); `W` is how its blocking calls wait.
#[cfg(feature = "alloc")]
pub type HeapProducer<T, const N: usize, W = Spin> =
    Producer<T, N, alloc::sync::Arc<SharedRing<T, N>>, W>;
/// The consumer of a ring made by [`SharedRing::pair`].
#[cfg(feature = "alloc")]
pub type HeapConsumer<T, const N: usize, W = Spin> =
    Consumer<T, N, alloc::sync::Arc<SharedRing<T, N>>, W>;
/// The producer of a ring borrowed with [`SharedRing::split`] or split from
/// a `static` with [`SharedRing::try_split`].
pub type RefProducer<'a, T, const N: usize, W = Spin> = Producer<T, N, &'a SharedRing<T, N>, W>;
/// The consumer of a borrowed or `static` ring.
pub type RefConsumer<'a, T, const N: usize, W = Spin> = Consumer<T, N, &'a SharedRing<T, N>, W>;
/// The producer of a ring in shared memory ([`Attached::into_producer`]).
pub type ShmProducer<'a, T, const N: usize, W = DefaultNotify> =
    Producer<T, N, Attached<'a, T, N>, W>;
/// The consumer of a ring in shared memory ([`Attached::into_consumer`]).
pub type ShmConsumer<'a, T, const N: usize, W = DefaultNotify> =
    Consumer<T, N, Attached<'a, T, N>, W>;

/// Re-exported so [`Notify`] can be implemented outside this crate (the
/// type is loom's under `cfg(loom)`).
pub use sync::AtomicU32;
