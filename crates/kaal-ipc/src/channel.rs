//! A blocking channel on top of the ring.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
#[cfg(feature = "std")]
use core::time::Duration;

use crate::endpoint::{Consumer, Producer};
use crate::error::{AlreadySplit, PopError, PushError, RecvError, SendError};
use crate::notify::{DefaultNotify, Notify};
use crate::ring::{RingHandle, SharedRing};
use crate::sync::const_unless_loom;

/// A bounded channel: a [`SharedRing`] whose endpoints block with the
/// [`Notify`] strategy `W` ([`DefaultNotify`]: a futex on Linux with `std`).
///
/// ```
/// # #[cfg(feature = "std")] {
/// use kaal_ipc::Channel;
/// use std::time::Duration;
///
/// let (tx, mut rx) = Channel::<u64, 16>::pair();
/// let sender = std::thread::spawn(move || {
///     let mut tx = tx;
///     for i in 0..100 {
///         tx.send(i).unwrap();
///     }
/// });
/// for i in 0..100 {
///     assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(i));
/// }
/// sender.join().unwrap();
/// assert!(rx.recv().is_err()); // the sender closed
/// # }
/// ```
#[repr(transparent)]
pub struct Channel<T, const N: usize, W: Notify = DefaultNotify> {
    ring: SharedRing<T, N>,
    _notify: PhantomData<fn() -> W>,
}

impl<T, const N: usize, W: Notify + Default + Clone> Channel<T, N, W> {
    const_unless_loom! {
        /// Creates an empty channel; usable in a `static`.
        pub fn new() -> Self {
            Self {
                ring: SharedRing::new(),
                _notify: PhantomData,
            }
        }
    }

    /// The underlying ring.
    pub fn ring(&self) -> &SharedRing<T, N> {
        &self.ring
    }

    /// Splits the channel, borrowing it mutably (no allocation).
    pub fn split(&mut self) -> ChannelEnds<T, N, &SharedRing<T, N>, W> {
        let (p, c) = self.ring.split_with(W::default());
        (Sender::new(p), Receiver::new(c))
    }

    /// Splits the channel through a shared reference (for a `static`); only
    /// the first call succeeds.
    pub fn try_split(&self) -> Result<ChannelEnds<T, N, &SharedRing<T, N>, W>, AlreadySplit> {
        let (p, c) = self.ring.try_split_with(W::default())?;
        Ok((Sender::new(p), Receiver::new(c)))
    }
}

#[cfg(feature = "alloc")]
impl<T, const N: usize, W: Notify + Default + Clone> Channel<T, N, W> {
    /// Creates a channel on the heap (never on the stack, whatever its size)
    /// and returns its two ends, each owning an `Arc` to it.
    ///
    /// ```
    /// # #[cfg(feature = "std")] {
    /// use kaal_ipc::{Channel, HeapReceiver, HeapSender};
    /// let (mut tx, mut rx): (HeapSender<u64, 1024>, HeapReceiver<u64, 1024>) =
    ///     Channel::pair();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.recv(), Ok(1));
    /// # }
    /// ```
    pub fn pair() -> ChannelEnds<T, N, alloc::sync::Arc<SharedRing<T, N>>, W> {
        let (p, c) = SharedRing::pair_with(W::default());
        (Sender::new(p), Receiver::new(c))
    }
}

impl<T, const N: usize, W: Notify + Default + Clone> Default for Channel<T, N, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize, W: Notify> core::fmt::Debug for Channel<T, N, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Channel").field(&self.ring).finish()
    }
}

/// The sending end of a [`Channel::pair`]: the channel on the heap.
#[cfg(feature = "alloc")]
pub type HeapSender<T, const N: usize, W = DefaultNotify> =
    Sender<T, N, alloc::sync::Arc<SharedRing<T, N>>, W>;
/// The receiving end of a [`Channel::pair`].
#[cfg(feature = "alloc")]
pub type HeapReceiver<T, const N: usize, W = DefaultNotify> =
    Receiver<T, N, alloc::sync::Arc<SharedRing<T, N>>, W>;
/// The sending end of a channel in shared memory (an [`Attached`](crate::Attached) ring
/// made a [`Sender`] with [`Producer::into_sender`]).
pub type ShmSender<'a, T, const N: usize, W = DefaultNotify> =
    Sender<T, N, crate::Attached<'a, T, N>, W>;
/// The receiving end of a channel in shared memory.
pub type ShmReceiver<'a, T, const N: usize, W = DefaultNotify> =
    Receiver<T, N, crate::Attached<'a, T, N>, W>;

/// A sender and a receiver of the same channel.
pub type ChannelEnds<T, const N: usize, R, W = DefaultNotify> =
    (Sender<T, N, R, W>, Receiver<T, N, R, W>);

/// The sending end of a [`Channel`]: a [`Producer`] with channel-style
/// names. Dereferences to the producer for the batch and chunk APIs.
#[derive(Debug)]
pub struct Sender<T, const N: usize, R: RingHandle<T, N>, W: Notify = DefaultNotify>(
    Producer<T, N, R, W>,
);

/// The receiving end of a [`Channel`]: a [`Consumer`] with channel-style
/// names. Dereferences to the consumer for the batch and chunk APIs.
#[derive(Debug)]
pub struct Receiver<T, const N: usize, R: RingHandle<T, N>, W: Notify = DefaultNotify>(
    Consumer<T, N, R, W>,
);

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Sender<T, N, R, W> {
    /// Wraps a producer.
    pub fn new(producer: Producer<T, N, R, W>) -> Self {
        Self(producer)
    }

    /// Unwraps the producer.
    pub fn into_inner(self) -> Producer<T, N, R, W> {
        self.0
    }

    /// Sends without blocking; see [`Producer::try_push`].
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<(), PushError<T>> {
        self.0.try_push(value)
    }

    /// Sends, blocking while the channel is full; see [`Producer::push`].
    #[inline]
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.0.push(value)
    }

    /// Sends, blocking at most `timeout` while the channel is full.
    #[cfg(feature = "std")]
    #[inline]
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.0.push_timeout(value, timeout)
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Receiver<T, N, R, W> {
    /// Wraps a consumer.
    pub fn new(consumer: Consumer<T, N, R, W>) -> Self {
        Self(consumer)
    }

    /// Unwraps the consumer.
    pub fn into_inner(self) -> Consumer<T, N, R, W> {
        self.0
    }

    /// Receives without blocking; see [`Consumer::try_pop`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, PopError> {
        self.0.try_pop()
    }

    /// Receives, blocking while the channel is empty; see [`Consumer::pop`].
    #[inline]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.0.pop()
    }

    /// Receives, blocking at most `timeout` while the channel is empty.
    #[cfg(feature = "std")]
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.0.pop_timeout(timeout)
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Deref for Sender<T, N, R, W> {
    type Target = Producer<T, N, R, W>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> DerefMut for Sender<T, N, R, W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Deref for Receiver<T, N, R, W> {
    type Target = Consumer<T, N, R, W>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> DerefMut for Receiver<T, N, R, W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
