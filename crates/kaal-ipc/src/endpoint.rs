//! The producer and consumer endpoints.

use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::time::Duration;

use crate::error::{CorruptIndices, PopError, PushError, RecvError, RingError, SendError};
use crate::notify::{Notify, Spin};
use crate::ring::{CONSUMER_CLOSED, PRODUCER_CLOSED, RingHandle, SharedRing, Token};
use crate::sync::{AtomicU32, Ordering, fence};
use core::sync::atomic::compiler_fence;

/// Pauses (`spin_loop` hints) a consumer makes before reloading the
/// producer's index while a stream is flowing; see
/// `Consumer::before_refresh`.
const STREAM_BACKOFF: u32 = 4;

/// Hints the CPU to bring the line holding `p` into the cache. Not a memory
/// access: `p` may point anywhere.
#[inline(always)]
#[cfg(not(any(loom, miri)))]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch hint never faults and accesses no memory in the
    // abstract machine; SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` is a hint: it never faults, writes no register or
    // memory, and leaves the flags alone.
    unsafe {
        core::arch::asm!(
            "prfm pldl1keep, [{0}]",
            in(reg) p,
            options(nostack, readonly, preserves_flags)
        )
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// Pauses between two polls of the peer's index while a blocking call spins:
/// one more after each poll, up to 32. Every poll of an index the peer is
/// writing takes its cache line away from the peer, whose next store must
/// fetch it back; polling a little less often the longer the wait lasts
/// leaves the peer to run, at a cost of at most 32 pauses of latency.
#[inline(always)]
fn backoff_pauses(spins: u32) -> u32 {
    (spins + 1).min(32)
}

/// How far ahead of its read position a blocking consumer prefetches, in
/// bytes, when that many are already published. A consumer behind a faster
/// producer (a full ring) reads lines the producer wrote long ago, each from
/// the other core's cache; prefetching overlaps those fetches.
const PREFETCH_AHEAD_BYTES: usize = 512;

/// Spins before sleeping, when the notifier sleeps ([`Notify::NEEDS_WAKE`]).
pub const DEFAULT_SPIN_LIMIT: u32 = 1024;

/// Longest single sleep; a blocked endpoint re-checks the ring (and the
/// peer's closed flag) at least this often, so a wake lost to a crashed or
/// hostile peer costs latency, not a hang.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What an endpoint knows about its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// No peer endpoint was ever created for this ring.
    NeverAttached,
    /// The peer is attached (as far as the shared header says).
    Connected,
    /// The peer closed its end (dropped its endpoint).
    Closed,
    /// The peer's process has exited without closing its end (killed or
    /// crashed). Reported for process-shared rings with `std` on Linux when
    /// both processes are in the same PID namespace; see
    /// [`RecvError::PeerGone`].
    Gone,
    /// Another peer attached since the one this endpoint accepted: the peer
    /// process restarted. Detected from the generation counters in the header,
    /// whether or not this endpoint looked before the restart (an endpoint
    /// that attached before any peer accepts generation 1, the first).
    /// Call `acknowledge_peer` to accept the new one.
    Restarted {
        /// The generation this endpoint accepted.
        seen: u32,
        /// The generation now in the header.
        current: u32,
    },
}

fn peer_state(
    seen: &mut u32,
    current: u32,
    closed: bool,
    gone: impl FnOnce() -> bool,
) -> PeerState {
    if current == 0 {
        return PeerState::NeverAttached;
    }
    if *seen == 0 {
        // No peer had attached when this endpoint did: the first one to come
        // has generation 1, and any later generation is a restart.
        *seen = 1;
    }
    if *seen != current {
        PeerState::Restarted {
            seen: *seen,
            current,
        }
    } else if closed {
        PeerState::Closed
    } else if gone() {
        PeerState::Gone
    } else {
        PeerState::Connected
    }
}

/// What [`Producer::repair`] or [`Consumer::repair`] changed.
///
/// Words a repair does not judge: the generations (the peer's is accepted as
/// current), the identity words (this side's are rewritten), the state word
/// (this side's closed flag is cleared, the peer's left as found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repair {
    /// At least one header word (magic, ABI version, capacity, element size
    /// or alignment, slot offset, and the type fingerprint unless the ring
    /// was attached with `attach_vouched`) had been overwritten and was
    /// restored.
    pub header_restored: bool,
    /// This side's own index in the header had been overwritten and was
    /// restored from the endpoint's private copy.
    pub own_index_restored: bool,
    /// The peer's index was invalid and was reset so the ring is consistent:
    /// the consumer sets the producer's index to its own (no item in flight),
    /// the producer sets the consumer's index to its own (the ring is empty).
    pub peer_index_reset: bool,
}

impl Repair {
    /// Whether anything was wrong.
    pub fn repaired_anything(&self) -> bool {
        self.header_restored || self.own_index_restored || self.peer_index_reset
    }
}

/// What both `repair`s do, for the producer's end (`producer`) or the
/// consumer's, whose private index is `own`: rewrite the header, restore the
/// own index, reset an invalid peer index to `own`, claim the end again and
/// clear its closed flag. Returns the report and the peer index now in the
/// header.
fn repair_end<T, const N: usize, R: RingHandle<T, N>>(
    ring: &R,
    producer: bool,
    own: u32,
) -> (Repair, u32) {
    let r = ring.ring(Token::new());
    let header_restored = r.restore_header(ring.fingerprint(Token::new()));
    let (own_word, peer_word, closed) = if producer {
        (&r.tail.0, &r.head.0, PRODUCER_CLOSED)
    } else {
        (&r.head.0, &r.tail.0, CONSUMER_CLOSED)
    };
    let own_index_restored = own_word.swap(own, Ordering::AcqRel) != own;
    let mut peer = peer_word.load(Ordering::Acquire);
    let (head, tail) = if producer { (peer, own) } else { (own, peer) };
    let peer_index_reset = SharedRing::<T, N>::check_indices(head, tail).is_err();
    if peer_index_reset {
        peer_word.store(own, Ordering::Release);
        peer = own;
    }
    if R::PROCESS_SHARED {
        claim_end(r, producer);
    }
    r.state().fetch_and(!closed, Ordering::AcqRel);
    let repair = Repair {
        header_restored,
        own_index_restored,
        peer_index_reset,
    };
    (repair, peer)
}

#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
use crate::liveness::{Identity, PeerWatch, own_identity};

/// A process as the header records it (nothing to record without `std` on
/// Linux).
#[cfg(not(all(feature = "std", target_os = "linux", not(loom))))]
#[derive(Debug, Clone, Copy, Default)]
struct Identity {
    pid: u32,
    ns: u32,
    start: u32,
}

#[cfg(not(all(feature = "std", target_os = "linux", not(loom))))]
fn own_identity() -> Identity {
    Identity::default()
}

/// Without `std` on Linux there is no process to watch: a peer is never
/// reported gone (on KaaL the broker closes or restarts a dead peer's end).
#[cfg(not(all(feature = "std", target_os = "linux", not(loom))))]
#[derive(Debug, Default)]
struct PeerWatch;

#[cfg(not(all(feature = "std", target_os = "linux", not(loom))))]
impl PeerWatch {
    const fn new() -> Self {
        Self
    }

    fn gone(&mut self, _peer: Identity) -> bool {
        false
    }
}

/// Writes this process's identity into the owner words of one end of a
/// process-shared ring: zeros (unknown) without `std` on Linux, so a dead
/// predecessor's identity does not outlive it. Called on attach and at every
/// liveness check, which also undoes a peer overwriting it and follows an
/// endpoint carried into a forked child.
fn claim_end<T, const N: usize>(ring: &SharedRing<T, N>, producer: bool) {
    let own = own_identity();
    let words = ring.owner(producer);
    words.pid.store(own.pid, Ordering::Relaxed);
    words.ns.store(own.ns, Ordering::Relaxed);
    words.start.store(own.start, Ordering::Relaxed);
}

