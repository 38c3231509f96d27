//! Consumes channel `stream` while its producer crashes and is restarted 100 times:
//! every number must arrive exactly once, in order, and the restarts must show through
//! the ring's generation counter.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::println;
use kaal_user::startup::PeerState;

kaal_user::component!(main);

const TOTAL: u64 = 100 * 300 + 10_000;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let mut stream = match startup.consumer::<u64, 256>("stream") {
        Ok(stream) => stream,
        Err(error) => {
            println!("[checker] no channel: {error}");
            return 11;
        }
    };
    let mut batch = [0u64; 64];
    let mut expected = 0u64;
    // The producer's generation counts its attachments: 1 for its first life.
    let mut producer_generation = 0u32;
    while expected < TOTAL {
        if let PeerState::Restarted { current, .. } = stream.peer_state() {
            producer_generation = current;
            stream.acknowledge_peer();
        }
        let got = match stream.pop_slice(&mut batch) {
            Ok(0) => match stream.pop() {
                Ok(value) => {
                    batch[0] = value;
                    1
                }
                Err(error) => {
                    println!("[checker] pop failed at {expected}: {error:?}");
                    return 12;
                }
            },
            Ok(got) => got,
            Err(error) => {
                println!("[checker] pop_slice failed at {expected}: {error:?}");
                return 13;
            }
        };
        for &value in &batch[..got] {
            if value != expected {
                println!("[checker] message {expected} arrived as {value:#x}");
                return 14;
            }
            expected += 1;
        }
    }
    if let PeerState::Restarted { current, .. } = stream.peer_state() {
        producer_generation = current;
    }
    let restarts = producer_generation.saturating_sub(1);
    println!(
        "[checker] {expected} messages, each once and in order; producer restarts seen through the ring: {restarts}"
    );
    if restarts != 100 {
        return 15;
    }
    0
}
