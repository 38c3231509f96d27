//! A peer process killed with SIGKILL mid-stream: the other side's blocking
//! call returns `PeerGone` within a second, every time; a restarted producer
//! process is seen as restarted.
#![cfg(all(feature = "std", target_os = "linux", not(loom)))]

use std::time::{Duration, Instant};

use kaal_ipc::shm::SharedMemory;
use kaal_ipc::{Futex, PeerState, RecvError, SendError, SharedRing, Spin};

const N: usize = 64;
const ROUNDS: usize = 100;
const BOUND: Duration = Duration::from_secs(1);

/// Forks; the child runs `body` (atomics, copies and futex calls only: no
/// allocation or locks after `fork` in a threaded test) and leaves with
/// `_exit`.
fn fork(body: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `body`, restricted as documented, then
    // `_exit`s without unwinding or running atexit hooks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = body();
        // SAFETY: see above.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn kill_and_reap_later(pid: libc::pid_t) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// The consumer (this process) blocks in `pop` with no timeout; the producer
/// process streams items and is killed mid-stream.
#[test]
fn killed_producer_wakes_the_blocked_consumer_with_peer_gone() {
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let mut mem =
            SharedMemory::create(c"kaal-ipc-death", SharedRing::<u64, N>::REGION_SIZE).unwrap();
        let region = mem.as_ptr();
        let len = mem.len();
        let mut rx = mem
            .init_ring::<u64, N>()
            .unwrap()
            .into_consumer(Futex)
            .unwrap();
        let pid = fork(move || {
            // SAFETY: the child's copy of the mapping, attached once in the
            // child (the parent's consumer is not used here).
            let Ok(ring) = (unsafe { SharedRing::<u64, N>::attach(region, len) }) else {
                return 10;
            };
            let Ok(mut tx) = ring.into_producer(Futex) else {
                return 11;
            };
            let mut i = 0u64;
            loop {
                if tx.push(i).is_err() {
                    return 12;
                }
                i += 1;
            }
        });
        let mut expect = 0u64;
        while expect < 1000 + round as u64 {
            assert_eq!(rx.pop(), Ok(expect), "round {round}");
            expect += 1;
        }
        kill_and_reap_later(pid);
        let killed = Instant::now();
        loop {
            match rx.pop() {
                Ok(item) => assert_eq!(item, expect, "round {round}: order"),
                Err(RecvError::PeerGone) => break,
                Err(e) => panic!("round {round}: {e}"),
            }
            expect += 1;
        }
        let took = killed.elapsed();
        assert!(took < BOUND, "round {round}: PeerGone after {took:?}");
        slowest = slowest.max(took);
        assert_eq!(rx.peer_state(), PeerState::Gone);
        let status = reap(pid);
        assert!(
            libc::WIFSIGNALED(status),
            "round {round}: child exited on its own"
        );
    }
    eprintln!("{ROUNDS} killed producers; slowest PeerGone {slowest:?} after the kill");
}

/// The producer (this process) blocks in `push` on a full ring; the consumer
/// process is killed mid-stream. Spinning waits detect it too.
#[test]
fn killed_consumer_wakes_the_blocked_producer_with_peer_gone() {
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let mut mem =
            SharedMemory::create(c"kaal-ipc-death", SharedRing::<u64, N>::REGION_SIZE).unwrap();
        let notify = if round % 2 == 0 { Some(Futex) } else { None };
        let region = mem.as_ptr();
        let len = mem.len();
        let attached = mem.init_ring::<u64, N>().unwrap();
        let pid;
        let outcome = match notify {
            Some(futex) => {
                let mut tx = attached.into_producer(futex).unwrap();
                pid = fork(move || consume_forever(region, len));
                run_producer_until_gone(pid, |i| tx.push(i))
            }
            None => {
                let mut tx = attached.into_producer(Spin).unwrap();
                pid = fork(move || consume_forever(region, len));
                run_producer_until_gone(pid, |i| tx.push(i))
            }
        };
        let took = outcome.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(took < BOUND, "round {round}: PeerGone after {took:?}");
        slowest = slowest.max(took);
        let status = reap(pid);
        assert!(
            libc::WIFSIGNALED(status),
            "round {round}: child exited on its own"
        );
    }
    eprintln!("{ROUNDS} killed consumers; slowest PeerGone {slowest:?} after the kill");
}

fn consume_forever(region: *mut u8, len: usize) -> i32 {
    // SAFETY: the child's copy of the mapping, attached once in the child.
    let Ok(ring) = (unsafe { SharedRing::<u64, N>::attach(region, len) }) else {
        return 10;
    };
    let Ok(mut rx) = ring.into_consumer(Futex) else {
        return 11;
    };
    let mut expect = 0;
    loop {
        match rx.pop() {
            Ok(item) if item == expect => expect += 1,
            _ => return 12,
        }
    }
}

/// Pushes a stream, kills the consumer process after a while, and returns
/// how long the blocked `push` took to report `PeerGone` after the kill.
fn run_producer_until_gone(
    pid: libc::pid_t,
    mut push: impl FnMut(u64) -> Result<(), SendError<u64>>,
) -> Result<Duration, String> {
    let mut i = 0u64;
    while i < 2000 {
        push(i).map_err(|e| format!("before the kill: {e}"))?;
        i += 1;
    }
    kill_and_reap_later(pid);
    let killed = Instant::now();
    loop {
        match push(i) {
            Ok(()) => i += 1,
            Err(SendError::PeerGone(item)) if item == i => return Ok(killed.elapsed()),
            Err(e) => return Err(format!("after the kill: {e}")),
        }
        if killed.elapsed() > 10 * BOUND {
            return Err("push kept succeeding".into());
        }
    }
}

/// A producer process that dies and a new one that attaches: the consumer,
/// which never asked about its peer before, sees the restart and receives
/// both processes' items in order.
#[test]
fn restarted_producer_process_is_seen_as_restarted() {
    let mut mem =
        SharedMemory::create(c"kaal-ipc-restart", SharedRing::<u64, N>::REGION_SIZE).unwrap();
    let region = mem.as_ptr();
    let len = mem.len();
    let mut rx = mem
        .init_ring::<u64, N>()
        .unwrap()
        .into_consumer(Futex)
        .unwrap();
    for life in 0..2u64 {
        let pid = fork(move || {
            // SAFETY: the child's copy of the mapping, attached once.
            let Ok(ring) = (unsafe { SharedRing::<u64, N>::attach(region, len) }) else {
                return 10;
            };
            let Ok(mut tx) = ring.into_producer(Futex) else {
                return 11;
            };
            let base = u64::from(tx.position());
            for i in 0..10 {
                if tx.try_push(life * 100 + base + i).is_err() {
                    return 12;
                }
            }
            // Dies without closing its end.
            std::mem::forget(tx);
            0
        });
        assert_eq!(reap(pid), 0);
    }
    assert_eq!(
        rx.peer_state(),
        PeerState::Restarted {
            seen: 1,
            current: 2
        }
    );
    let items: Vec<u64> = (0..20).map(|_| rx.pop().unwrap()).collect();
    let expected: Vec<u64> = (0..10).chain(110..120).collect();
    assert_eq!(items, expected);
    rx.acknowledge_peer();
    assert_eq!(
        rx.peer_state(),
        PeerState::Gone,
        "the second life exited too"
    );
    assert_eq!(rx.pop(), Err(RecvError::PeerGone));
}