/// The identity the header gives for one end.
fn recorded<T, const N: usize>(ring: &SharedRing<T, N>, producer: bool) -> Identity {
    let words = ring.owner(producer);
    Identity {
        pid: words.pid.load(Ordering::Acquire),
        ns: words.ns.load(Ordering::Acquire),
        start: words.start.load(Ordering::Acquire),
    }
}

/// How often a blocked endpoint looks at its peer's process (after it has
/// been blocked this long), so a dead peer is noticed within this plus one
/// wait slice.
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
const LIVENESS_PERIOD: Duration = Duration::from_millis(50);

/// Rate limit of the liveness check inside one blocking call.
struct LivenessTimer {
    #[cfg(all(feature = "std", target_os = "linux", not(loom)))]
    next: Option<std::time::Instant>,
}

impl LivenessTimer {
    fn new() -> Self {
        Self {
            #[cfg(all(feature = "std", target_os = "linux", not(loom)))]
            next: None,
        }
    }

    /// Whether a check is due: never on the first call (a short wait costs
    /// no system call), then once every [`LIVENESS_PERIOD`].
    fn due(&mut self) -> bool {
        #[cfg(all(feature = "std", target_os = "linux", not(loom)))]
        {
            let now = std::time::Instant::now();
            match self.next {
                Some(at) if now < at => false,
                Some(_) => {
                    self.next = Some(now + LIVENESS_PERIOD);
                    true
                }
                None => {
                    self.next = Some(now + LIVENESS_PERIOD);
                    false
                }
            }
        }
        #[cfg(not(all(feature = "std", target_os = "linux", not(loom))))]
        false
    }
}

/// Time left before a deadline: `None` once expired, `Some(None)` if the
/// wait is unbounded.
pub(crate) trait Deadline {
    fn remaining(&self) -> Option<Option<Duration>>;
}

pub(crate) struct Forever;
impl Deadline for Forever {
    fn remaining(&self) -> Option<Option<Duration>> {
        Some(None)
    }
}

#[cfg(feature = "std")]
pub(crate) struct Until(pub(crate) std::time::Instant);
#[cfg(feature = "std")]
impl Deadline for Until {
    fn remaining(&self) -> Option<Option<Duration>> {
        let left = self.0.checked_duration_since(std::time::Instant::now())?;
        (!left.is_zero()).then_some(Some(left))
    }
}

#[cfg(feature = "std")]
fn until(timeout: Duration) -> Until {
    let now = std::time::Instant::now();
    Until(
        now.checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365)),
    )
}

/// The asymmetric barrier of in-process rings (Linux with `std`): the
/// waiter, about to sleep, pays for a `membarrier(2)` that forces a full
/// barrier on every running thread of the process, so the waker, on every
/// publish, needs only a compiler fence where it would otherwise need a full
/// `SeqCst` fence. Rings reached through [`Attached`](crate::Attached)
/// (including `Attached::split`) keep the fence on both sides (the barrier
/// covers one process only), as do loom builds (which model the fences) and
/// Miri (which has no `membarrier`).
#[cfg(all(feature = "std", target_os = "linux", not(loom), not(miri)))]
mod asymmetric {
    use core::sync::atomic::{AtomicU8, Ordering};

    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    const UNKNOWN: u8 = 0;
    const AVAILABLE: u8 = 1;
    const UNAVAILABLE: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn membarrier(cmd: libc::c_int) -> bool {
        // SAFETY: `membarrier` takes a command and flags and touches no
        // memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
    }

    /// Registers the process for expedited barriers, once, and says whether
    /// the barrier is available. The first decision is final (racing first
    /// calls agree through a compare-exchange), so both endpoints of a ring,
    /// which ask when they are created, get the same answer for the ring's
    /// whole life. A registration is kept across `fork` and dropped only by
    /// `exec`, which starts a new program.
    pub(super) fn register() -> bool {
        let mut state = STATE.load(Ordering::Acquire);
        if state == UNKNOWN {
            let mine = if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) {
                AVAILABLE
            } else {
                UNAVAILABLE
            };
            state = match STATE.compare_exchange(UNKNOWN, mine, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => mine,
                Err(winner) => winner,
            };
        }
        state == AVAILABLE
    }

    /// The waiter's side: a full barrier on every running thread of the
    /// process. `false` if the kernel refused it (a seccomp filter installed
    /// after registration, for instance).
    pub(super) fn heavy() -> bool {
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
    }

    #[cfg(test)]
    mod tests {
        use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, compiler_fence};
        use std::vec::Vec;

        /// The store-buffering pattern the protocol relies on, with the
        /// publisher's compiler fence and the waiter's `membarrier`: both
        /// loads may not miss both stores.
        #[test]
        fn membarrier_pairs_with_a_compiler_fence() {
            if !super::register() {
                return; // no membarrier here: the fences are used instead
            }
            const ROUNDS: usize = 20_000;
            static X: AtomicU32 = AtomicU32::new(0);
            static Y: AtomicU32 = AtomicU32::new(0);
            static GO: AtomicUsize = AtomicUsize::new(0);
            static DONE: AtomicUsize = AtomicUsize::new(0);
            let publisher = std::thread::spawn(|| {
                let mut seen = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    while GO.load(Ordering::Acquire) != round {
                        core::hint::spin_loop();
                    }
                    X.store(1, Ordering::Relaxed);
                    compiler_fence(Ordering::SeqCst);
                    seen.push(Y.load(Ordering::Relaxed));
                    DONE.fetch_add(1, Ordering::AcqRel);
                }
                seen
            });
            let mut waiter = Vec::with_capacity(ROUNDS);
            for round in 1..=ROUNDS {
                X.store(0, Ordering::Relaxed);
                Y.store(0, Ordering::Relaxed);
                GO.store(round, Ordering::Release);
                Y.store(1, Ordering::Relaxed);
                assert!(super::heavy());
                waiter.push(X.load(Ordering::Relaxed));
                while DONE.load(Ordering::Acquire) != round {
                    core::hint::spin_loop();
                }
            }
            let seen = publisher.join().unwrap();
            let both_missed = seen
                .iter()
                .zip(&waiter)
                .filter(|(a, b)| **a == 0 && **b == 0)
                .count();
            assert_eq!(both_missed, 0, "{both_missed} of {ROUNDS} rounds reordered");
        }
    }
}

/// Decides, once per endpoint, whether its ring uses the asymmetric barrier:
/// in-process rings with sleeping waits, where the process could register
/// for `membarrier`. Both endpoints of a ring get the same answer.
fn asymmetric_barrier<W: Notify>(_shared: bool) -> bool {
    #[cfg(all(feature = "std", target_os = "linux", not(loom), not(miri)))]
    {
        W::NEEDS_WAKE && !_shared && asymmetric::register()
    }
    #[cfg(not(all(feature = "std", target_os = "linux", not(loom), not(miri))))]
    {
        let _ = W::NEEDS_WAKE;
        false
    }
}

/// Announces a waiter on `word`, re-checks `ready`, and sleeps unless ready.
fn park<W: Notify>(
    notify: &W,
    word: &AtomicU32,
    shared: bool,
    asymmetric: bool,
    timeout: Option<Duration>,
    ready: impl FnOnce() -> bool,
) {
    #[allow(unused_mut)] // reassigned only where the asymmetric barrier exists
    let mut timeout = Some(timeout.map_or(WAIT_SLICE, |t| t.min(WAIT_SLICE)));
    if !W::NEEDS_WAKE {
        notify.wait(word, word.load(Ordering::Relaxed), timeout, shared);
        return;
    }
    let w = word.fetch_or(1, Ordering::Relaxed) | 1;
    if asymmetric {
        #[cfg(all(feature = "std", target_os = "linux", not(loom), not(miri)))]
        if !asymmetric::heavy() {
            // The publisher skips its fence and this side could not make up
            // for it: a wake may be missed, so sleep at most 1 ms at a time
            // (an idle waiter then polls at about 1 kHz).
            fence(Ordering::SeqCst);
            timeout = timeout.map(|t| t.min(Duration::from_millis(1)));
        }
    } else {
        fence(Ordering::SeqCst);
    }
    if !ready() {
        notify.wait(word, w, timeout, shared);
    }
    // Withdraw the flag unless the peer already consumed it with a wake.
    let _ = word.compare_exchange(w, w & !1, Ordering::Relaxed, Ordering::Relaxed);
}

