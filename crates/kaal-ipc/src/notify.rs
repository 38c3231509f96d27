//! Wake-up strategies for the blocking operations.
//!
//! # Protocol
//!
//! Each direction has a 32-bit wait word in the shared header
//! ([`layout::CONSUMER_WAIT_OFFSET`](crate::layout::CONSUMER_WAIT_OFFSET) and
//! [`layout::PRODUCER_WAIT_OFFSET`](crate::layout::PRODUCER_WAIT_OFFSET)).
//! Bit 0 is the waiter flag; the other bits count wake-ups.
//!
//! A side that finds the ring empty (consumer) or full (producer):
//!
//! 1. sets the flag: `w = word.fetch_or(1) | 1`;
//! 2. issues a sequentially consistent fence (or, for in-process rings on
//!    Linux, a `membarrier`: see below);
//! 3. re-reads the peer's index and the closed flags; if it can now make
//!    progress it clears the flag (`compare_exchange(w, w & !1)`) and retries;
//! 4. otherwise calls [`Notify::wait`]`(word, w)`, which returns at once if
//!    the word no longer equals `w`.
//!
//! The peer, after publishing an index (or closing its end), issues a
//! sequentially consistent fence (a compiler fence only, for in-process rings
//! on Linux) and reads the word. Only if the flag is set —
//! the waiter saw the ring empty (full) and is about to sleep, so this publish
//! is the empty→non-empty (full→non-full) transition it waits for — does it
//! `compare_exchange(w, w + 1)` (clearing the flag and changing the word) and
//! call [`Notify::wake`]. The two fences order "publish index, read flag"
//! against "set flag, read index": at least one side sees the other's write,
//! so either the waiter does not sleep or the waker wakes it, and the word
//! change makes a wake that lands before the sleep harmless. No wake-up is
//! lost; the loom model in `tests/loom.rs` checks this version.
//!
//! For in-process rings on Linux (with `std`; handles `&SharedRing` and
//! `Arc<SharedRing>`), the pair is asymmetric: the publisher's fence is a
//! compiler fence only, and the waiter replaces its fence by
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, a full barrier on every
//! running thread of the process, which orders the publisher's store and load
//! as its fence would have (the pairing `membarrier(2)` documents, and that
//! liburcu and folly use). The waiter is about to make a system call anyway;
//! the publisher, which runs on every item, saves a `SeqCst` fence. Loom
//! cannot model `membarrier`; a unit test runs the store-buffering pattern
//! through it instead.
//!
//! * The process registers for the barrier when the first in-process
//!   endpoint with sleeping waits is created; the first answer is final, and
//!   both endpoints of a ring use the answer they got when created. If the
//!   kernel refuses the registration, both sides keep their fences.
//! * If a later `membarrier` fails (a seccomp filter installed after
//!   registration), the waiter falls back to a fence and sleeps at most 1 ms
//!   at a time: a wake may then arrive up to 1 ms late, and an idle waiter
//!   polls at about 1 kHz.
//! * Each time a waiter goes to sleep, every running thread of the process is
//!   interrupted for the barrier, including threads spinning on other rings
//!   on isolated cores. Processes that must not be disturbed use [`Spin`] or
//!   shared-memory rings.
//! * Rings reached through [`Attached`](crate::Attached) (also
//!   `Attached::split` in one process), loom builds and Miri keep both
//!   fences.
//!
//! A `Notify` implemented outside this crate gets the same protocol: it
//! only supplies `wait` and `wake`.

use crate::sync::AtomicU32;
use core::time::Duration;

/// How a blocked endpoint waits and how its peer wakes it.
///
/// Implementations must not lose a wake: `wait` must return if `word` no
/// longer equals `expected` when it starts, or once `wake` is called on the
/// same word afterwards. Spurious returns are allowed; callers re-check.
pub trait Notify {
    /// Whether waiters depend on [`wake`](Self::wake). If `false`, the
    /// publishing side skips the fence and flag check entirely. If `true`,
    /// in-process rings on Linux use the asymmetric barrier described in the
    /// crate README ("Notification protocol"): the process registers for
    /// `membarrier` when the first such endpoint is created, and each sleep
    /// briefly interrupts the process's other running threads.
    const NEEDS_WAKE: bool;

