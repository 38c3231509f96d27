//! Several CPUs, run by `cargo xtask bench` on two CPUs in two ways:
//!
//! * under `-icount shift=0,sleep=off` (QEMU then runs the CPUs in turn, and virtual time
//!   is the instructions the two executed; a CPU waiting in `wfi` executes none): the
//!   round trips of a call, a signal and a kaal-ipc ring between a thread on CPU 0 and
//!   one on CPU 1, beside the same call on one CPU. Printed as
//!   `[bench] NAME: X instructions`.
//! * with `kaal.bench.mode=contention` in the boot arguments, in real time (the CPUs run
//!   at once, without `-icount`): each kernel operation on CPU 0 with CPU 1 idle and
//!   with CPU 1 running the same operation in a loop, three times each, interleaved;
//!   the medians' ratio is printed as `[bench-ratio] NAME: R (idle X ns, busy Y ns)`.
//!   This is what the kernel lock costs when another CPU also makes system calls.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kaal_abi::slots;
use kaal_ipc::{Consumer, Producer, SharedRing};
use kaal_user::cap::{self, Cap, Endpoint, Notification, Untyped};
use kaal_user::ipc::Message;
use kaal_user::thread::{Builder, Thread};
use kaal_user::{BootInfo, println, sys, time};

kaal_user::entry!(main);

const N: u64 = 20_000;
const PRIORITY: u8 = 128;

fn nanoseconds_per_tick() -> u64 {
    1_000_000_000 / time::ticks_per_second()
}

/// Virtual (or real) nanoseconds per iteration of `body`, run `n` times.
fn per_operation(n: u64, mut body: impl FnMut()) -> u64 {
    body();
    let start = time::now_ticks();
    for _ in 0..n {
        body();
    }
    (time::now_ticks() - start) * nanoseconds_per_tick() / n
}

static STOP: AtomicBool = AtomicBool::new(false);
static ENDPOINT: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// Answers calls on `ENDPOINT[which]` with the first word plus one, for ever.
fn echo_server(which: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(ENDPOINT[which].load(Ordering::Acquire));
    let Ok(mut received) = endpoint.recv() else {
        return 1;
    };
    loop {
        let reply = Message::new(0, [received.message.words[0] + 1, 0, 0, 0]);
        received = match endpoint.reply_recv(&reply) {
            Ok(received) => received,
            Err(_) => return 2,
        };
    }
}

static PING: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);

/// Signals `PONG` for every wake-up on `PING`, for ever.
fn ponger(_: usize) -> u64 {
    let ping = Cap::<Notification>::from_slot(PING.load(Ordering::Acquire));
    let pong = Cap::<Notification>::from_slot(PONG.load(Ordering::Acquire));
    while ping.wait().is_ok() {
        if pong.signal().is_err() {
            return 2;
        }
    }
    1
}

type Ring = SharedRing<u64, 64>;
static RING_PING: Ring = SharedRing::new();
static RING_PONG: Ring = SharedRing::new();

/// Blocking for rings between threads of one process: each wait word gets a KaaL
/// notification of its own (from [`POOL`], the first time either side touches the
/// word); a waiter sleeps on it, the peer signals it. Sticky, so a wake before the sleep
/// is not lost.
#[derive(Clone, Copy, Debug, Default)]
struct WordNotify;

/// Notifications for the wait words, and which word each serves (its address; 0: free).
static POOL: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static POOL_WORD: spin::Mutex<[usize; 4]> = spin::Mutex::new([0; 4]);

fn notification_for(word: &kaal_ipc::AtomicU32) -> Cap<Notification> {
    let address = word as *const kaal_ipc::AtomicU32 as usize;
    let mut words = POOL_WORD.lock();
    let index = match words.iter().position(|&w| w == address) {
        Some(index) => index,
        None => {
            let free = words
                .iter()
                .position(|&w| w == 0)
                .expect("four wait words at most");
            words[free] = address;
            free
        }
    };
    Cap::from_slot(POOL[index].load(Ordering::Acquire))
}