/// After publishing an index or closing: wakes the peer if it announced it
/// is about to sleep.
#[inline(always)]
fn wake_peer<W: Notify>(notify: &W, word: &AtomicU32, shared: bool, asymmetric: bool) {
    if W::NEEDS_WAKE {
        if asymmetric {
            // The waiter's `membarrier` orders this side (see `asymmetric`).
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        let w = word.load(Ordering::Relaxed);
        if w & 1 != 0 {
            wake_slow(notify, word, w, shared);
        }
    }
}

#[cold]
#[inline(never)]
fn wake_slow<W: Notify>(notify: &W, word: &AtomicU32, w: u32, shared: bool) {
    if word
        .compare_exchange(w, w.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        notify.wake(word, shared);
    }
}

/// The writing end of a [`SharedRing`].
///
/// `R` is how it reaches the ring (`&SharedRing`, `Arc<SharedRing>` or an
/// [`Attached`](crate::Attached) region) and `W` the [`Notify`] strategy of
/// the blocking calls. The producer keeps its own index privately and a cached
/// copy of the consumer's, which it reloads (and validates) only when the
/// cache says the ring is full.
///
/// The endpoint is aligned to 128 bytes: it writes its own index on every
/// operation, and must not share a cache line with the other endpoint
/// wherever the two are stored.
#[repr(align(128))]
pub struct Producer<T, const N: usize, R: RingHandle<T, N>, W: Notify = Spin> {
    /// Dropped by hand, last, in `Drop` (see there).
    ring: ManuallyDrop<R>,
    tail: u32,
    cached_head: u32,
    peer_gen: u32,
    spin_limit: u32,
    /// Whether this ring pairs a compiler fence with the waiter's
    /// `membarrier` (see [`asymmetric_barrier`]).
    asymmetric: bool,
    notify: W,
    watch: PeerWatch,
    _item: PhantomData<fn(T) -> T>,
}

/// The reading end of a [`SharedRing`]; see [`Producer`].
#[repr(align(128))]
pub struct Consumer<T, const N: usize, R: RingHandle<T, N>, W: Notify = Spin> {
    /// Dropped by hand, last, in `Drop`.
    ring: ManuallyDrop<R>,
    head: u32,
    cached_tail: u32,
    /// Whether the last reload of the producer's index found items (a
    /// stream is flowing) rather than an empty ring (the consumer polls).
    streaming: bool,
    peer_gen: u32,
    spin_limit: u32,
    /// Whether this ring pairs a compiler fence with the waiter's
    /// `membarrier` (see [`asymmetric_barrier`]).
    asymmetric: bool,
    notify: W,
    watch: PeerWatch,
    _item: PhantomData<fn(T) -> T>,
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> core::fmt::Debug for Producer<T, N, R, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &N)
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> core::fmt::Debug for Consumer<T, N, R, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &N)
            .field("head", &self.head)
            .field("cached_tail", &self.cached_tail)
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Producer<T, N, R, W> {
    const CAP: u32 = SharedRing::<T, N>::CAP;

    pub(crate) fn attach(ring: R, notify: W) -> Result<Self, CorruptIndices> {
        let r = ring.ring(Token::new());
        let tail = r.tail.0.load(Ordering::Acquire);
        let head = r.head.0.load(Ordering::Acquire);
        SharedRing::<T, N>::check_indices(head, tail)?;
        let asymmetric = asymmetric_barrier::<W>(R::PROCESS_SHARED);
        if R::PROCESS_SHARED {
            claim_end(r, true);
        }
        r.producer_gen().fetch_add(1, Ordering::AcqRel);
        r.state().fetch_and(!PRODUCER_CLOSED, Ordering::AcqRel);
        let peer_gen = r.consumer_gen().load(Ordering::Acquire);
        Ok(Self {
            ring: ManuallyDrop::new(ring),
            tail,
            cached_head: head,
            peer_gen,
            spin_limit: if W::NEEDS_WAKE { DEFAULT_SPIN_LIMIT } else { 0 },
            asymmetric,
            notify,
            watch: PeerWatch::new(),
            _item: PhantomData,
        })
    }

    /// The number of slots, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Sets how many times the blocking calls retry before sleeping.
    pub fn set_spin_limit(&mut self, spins: u32) {
        self.spin_limit = spins;
    }

    #[inline(always)]
    fn r(&self) -> &SharedRing<T, N> {
        self.ring.ring(Token::new())
    }

    /// Reloads the consumer's index, validating it.
    #[inline]
    fn refresh_head(&mut self) -> Result<(), CorruptIndices> {
        let head = self.r().head.0.load(Ordering::Acquire);
        SharedRing::<T, N>::check_indices(head, self.tail)?;
        self.cached_head = head;
        Ok(())
    }

    /// Free slots, reloading the consumer's index if the cache shows fewer
    /// than `want`.
    #[inline(always)]
    fn free(&mut self, want: u32) -> Result<u32, CorruptIndices> {
        let free = Self::CAP - self.tail.wrapping_sub(self.cached_head);
        if free >= want {
            return Ok(free);
        }
        self.refresh_head()?;
        Ok(Self::CAP - self.tail.wrapping_sub(self.cached_head))
    }

    fn consumer_closed(&self) -> bool {
        self.r().state().load(Ordering::Acquire) & CONSUMER_CLOSED != 0
    }

    /// Publishes items already written up to `tail`: the shared index first,
    /// then the private one, so that no store falls between the items' and
    /// the shared index's (see `advance`).
    #[inline(always)]
    fn publish(&mut self, tail: u32) {
        let r = self.ring.ring(Token::new());
        r.tail.0.store(tail, Ordering::Release);
        compiler_fence(Ordering::Release);
        // Before the wake-up, which runs the notifier's code: should it
        // unwind, the private index already covers what was published.
        self.tail = tail;
        self.wake_consumer();
    }

    /// Moves the private index to `tail` ahead of writing the items it
    /// covers. Where the endpoint lives in memory (a caller's loop that can
    /// panic keeps it there for the unwind path), the index's store then
    /// does not fall between the item's store and the shared index's store:
    /// an x86 core commits stores in order, and a store between the two that
    /// wait for the other core's lines delays the shared index by a line
    /// transfer (README, "Where the time goes"). The fence keeps the
    /// compiler from moving it back.
    #[inline(always)]
    fn advance(&mut self, tail: u32) {
        self.tail = tail;
        compiler_fence(Ordering::Release);
    }

    /// Stores the shared index (the items up to `tail` are written) and wakes
    /// a sleeping consumer.
    #[inline(always)]
    fn announce(&self, tail: u32) {
        let r = self.ring.ring(Token::new());
        r.tail.0.store(tail, Ordering::Release);
        self.wake_consumer();
    }

    /// Wakes the consumer if it announced that it sleeps.
    #[inline(always)]
    fn wake_consumer(&self) {
        let r = self.ring.ring(Token::new());
        wake_peer(
            &self.notify,
            &r.consumer_wait.0,
            R::PROCESS_SHARED,
            self.asymmetric,
        );
    }

    /// Pushes one item if there is room; otherwise hands it back, saying
    /// whether the ring is [`Full`](PushError::Full) or its consumer has
    /// [`Closed`](PushError::Closed). To wait for room, retry on `Full` only
    /// (or call [`push`](Self::push)): a loop on `is_err()` would spin forever
    /// once the consumer has gone.
    ///
    /// ```
    /// use kaal_ipc::{PushError, SharedRing};
    /// let mut ring = SharedRing::<u8, 2>::new();
    /// let (mut tx, rx) = ring.split();
    /// tx.try_push(1).unwrap();
    /// tx.try_push(2).unwrap();
    /// assert_eq!(tx.try_push(3), Err(PushError::Full(3)));
    ///
    /// // Spinning the right way: a closed consumer ends the loop.
    /// drop(rx);
    /// let mut item = 3;
    /// while let Err(PushError::Full(back)) = tx.try_push(item) {
    ///     item = back;
    ///     std::hint::spin_loop();
    /// }
    /// assert_eq!(tx.try_push(4), Err(PushError::Closed(4)));
    /// ```
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), PushError<T>> {
        let tail = self.tail;
        if tail.wrapping_sub(self.cached_head) == Self::CAP {
            if let Err(e) = self.refresh_head() {
                return Err(PushError::Corrupt(value, e));
            }
            if tail.wrapping_sub(self.cached_head) == Self::CAP {
                return Err(if self.consumer_closed() {
                    PushError::Closed(value)
                } else {
                    PushError::Full(value)
                });
            }
        }
        self.advance(tail.wrapping_add(1));
        // SAFETY: `tail - head < N` (checked above, `head` validated), so slot
        // `tail` is outside [head, tail): the consumer does not touch it until
        // the Release store in `announce`, and no other producer exists.
        unsafe { self.r().slot(tail).write(value) };
        self.announce(tail.wrapping_add(1));
        Ok(())
    }

    pub(crate) fn push_until(
        &mut self,
        mut value: T,
        deadline: &impl Deadline,
    ) -> Result<(), SendError<T>> {
        let mut spins = 0u32;
        let mut liveness = LivenessTimer::new();
        loop {
            match self.try_push(value) {
                Ok(()) => return Ok(()),
                Err(PushError::Full(v)) => value = v,
                Err(PushError::Closed(v)) => return Err(SendError::Closed(v)),
                Err(PushError::Corrupt(v, e)) => return Err(SendError::Corrupt(v, e)),
            }
            if spins < self.spin_limit {
                // Full: wait for room for a quarter of the ring, not for one
                // slot, while spinning. A producer that writes as soon as one
                // slot frees works in lock step with its consumer: it writes
                // into the line the consumer is reading and polls the
                // consumer's index for every few items, and both slow down.
                // The consumer has three quarters of the ring to work on
                // meanwhile, so nothing waits for it; before sleeping, any
                // room is enough (the wake-up condition).
                let refill = (Self::CAP / 4).max(1);
                loop {
                    let pauses = backoff_pauses(spins);
                    spins += pauses;
                    for _ in 0..pauses {
                        core::hint::spin_loop();
                    }
                    let head = self.r().head.0.load(Ordering::Relaxed);
                    if Self::CAP.wrapping_sub(self.tail.wrapping_sub(head)) >= refill
                        || spins >= self.spin_limit
                    {
                        break;
                    }
                }
                continue;
            }
            let Some(left) = deadline.remaining() else {
                return Err(SendError::Timeout(value));
            };
            if R::PROCESS_SHARED && liveness.due() && self.consumer_gone() {
                // Room the consumer made before it died is still usable.
                return match self.try_push(value) {
                    Ok(()) => Ok(()),
                    Err(PushError::Corrupt(v, e)) => Err(SendError::Corrupt(v, e)),
                    Err(e) => Err(SendError::PeerGone(e.into_inner())),
                };
            }
            let r = self.ring.ring(Token::new());
            let tail = self.tail;
            park(
                &self.notify,
                &r.producer_wait.0,
                R::PROCESS_SHARED,
                self.asymmetric,
                left,
                || {
                    let head = r.head.0.load(Ordering::Acquire);
                    tail.wrapping_sub(head) != Self::CAP
                        || r.state().load(Ordering::Acquire) & CONSUMER_CLOSED != 0
                },
            );
        }
    }

    /// Pushes one item, waiting for room with the [`Notify`] strategy `W`.
    /// Fails only if, while the ring is full, the consumer closes, its
    /// process dies ([`SendError::PeerGone`]) or it corrupts the ring; never
    /// returns [`SendError::Timeout`].
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), SendError<T>> {
        // The common case inline; waiting out of line.
        match self.try_push(value) {
            Ok(()) => Ok(()),
            Err(PushError::Full(value)) => self.push_waiting(value),
            Err(PushError::Closed(value)) => Err(SendError::Closed(value)),
            Err(PushError::Corrupt(value, e)) => Err(SendError::Corrupt(value, e)),
        }
    }

    #[cold]
    #[inline(never)]
    fn push_waiting(&mut self, value: T) -> Result<(), SendError<T>> {
        self.push_until(value, &Forever)
    }

    /// Like [`push`](Self::push), giving up after `timeout`.
    #[cfg(feature = "std")]
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.push_until(value, &until(timeout))
    }

    /// Copies as many items from `items` as fit, returning how many. Returns
    /// `Ok(0)` when full, and [`RingError::Closed`] when full and the consumer
    /// has closed.
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<u32, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5, 6]), Ok(4));
    /// let mut out = [0; 8];
    /// assert_eq!(rx.pop_slice(&mut out), Ok(4));
    /// assert_eq!(out[..4], [1, 2, 3, 4]);
    /// ```
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> Result<usize, RingError>
    where
        T: Copy,
    {
        let want = u32::try_from(items.len())
            .unwrap_or(u32::MAX)
            .min(Self::CAP);
        let free = self.free(want)?;
        let n = free.min(want);
        if n == 0 {
            if items.is_empty() || !self.consumer_closed() {
                return Ok(0);
            }
            return Err(RingError::Closed);
        }
        let tail = self.tail;
        self.advance(tail.wrapping_add(n));
        // SAFETY: [tail, tail + n) lies in the free region (n <= free, head
        // validated), owned by the producer until published.
        unsafe { copy_in(self.r(), tail, &items[..n as usize]) };
        self.announce(tail.wrapping_add(n));
        Ok(n as usize)
    }

    /// Reserves up to `max` free slots for writing in place. The chunk may be
    /// shorter than `max`, and empty when the ring is full; it is
    /// [`RingError::Closed`] when the ring is full and the consumer has
    /// closed. Items written to the chunk are published by
    /// [`WriteChunk::commit`].
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<u64, 8>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// let mut chunk = tx.write_chunk(3).unwrap();
    /// assert_eq!(chunk.len(), 3);
    /// chunk.push(10).unwrap();
    /// chunk.push(11).unwrap();
    /// chunk.commit(); // publishes the two written items
    /// assert_eq!(rx.len(), 2);
    /// ```
    pub fn write_chunk(&mut self, max: usize) -> Result<WriteChunk<'_, T, N, R, W>, RingError> {
        let want = u32::try_from(max).unwrap_or(u32::MAX).min(Self::CAP);
        let n = self.free(want)?.min(want);
        if n == 0 && want > 0 && self.consumer_closed() {
            return Err(RingError::Closed);
        }
        Ok(WriteChunk {
            start: self.tail,
            len: n,
            written: 0,
            producer: self,
        })
    }

    /// A snapshot of the number of items in the ring (at most `N`, even if
    /// the consumer's index is corrupt).
    pub fn len(&self) -> usize {
        let head = self.r().head.0.load(Ordering::Acquire);
        (self.tail.wrapping_sub(head) as usize).min(N)
    }

    /// Whether a snapshot shows the ring empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a snapshot shows the ring full.
    pub fn is_full(&self) -> bool {
        self.len() == N
    }

    /// Free slots in a snapshot.
    pub fn slots(&self) -> usize {
        N - self.len()
    }

    /// The consumer's state: a restarted consumer is detected by its
    /// generation, a dead consumer process by its process id (see
    /// [`PeerState::Gone`]).
    pub fn peer_state(&mut self) -> PeerState {
        let r = self.ring.ring(Token::new());
        if R::PROCESS_SHARED {
            claim_end(r, true);
        }
        let current = r.consumer_gen().load(Ordering::Acquire);
        let closed = r.state().load(Ordering::Acquire) & CONSUMER_CLOSED != 0;
        let mut seen = self.peer_gen;
        let state = peer_state(&mut seen, current, closed, || self.consumer_gone());
        self.peer_gen = seen;
        state
    }

    /// Whether the consumer's process is known to have exited.
    fn consumer_gone(&mut self) -> bool {
        if !R::PROCESS_SHARED {
            return false;
        }
        let r = self.ring.ring(Token::new());
        claim_end(r, true);
        self.watch.gone(recorded(r, false))
    }

    /// Makes the ring usable again after the peer corrupted it, keeping
    /// everything this producer knows: its own index (so the items it already
    /// committed keep their numbering), the header rewritten from this
    /// endpoint's type, and the consumer's index reset to the producer's if
    /// it is invalid (the ring is then empty: items that cannot be told apart
    /// from garbage are dropped, none this side still holds). The consumer's
    /// generation is accepted as current.
    ///
    /// Call it when an operation returned a `Corrupt` error and the peer that
    /// scribbled has stopped (it was killed, or its supervisor restarted it):
    /// while a hostile peer keeps writing, no repair lasts. A restarted peer
    /// can attach again afterwards.
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<u32, 4>::new();
    /// let (mut tx, _rx) = ring.split();
    /// tx.try_push(1).unwrap();
    /// assert!(!tx.repair().repaired_anything());
    /// ```
    pub fn repair(&mut self) -> Repair {
        let (repair, head) = repair_end(&*self.ring, true, self.tail);
        self.cached_head = head;
        self.acknowledge_peer();
        repair
    }

    /// Accepts the current consumer generation after a
    /// [`PeerState::Restarted`].
    pub fn acknowledge_peer(&mut self) {
        self.peer_gen = self.r().consumer_gen().load(Ordering::Acquire);
    }

    /// This producer's generation.
    pub fn generation(&self) -> u32 {
        self.r().producer_gen().load(Ordering::Acquire)
    }

    /// How many items were ever committed to the ring, wrapping at 2³²: the
    /// producer's index. A producer that restarted and attached again can
    /// resume its own numbering from here, since the index lives in the shared
    /// header and every committed item is counted exactly once.
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<u8, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.try_push(1).unwrap();
    /// tx.try_push(2).unwrap();
    /// rx.try_pop().unwrap();
    /// assert_eq!(tx.position(), 2);
    /// ```
    pub fn position(&self) -> u32 {
        self.tail
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Drop for Producer<T, N, R, W> {
    fn drop(&mut self) {
        let r = self.ring.ring(Token::new());
        r.state().fetch_or(PRODUCER_CLOSED, Ordering::AcqRel);
        wake_peer(
            &self.notify,
            &r.consumer_wait.0,
            R::PROCESS_SHARED,
            self.asymmetric,
        );
        // SAFETY: the handle is taken once, here, at the end of the last use
        // of `self`. (Moving it out before dropping it keeps the endpoint's
        // own address out of the handle's drop, e.g. `Arc::drop_slow`: an
        // endpoint whose address escapes nowhere can live in registers in the
        // caller's loop.)
        drop(unsafe { ManuallyDrop::take(&mut self.ring) });
    }
}

/// Copies `items` into slots starting at `start`, wrapping around.
///
/// # Safety
///
/// The caller must own slots `[start, start + items.len())`.
#[inline(always)]
unsafe fn copy_in<T: Copy, const N: usize>(ring: &SharedRing<T, N>, start: u32, items: &[T]) {
    #[cfg(not(loom))]
    {
        let idx = (start & SharedRing::<T, N>::MASK) as usize;
        let first = items.len().min(N - idx);
        // SAFETY: slots are contiguous `T`-sized cells (`repr(transparent)`),
        // `idx + first <= N` and `items.len() - first <= idx`, so both copies
        // stay in the array; the caller owns the destination slots, and the
        // source is a separate borrow.
        unsafe {
            copy_items(items.as_ptr(), ring.slot_ptr(start), first);
            copy_items(
                items.as_ptr().add(first),
                ring.slot_ptr(0),
                items.len() - first,
            );
        }
    }
    #[cfg(loom)]
    for (i, item) in items.iter().enumerate() {
        // SAFETY: the caller owns the slots.
        unsafe { ring.slot(start.wrapping_add(i as u32)).write(*item) };
    }
}

/// Copies `n` items from `src` to `dst` in inline loops: 32-byte blocks, then
/// 8-byte words (then bytes, for items aligned to less than 8 bytes).
///
/// Not `ptr::copy_nonoverlapping`, whose run-time length becomes a call to the
/// library `memcpy` (the C library's with `std`). Ring slots are written by one
/// core and read by the other, and every line a copy touches is held by the
/// other core's cache; on the x86-64 hosts measured, glibc's `memcpy` (in its
/// AVX-512, AVX2 and SSE2 versions alike) moved 256-item `u64` batches through
/// the ring 1.3-1.8x slower than these loops (README, "Where the time goes").
/// In one thread, with every line in its own cache, this copy is 0.65-0.8x as
/// fast as glibc's `memcpy`; cross-thread batches are what a ring is for.
///
/// Items aligned to 8 bytes or more move as aligned words on every target
/// (x86-64: 16-byte register moves; AArch64: `ldp`/`stp`). Less aligned items
/// move as unaligned blocks where unaligned access is native (x86); elsewhere
/// (AArch64 without unaligned access, as `aarch64-unknown-none` builds, would
/// split such a block into a `memcpy` call of its own) they take the library
/// copy.
///
/// # Safety
///
/// `src` and `dst` are valid for `n` items and do not overlap.
#[inline(always)]
#[cfg(not(loom))]
unsafe fn copy_items<T: Copy>(src: *const T, dst: *mut T, n: usize) {
    use core::mem::MaybeUninit;
    let bytes = n * size_of::<T>();
    if align_of::<T>() >= 8 {
        // `size_of::<T>()` is a multiple of its alignment, so of 8.
        let words = bytes / 8;
        let (s, d) = (
            src.cast::<MaybeUninit<u64>>(),
            dst.cast::<MaybeUninit<u64>>(),
        );
        let mut i = 0;
        // SAFETY: both pointers are 8-aligned (`T`'s alignment), and every
        // access lies wholly inside the first `words` words of both buffers
        // (caller contract); `MaybeUninit` words may hold any bytes, padding
        // included.
        unsafe {
            while i + 4 <= words {
                let v = s.add(i).cast::<MaybeUninit<[u64; 4]>>().read();
                d.add(i).cast::<MaybeUninit<[u64; 4]>>().write(v);
                keep_loop();
                i += 4;
            }
            while i < words {
                d.add(i).write(s.add(i).read());
                keep_loop();
                i += 1;
            }
        }
    } else if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        let (s, d) = (src.cast::<u8>(), dst.cast::<u8>());
        let mut i = 0;
        // SAFETY: every access lies wholly below `bytes`, inside both buffers
        // (caller contract); unaligned reads and writes of `MaybeUninit` bytes
        // are valid for any `T: Copy`, padding included.
        unsafe {
            while i + 32 <= bytes {
                let v = s.add(i).cast::<MaybeUninit<[u8; 32]>>().read_unaligned();
                d.add(i).cast::<MaybeUninit<[u8; 32]>>().write_unaligned(v);
                keep_loop();
                i += 32;
            }
            while i + 8 <= bytes {
                let v = s.add(i).cast::<MaybeUninit<u64>>().read_unaligned();
                d.add(i).cast::<MaybeUninit<u64>>().write_unaligned(v);
                keep_loop();
                i += 8;
            }
            while i < bytes {
                let v = s.add(i).cast::<MaybeUninit<u8>>().read();
                d.add(i).cast::<MaybeUninit<u8>>().write(v);
                keep_loop();
                i += 1;
            }
        }
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, n) };
    }
}

