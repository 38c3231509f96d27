//! The monitor: consumes the readings of the ring channel `samples` until the sensor
//! closes it, then asks the sensor over the endpoint `control` how many it sent and
//! checks that the counts and sums agree.
//!
//! What it may touch is granted in `system.toml` (`[components.monitor]`,
//! `[channels.samples]` with `to = "monitor"`, `[endpoints.control]` with
//! `clients = ["monitor"]`); it finds the grants by name in its start-up record.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt::Display;

use kaal_ipc::RecvError;
use kaal_user::ipc::Message;
use kaal_user::println;

kaal_user::component!(main);

/// Slots of channel `samples`: its `capacity` in `system.toml`.
const SLOTS: usize = 64;

/// The requests of endpoint `control` and their replies (as in the sensor).
mod control {
    /// Request: how many readings were sent? Reply: `[count, sum, 0, 0]`.
    pub const SENT: u64 = 1;
    /// Request: the client is done. Reply: empty; the sensor then ends.
    pub const DONE: u64 = 2;
    /// Reply label: done as asked.
    pub const OK: u64 = 0;
}

/// `arg` is the component's `arguments` in `system.toml`; the return value its exit
/// code, which the root task reports.
fn main(_arg: u64) -> i32 {
    match run() {
        Ok(()) => 0,
        Err(Failed) => 1,
    }
}

/// The monitor stopped early or found a mismatch (and said why).
struct Failed;

/// Prints what failed and why.
fn failed(what: &str, error: impl Display) -> Failed {
    println!("monitor: {what}: {error}");
    Failed
}

fn run() -> Result<(), Failed> {
    let startup = kaal_user::startup().map_err(|e| failed("no start-up record", e))?;
    let mut samples = startup
        .consumer::<u64, SLOTS>("samples")
        .map_err(|e| failed("channel `samples`", e))?;
    let control = startup
        .endpoint("control")
        .map_err(|e| failed("endpoint `control`", e))?;

    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        // Sleeps in the kernel while the ring is empty, until the sensor pushes more.
        // (`pop_slice` and `read_chunk` take many readings at once.)
        match samples.pop() {
            Ok(value) => {
                count += 1;
                sum += value;
            }
            // The sensor closed the channel and every reading has been taken.
            Err(RecvError::Closed) => break,
            Err(error) => return Err(failed("reading `samples`", error)),
        }
    }

    // Ask the sensor: a call sends the request and waits for the reply.
    let reply = control
        .call(&Message::new(control::SENT, [0; 4]))
        .map_err(|e| failed("control", e))?;
    let [sent, sent_sum, ..] = reply.words;
    let agrees = reply.info.label == control::OK && sent == count && sent_sum == sum;
    // Let the sensor end.
    control
        .call(&Message::new(control::DONE, [0; 4]))
        .map_err(|e| failed("control", e))?;
    if agrees {
        println!("monitor: {count} samples, sum {sum}; sensor agrees");
        Ok(())
    } else {
        println!("monitor: {count} samples, sum {sum}; sensor says {sent}, sum {sent_sum}");
        Err(Failed)
    }
}
