//! Two processes sharing a memfd: the parent sends, a forked child receives
//! and verifies order and count. (The 10-million-message version is the
//! `memfd_processes` example.)
#![cfg(all(feature = "std", target_os = "linux", not(loom)))]

use std::time::Duration;

use kaal_ipc::shm::SharedMemory;
use kaal_ipc::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use kaal_ipc::{Futex, RecvError, SharedRing};

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Msg {
    seq: u64,
    check: u64,
}

const N: usize = 256;
const COUNT: u64 = 200_000;

fn check(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5
}

/// Runs in the forked child: only atomics, copies and futex calls, no
/// allocation or locks, then `_exit` with a status the parent checks.
fn child(mem: &mut SharedMemory) -> i32 {
    let Ok(ring) = mem.attach_ring::<Msg, N>() else {
        return 10;
    };
    let Ok(mut rx) = ring.into_consumer(Futex) else {
        return 11;
    };
    let mut expect = 0u64;
    loop {
        match rx.pop_timeout(Duration::from_secs(20)) {
            Ok(m) => {
                if m.seq != expect || m.check != check(expect) {
                    return 12;
                }
                expect += 1;
            }
            Err(RecvError::Closed) => break,
            Err(_) => return 13,
        }
    }
    if expect == COUNT { 0 } else { 14 }
}

#[test]
fn fork_memfd_200k_messages() {
    let mut mem =
        SharedMemory::create(c"kaal-ipc-test", SharedRing::<Msg, N>::REGION_SIZE).unwrap();
    let ring = mem.init_ring::<Msg, N>().unwrap();
    let mut tx = ring.into_producer(Futex).unwrap();

    // SAFETY: the child only runs `child` (no allocation, no locks) and
    // leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child's copy of `tx` must not run its destructor (it would
        // mark the producer closed); forget it and attach as consumer.
        std::mem::forget(tx);
        let code = child(&mut mem);
        // SAFETY: terminating the child without unwinding or atexit hooks.
        unsafe { libc::_exit(code) };
    }

    for seq in 0..COUNT {
        tx.push_timeout(
            Msg {
                seq,
                check: check(seq),
            },
            Duration::from_secs(20),
        )
        .unwrap();
    }
    drop(tx); // closes the ring; the child drains and exits

    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: {status}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "child reported a failure");
}