/// Emits nothing, but keeps the compiler from recognising the loop it is in
/// as a copy and calling `memcpy` after all (see [`copy_items`]). Under Miri,
/// which runs no `asm!`, and on targets without it, a plain no-op.
#[inline(always)]
#[cfg(not(loom))]
fn keep_loop() {
    #[cfg(all(
        not(miri),
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    ))]
    // SAFETY: an empty statement: no instruction, no memory, stack or flags.
    unsafe {
        core::arch::asm!("", options(nomem, nostack, preserves_flags))
    };
}

/// Copies items out of slots starting at `start` into `out`, wrapping.
///
/// # Safety
///
/// The caller must own slots `[start, start + out.len())` and they must hold
/// initialised items.
#[inline(always)]
unsafe fn copy_out<T: Copy, const N: usize>(ring: &SharedRing<T, N>, start: u32, out: &mut [T]) {
    #[cfg(not(loom))]
    {
        let idx = (start & SharedRing::<T, N>::MASK) as usize;
        let first = out.len().min(N - idx);
        // SAFETY: as in `copy_in`, with source and destination swapped; the
        // slots are initialised (caller contract).
        unsafe {
            copy_items(ring.slot_ptr(start), out.as_mut_ptr(), first);
            copy_items(
                ring.slot_ptr(0),
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }
    #[cfg(loom)]
    for (i, item) in out.iter_mut().enumerate() {
        // SAFETY: the caller owns the initialised slots.
        *item = unsafe { ring.slot(start.wrapping_add(i as u32)).read() };
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Consumer<T, N, R, W> {
    const CAP: u32 = SharedRing::<T, N>::CAP;

    pub(crate) fn attach(ring: R, notify: W) -> Result<Self, CorruptIndices> {
        let r = ring.ring(Token::new());
        let tail = r.tail.0.load(Ordering::Acquire);
        let head = r.head.0.load(Ordering::Acquire);
        SharedRing::<T, N>::check_indices(head, tail)?;
        let asymmetric = asymmetric_barrier::<W>(R::PROCESS_SHARED);
        if R::PROCESS_SHARED {
            claim_end(r, false);
        }
        r.consumer_gen().fetch_add(1, Ordering::AcqRel);
        r.state().fetch_and(!CONSUMER_CLOSED, Ordering::AcqRel);
        let peer_gen = r.producer_gen().load(Ordering::Acquire);
        Ok(Self {
            ring: ManuallyDrop::new(ring),
            head,
            cached_tail: tail,
            streaming: false,
            peer_gen,
            spin_limit: if W::NEEDS_WAKE { DEFAULT_SPIN_LIMIT } else { 0 },
            asymmetric,
            notify,
            watch: PeerWatch::new(),
            _item: PhantomData,
        })
    }

    /// The number of slots, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Sets how many times the blocking calls retry before sleeping.
    pub fn set_spin_limit(&mut self, spins: u32) {
        self.spin_limit = spins;
    }

    #[inline(always)]
    fn r(&self) -> &SharedRing<T, N> {
        self.ring.ring(Token::new())
    }

    /// Reloads the producer's index, validating it.
    #[inline]
    fn refresh_tail(&mut self) -> Result<(), CorruptIndices> {
        let tail = self.r().tail.0.load(Ordering::Acquire);
        SharedRing::<T, N>::check_indices(self.head, tail)?;
        self.cached_tail = tail;
        Ok(())
    }

    fn producer_closed(&self) -> bool {
        self.r().state().load(Ordering::Acquire) & PRODUCER_CLOSED != 0
    }

    /// Available items, reloading the producer's index if the cache shows
    /// fewer than `want`. Zero available is [`PopError::Empty`] or
    /// [`PopError::Closed`] (when `want > 0`).
    #[inline(always)]
    fn available(&mut self, want: u32) -> Result<u32, PopError> {
        let avail = self.cached_tail.wrapping_sub(self.head);
        if avail >= want && avail > 0 {
            return Ok(avail);
        }
        if avail == 0 {
            // Only when nothing is left in hand (see `before_refresh`).
            self.before_refresh();
        }
        self.refresh_tail()?;
        let avail = self.cached_tail.wrapping_sub(self.head);
        if avail > 0 || want == 0 {
            self.streaming = avail > 0;
            return Ok(avail);
        }
        self.streaming = false;
        self.empty_error()
    }

    /// Runs before the producer's index is read again.
    ///
    /// * Streaming (the last reload found items, and the consumer has taken
    ///   them all): wait a moment first. A consumer that reloads at once
    ///   falls into lock step with the producer, one item per reload, and
    ///   the index and slot lines then cross between the cores for every
    ///   item; a short pause lets the producer fill a batch, which the next
    ///   reload takes at once. Nothing is delayed that is already visible.
    /// * Polling (the last reload found the ring empty): prefetch the slot
    ///   the next item will be in, so that when it arrives its line and the
    ///   index's cross in parallel rather than one after the other.
    #[inline(always)]
    fn before_refresh(&self) {
        if self.streaming {
            for _ in 0..STREAM_BACKOFF {
                core::hint::spin_loop();
            }
        } else {
            #[cfg(not(any(loom, miri)))]
            prefetch(self.r().slot_ptr(self.head));
        }
    }

    #[cold]
    fn empty_error(&mut self) -> Result<u32, PopError> {
        if !self.producer_closed() {
            return Err(PopError::Empty);
        }
        // Items published before the close are visible now.
        self.refresh_tail()?;
        match self.cached_tail.wrapping_sub(self.head) {
            0 => Err(PopError::Closed),
            n => Ok(n),
        }
    }

    #[inline(always)]
    fn release_to(&mut self, head: u32) {
        self.head = head;
        let r = self.ring.ring(Token::new());
        r.head.0.store(head, Ordering::Release);
        wake_peer(
            &self.notify,
            &r.producer_wait.0,
            R::PROCESS_SHARED,
            self.asymmetric,
        );
    }

    /// Pops one item if there is one. After the producer closes, the items it
    /// pushed are still delivered, then [`PopError::Closed`].
    ///
    /// ```
    /// use kaal_ipc::{PopError, SharedRing};
    /// let mut ring = SharedRing::<u8, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// assert_eq!(rx.try_pop(), Err(PopError::Empty));
    /// tx.try_push(5).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_pop(), Ok(5));
    /// assert_eq!(rx.try_pop(), Err(PopError::Closed));
    /// ```
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, PopError> {
        let head = self.head;
        if head == self.cached_tail {
            self.available(1)?;
        }
        // SAFETY: `head != tail` with `tail - head <= N` validated.
        Ok(unsafe { self.take(head) })
    }

    /// Moves the item at `head` out and releases its slot.
    ///
    /// # Safety
    ///
    /// `head` is the consumer's index and differs from `cached_tail`, which
    /// was validated (`tail - head <= N`) when loaded: slot `head` then holds
    /// an item published by the producer (Acquire load of tail) that nobody
    /// else reads, and the producer will not write it until the Release
    /// store of the new head.
    #[inline(always)]
    unsafe fn take(&mut self, head: u32) -> T {
        // SAFETY: forwarded to the caller.
        let value = unsafe { self.r().slot(head).read() };
        self.release_to(head.wrapping_add(1));
        value
    }

    pub(crate) fn pop_until(&mut self, deadline: &impl Deadline) -> Result<T, RecvError> {
        let mut spins = 0u32;
        let mut liveness = LivenessTimer::new();
        loop {
            match self.try_pop() {
                Ok(v) => return Ok(v),
                Err(PopError::Empty) => {}
                Err(PopError::Closed) => return Err(RecvError::Closed),
                Err(PopError::Corrupt(e)) => return Err(RecvError::Corrupt(e)),
            }
            if spins < self.spin_limit {
                let pauses = backoff_pauses(spins);
                spins += pauses;
                for _ in 0..pauses {
                    core::hint::spin_loop();
                }
                continue;
            }
            let left = deadline.remaining().ok_or(RecvError::Timeout)?;
            if R::PROCESS_SHARED && liveness.due() && self.producer_gone() {
                // Items the producer published before it died are delivered
                // first, one per call.
                return match self.try_pop() {
                    Ok(v) => Ok(v),
                    Err(PopError::Corrupt(e)) => Err(RecvError::Corrupt(e)),
                    Err(_) => Err(RecvError::PeerGone),
                };
            }
            let r = self.ring.ring(Token::new());
            let head = self.head;
            park(
                &self.notify,
                &r.consumer_wait.0,
                R::PROCESS_SHARED,
                self.asymmetric,
                left,
                || {
                    r.tail.0.load(Ordering::Acquire) != head
                        || r.state().load(Ordering::Acquire) & PRODUCER_CLOSED != 0
                },
            );
        }
    }

    /// Pops one item, waiting with the [`Notify`] strategy `W`. Fails once
    /// the ring is drained and the producer has closed or its process has
    /// died ([`RecvError::PeerGone`]), or if it corrupts the ring; never
    /// returns [`RecvError::Timeout`].
    #[inline]
    pub fn pop(&mut self) -> Result<T, RecvError> {
        let head = self.head;
        if head != self.cached_tail {
            // Items in hand: prefetch ahead if that much is published (see
            // `PREFETCH_AHEAD_BYTES`); `try_pop`, the spinning path, skips
            // this.
            let ahead = (PREFETCH_AHEAD_BYTES / core::mem::size_of::<T>().max(1)).max(1) as u32;
            if self.cached_tail.wrapping_sub(head) > ahead {
                #[cfg(not(any(loom, miri)))]
                prefetch(self.r().slot_ptr(head.wrapping_add(ahead)));
            }
            // SAFETY: `head != cached_tail`, validated when it was loaded.
            return Ok(unsafe { self.take(head) });
        }
        // Waiting out of line.
        match self.try_pop() {
            Ok(value) => Ok(value),
            Err(PopError::Empty) => self.pop_waiting(),
            Err(PopError::Closed) => Err(RecvError::Closed),
            Err(PopError::Corrupt(e)) => Err(RecvError::Corrupt(e)),
        }
    }

    #[cold]
    #[inline(never)]
    fn pop_waiting(&mut self) -> Result<T, RecvError> {
        self.pop_until(&Forever)
    }

    /// Like [`pop`](Self::pop), giving up after `timeout`.
    #[cfg(feature = "std")]
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.pop_until(&until(timeout))
    }

    /// A copy of the next item without removing it. Works for every ring,
    /// including attached ones; see [`peek`](Self::peek) for a reference.
    pub fn peek_copy(&mut self) -> Result<T, PopError>
    where
        T: Copy,
    {
        self.available(1)?;
        // SAFETY: slot `head` holds a published item owned by the consumer;
        // `T: Copy`, so reading it leaves it valid.
        Ok(unsafe { self.r().slot(self.head).read() })
    }

    /// Copies up to `out.len()` items into `out`, returning how many. Returns
    /// `Ok(0)` when empty, and [`RingError::Closed`] when empty and the
    /// producer has closed.
    #[inline]
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, RingError>
    where
        T: Copy,
    {
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX).min(Self::CAP);
        let n = match self.available(want) {
            Ok(n) => n.min(want),
            Err(PopError::Empty) => return Ok(0),
            Err(PopError::Closed) => return Err(RingError::Closed),
            Err(PopError::Corrupt(e)) => return Err(RingError::Corrupt(e)),
        };
        let head = self.head;
        // SAFETY: [head, head + n) holds published items (n <= tail - head,
        // tail validated) owned by the consumer.
        unsafe { copy_out(self.r(), head, &mut out[..n as usize]) };
        self.release_to(head.wrapping_add(n));
        Ok(n as usize)
    }

    /// Borrows up to `max` available items for reading in place. The chunk
    /// may be shorter than `max`, and empty when the ring is empty; it is
    /// [`RingError::Closed`] when the ring is empty and the producer has
    /// closed. [`ReadChunk::release`] frees the slots.
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<u64, 8>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.push_slice(&[1, 2, 3]).unwrap();
    /// let chunk = rx.read_chunk(8).unwrap();
    /// let (a, b) = chunk.as_slices();
    /// assert_eq!(a.iter().chain(b).sum::<u64>(), 6);
    /// chunk.release(2);
    /// assert_eq!(rx.try_pop(), Ok(3));
    /// ```
    pub fn read_chunk(&mut self, max: usize) -> Result<ReadChunk<'_, T, N, R, W>, RingError> {
        let want = u32::try_from(max).unwrap_or(u32::MAX).min(Self::CAP);
        let n = match self.available(want) {
            Ok(n) => n.min(want),
            Err(PopError::Empty) => 0,
            Err(PopError::Closed) => return Err(RingError::Closed),
            Err(PopError::Corrupt(e)) => return Err(RingError::Corrupt(e)),
        };
        Ok(ReadChunk {
            start: self.head,
            len: n,
            consumer: self,
        })
    }

    /// A snapshot of the number of items (at most `N`, even if the producer's
    /// index is corrupt).
    pub fn len(&self) -> usize {
        let tail = self.r().tail.0.load(Ordering::Acquire);
        (tail.wrapping_sub(self.head) as usize).min(N)
    }

    /// Whether a snapshot shows the ring empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a snapshot shows the ring full.
    pub fn is_full(&self) -> bool {
        self.len() == N
    }

    /// The producer's state: a restarted producer is detected by its
    /// generation, a dead producer process by its process id (see
    /// [`PeerState::Gone`]).
    pub fn peer_state(&mut self) -> PeerState {
        let r = self.ring.ring(Token::new());
        if R::PROCESS_SHARED {
            claim_end(r, false);
        }
        let current = r.producer_gen().load(Ordering::Acquire);
        let closed = r.state().load(Ordering::Acquire) & PRODUCER_CLOSED != 0;
        let mut seen = self.peer_gen;
        let state = peer_state(&mut seen, current, closed, || self.producer_gone());
        self.peer_gen = seen;
        state
    }

    /// Whether the producer's process is known to have exited.
    fn producer_gone(&mut self) -> bool {
        if !R::PROCESS_SHARED {
            return false;
        }
        let r = self.ring.ring(Token::new());
        claim_end(r, false);
        self.watch.gone(recorded(r, true))
    }

    /// Makes the ring usable again after the peer corrupted it, keeping
    /// everything this consumer has received: its own index stays, the
    /// header is rewritten from this endpoint's type, and the producer's
    /// index is reset to the consumer's if it is invalid (no item in flight:
    /// slots the producer may have filled cannot be told apart from garbage).
    /// The producer's generation is accepted as current.
    ///
    /// Call it when an operation returned a `Corrupt` error and the peer that
    /// scribbled has stopped (killed, or restarted by its supervisor): while
    /// a hostile peer keeps writing, no repair lasts. A restarted producer
    /// attaches again afterwards and resumes from the consumer's index.
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<u32, 4>::new();
    /// let (_tx, mut rx) = ring.split();
    /// assert!(!rx.repair().repaired_anything());
    /// ```
    pub fn repair(&mut self) -> Repair {
        let (repair, tail) = repair_end(&*self.ring, false, self.head);
        self.cached_tail = tail;
        self.acknowledge_peer();
        repair
    }

    /// Accepts the current producer generation after a
    /// [`PeerState::Restarted`].
    pub fn acknowledge_peer(&mut self) {
        self.peer_gen = self.r().producer_gen().load(Ordering::Acquire);
    }

    /// This consumer's generation.
    pub fn generation(&self) -> u32 {
        self.r().consumer_gen().load(Ordering::Acquire)
    }
}

#[cfg(not(loom))]
impl<T, const N: usize, R: crate::TrustedHandle<T, N>, W: Notify> Consumer<T, N, R, W> {
    /// A reference to the next item without removing it. Only for in-process
    /// rings, whose producer cannot write the slot while it is borrowed; use
    /// [`peek_copy`](Self::peek_copy) on attached rings.
    ///
    /// ```compile_fail
    /// // Not available when the peer is another process.
    /// fn f(rx: &mut kaal_ipc::Consumer<u64, 8, kaal_ipc::Attached<'_, u64, 8>>) {
    ///     let _ = rx.peek();
    /// }
    /// ```
    pub fn peek(&mut self) -> Result<&T, PopError> {
        self.available(1)?;
        // SAFETY: slot `head` holds a published, initialised item that only
        // this consumer may access until it advances `head`, which needs
        // `&mut self` and so ends this borrow first. The producer is this
        // crate's code in this process (trusted handle) and never writes
        // [head, tail).
        Ok(unsafe { &*self.r().slot_ptr(self.head) })
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Drop for Consumer<T, N, R, W> {
    fn drop(&mut self) {
        let r = self.ring.ring(Token::new());
        r.state().fetch_or(CONSUMER_CLOSED, Ordering::AcqRel);
        wake_peer(
            &self.notify,
            &r.producer_wait.0,
            R::PROCESS_SHARED,
            self.asymmetric,
        );
        // SAFETY: the handle is taken once, here, at the end of the last use
        // of `self`. (Moving it out before dropping it keeps the endpoint's
        // own address out of the handle's drop, e.g. `Arc::drop_slow`: an
        // endpoint whose address escapes nowhere can live in registers in the
        // caller's loop.)
        drop(unsafe { ManuallyDrop::take(&mut self.ring) });
    }
}

/// Free slots reserved by [`Producer::write_chunk`], written in place.
///
/// Items written with [`push`](Self::push) or
/// [`extend_from_slice`](Self::extend_from_slice) become visible to the
/// consumer on [`commit`](Self::commit); dropping the chunk without
/// committing drops them.
pub struct WriteChunk<'p, T, const N: usize, R: RingHandle<T, N>, W: Notify> {
    producer: &'p mut Producer<T, N, R, W>,
    start: u32,
    len: u32,
    written: u32,
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> WriteChunk<'_, T, N, R, W> {
    /// The number of reserved slots.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no slot was reserved (the ring was full).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of items written so far.
    pub fn written(&self) -> usize {
        self.written as usize
    }

    /// Writes the next item directly into its slot, or hands it back if the
    /// chunk is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.written == self.len {
            return Err(value);
        }
        // SAFETY: slot `start + written` is reserved (inside the free region
        // validated by `write_chunk`) and not yet written.
        unsafe {
            self.producer
                .r()
                .slot(self.start.wrapping_add(self.written))
                .write(value)
        };
        self.written += 1;
        Ok(())
    }

    /// Writes as many of `items` as fit, returning how many.
    #[inline]
    pub fn extend_from_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        let n = ((self.len - self.written) as usize).min(items.len());
        // SAFETY: the `n` slots after the written ones are reserved and
        // unwritten.
        unsafe {
            copy_in(
                self.producer.r(),
                self.start.wrapping_add(self.written),
                &items[..n],
            )
        };
        self.written += n as u32;
        n
    }

    /// Writes items from `iter` until the chunk or the iterator is
    /// exhausted, returning how many were written.
    #[inline]
    pub fn fill_from_iter(&mut self, iter: impl IntoIterator<Item = T>) -> usize {
        let before = self.written;
        for item in iter {
            if self.push(item).is_err() {
                break;
            }
        }
        (self.written - before) as usize
    }

    /// Publishes the written items to the consumer (waking it if it waits).
    #[inline]
    pub fn commit(mut self) {
        let end = self.start.wrapping_add(self.written);
        // Before publishing: should a `Notify::wake` unwind, the chunk's drop
        // must not drop items the consumer now owns.
        self.written = 0;
        if end != self.producer.tail {
            self.producer.publish(end);
        }
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Drop for WriteChunk<'_, T, N, R, W> {
    fn drop(&mut self) {
        if core::mem::needs_drop::<T>() {
            for i in 0..self.written {
                // SAFETY: these slots were written by this chunk and not
                // published, so they are initialised and still ours.
                unsafe {
                    self.producer
                        .r()
                        .slot(self.start.wrapping_add(i))
                        .drop_in_place()
                };
            }
        }
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> core::fmt::Debug
    for WriteChunk<'_, T, N, R, W>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WriteChunk")
            .field("len", &self.len)
            .field("written", &self.written)
            .finish()
    }
}

