//! Streams numbers into channel `stream` and crashes on purpose mid-stream in each of
//! its first 100 lives, leaving a half-written (uncommitted) batch behind. Every life
//! resumes its numbering at the ring's position, so what was committed before a crash
//! is neither lost nor sent again.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

/// Lives that end in a crash.
const CRASHES: u32 = 100;
/// Messages each crashing life commits before it crashes.
const PER_LIFE: u64 = 300;
/// Messages in the whole stream (the checker expects the same number).
const TOTAL: u64 = CRASHES as u64 * PER_LIFE + 10_000;

fn push_until(
    stream: &mut kaal_user::startup::ChannelProducer<u64, 256>,
    end: u64,
) -> Result<(), i32> {
    let mut next = u64::from(stream.position());
    while next < end {
        let mut chunk = stream.write_chunk(64).map_err(|_| 12)?;
        let room = (chunk.len() as u64).min(end - next);
        if room == 0 {
            drop(chunk);
            stream.push(next).map_err(|_| 13)?;
            next += 1;
            continue;
        }
        chunk.fill_from_iter(next..next + room);
        chunk.commit();
        next += room;
    }
    Ok(())
}

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let mut stream = match startup.producer::<u64, 256>("stream") {
        Ok(stream) => stream,
        Err(error) => {
            kaal_user::println!("[crasher] no channel: {error}");
            return 11;
        }
    };
    let life = startup.generation();
    if life < CRASHES {
        let end = u64::from(stream.position()) + PER_LIFE;
        if let Err(code) = push_until(&mut stream, end.min(TOTAL)) {
            return code;
        }
        // A batch written but never committed: the checker must not see it.
        if let Ok(mut chunk) = stream.write_chunk(32) {
            chunk.fill_from_iter(core::iter::repeat(u64::MAX));
            core::mem::forget(chunk);
        }
        kaal_user::sys::raise_memory_fault();
    }
    match push_until(&mut stream, TOTAL) {
        Ok(()) => 0,
        Err(code) => code,
    }
}
