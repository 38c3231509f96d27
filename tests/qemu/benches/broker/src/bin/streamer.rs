//! Once told to `go`, streams 1,000,000 messages into ring `stream` in batches copied
//! from a buffer: message `i` carries `i % 1024`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

const MESSAGES: u64 = 1_000_000;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let (Ok(mut go), Ok(mut stream)) = (
        startup.consumer::<u64, 1>("go"),
        startup.producer::<u64, 1024>("stream"),
    ) else {
        return 11;
    };
    if go.pop().is_err() {
        return 12;
    }
    let pattern: [u64; 2048] = core::array::from_fn(|i| i as u64 % 1024);
    let mut next = 0u64;
    while next < MESSAGES {
        let offset = (next % 1024) as usize;
        let want = (MESSAGES - next).min(1024) as usize;
        match stream.push_slice(&pattern[offset..offset + want]) {
            Ok(0) => {
                // Full: sleep until the drain makes room.
                if stream.push(next % 1024).is_err() {
                    return 14;
                }
                next += 1;
            }
            Ok(sent) => next += sent as u64,
            Err(_) => return 13,
        }
    }
    0
}
