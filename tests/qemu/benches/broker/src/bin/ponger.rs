//! Answers every message on ring `ping` (argument 0), `ping2` (1) or `ping3` (2) with the
//! message plus one on ring `pong`, `pong2` or `pong3`, until `u64::MAX`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

fn main(argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let (ping, pong) = match argument {
        0 => ("ping", "pong"),
        1 => ("ping2", "pong2"),
        _ => ("ping3", "pong3"),
    };
    let (Ok(mut ping), Ok(mut pong)) = (
        startup.consumer::<u64, 64>(ping),
        startup.producer::<u64, 64>(pong),
    ) else {
        return 11;
    };
    loop {
        match ping.pop() {
            Ok(u64::MAX) => return 0,
            Ok(value) => {
                if pong.push(value + 1).is_err() {
                    return 12;
                }
            }
            Err(_) => return 13,
        }
    }
}