impl kaal_ipc::Notify for WordNotify {
    const NEEDS_WAKE: bool = true;

    fn wait(
        &self,
        word: &kaal_ipc::AtomicU32,
        expected: u32,
        _timeout: Option<core::time::Duration>,
        _process_shared: bool,
    ) {
        if word.load(Ordering::Acquire) == expected {
            let _ = notification_for(word).wait();
        }
    }

    fn wake(&self, word: &kaal_ipc::AtomicU32, _process_shared: bool) {
        let _ = notification_for(word).signal();
    }
}

type Ends = (
    Consumer<u64, 64, &'static Ring, WordNotify>,
    Producer<u64, 64, &'static Ring, WordNotify>,
);
static ECHO_ENDS: spin::Mutex<Option<Ends>> = spin::Mutex::new(None);

/// Pops each number from `RING_PING` and pushes it plus one to `RING_PONG`, for ever.
fn ring_echo(_: usize) -> u64 {
    let Some((mut ping, mut pong)) = ECHO_ENDS.lock().take() else {
        return 1;
    };
    // Straight to sleep when it must wait (see `cross_cpu_figures`).
    ping.set_spin_limit(0);
    pong.set_spin_limit(0);
    while let Ok(value) = ping.pop() {
        if pong.push(value + 1).is_err() {
            return 2;
        }
    }
    3
}

fn spawn_on(cpu: usize, body: fn(usize) -> u64, arg: usize) -> Thread {
    Builder::new(PRIORITY)
        .cpu(cpu)
        .spawn(body, arg)
        .expect("spawn a thread")
}

fn cross_cpu_figures(untyped: Cap<Untyped>) {
    let request = Message::new(0, [1, 2, 3, 4]);
    // The same call on one CPU and across two, in this run.
    for (which, cpu, name) in [
        (0, 0, "call_reply_recv_round_trip_same_cpu"),
        (1, 1, "call_reply_recv_round_trip_cross_cpu"),
    ] {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).expect("endpoint");
        ENDPOINT[which].store(endpoint.slot(), Ordering::Release);
        let server = spawn_on(cpu, echo_server, which);
        let round_trip = per_operation(N, || {
            black_box(endpoint.call(&request).ok());
        });
        println!(
            "[bench] {name}: {round_trip} instructions (client on CPU 0, server on CPU {cpu}; both CPUs' instructions)"
        );
        server.tcb().suspend().expect("stop the server");
    }

    let ping: Cap<Notification> = untyped.retype_one(0).expect("notification");
    let pong: Cap<Notification> = untyped.retype_one(0).expect("notification");
    PING.store(ping.slot(), Ordering::Release);
    PONG.store(pong.slot(), Ordering::Release);
    let waiter = spawn_on(1, ponger, 0);
    let round_trip = per_operation(N, || {
        black_box(ping.signal().ok());
        black_box(pong.wait().ok());
    });
    println!(
        "[bench] signal_wait_round_trip_cross_cpu: {round_trip} instructions (a signal wakes a waiter on CPU 1, which signals back: two wake-ups)"
    );
    waiter.tcb().suspend().expect("stop the waiter");

    // Two kaal-ipc rings between the CPUs, blocking on KaaL notifications.
    for slot in &POOL {
        let notification: Cap<Notification> = untyped.retype_one(0).expect("notification");
        slot.store(notification.slot(), Ordering::Release);
    }
    let (mut to_echo, echo_in) = RING_PING.try_split_with(WordNotify).expect("ring");
    let (echo_out, mut from_echo) = RING_PONG.try_split_with(WordNotify).expect("ring");
    // Under `-icount` the CPUs run in turn, so a side that spins before it sleeps spins
    // its whole budget while the other cannot run: both sleep at once instead, and the
    // figure is the cost of the notification wake-ups.
    to_echo.set_spin_limit(0);
    from_echo.set_spin_limit(0);
    *ECHO_ENDS.lock() = Some((echo_in, echo_out));
    let echo = spawn_on(1, ring_echo, 0);
    let mut next = 0u64;
    let round_trip = per_operation(N, || {
        black_box(to_echo.push(next).ok());
        black_box(from_echo.pop().ok());
        next += 1;
    });
    println!(
        "[bench] ring_round_trip_cross_cpu: {round_trip} instructions (kaal-ipc rings to a thread on CPU 1 and back, each side sleeping on a KaaL notification without spinning first)"
    );
    echo.tcb().suspend().expect("stop the ring echo");
}

