//! The sensor: pushes 1,000 readings into the ring channel `samples` and closes it, then
//! serves the endpoint `control`, answering how many readings it sent and their sum,
//! until its client says it is done.
//!
//! What it may touch is granted in `system.toml` (`[components.sensor]`,
//! `[channels.samples]` with `from = "sensor"`, `[endpoints.control]` with
//! `server = "sensor"`); it finds the grants by name in its start-up record.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt::Display;

use kaal_user::ipc::{self, Message};
use kaal_user::println;

kaal_user::component!(main);

/// Readings to produce.
const READINGS: u64 = 1000;
/// Slots of channel `samples`: its `capacity` in `system.toml`.
const SLOTS: usize = 64;

/// The requests of endpoint `control` and their replies (the monitor has a copy).
mod control {
    /// Request: how many readings were sent? Reply: `[count, sum, 0, 0]`.
    pub const SENT: u64 = 1;
    /// Request: the client is done. Reply: empty; the sensor then ends.
    pub const DONE: u64 = 2;
    /// Reply label: done as asked.
    pub const OK: u64 = 0;
    /// Reply label: unknown request.
    pub const UNKNOWN: u64 = 1;
}

/// `arg` is the component's `arguments` in `system.toml`; the return value its exit
/// code, which the root task reports.
fn main(_arg: u64) -> i32 {
    match run() {
        Ok(()) => 0,
        Err(Failed) => 1,
    }
}

/// The sensor stopped early (and said why).
struct Failed;

/// Prints what failed and why.
fn failed(what: &str, error: impl Display) -> Failed {
    println!("sensor: {what}: {error}");
    Failed
}

fn run() -> Result<(), Failed> {
    let startup = kaal_user::startup().map_err(|e| failed("no start-up record", e))?;
    let mut samples = startup
        .producer::<u64, SLOTS>("samples")
        .map_err(|e| failed("channel `samples`", e))?;
    let control = startup
        .serve("control")
        .map_err(|e| failed("endpoint `control`", e))?;

    let mut sum = 0u64;
    for i in 0..READINGS {
        let value = reading(i);
        // Sleeps in the kernel while the ring is full, until the monitor makes room.
        // (`push_slice` and `write_chunk` move many readings at once.)
        samples
            .push(value)
            .map_err(|e| failed("pushing into `samples`", e))?;
        sum += value;
    }
    // Closing the channel tells the monitor that no more readings will come.
    drop(samples);
    println!("sensor: sent {READINGS} readings");

    // Serve `control`: wait for a call, reply and wait for the next one in one step.
    let mut request = control.recv().map_err(|e| failed("control", e))?;
    loop {
        let reply = match request.message.info.label {
            control::SENT => Message::new(control::OK, [READINGS, sum, 0, 0]),
            control::DONE => {
                ipc::reply(&Message::new(control::OK, [0; 4])).map_err(|e| failed("control", e))?;
                return Ok(());
            }
            _ => Message::new(control::UNKNOWN, [0; 4]),
        };
        request = control
            .reply_recv(&reply)
            .map_err(|e| failed("control", e))?;
    }
}

/// The `i`-th reading: a temperature in millidegrees Celsius, wandering around 21 °C.
fn reading(i: u64) -> u64 {
    21_000 + (i * 7919) % 500
}
