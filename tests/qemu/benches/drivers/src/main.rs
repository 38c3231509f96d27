//! User-space drivers measured in guest instructions (`cargo xtask bench`, QEMU with
//! `-icount shift=0 -rtc clock=vm`): the latency from a PL031 alarm interrupt being due
//! to the driver's `interrupt` hook running, with the CPU busy in a lower-priority thread
//! (the interrupt preempts it: exception entry, delivery to the driver's notification, a
//! switch to the driver, its event loop).
//!
//! The root task's main thread is the broker; a client thread at a priority below the
//! driver's sets alarms, spins past them and reads the driver's measurement.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_broker::Broker;
use kaal_user::cap::{Cap, Endpoint};
use kaal_user::ipc::Message;
use kaal_user::{BootInfo, println, sys, thread, time};

kaal_user::entry!(main);

const ALARM: u64 = 2;
const LATENCY: u64 = 4;
const ROUNDS: usize = 3;

fn request(clock: Cap<Endpoint>, label: u64, argument: u64) -> Option<u64> {
    let reply = clock.call(&Message::new(label, [argument, 0, 0, 0])).ok()?;
    (reply.info.label == 0).then_some(reply.words[0])
}

fn client(slot: usize) -> u64 {
    let clock = Cap::<Endpoint>::from_slot(slot as u64);
    let nanoseconds_per_tick = 1_000_000_000 / time::ticks_per_second();
    let mut latencies = [0u64; ROUNDS];
    for latency in &mut latencies {
        if request(clock, ALARM, 1).is_none() {
            println!("[bench] the driver refused an alarm");
            sys::debug_exit(1);
        }
        // Busy past the alarm: the interrupt preempts this thread.
        time::spin_for_micros(1_100_000);
        *latency = request(clock, LATENCY, 0).unwrap_or(0) * nanoseconds_per_tick;
    }
    latencies.sort_unstable();
    println!(
        "[bench] irq_to_driver_pl031: {} instructions",
        latencies[ROUNDS / 2]
    );
    println!("[bench] done");
    sys::debug_exit(0);
    0
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut broker = Broker::new(boot).expect("system description");
    broker.set_logging(false);
    broker.start_system().expect("components");
    let clock = broker.endpoint_named("clock").expect("endpoint `clock`");
    thread::spawn(client, clock.slot() as usize, 100).expect("client thread");
    broker.serve()
}
