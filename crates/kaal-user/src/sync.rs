//! A mutual-exclusion lock that sleeps in the kernel while another thread holds it.
//!
//! # Why not a spin lock
//!
//! The kernel schedules strict priorities on one CPU, and `yield` only gives the CPU to
//! threads of the yielding thread's own priority. A thread that spins on a lock held by a
//! preempted thread of lower priority therefore never lets the holder run: both stop for
//! good. The runtime's heap and slot allocator used spin locks, so a high-priority thread
//! that allocated while a low-priority one was in the middle of an allocation hung.
//!
//! # Design
//!
//! [`Mutex`] keeps a three-state word (free, held, held with sleepers; see the state
//! machine in `sync/raw.rs`) and a notification. Uncontended, taking the lock is one
//! compare-and-swap and releasing it one swap, with no system call. A thread that finds
//! it held marks it contended and waits on the notification, which blocks it in the
//! kernel so that the holder, whatever its priority, gets the CPU; the holder's unlock
//! sees the mark and signals the notification. The notification word is sticky: a signal
//! that comes before the wait is kept and ends that wait at once, so no wake-up is lost,
//! and a spare wake-up only makes a waiter check the lock again. Each lock has its own
//! notification: a signal wakes whichever thread waits first, so one notification shared
//! by two locks could wake a waiter of the wrong one and leave the right one asleep.
//!
//! Priority inheritance (raising the holder to the waiter's priority with
//! `tcb_set_priority`) was the alternative. It would need the holder's TCB capability
//! (the runtime has none for the main thread of a component, nor for threads made without
//! [`thread::spawn`](crate::thread::spawn)), the holder's base priority to restore, and
//! two system calls per contended hand-over even without contention from a thread of
//! higher priority; sleeping needs only a notification per lock.
//!
//! # Where the notifications come from
//!
//! A lock without a notification falls back to yielding while it waits, which is only
//! safe between threads of one priority. Two threads contend only once a second thread
//! exists, and [`thread::spawn`](crate::thread::spawn) makes threads from the task's
//! thread memory, so before it starts the task's first thread it retypes one notification
//! per runtime lock (heap and slot allocator) from that same memory
//! ([`prepare_runtime_locks`]). A task that starts threads some other way calls
//! [`prepare_runtime_locks`] itself first. The start-up record and the boot info need
//! nothing new, and a task that never starts a thread spends nothing.
//!
//! # What remains
//!
//! The kernel wakes waiters in the order they came, not by priority, and nothing bounds a
//! priority inversion: while a low-priority holder is preempted by a busy thread of
//! middle priority, a high-priority waiter waits too (it no longer deadlocks).

use crate::cap::{Cap, Notification, Untyped};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU8, AtomicU64};
use kaal_abi::Error;

mod raw;

mod shim {
    pub use core::sync::atomic::{AtomicU32, Ordering};
}

pub use raw::{CONTENDED, LOCKED, Park, RawLock, UNLOCKED};
use shim::{AtomicU32, Ordering};

/// Sleeps on the lock's notification (slot in the word; 0 for none: then it yields).
struct Sleeper<'a>(&'a AtomicU64);

impl Park for Sleeper<'_> {
    fn park(&self) {
        let slot = self.0.load(Ordering::Acquire);
        if slot == 0 || Cap::<Notification>::from_slot(slot).wait().is_err() {
            // No notification (or it is gone): the old behaviour, safe among threads of
            // one priority only.
            crate::sys::yield_now();
            core::hint::spin_loop();
        }
    }

    fn unpark(&self) {
        let slot = self.0.load(Ordering::Acquire);
        if slot != 0 {
            let _ = Cap::<Notification>::from_slot(slot).signal();
        }
    }
}

/// A lock around a `T` whose waiters sleep on a notification (see the [module
/// documentation](self)).
///
/// ```ignore
/// static COUNTER: kaal_user::sync::Mutex<u64> = kaal_user::sync::Mutex::new(0);
/// COUNTER.set_notification(untyped.retype_one(0)?);
/// *COUNTER.lock() += 1;
/// ```
pub struct Mutex<T> {
    lock: RawLock,
    /// Slot of the notification waiters sleep on; 0 until one is set.
    notification: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out the `T` to one thread at a time, so sharing the mutex only
// moves the `T` between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex without a notification (waiters yield until one is set).
    pub const fn new(value: T) -> Self {
        Self {
            lock: RawLock::with_state(AtomicU32::new(UNLOCKED)),
            notification: AtomicU64::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Makes waiters sleep on `notification` (which this lock alone must use, with the
    /// read and write rights). Set it before a second thread may take the lock: a thread
    /// already waiting without one may otherwise sleep unwoken.
    pub fn set_notification(&self, notification: Cap<Notification>) {
        self.notification
            .store(notification.slot(), Ordering::Release);
    }

    /// Whether waiters sleep on a notification.
    pub fn has_notification(&self) -> bool {
        self.notification.load(Ordering::Acquire) != 0
    }

    /// Takes the lock, sleeping while another thread holds it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock.lock(&Sleeper(&self.notification));
        MutexGuard { mutex: self }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // `then`, not `then_some`: a guard built eagerly would unlock when dropped.
        self.lock.try_lock().then(|| MutexGuard { mutex: self })
    }

    /// The lock's state word ([`UNLOCKED`], [`LOCKED`] or [`CONTENDED`]).
    pub fn state(&self) -> u32 {
        self.lock.state()
    }
}

impl<T> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex")
            .field("state", &self.lock.state())
            .field("notification", &self.notification.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The lock held; releases it when dropped.
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its thread holds the lock, so no other
        // reference to the value exists.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the
        // guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.lock.unlock(&Sleeper(&self.mutex.notification));
    }
}

impl<T> core::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MutexGuard").finish_non_exhaustive()
    }
}