/// Items borrowed by [`Consumer::read_chunk`], read in place.
/// [`release`](Self::release) removes them from the ring; dropping the chunk
/// without releasing leaves them there.
pub struct ReadChunk<'c, T, const N: usize, R: RingHandle<T, N>, W: Notify> {
    consumer: &'c mut Consumer<T, N, R, W>,
    start: u32,
    len: u32,
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> ReadChunk<'_, T, N, R, W> {
    /// The number of items in the chunk.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the chunk holds no item (the ring was empty).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of item `i`. Works for every ring, including attached ones.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T>
    where
        T: Copy,
    {
        if i >= self.len as usize {
            return None;
        }
        // SAFETY: slot `start + i` holds a published item owned by the
        // consumer; `T: Copy`.
        Some(unsafe {
            self.consumer
                .r()
                .slot(self.start.wrapping_add(i as u32))
                .read()
        })
    }

    /// Copies the first `out.len()` items (or all, if fewer) into `out`,
    /// returning how many.
    #[inline]
    pub fn copy_to_slice(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let n = (self.len as usize).min(out.len());
        // SAFETY: the chunk's slots hold published items owned by the
        // consumer.
        unsafe { copy_out(self.consumer.r(), self.start, &mut out[..n]) };
        n
    }

    /// Removes the first `n` items (all, if fewer) from the ring, dropping
    /// them, and wakes a waiting producer.
    #[inline]
    pub fn release(self, n: usize) {
        let n = (n.min(self.len as usize)) as u32;
        if core::mem::needs_drop::<T>() {
            for i in 0..n {
                // SAFETY: these slots hold published items owned by the
                // consumer; they are dropped once, then released.
                unsafe {
                    self.consumer
                        .r()
                        .slot(self.start.wrapping_add(i))
                        .drop_in_place()
                };
            }
        }
        if n > 0 {
            self.consumer.release_to(self.start.wrapping_add(n));
        }
    }

    /// Removes every item of the chunk from the ring.
    #[inline]
    pub fn release_all(self) {
        let n = self.len as usize;
        self.release(n);
    }
}

