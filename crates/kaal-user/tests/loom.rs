//! Loom model of the runtime's lock (`src/sync/raw.rs`, compiled here with loom's
//! atomics) over a model of a KaaL notification.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p kaal-user --release --test loom
//! ```
//!
//! Loom explores every interleaving (up to a preemption bound) and every value an
//! atomic load may observe. Mutual exclusion is checked through a loom cell written in
//! the critical section (a second writer is reported as a data race); a lost wake-up
//! leaves a thread parked for ever, which loom reports as a deadlock.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// The atomics `raw.rs` uses (`super::shim` from inside it).
mod shim {
    pub use loom::sync::atomic::{AtomicU32, Ordering};
}

#[path = "../src/sync/raw.rs"]
#[allow(dead_code)]
mod raw;

use raw::{Park, RawLock, UNLOCKED};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// A notification: a sticky word. A signal with no waiter sets it and the next wait
/// takes it without sleeping; a wait sleeps until a signal. This model is weaker than
/// the kernel's (a new waiter may take a signal meant for one already asleep), so the
/// lock passing here passes with the kernel's too.
#[derive(Default)]
struct Notification {
    word: Mutex<bool>,
    waiters: Condvar,
}

impl Park for Notification {
    fn park(&self) {
        let mut word = self.word.lock().unwrap();
        while !*word {
            word = self.waiters.wait(word).unwrap();
        }
        *word = false;
    }

    fn unpark(&self) {
        *self.word.lock().unwrap() = true;
        self.waiters.notify_one();
    }
}

struct Shared {
    lock: RawLock,
    notification: Notification,
    value: UnsafeCell<u32>,
}

// SAFETY: `value` is only accessed with `lock` held (which loom checks).
unsafe impl Sync for Shared {}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lock: RawLock::with_state(loom::sync::atomic::AtomicU32::new(UNLOCKED)),
            notification: Notification::default(),
            value: UnsafeCell::new(0),
        })
    }

    fn increment(&self) {
        self.lock.lock(&self.notification);
        self.value.with_mut(|value| {
            // SAFETY: the lock is held, so this is the only access.
            unsafe { *value += 1 }
        });
        self.lock.unlock(&self.notification);
    }

    fn total(&self) -> u32 {
        // SAFETY: every other thread has been joined.
        self.value.with(|value| unsafe { *value })
    }
}

fn run(threads: usize, rounds: usize) {
    model(move || {
        let shared = Shared::new();
        let handles: Vec<_> = (1..threads)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    for _ in 0..rounds {
                        shared.increment();
                    }
                })
            })
            .collect();
        for _ in 0..rounds {
            shared.increment();
        }
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(shared.total(), (threads * rounds) as u32);
        assert_eq!(shared.lock.state(), UNLOCKED);
    });
}

#[test]
fn two_threads_exclude_each_other_and_always_wake() {
    run(2, 2);
}

#[test]
fn three_threads_exclude_each_other_and_always_wake() {
    run(3, 1);
}

/// A signal left over from an earlier hand-over makes a later wait return early; the
/// lock must stay correct.
#[test]
fn a_stale_signal_is_harmless() {
    model(|| {
        let shared = Shared::new();
        shared.notification.unpark();
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.increment())
        };
        shared.increment();
        other.join().unwrap();
        assert_eq!(shared.total(), 2);
    });
}