/// The median of `values`.
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

static LOAD: AtomicU64 = AtomicU64::new(0);

/// The load on CPU 1: operation `LOAD` in a loop until `STOP`.
fn load(_: usize) -> u64 {
    let request = Message::new(0, [1, 2, 3, 4]);
    let endpoint = Cap::<Endpoint>::from_slot(ENDPOINT[1].load(Ordering::Acquire));
    while !STOP.load(Ordering::Acquire) {
        match LOAD.load(Ordering::Relaxed) {
            0 => {
                black_box(sys::thread_id());
            }
            1 => {
                black_box(cap::identify(slots::ROOT_CNODE).ok());
            }
            2 => {
                black_box(endpoint.call(&request).ok());
            }
            3 => sys::yield_now(),
            5 => {
                let endpoint =
                    Cap::<Endpoint>::from_slot(PROCESS_ENDPOINT[1].load(Ordering::Acquire));
                black_box(endpoint.call(&request).ok());
            }
            _ => {
                let notification =
                    Cap::<Notification>::from_slot(WAITED[1].load(Ordering::Acquire));
                black_box(notification.signal().ok());
            }
        }
    }
    0
}

/// Per CPU: the endpoint its server process answers on.
static PROCESS_ENDPOINT: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// Starts `bench-kernel`'s round-trip server as a process of its own on CPU `cpu`,
/// answering on `PROCESS_ENDPOINT[cpu]`.
fn server_process(untyped: Cap<Untyped>, cpu: usize) -> kaal_user::process::Process {
    let endpoint: Cap<Endpoint> = untyped.retype_one(0).expect("endpoint");
    PROCESS_ENDPOINT[cpu].store(endpoint.slot(), Ordering::Release);
    let archive = kaal_user::components().expect("component archive");
    let image = archive
        .get("smp-round-trip-server")
        .expect("no smp-round-trip-server in the archive");
    let process = kaal_user::process::Process::create(untyped, image, 6).expect("server process");
    endpoint
        .copy_to(
            process.cnode(),
            kaal_user::process::FIRST_FREE_SLOT,
            kaal_abi::rights::READ,
        )
        .expect("endpoint for the server process");
    process
        .tcb()
        .set_affinity(cpu)
        .expect("place the server process");
    process
        .start(0, PRIORITY)
        .expect("start the server process");
    process
}

/// Per CPU: the notification its higher-priority waiter waits on.
static WAITED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// Waits on `WAITED[cpu]` for ever: the higher-priority waiter a signal wakes.
fn waiter(cpu: usize) -> u64 {
    let notification = Cap::<Notification>::from_slot(WAITED[cpu].load(Ordering::Acquire));
    while notification.wait().is_ok() {}
    1
}

static PARTNER_STOP: AtomicBool = AtomicBool::new(false);

/// Yields until `PARTNER_STOP`: the same-priority thread a yield switches to.
fn partner(_: usize) -> u64 {
    while !PARTNER_STOP.load(Ordering::Acquire) {
        sys::yield_now();
    }
    0
}

