//! Kernel micro-benchmarks, run by `cargo xtask bench` under
//! `qemu-system-aarch64 -machine virt -cpu cortex-a53 -smp 1 -icount shift=0`, where each
//! guest instruction advances virtual time by exactly 1 ns: counter ticks around `N`
//! operations give deterministic instruction counts. Prints
//! `[bench] NAME: X instructions` per operation, the loop's own cost subtracted.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kaal_abi::{rights, slots};
use kaal_user::cap::{self, Cap, Endpoint, Notification, Tcb, Untyped};
use kaal_user::ipc::Message;
use kaal_user::process::{FIRST_FREE_SLOT, Process};
use kaal_user::{BootInfo, println, sys, thread, time};

kaal_user::entry!(main);

const N: u64 = 20_000;
const PRIORITY: u8 = 128;

/// Nanoseconds (= guest instructions under `-icount shift=0`) per counter tick.
fn nanoseconds_per_tick() -> u64 {
    1_000_000_000 / time::ticks_per_second()
}

/// Instructions per iteration of `body`, run `N` times.
fn per_operation(mut body: impl FnMut()) -> u64 {
    body(); // warm up
    let start = time::now_ticks();
    for _ in 0..N {
        body();
    }
    (time::now_ticks() - start) * nanoseconds_per_tick() / N
}

static STOP: AtomicBool = AtomicBool::new(false);
static SLOT: AtomicU64 = AtomicU64::new(0);

fn report(name: &str, instructions: u64) {
    println!("[bench] {name}: {instructions} instructions");
}

fn main(boot: &BootInfo<'_>) -> i32 {
    // The virtual counter starts at reset and counts nanoseconds, one per instruction
    // under `-icount shift=0`: the boot so far, through the runtime's start-up.
    let booted = time::now_ticks() * nanoseconds_per_tick();
    println!(
        "[bench] boot_to_root_task_main: {booted} instructions (from reset: kernel boot, root task loading and its runtime's start-up)"
    );
    let untyped: Cap<Untyped> = cap::largest_ram_untyped(boot).expect("RAM untyped");
    let overhead = per_operation(|| {
        black_box(0);
    });
    println!(
        "[bench] loop overhead {overhead} instructions, {} ns per counter tick",
        nanoseconds_per_tick()
    );

    let null = per_operation(|| {
        black_box(sys::thread_id());
    });
    report("null_syscall", null.saturating_sub(overhead));

    // Client-observed call + reply-receive round trip to a server of the same priority.
    let endpoint: Cap<Endpoint> = untyped.retype_one(0).expect("endpoint");
    SLOT.store(endpoint.slot(), Ordering::SeqCst);
    let server = thread::spawn(
        |_| {
            let endpoint = Cap::<Endpoint>::from_slot(SLOT.load(Ordering::SeqCst));
            let Ok(mut received) = endpoint.recv() else {
                return 1;
            };
            loop {
                let reply = Message::new(0, [received.message.words[0] + 1, 0, 0, 0]);
                received = match endpoint.reply_recv(&reply) {
                    Ok(r) => r,
                    Err(_) => return 2,
                };
            }
        },
        0,
        PRIORITY,
    )
    .expect("server");
    let request = Message::new(0, [1, 2, 3, 4]);
    let round_trip = per_operation(|| {
        black_box(endpoint.call(&request).ok());
    });
    report(
        "call_reply_recv_round_trip",
        round_trip.saturating_sub(overhead),
    );
    server.tcb().suspend().expect("stop the server");

    // The same round trip with the server in a process of its own (address space,
    // CSpace, thread: `round-trip-server`, which runs the loop above): each half of the
    // round trip switches address spaces. Same priority, same messages; a fresh endpoint
    // (the suspended server thread above may still be queued on the first).
    let endpoint: Cap<Endpoint> = untyped.retype_one(0).expect("endpoint");
    let archive = kaal_user::components().expect("component archive");
    let image = archive
        .get("round-trip-server")
        .expect("no round-trip-server in the archive");
    let process = Process::create(untyped, image, 6).expect("server process");
    endpoint
        .copy_to(process.cnode(), FIRST_FREE_SLOT, rights::READ)
        .expect("endpoint for the server process");
    process
        .start(0, PRIORITY)
        .expect("start the server process");
    let round_trip = per_operation(|| {
        black_box(endpoint.call(&request).ok());
    });
    report(
        "call_reply_recv_round_trip_two_processes",
        round_trip.saturating_sub(overhead),
    );
    process.tcb().suspend().expect("stop the server process");

    // Yield to another thread of the same priority (which yields straight back).
    let _partner = thread::spawn(
        |_| {
            while !STOP.load(Ordering::Relaxed) {
                sys::yield_now();
            }
            0
        },
        0,
        PRIORITY,
    )
    .expect("partner");
    sys::yield_now();
    let two_yields = per_operation(sys::yield_now);
    report(
        "yield_to_same_priority",
        two_yields.saturating_sub(overhead) / 2,
    );
    STOP.store(true, Ordering::SeqCst);
    sys::yield_now();

    // Signal a notification that a higher-priority thread waits on: the waiter runs at
    // once, then waits again and the signaller resumes.
    let notification: Cap<Notification> = untyped.retype_one(0).expect("notification");
    SLOT.store(notification.slot(), Ordering::SeqCst);
    let _waiter = thread::spawn(
        |_| {
            let notification = Cap::<Notification>::from_slot(SLOT.load(Ordering::SeqCst));
            while notification.wait().is_ok() {}
            1
        },
        0,
        PRIORITY,
    )
    .expect("waiter");
    Cap::<Tcb>::from_slot(slots::ROOT_TCB)
        .set_priority(PRIORITY - 28)
        .expect("lower priority");
    let signal = per_operation(|| {
        black_box(notification.signal().ok());
    });
    report(
        "signal_higher_priority_waiter",
        signal.saturating_sub(overhead),
    );

    println!("[bench] done");
    let _ = sys::debug_exit(0);
    0
}
