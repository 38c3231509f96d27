//! Pushes 0..1,000,000 into channel `numbers` in batches, sleeping in the kernel when
//! the ring is full.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

/// Messages in the stream (the sink checks the same number).
const MESSAGES: u64 = 1_000_000;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let mut numbers = match startup.producer::<u64, 1024>("numbers") {
        Ok(numbers) => numbers,
        Err(error) => {
            kaal_user::println!("[source] no channel: {error}");
            return 11;
        }
    };
    let mut next = 0u64;
    while next < MESSAGES {
        let Ok(mut chunk) = numbers.write_chunk(256) else {
            return 12;
        };
        let room = (chunk.len() as u64).min(MESSAGES - next);
        if room == 0 {
            drop(chunk);
            // Full: sleep until the sink makes room.
            if numbers.push(next).is_err() {
                return 13;
            }
            next += 1;
            continue;
        }
        chunk.fill_from_iter(next..next + room);
        chunk.commit();
        next += room;
    }
    0
}
