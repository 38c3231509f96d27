//! Error types. Each names what was wrong and carries the offending values.

use thiserror::Error;

/// Indices read from shared memory that no well-behaved peer could have
/// written: the number of occupied slots, `tail - head` in wrapping
/// arithmetic, exceeded the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "corrupt ring indices: head {head}, tail {tail} give {} occupied slots, more than the capacity {capacity}",
    tail.wrapping_sub(*head)
)]
pub struct CorruptIndices {
    /// The consumer's index (the next slot to read).
    pub head: u32,
    /// The producer's index (the next slot to write).
    pub tail: u32,
    /// The ring's capacity.
    pub capacity: u32,
}

/// Why [`try_push`](crate::Producer::try_push) did not take the item. The
/// item is handed back in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PushError<T> {
    /// Every slot is occupied.
    #[error("ring is full")]
    Full(T),
    /// The ring is full and the consumer has closed its end.
    #[error("ring is full and the consumer has closed")]
    Closed(T),
    /// The consumer's index in shared memory is invalid.
    #[error("{1}")]
    Corrupt(T, CorruptIndices),
}

impl<T> PushError<T> {
    /// Returns the item that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Closed(v) | Self::Corrupt(v, _) => v,
        }
    }
}

/// Why [`try_pop`](crate::Consumer::try_pop) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PopError {
    /// No item is available.
    #[error("ring is empty")]
    Empty,
    /// The ring is empty and the producer has closed its end: no item will
    /// ever arrive (unless a new producer attaches).
    #[error("ring is empty and the producer has closed")]
    Closed,
    /// The producer's index in shared memory is invalid.
    #[error(transparent)]
    Corrupt(#[from] CorruptIndices),
}

/// Why a batch operation (`push_slice`, `pop_slice`, chunks) failed. Running
/// out of room or items is not an error for these: they report zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RingError {
    /// No room (or no item) and the peer has closed its end.
    #[error("the peer has closed its end")]
    Closed,
    /// The peer's index in shared memory is invalid.
    #[error(transparent)]
    Corrupt(#[from] CorruptIndices),
}

/// Why a blocking [`send`](crate::Sender::send) did not deliver the item. The
/// item is handed back in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError<T> {
    /// The ring stayed full until the timeout expired.
    #[error("timed out waiting for room in the ring")]
    Timeout(T),
    /// The receiver has closed and the ring is full.
    #[error("the receiver has closed")]
    Closed(T),
    /// The receiver's process exited without closing its end (killed or
    /// crashed) and the ring is full. Noticed within about 150 ms of its death
    /// by a blocked call on a process-shared ring (`std`, Linux, same PID
    /// namespace), from the identity the receiver recorded in the header (a
    /// hostile receiver can fake or hide it). A restarted receiver that
    /// attaches again makes `send` work again.
    #[error("the receiver's process has exited")]
    PeerGone(T),
    /// The receiver's index in shared memory is invalid.
    #[error("{1}")]
    Corrupt(T, CorruptIndices),
}

impl<T> SendError<T> {
    /// Returns the item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(v) | Self::Closed(v) | Self::PeerGone(v) | Self::Corrupt(v, _) => v,
        }
    }
}

/// Why a blocking [`recv`](crate::Receiver::recv) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecvError {
    /// The ring stayed empty until the timeout expired.
    #[error("timed out waiting for an item")]
    Timeout,
    /// The sender has closed and every item it sent has been received.
    #[error("the sender has closed")]
    Closed,
    /// The sender's process exited without closing its end (killed or
    /// crashed), and every item it published has been received. Noticed
    /// within about 150 ms of its death by a blocked call on a process-shared
    /// ring (`std`, Linux, both processes in one PID namespace), from the
    /// identity the sender recorded in the header (a hostile sender can fake
    /// or hide it); without
    /// `std`, and on KaaL, a supervisor closes the dead end or restarts it
    /// instead. A restarted sender that attaches again makes `recv` work
    /// again (see [`PeerState::Restarted`](crate::PeerState::Restarted)).
    #[error("the sender's process has exited")]
    PeerGone,
    /// The sender's index in shared memory is invalid.
    #[error(transparent)]
    Corrupt(#[from] CorruptIndices),
}

/// The ring was already split into endpoints through a shared reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the ring was already split into a producer and a consumer")]
pub struct AlreadySplit;

/// A shared-memory region could not be used as a ring of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AttachError {
    /// The region is shorter than the ring.
    #[error("region of {len} bytes is smaller than the {required} bytes the ring needs")]
    TooSmall {
        /// Length of the region.
        len: usize,
        /// Size of the ring.
        required: usize,
    },
    /// The region's start is not aligned for the ring.
    #[error("region at {addr:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// Address of the region.
        addr: usize,
        /// Required alignment.
        align: usize,
    },
    /// The header does not start with the ring magic.
    #[error("bad magic {found:#010x}, expected {expected:#010x}")]
    BadMagic {
        /// Value in the header.
        found: u32,
        /// The ring magic.
        expected: u32,
    },
    /// The header was written by an incompatible version of the ring.
    #[error("ABI version {found} in the header, this build speaks {expected}")]
    AbiVersion {
        /// Value in the header.
        found: u32,
        /// This build's ABI version.
        expected: u32,
    },
    /// The header's capacity differs from `N`.
    #[error("capacity {found} in the header, expected {expected}")]
    Capacity {
        /// Value in the header.
        found: u32,
        /// `N`.
        expected: u32,
    },
    /// The header's element size differs from `size_of::<T>()`.
    #[error("element size {found} in the header, expected {expected}")]
    ElementSize {
        /// Value in the header.
        found: u32,
        /// `size_of::<T>()`.
        expected: u32,
    },
    /// The header's element alignment differs from `align_of::<T>()`.
    #[error("element alignment {found} in the header, expected {expected}")]
    ElementAlign {
        /// Value in the header.
        found: u32,
        /// `align_of::<T>()`.
        expected: u32,
    },
    /// The header's slot offset differs from this build's layout.
    #[error("slot array offset {found} in the header, expected {expected}")]
    SlotOffset {
        /// Value in the header.
        found: u32,
        /// This build's offset.
        expected: u32,
    },
    /// The header's item-type fingerprint differs from this side's: the two
    /// sides use different item types (of equal size and alignment).
    #[error(
        "item type fingerprint {found:#018x} in the header, expected {expected:#018x} for `{item}` \
         (the fingerprint hashes the type's name: share the type through a common crate, or \
         choose a fingerprint with init_in_tagged/attach_tagged)"
    )]
    TypeMismatch {
        /// Value in the header.
        found: u64,
        /// This side's fingerprint.
        expected: u64,
        /// This side's item type.
        item: &'static str,
    },
    /// The indices in the header are invalid.
    #[error(transparent)]
    Corrupt(#[from] CorruptIndices),
}
