//! Pops 1,000,000 messages from channel `numbers`, checking order and count.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

const MESSAGES: u64 = 1_000_000;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let mut numbers = match startup.consumer::<u64, 1024>("numbers") {
        Ok(numbers) => numbers,
        Err(error) => {
            kaal_user::println!("[sink] no channel: {error}");
            return 11;
        }
    };
    let mut batch = [0u64; 256];
    let mut expected = 0u64;
    while expected < MESSAGES {
        let got = match numbers.pop_slice(&mut batch) {
            Ok(0) => match numbers.pop() {
                // Empty: sleep until the source commits.
                Ok(value) => {
                    batch[0] = value;
                    1
                }
                Err(_) => return 12,
            },
            Ok(got) => got,
            Err(_) => return 13,
        };
        for &value in &batch[..got] {
            if value != expected {
                kaal_user::println!("[sink] message {expected} arrived as {value}");
                return 14;
            }
            expected += 1;
        }
    }
    kaal_user::println!("[sink] {expected} messages in order");
    0
}