fn contention(untyped: Cap<Untyped>) {
    // A call server on each CPU: CPU 0's for the measured thread, CPU 1's for the load.
    let mut servers = Vec::new();
    for (which, slot) in ENDPOINT.iter().enumerate() {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).expect("endpoint");
        slot.store(endpoint.slot(), Ordering::Release);
        servers.push(spawn_on(which, echo_server, which));
    }
    let endpoint = Cap::<Endpoint>::from_slot(ENDPOINT[0].load(Ordering::Acquire));
    let request = Message::new(0, [1, 2, 3, 4]);
    let mut processes = Vec::new();
    for (kind, name) in [
        (0, "null_syscall"),
        (1, "cap_identify"),
        (2, "call_reply_recv_round_trip"),
        (3, "yield_to_same_priority"),
        (5, "call_reply_recv_round_trip_two_processes"),
        // Last: the signaller runs below its waiter, and this thread cannot raise its
        // priority again.
        (4, "signal_higher_priority_waiter"),
    ] {
        if kind == 5 {
            for cpu in 0..2 {
                processes.push(server_process(untyped, cpu));
            }
        }
        if kind == 4 {
            // A waiter above the signaller on each CPU; this thread and CPU 1's load
            // signal from below it.
            for (cpu, slot) in WAITED.iter().enumerate() {
                let notification: Cap<Notification> = untyped.retype_one(0).expect("notification");
                slot.store(notification.slot(), Ordering::Release);
                servers.push(spawn_on(cpu, waiter, cpu));
            }
            Cap::<kaal_user::cap::Tcb>::from_slot(slots::ROOT_TCB)
                .set_priority(PRIORITY - 28)
                .expect("lower priority");
        }
        LOAD.store(kind, Ordering::Relaxed);
        // For the yields, a same-priority partner on CPU 0 (CPU 1's load yields alone: a
        // system call that finds no one to switch to).
        PARTNER_STOP.store(false, Ordering::Release);
        let yield_partner = (kind == 3).then(|| spawn_on(0, partner, 0));
        let measure = || match kind {
            0 => per_operation(N, || {
                black_box(sys::thread_id());
            }),
            1 => per_operation(N, || {
                black_box(cap::identify(slots::ROOT_CNODE).ok());
            }),
            2 => per_operation(N, || {
                black_box(endpoint.call(&request).ok());
            }),
            3 => per_operation(N, sys::yield_now),
            5 => {
                let endpoint =
                    Cap::<Endpoint>::from_slot(PROCESS_ENDPOINT[0].load(Ordering::Acquire));
                per_operation(N, || {
                    black_box(endpoint.call(&request).ok());
                })
            }
            _ => {
                let notification =
                    Cap::<Notification>::from_slot(WAITED[0].load(Ordering::Acquire));
                per_operation(N, || {
                    black_box(notification.signal().ok());
                })
            }
        };
        let (mut idle, mut busy) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            idle.push(measure());
            STOP.store(false, Ordering::Release);
            // (For the signals, below CPU 1's waiter, as this thread is below CPU 0's.)
            let priority = if kind == 4 { PRIORITY - 28 } else { PRIORITY };
            let loader = Builder::new(priority)
                .cpu(1)
                .spawn(load, 0)
                .expect("spawn the load");
            // Let the load start before measuring.
            time::spin_for_micros(2000);
            busy.push(measure());
            STOP.store(true, Ordering::Release);
            loader.join();
        }
        PARTNER_STOP.store(true, Ordering::Release);
        if let Some(partner) = yield_partner {
            partner.join();
        }
        let (idle, busy) = (median(idle), median(busy));
        let ratio = busy as f64 / idle.max(1) as f64;
        println!(
            "[bench-ratio] {name}_other_cpu_busy: {ratio:.2} (CPU 0 alone {idle} ns, with CPU 1 doing the same {busy} ns)"
        );
    }
    for server in &servers {
        let _ = server.tcb().suspend();
    }
    for process in &processes {
        let _ = process.tcb().suspend();
    }
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let untyped: Cap<Untyped> = cap::largest_ram_untyped(boot).expect("RAM untyped");
    if boot.system().cpus_online < 2 {
        println!(
            "[bench] needs two CPUs: {} online",
            boot.system().cpus_online
        );
        return 1;
    }
    if boot.bootargs().contains("kaal.bench.mode=contention") {
        contention(untyped);
    } else {
        cross_cpu_figures(untyped);
    }
    println!("[bench] done");
    let _ = sys::debug_exit(0);
    0
}
