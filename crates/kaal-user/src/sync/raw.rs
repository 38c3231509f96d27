//! The lock's state machine, apart from how a thread sleeps: three states in one atomic
//! word, after the classic futex mutex ("Futexes Are Tricky", mutex 2).
//!
//! * `UNLOCKED` (0): free.
//! * `LOCKED` (1): held, nobody sleeps or is about to sleep on it.
//! * `CONTENDED` (2): held, and a thread may be asleep (or about to sleep) on it, so the
//!   holder must wake one when it unlocks.
//!
//! Uncontended, `lock` is one compare-and-swap and `unlock` one swap. A thread that finds
//! the lock held marks it `CONTENDED` (a swap, which also takes the lock if it was free
//! meanwhile) and parks; an unlock that finds `CONTENDED` wakes one parked thread, which
//! retries. A woken thread that takes the lock keeps it `CONTENDED` (others may still
//! sleep), so its unlock wakes the next: wake-ups are handed on until nobody sleeps.
//!
//! A lost wake-up would need a thread to park after the unlock that should wake it. The
//! [`Park`] contract excludes it: a wake that comes before the park is kept (KaaL
//! notifications are sticky words), so that park returns at once and the thread retries.
//! A kept wake may also end a later, unrelated park early; the woken thread just retries.
//!
//! This file is also compiled by the crate's loom model (`tests/loom.rs`), which supplies
//! its own `super::shim` atomics.

use super::shim::{AtomicU32, Ordering};

/// Free.
pub const UNLOCKED: u32 = 0;
/// Held, no sleeper.
pub const LOCKED: u32 = 1;
/// Held, maybe with sleepers.
pub const CONTENDED: u32 = 2;

/// How a thread that must wait for a lock sleeps, and how it is woken.
///
/// Contract: an [`unpark`](Park::unpark) that comes before a [`park`](Park::park) is not
/// lost (that park returns without sleeping); `park` may also return early for no reason.
/// A `Park` that cannot sleep (it returns at once) turns the lock into a spin lock.
pub trait Park {
    /// Sleeps until [`unpark`](Park::unpark) (or returns early).
    fn park(&self);
    /// Wakes one parked thread, or makes the next `park` return at once.
    fn unpark(&self);
}

/// A lock without data: the state word.
#[derive(Debug)]
pub struct RawLock {
    state: AtomicU32,
}

impl RawLock {
    /// A lock in the state `state` (always [`UNLOCKED`] outside tests); takes the atomic
    /// so that a constant can build it.
    pub const fn with_state(state: AtomicU32) -> Self {
        Self { state }
    }

    /// Takes the lock if it is free; one compare-and-swap.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock, parking on `park` while another thread holds it.
    #[inline]
    pub fn lock(&self, park: &impl Park) {
        if !self.try_lock() {
            self.lock_contended(park);
        }
    }

    #[cold]
    fn lock_contended(&self, park: &impl Park) {
        // Marking it contended first means whoever holds it now wakes someone on unlock;
        // the swap also takes the lock if it became free (it then stays contended, as
        // other threads may sleep on it).
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            park.park();
        }
    }

    /// Releases the lock (only its holder may), waking one parked thread if any may
    /// sleep on it. One swap when uncontended.
    #[inline]
    pub fn unlock(&self, park: &impl Park) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            park.unpark();
        }
    }

    /// The state word ([`UNLOCKED`], [`LOCKED`] or [`CONTENDED`]): for tests.
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }
}