const NOT_PREPARED: u8 = 0;
const PREPARING: u8 = 1;
const PREPARED: u8 = 2;
static RUNTIME_LOCKS: AtomicU8 = AtomicU8::new(NOT_PREPARED);

/// Gives each of the runtime's own locks (the heap's and the slot allocator's) a
/// notification retyped from `untyped`, unless it has one. [`thread::spawn`] calls it
/// with the thread memory before it starts the task's first thread; a task that starts
/// threads another way calls it before it does.
///
/// [`thread::spawn`]: crate::thread::spawn
///
/// # Errors
///
/// The retype's (out of memory or slots); the locks that got a notification keep it, the
/// next call retries the others.
pub fn prepare_runtime_locks(untyped: Cap<Untyped>) -> Result<(), Error> {
    if RUNTIME_LOCKS
        .compare_exchange(
            NOT_PREPARED,
            PREPARING,
            Ordering::Acquire,
            Ordering::Acquire,
        )
        .is_err()
    {
        // Done, or under way in another thread (which then started threads already).
        return Ok(());
    }
    let prepared = (|| {
        give_notification(&crate::cap::SLOTS, untyped)?;
        #[cfg(target_os = "none")]
        give_notification(crate::runtime::heap_lock(), untyped)?;
        Ok(())
    })();
    let state = if prepared.is_ok() {
        PREPARED
    } else {
        NOT_PREPARED
    };
    RUNTIME_LOCKS.store(state, Ordering::Release);
    prepared
}

fn give_notification<T>(lock: &Mutex<T>, untyped: Cap<Untyped>) -> Result<(), Error> {
    if !lock.has_notification() {
        lock.set_notification(untyped.retype_one(0)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::sync::{Arc, Condvar, Mutex as StdMutex};
    use std::vec::Vec;

    /// A sticky one-bit notification, like the kernel's.
    #[derive(Default)]
    struct Word(StdMutex<bool>, Condvar);

    impl Park for Word {
        fn park(&self) {
            let mut word = self.0.lock().unwrap();
            while !*word {
                word = self.1.wait(word).unwrap();
            }
            *word = false;
        }
        fn unpark(&self) {
            *self.0.lock().unwrap() = true;
            self.1.notify_one();
        }
    }

    /// Counts unparks, never sleeps.
    #[derive(Default)]
    struct Counter(core::sync::atomic::AtomicUsize);

    impl Park for Counter {
        fn park(&self) {}
        fn unpark(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn uncontended_lock_never_wakes() {
        let lock = RawLock::with_state(AtomicU32::new(UNLOCKED));
        let park = Counter::default();
        lock.lock(&park);
        assert_eq!(lock.state(), LOCKED);
        assert!(!lock.try_lock());
        lock.unlock(&park);
        assert_eq!(lock.state(), UNLOCKED);
        assert_eq!(park.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_waiter_marks_the_lock_and_the_unlock_wakes() {
        // A holder (state LOCKED) and a waiter whose park lets the holder unlock.
        let lock = RawLock::with_state(AtomicU32::new(LOCKED));
        struct UnlockOnPark<'a>(&'a RawLock, &'a Counter, core::cell::Cell<usize>);
        impl Park for UnlockOnPark<'_> {
            fn park(&self) {
                // The holder runs while the waiter sleeps: it sees the mark and wakes.
                assert_eq!(self.0.state(), CONTENDED);
                self.2.set(self.2.get() + 1);
                self.0.unlock(self.1);
            }
            fn unpark(&self) {
                unreachable!()
            }
        }
        let counter = Counter::default();
        let park = UnlockOnPark(&lock, &counter, core::cell::Cell::new(0));
        lock.lock(&park);
        assert_eq!(park.2.get(), 1, "parked once");
        assert_eq!(counter.0.load(Ordering::Relaxed), 1, "the unlock woke");
        // The woken thread keeps it marked: others may sleep on it.
        assert_eq!(lock.state(), CONTENDED);
        lock.unlock(&counter);
        assert_eq!(counter.0.load(Ordering::Relaxed), 2);
        assert_eq!(lock.state(), UNLOCKED);
    }

    #[test]
    fn a_wake_before_the_park_is_kept() {
        let word = Word::default();
        word.unpark();
        word.park(); // returns at once
        assert!(!*word.0.lock().unwrap());
    }

    #[test]
    fn threads_exclude_each_other() {
        struct Shared {
            lock: RawLock,
            park: Word,
            value: UnsafeCell<u64>,
        }
        // SAFETY: `value` is only touched with `lock` held.
        unsafe impl Sync for Shared {}
        let shared = Arc::new(Shared {
            lock: RawLock::with_state(AtomicU32::new(UNLOCKED)),
            park: Word::default(),
            value: UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        shared.lock.lock(&shared.park);
                        // SAFETY: the lock is held.
                        unsafe { *shared.value.get() += 1 };
                        shared.lock.unlock(&shared.park);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // SAFETY: every thread has ended.
        assert_eq!(unsafe { *shared.value.get() }, 40_000);
        assert_eq!(shared.lock.state(), UNLOCKED);
    }

    #[test]
    fn mutex_guards_its_value() {
        let mutex = Mutex::new(5u32);
        assert!(!mutex.has_notification());
        {
            let mut guard = mutex.lock();
            *guard += 1;
            assert!(mutex.try_lock().is_none());
            assert_eq!(mutex.state(), LOCKED);
        }
        assert_eq!(*mutex.try_lock().unwrap(), 6);
        assert_eq!(mutex.state(), UNLOCKED);
    }
}