    /// Blocks while `*word == expected`, until woken, until `timeout` elapses
    /// (if given), or spuriously. `process_shared` is set when the word lives
    /// in memory shared with another process.
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
        process_shared: bool,
    );

    /// Wakes every waiter blocked on `word`.
    fn wake(&self, word: &AtomicU32, process_shared: bool);
}

/// Busy-waiting: for bare metal and for latency-critical pairs on dedicated
/// cores. Never sleeps and never needs a wake, so publishing costs nothing
/// extra. Timeouts are honoured only where a clock exists (feature `std`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spin;

impl Notify for Spin {
    const NEEDS_WAKE: bool = false;

    #[inline]
    fn wait(
        &self,
        _word: &AtomicU32,
        _expected: u32,
        _timeout: Option<Duration>,
        _process_shared: bool,
    ) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        for _ in 0..32 {
            core::hint::spin_loop();
        }
    }

    #[inline]
    fn wake(&self, _word: &AtomicU32, _process_shared: bool) {}
}

/// Linux futex on the wait word in the ring's header. Works between
/// processes (the process-shared futex is used for attached rings, the
/// private one otherwise).
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Futex;

#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
impl Notify for Futex {
    const NEEDS_WAKE: bool = true;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
        process_shared: bool,
    ) {
        let op = if process_shared {
            libc::FUTEX_WAIT
        } else {
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG
        };
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(core::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of
        // the call; the kernel only reads it (and compares it with
        // `expected`). `ts_ptr` is null or points to a live timespec. The
        // result (0, EAGAIN, ETIMEDOUT, EINTR) needs no handling: callers
        // re-check the ring in every case.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op,
                expected,
                ts_ptr,
                core::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    fn wake(&self, word: &AtomicU32, process_shared: bool) {
        let op = if process_shared {
            libc::FUTEX_WAKE
        } else {
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG
        };
        // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not
        // access memory through it beyond hashing its address.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), op, i32::MAX);
        }
    }
}

/// Thread parking on a process-wide condition variable: the portable
/// fallback where futexes are unavailable. In-process only (a waiter in
/// another process would sleep until its wait slice times out).
#[cfg(all(feature = "std", not(loom)))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Park;

#[cfg(all(feature = "std", not(loom)))]
static PARK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
#[cfg(all(feature = "std", not(loom)))]
static PARK_CV: std::sync::Condvar = std::sync::Condvar::new();

#[cfg(all(feature = "std", not(loom)))]
impl Notify for Park {
    const NEEDS_WAKE: bool = true;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
        _process_shared: bool,
    ) {
        let guard = PARK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that `wake` takes after changing the word,
        // so a wake cannot slip between this check and the sleep.
        if word.load(crate::sync::Ordering::SeqCst) != expected {
            return;
        }
        let timeout = timeout.unwrap_or(Duration::from_secs(3600));
        let _ = PARK_CV.wait_timeout(guard, timeout);
    }

    fn wake(&self, _word: &AtomicU32, _process_shared: bool) {
        drop(PARK_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
        PARK_CV.notify_all();
    }
}

/// The notifier [`Channel`](crate::Channel) uses by default: [`Futex`] on
/// Linux with `std`, [`Park`] elsewhere with `std`, [`Spin`] without `std`.
#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
pub type DefaultNotify = Futex;
/// The notifier [`Channel`](crate::Channel) uses by default: [`Futex`] on
/// Linux with `std`, [`Park`] elsewhere with `std`, [`Spin`] without `std`.
#[cfg(all(feature = "std", not(target_os = "linux"), not(loom)))]
pub type DefaultNotify = Park;
/// The notifier [`Channel`](crate::Channel) uses by default: [`Futex`] on
/// Linux with `std`, [`Park`] elsewhere with `std`, [`Spin`] without `std`.
#[cfg(any(not(feature = "std"), loom))]
pub type DefaultNotify = Spin;
