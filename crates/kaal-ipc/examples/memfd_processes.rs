//! Two Linux processes sharing a memfd: this process creates the ring and
//! sends 10 million messages; a child process (this same program, started
//! with `receive <fd>`) maps the memfd, receives them and verifies order and
//! count.
//!
//! ```text
//! cargo run --release -p kaal-ipc --features std --example memfd_processes [COUNT]
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use kaal_ipc::shm::SharedMemory;
use kaal_ipc::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use kaal_ipc::{Futex, RecvError, SharedRing};

/// The message: valid for every bit pattern, so a corrupt peer can only
/// produce wrong values, which the receiver detects.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Msg {
    seq: u64,
    check: u64,
}

const N: usize = 4096;
type Ring = SharedRing<Msg, N>;

fn check(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("receive") {
        return receive(&args[2], &args[3]);
    }
    let count: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);

    let mut mem = SharedMemory::create(c"kaal-ipc-example", Ring::REGION_SIZE).expect("memfd");
    // The child inherits the memfd under the same number (it is close-on-exec
    // until made inheritable).
    mem.set_inheritable(true).expect("inheritable memfd");
    let fd = mem.fd().as_raw_fd();
    let mut tx = mem
        .init_ring::<Msg, N>()
        .expect("init ring")
        .into_producer(Futex)
        .expect("producer");

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["receive", &fd.to_string(), &count.to_string()])
        .spawn()
        .expect("spawn receiver");

    let start = Instant::now();
    for seq in 0..count {
        if let Err(e) = tx.push_timeout(
            Msg {
                seq,
                check: check(seq),
            },
            Duration::from_secs(10),
        ) {
            eprintln!("sender: {e} at message {seq}");
            let _ = child.kill();
            let _ = child.wait();
            return ExitCode::FAILURE;
        }
    }
    drop(tx); // marks the producer closed and wakes the receiver
    let sent = start.elapsed();
    let status = child.wait().expect("wait for receiver");
    println!(
        "sender: {count} messages of {} bytes in {:.3} s ({:.1} M msg/s)",
        size_of::<Msg>(),
        sent.as_secs_f64(),
        count as f64 / sent.as_secs_f64() / 1e6
    );
    if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("receiver failed: {status}");
        ExitCode::FAILURE
    }
}

fn receive(fd: &str, count: &str) -> ExitCode {
    let fd: i32 = fd.parse().expect("fd number");
    let count: u64 = count.parse().expect("count");
    // SAFETY: the parent passed this inherited descriptor for us to own, and
    // this process maps it once.
    let mut mem = unsafe { SharedMemory::from_fd(OwnedFd::from_raw_fd(fd)) }.expect("map memfd");
    let mut rx = match mem.attach_ring::<Msg, N>() {
        Ok(ring) => ring.into_consumer(Futex).expect("consumer"),
        Err(e) => {
            eprintln!("receiver: cannot attach: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let mut expect = 0u64;
    loop {
        match rx.pop_timeout(Duration::from_secs(10)) {
            Ok(m) if m.seq == expect && m.check == check(expect) => expect += 1,
            Ok(m) => {
                eprintln!("receiver: got {m:?}, expected sequence {expect}");
                return ExitCode::FAILURE;
            }
            Err(RecvError::Closed) => break,
            Err(e) => {
                eprintln!("receiver: {e} after {expect} messages");
                return ExitCode::FAILURE;
            }
        }
    }
    let t = start.elapsed();
    println!(
        "receiver: {expect} messages in order in {:.3} s ({:.1} M msg/s)",
        t.as_secs_f64(),
        expect as f64 / t.as_secs_f64() / 1e6
    );
    if expect == count {
        ExitCode::SUCCESS
    } else {
        eprintln!("receiver: expected {count} messages");
        ExitCode::FAILURE
    }
}
