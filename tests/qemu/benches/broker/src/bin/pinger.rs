//! Sends one message over ring `ping` and waits for the answer on ring `pong`, `N`
//! times: the round trip between two processes with KaaL notifications.
//!
//! Two pairs run one after the other. Argument 0: the pair whose two sides have the same
//! priority; when done it tells the next pinger over ring `next`. Argument 1: the pair
//! whose answering side (the server) runs above the client; it waits for `next` first,
//! and when done tells the streamer to start over ring `go`. Argument 2 (`bench-cores`):
//! rings `ping3` and `pong3` to a ponger on another CPU.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::{println, time};

kaal_user::component!(main);

const N: u64 = 10_000;

fn main(argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let (ping, pong, after, name) = match argument {
        0 => (
            "ping",
            "pong",
            Some("next"),
            "ring_round_trip_two_processes",
        ),
        1 => (
            "ping2",
            "pong2",
            Some("go"),
            "ring_round_trip_server_above_client",
        ),
        // `bench-cores`: the answering side on another CPU, nothing before or after.
        _ => (
            "ping3",
            "pong3",
            None,
            "ring_round_trip_components_cross_cpu",
        ),
    };
    let (Ok(mut ping), Ok(mut pong)) = (
        startup.producer::<u64, 64>(ping),
        startup.consumer::<u64, 64>(pong),
    ) else {
        return 11;
    };
    let mut after = match after {
        Some(after) => match startup.producer::<u64, 1>(after) {
            Ok(after) => Some(after),
            Err(_) => return 11,
        },
        None => None,
    };
    if argument == 1 {
        let Ok(mut before) = startup.consumer::<u64, 1>("next") else {
            return 11;
        };
        if before.pop().is_err() {
            return 11;
        }
    }
    // Warm up (both sides attached and running).
    for i in 0..100 {
        if ping.push(i).is_err() || pong.pop() != Ok(i + 1) {
            return 12;
        }
    }
    let start = time::now_ticks();
    for i in 0..N {
        if ping.push(i).is_err() || pong.pop() != Ok(i + 1) {
            return 13;
        }
    }
    let ticks = time::now_ticks() - start;
    let nanoseconds_per_tick = 1_000_000_000 / time::ticks_per_second();
    println!(
        "[bench] {name}: {} instructions",
        ticks * nanoseconds_per_tick / N
    );
    if ping.push(u64::MAX).is_err() || after.as_mut().is_some_and(|after| after.push(1).is_err()) {
        return 14;
    }
    0
}
