//! Loom models of the ring and of the notification protocol.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p kaal-ipc --release --test loom
//! ```
//!
//! Loom explores every interleaving (up to a preemption bound) and every
//! value a relaxed or acquire load may observe; it reports unsynchronised
//! slot access as a data race and a lost wake-up as a deadlock.
#![cfg(loom)]

use kaal_ipc::{AtomicU32, Notify, PopError, RecvError, SharedRing, Spin};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// A blocking notifier loom understands. It ignores timeouts on purpose: a
/// lost wake-up then blocks forever, which loom reports as a deadlock.
#[derive(Clone, Default)]
struct LoomNotify(Arc<(Mutex<()>, Condvar)>);

impl Notify for LoomNotify {
    const NEEDS_WAKE: bool = true;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        _timeout: Option<core::time::Duration>,
        _shared: bool,
    ) {
        let guard = self.0.0.lock().unwrap();
        if word.load(loom::sync::atomic::Ordering::SeqCst) == expected {
            drop(self.0.1.wait(guard).unwrap());
        }
    }

    fn wake(&self, _word: &AtomicU32, _shared: bool) {
        drop(self.0.0.lock().unwrap());
        self.0.1.notify_all();
    }
}

fn leak<T, const N: usize>() -> &'static mut SharedRing<T, N> {
    Box::leak(Box::new(SharedRing::new()))
}

#[test]
fn push_pop_keeps_order_and_never_races() {
    model(|| {
        let (mut tx, mut rx) = leak::<u32, 2>().split_with(Spin);
        let t = thread::spawn(move || {
            for i in 0..3 {
                let mut v = i;
                while let Err(e) = tx.try_push(v) {
                    v = e.into_inner();
                    thread::yield_now();
                }
            }
        });
        for i in 0..3 {
            loop {
                match rx.try_pop() {
                    Ok(v) => {
                        assert_eq!(v, i);
                        break;
                    }
                    Err(PopError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn slices_keep_order() {
    model(|| {
        let (mut tx, mut rx) = leak::<u32, 2>().split_with(Spin);
        let t = thread::spawn(move || {
            let items = [1, 2, 3];
            let mut off = 0;
            while off < items.len() {
                off += tx.push_slice(&items[off..]).unwrap();
                thread::yield_now();
            }
        });
        let mut got = Vec::new();
        let mut buf = [0; 2];
        while got.len() < 3 {
            let n = rx.pop_slice(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            thread::yield_now();
        }
        assert_eq!(got, [1, 2, 3]);
        t.join().unwrap();
    });
}

#[test]
fn blocking_send_recv_loses_no_wakeup() {
    model(|| {
        let (mut tx, mut rx) = leak::<u32, 1>().split_with(LoomNotify::default());
        tx.set_spin_limit(0);
        rx.set_spin_limit(0);
        let t = thread::spawn(move || {
            // Capacity 1: the second push waits for the consumer (full →
            // non-full wake); the consumer waits for each item (empty →
            // non-empty wake).
            tx.push(1).unwrap();
            tx.push(2).unwrap();
        });
        assert_eq!(rx.pop(), Ok(1));
        assert_eq!(rx.pop(), Ok(2));
        // The producer's drop closes the ring and must wake us too.
        assert_eq!(rx.pop(), Err(RecvError::Closed));
        t.join().unwrap();
    });
}
