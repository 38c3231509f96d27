//! Two threads in one process: ordering, blocking, timeouts, closing.
#![cfg(all(feature = "std", not(loom)))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kaal_ipc::{Channel, DefaultNotify, Park, PopError, RecvError, SendError, SharedRing, Spin};

// Under Miri (each item interpreted, threads interleaved by it) far fewer.
const COUNT: u64 = if cfg!(miri) { 500 } else { 200_000 };

fn stream<W: kaal_ipc::Notify + Clone + Default + Send + 'static>(spin: u32) {
    let (mut tx, mut rx) = Channel::<u64, 64, W>::pair();
    tx.set_spin_limit(spin);
    rx.set_spin_limit(spin);
    let t = std::thread::spawn(move || {
        for i in 0..COUNT {
            tx.send(i).unwrap();
        }
    });
    for i in 0..COUNT {
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(i));
    }
    t.join().unwrap();
    assert_eq!(rx.recv(), Err(RecvError::Closed));
}

#[test]
fn default_notify_stream_in_order() {
    stream::<DefaultNotify>(kaal_ipc::DEFAULT_SPIN_LIMIT);
}

#[test]
fn default_notify_without_spinning_sleeps_and_wakes() {
    stream::<DefaultNotify>(0);
}

#[test]
fn park_notify_without_spinning() {
    stream::<Park>(0);
}

#[test]
fn spin_notify_stream() {
    stream::<Spin>(0);
}

/// Items of the batched stream.
const BATCHED: u32 = if cfg!(miri) { 2_000 } else { 100_000 };

#[test]
fn batches_across_threads_in_order() {
    let (mut tx, mut rx) = Arc::new(SharedRing::<u32, 128>::new()).split_arc().unwrap();
    let t = std::thread::spawn(move || {
        let mut next = 0u32;
        while next < BATCHED {
            let items: Vec<u32> = (next..(next + 37).min(BATCHED)).collect();
            let mut off = 0;
            while off < items.len() {
                off += tx.push_slice(&items[off..]).unwrap();
            }
            next += items.len() as u32;
        }
    });
    let mut expect = 0u32;
    while expect < BATCHED {
        match rx.read_chunk(50) {
            Ok(chunk) => {
                for &v in chunk.iter() {
                    assert_eq!(v, expect);
                    expect += 1;
                }
                chunk.release_all();
            }
            Err(e) => panic!("{e}"),
        }
    }
    t.join().unwrap();
    assert_eq!(rx.try_pop(), Err(PopError::Closed));
}

#[test]
fn timeouts_expire() {
    let (mut tx, mut rx) = Channel::<u8, 2>::pair();
    let start = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvError::Timeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let start = Instant::now();
    assert_eq!(
        tx.send_timeout(3, Duration::from_millis(30)),
        Err(SendError::Timeout(3))
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn closing_wakes_a_blocked_peer() {
    let (tx, mut rx) = Channel::<u8, 2>::pair();
    rx.set_spin_limit(0);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
    });
    let start = Instant::now();
    assert_eq!(rx.recv(), Err(RecvError::Closed));
    // Woken by the close, not by the periodic re-check.
    assert!(
        start.elapsed() < Duration::from_millis(90),
        "{:?}",
        start.elapsed()
    );
    t.join().unwrap();

    let (mut tx, rx) = Channel::<u8, 1>::pair();
    tx.set_spin_limit(0);
    tx.send(1).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
    });
    assert_eq!(tx.send(2), Err(SendError::Closed(2)));
    t.join().unwrap();
}

#[test]
fn static_channel_splits_once() {
    static CHANNEL: Channel<u16, 8> = Channel::new();
    let (mut tx, mut rx) = CHANNEL.try_split().unwrap();
    assert!(CHANNEL.try_split().is_err());
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        });
        for i in 0..1000 {
            assert_eq!(rx.recv(), Ok(i));
        }
    });
}

#[test]
fn non_copy_items_move_through() {
    let (mut tx, mut rx) = Channel::<String, 4>::pair();
    let t = std::thread::spawn(move || {
        for i in 0..1000 {
            tx.send(i.to_string()).unwrap();
        }
    });
    for i in 0..1000 {
        assert_eq!(rx.recv().unwrap(), i.to_string());
    }
    t.join().unwrap();
}

/// Blocking round trips where every wait sleeps, through the asymmetric
/// barrier on Linux (the waiter's `membarrier` standing in for the
/// publisher's fence). A lost wake shows as a round trip of a whole wait
/// slice (100 ms). The race a wrong barrier opens is too narrow for this to
/// prove the barrier right (the unit test `membarrier_pairs_with_a_compiler_fence`
/// checks the pairing itself); it checks the sleeping path end to end.
#[test]
fn sleeping_round_trips_lose_no_wake() {
    use std::time::{Duration, Instant};
    let (mut tx1, mut rx1) = Channel::<u64, 4>::pair();
    let (mut tx2, mut rx2) = Channel::<u64, 4>::pair();
    for spin in [
        &mut *tx1 as &mut dyn SetSpin,
        &mut *rx1,
        &mut *tx2,
        &mut *rx2,
    ] {
        spin.zero();
    }
    const ROUNDS: u64 = if cfg!(miri) { 100 } else { 3000 };
    let echo = std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            let v = rx1.recv().unwrap();
            tx2.send(v).unwrap();
        }
    });
    let mut stalls = 0;
    for i in 0..ROUNDS {
        let start = Instant::now();
        tx1.send(i).unwrap();
        assert_eq!(rx2.recv(), Ok(i));
        if start.elapsed() >= Duration::from_millis(95) {
            stalls += 1;
        }
    }
    echo.join().unwrap();
    // A loaded machine may deschedule a thread for that long once or twice;
    // a lost-wake bug stalls far more often.
    assert!(
        stalls <= 3,
        "{stalls} of {ROUNDS} round trips took a whole wait slice"
    );
}

trait SetSpin {
    fn zero(&mut self);
}
impl<R: kaal_ipc::RingHandle<u64, 4>> SetSpin
    for kaal_ipc::Producer<u64, 4, R, kaal_ipc::DefaultNotify>
{
    fn zero(&mut self) {
        self.set_spin_limit(0);
    }
}
impl<R: kaal_ipc::RingHandle<u64, 4>> SetSpin
    for kaal_ipc::Consumer<u64, 4, R, kaal_ipc::DefaultNotify>
{
    fn zero(&mut self) {
        self.set_spin_limit(0);
    }
}
