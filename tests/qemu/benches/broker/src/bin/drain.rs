//! Receives the 1,000,000-message stream in batches and reports the instructions per
//! message of the whole transfer (both sides and the kernel: the system has one CPU).
//! The transport is measured, not the application: values are checked at the ends of
//! each batch (message `i` carries `i % 1024`), the count exactly.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::{println, time};

kaal_user::component!(main);

const MESSAGES: u64 = 1_000_000;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let Ok(mut stream) = startup.consumer::<u64, 1024>("stream") else {
        return 11;
    };
    // The first message starts the clock.
    let Ok(0) = stream.pop() else {
        return 12;
    };
    // `pop` took message 0; the rest follow.
    let start = time::now_ticks();
    let mut expected = 1u64;
    let mut batch = [0u64; 1024];
    while expected < MESSAGES {
        let got = match stream.pop_slice(&mut batch) {
            Ok(0) => match stream.pop() {
                Ok(value) => {
                    batch[0] = value;
                    1
                }
                Err(_) => return 13,
            },
            Ok(got) => got,
            Err(_) => return 14,
        };
        let last = expected + got as u64 - 1;
        if batch[0] != expected % 1024 || batch[got - 1] != last % 1024 {
            return 15;
        }
        expected += got as u64;
    }
    let ticks = time::now_ticks() - start;
    let nanoseconds_per_tick = 1_000_000_000 / time::ticks_per_second();
    let total = ticks * nanoseconds_per_tick;
    println!(
        "[bench] ring_stream_per_u64_message: {} instructions",
        total / (MESSAGES - 1)
    );
    println!(
        "[bench] ring_stream_per_100_u64_messages: {} instructions",
        total * 100 / (MESSAGES - 1)
    );
    0
}