#[cfg(not(loom))]
impl<T, const N: usize, R: crate::TrustedHandle<T, N>, W: Notify> ReadChunk<'_, T, N, R, W> {
    /// The items as two slices (the second non-empty when the chunk wraps
    /// around the end of the ring). Only for in-process rings; see
    /// [`copy_to_slice`](Self::copy_to_slice) for attached ones.
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let idx = (self.start & SharedRing::<T, N>::MASK) as usize;
        let first = (self.len as usize).min(N - idx);
        let r = self.consumer.r();
        // SAFETY: the chunk's slots are contiguous `T`-sized cells holding
        // published, initialised items; the producer is trusted in-process
        // code that never writes [head, tail), and the slices borrow `self`,
        // which holds the consumer mutably, so they end before `head` moves.
        unsafe {
            (
                core::slice::from_raw_parts(r.slot_ptr(self.start), first),
                core::slice::from_raw_parts(r.slot_ptr(0), self.len as usize - first),
            )
        }
    }

    /// Iterates over the items in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        let (a, b) = self.as_slices();
        a.iter().chain(b)
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> core::fmt::Debug
    for ReadChunk<'_, T, N, R, W>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadChunk").field("len", &self.len).finish()
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Producer<T, N, R, W> {
    /// Wraps this producer as a [`Sender`](crate::Sender).
    pub fn into_sender(self) -> crate::Sender<T, N, R, W> {
        crate::Sender::new(self)
    }
}

impl<T, const N: usize, R: RingHandle<T, N>, W: Notify> Consumer<T, N, R, W> {
    /// Wraps this consumer as a [`Receiver`](crate::Receiver).
    pub fn into_receiver(self) -> crate::Receiver<T, N, R, W> {
        crate::Receiver::new(self)
    }
}
