//! Threads on several CPUs: each runs where it is placed, all at once; calls, replies
//! and signals cross between CPUs without a lost wake-up; a thread another CPU runs is
//! suspended, read, resumed and destroyed safely; FP/SIMD registers follow a thread
//! that moves between CPUs; a frame unmapped on one CPU faults at once on another (TLB
//! coherence); a kaal-ipc ring carries items between CPUs. With one CPU, placement
//! elsewhere is refused and the cross-CPU tests say they need more.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kaal_abi::{Error, fault, rights, slots};
use kaal_ipc::{Consumer, PushError, SharedRing};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, AddressSpace, Cap, Endpoint, Frame4K, Notification};
use kaal_user::ipc::{self, Message};
use kaal_user::sys::{self, ThreadState};
use kaal_user::thread::{self, Builder};
use kaal_user::{BootInfo, println, time};

kaal_user::entry!(main);

/// The root thread's own: `join` yields, which lets only threads of its priority run.
const PRIORITY: u8 = 128;
/// Test hook 8: the CPU the caller runs on.
const CURRENT_CPU: u64 = 8;
/// Rounds of the cross-CPU call, signal, migration and TLB tests.
const ROUNDS: u64 = 1000;

/// Calls test hook `number` (`svc #0x7e57`).
fn hook(number: u64) -> u64 {
    let result: u64;
    // SAFETY: a system-call trap; the kernel writes only x0.
    unsafe {
        asm!(
            "svc #0x7e57",
            inout("x0") number => result,
            in("x8") u64::MAX,
            clobber_abi("C"),
            options(nostack),
        );
    }
    result
}

fn current_cpu() -> u64 {
    hook(CURRENT_CPU)
}

fn err(e: Error) -> String {
    format!("{e:?}")
}

/// Spins until `done()` or `seconds` pass (reading the counter: no system call).
fn spin_until(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ticks() + time::ticks_per_second() * seconds;
    while !done() {
        if time::now_ticks() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Yields until `done()` or `seconds` pass.
fn yield_until(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ticks() + time::ticks_per_second() * seconds;
    while !done() {
        if time::now_ticks() > deadline {
            return false;
        }
        sys::yield_now();
    }
    true
}

/// Reports 1000 + its CPU if every look (with yields between) finds it on CPU `cpu`.
fn report_cpu(cpu: usize) -> u64 {
    for _ in 0..50 {
        let here = current_cpu();
        if here != cpu as u64 {
            return 2000 + here;
        }
        sys::yield_now();
    }
    1000 + cpu as u64
}

static PROGRESS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static STOP: AtomicBool = AtomicBool::new(false);

/// Counts in `PROGRESS[slot]` until `STOP`, making no system call.
fn spinner(slot: usize) -> u64 {
    while !STOP.load(Ordering::Acquire) {
        PROGRESS[slot].fetch_add(1, Ordering::Relaxed);
    }
    0
}

/// Set by the suspending thread as soon as `tcb_suspend` returns, cleared before it
/// resumes the thread.
static SUSPENDED: AtomicBool = AtomicBool::new(false);
/// Iterations a thread ran while `SUSPENDED` said it was suspended.
static RAN_SUSPENDED: AtomicU64 = AtomicU64::new(0);

/// [`spinner`] that also counts iterations it runs while [`SUSPENDED`] is set: a thread
/// that runs after `tcb_suspend` returned.
fn watched_spinner(slot: usize) -> u64 {
    while !STOP.load(Ordering::Acquire) {
        if SUSPENDED.load(Ordering::Acquire) {
            RAN_SUSPENDED.fetch_add(1, Ordering::Relaxed);
        }
        PROGRESS[slot].fetch_add(1, Ordering::Relaxed);
    }
    0
}

fn progress(slot: usize) -> u64 {
    PROGRESS[slot].load(Ordering::Relaxed)
}

const LABEL_STOP: u64 = 0x57;

/// Answers each call with its first word plus one and its CPU, until `LABEL_STOP`;
/// returns how many it answered.
fn echo_server(endpoint: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(endpoint as u64);
    let Ok(mut received) = endpoint.recv() else {
        return u64::MAX;
    };
    let mut answered = 0;
    loop {
        if received.message.info.label == LABEL_STOP {
            let _ = ipc::reply(&Message::new(0, [answered, 0, 0, 0]));
            return answered;
        }
        let reply = Message::new(0, [received.message.words[0] + 1, current_cpu(), 0, 0]);
        answered += 1;
        received = match endpoint.reply_recv(&reply) {
            Ok(received) => received,
            Err(_) => return u64::MAX,
        };
    }
}

static PING: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);

/// Waits for `PING`, signals `PONG`, `ROUNDS` times; returns its CPU.
fn ponger(_: usize) -> u64 {
    let ping = Cap::<Notification>::from_slot(PING.load(Ordering::Relaxed));
    let pong = Cap::<Notification>::from_slot(PONG.load(Ordering::Relaxed));
    for _ in 0..ROUNDS {
        if ping.wait().is_err() || pong.signal().is_err() {
            return u64::MAX;
        }
    }
    current_cpu()
}

static CPUS: AtomicU64 = AtomicU64::new(1);

/// Sets `d8`, moves this thread (TCB at `tcb`) to `cpu`, and returns the call's status,
/// the CPU it then runs on and `d8` as it finds it there: one `asm!` block, so that the
/// compiler has nothing of its own in `v8` meanwhile.
fn migrate_keeping_d8(tcb: u64, cpu: u64, value: u64) -> (u64, u64, u64) {
    let (status, here, d8): (u64, u64, u64);
    // SAFETY: two system-call traps (`tcb_set_affinity`, then the CURRENT_CPU hook); the
    // kernel writes x0..x2 for the first and x0 for the second, all declared clobbered,
    // and must keep v8, which is declared clobbered too.
    unsafe {
        asm!(
            "fmov d8, {value}",
            "mov x0, {tcb}",
            "mov x1, {cpu}",
            "mov x8, #44",
            "svc #0",
            "mov {status}, x0",
            "mov x0, #8",
            "mov x8, #-1",
            "svc #0x7e57",
            "mov {here}, x0",
            "fmov {d8}, d8",
            value = in(reg) value,
            tcb = in(reg) tcb,
            cpu = in(reg) cpu,
            status = out(reg) status,
            here = out(reg) here,
            d8 = out(reg) d8,
            out("x0") _,
            out("x1") _,
            out("x2") _,
            out("x8") _,
            out("v8") _,
            options(nostack),
        );
    }
    (status, here, d8)
}

/// Moves itself round the CPUs `ROUNDS` times, checking `d8` and its CPU after each move.
/// Returns 0, or a code saying what went wrong (and in which round).
fn fp_mover(tcb: usize) -> u64 {
    let cpus = CPUS.load(Ordering::Relaxed);
    for round in 0..ROUNDS {
        let target = (round + 1) % cpus;
        let value = 0x0123_4567_0000_0000 | round;
        let (status, here, d8) = migrate_keeping_d8(tcb as u64, target, value);
        if status != 0 {
            return 1_000_000 + round;
        }
        if here != target {
            return 2_000_000 + round;
        }
        if d8 != value {
            return 3_000_000 + round;
        }
    }
    0
}

/// Writes its own value into `d8` and yields, until `STOP`: another owner of the FP/SIMD
/// registers on its CPU.
fn fp_clobber(seed: usize) -> u64 {
    while !STOP.load(Ordering::Acquire) {
        // SAFETY: writes v8 only, declared clobbered.
        unsafe {
            asm!("fmov d8, {v}", v = in(reg) seed as u64 ^ 0xdead_0000, out("v8") _, options(nostack))
        };
        sys::yield_now();
    }
    0
}

const WATCHED_PAGE: u64 = 0x6000_0000;
/// Odd while the watched page is unmapped (`2 * round + 1`), even while it is mapped.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static READS: AtomicU64 = AtomicU64::new(0);
static STALE: AtomicU64 = AtomicU64::new(0);

fn load(address: u64) -> u64 {
    let value: u64;
    // SAFETY: a raw load in assembly; when the page is unmapped the kernel stops the
    // thread at this instruction (its fault handler decides what follows).
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) address, v = out(reg) value, options(nostack)) };
    value
}

/// Reads the watched page for ever. A read that succeeds although the page was
/// unmapped before it started and not mapped again until after it (the same odd
/// `EPOCH` seen before and after) used a stale translation: counted in `STALE`. (A
/// read that faulted is retried when the handler resumes the thread, after the page
/// was mapped again: the epoch has moved on by then.)
fn page_reader(_: usize) -> u64 {
    loop {
        let before = EPOCH.load(Ordering::Acquire);
        let value = load(WATCHED_PAGE);
        let after = EPOCH.load(Ordering::Acquire);
        if before % 2 == 1 && after == before {
            STALE.fetch_add(1, Ordering::Relaxed);
        }
        core::hint::black_box(value);
        READS.fetch_add(1, Ordering::Release);
    }
}

static RING: SharedRing<u64, 64> = SharedRing::new();
static RING_CONSUMER: spin::Mutex<Option<Consumer<u64, 64, &'static SharedRing<u64, 64>>>> =
    spin::Mutex::new(None);
const RING_ITEMS: u64 = 100_000;

/// Splits the ring, hands the consumer over and pushes `RING_ITEMS` items, spinning
/// while the ring is full. Returns its CPU.
fn ring_producer(_: usize) -> u64 {
    let Ok((mut producer, consumer)) = RING.try_split() else {
        return u64::MAX;
    };
    *RING_CONSUMER.lock() = Some(consumer);
    for i in 0..RING_ITEMS {
        let mut item = i;
        while let Err(PushError::Full(back)) = producer.try_push(item) {
            item = back;
            core::hint::spin_loop();
        }
    }
    current_cpu()
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("smp");
    let cpus = boot.system().cpus_online as usize;
    CPUS.store(cpus as u64, Ordering::Relaxed);
    println!("{cpus} CPU(s) online");
    let untyped = cap::largest_ram_untyped(boot).expect("RAM untyped");

    suite.run("placement_on_a_cpu_that_is_not_online_is_refused", || {
        match Builder::new(PRIORITY).cpu(cpus).spawn(|_| 0, 0) {
            Err(Error::InvalidArgument) => {}
            other => return Err(format!("spawn on CPU {cpus}: {:?}", other.map(|_| ()))),
        }
        let done = thread::spawn(|_| 5, 0, PRIORITY).map_err(err)?;
        check!(done.join() == ThreadState::Exited(5), "{:?}", done.state());
        for cpu in [cpus, 8, 255, usize::MAX] {
            let result = done.tcb().set_affinity(cpu);
            check!(
                result == Err(Error::InvalidArgument),
                "affinity {cpu}: {result:?}"
            );
        }
        Ok(())
    });

    suite.run("threads_run_on_the_cpu_they_are_placed_on", || {
        for cpu in 0..cpus {
            let worker = Builder::new(PRIORITY)
                .cpu(cpu)
                .spawn(report_cpu, cpu)
                .map_err(err)?;
            let state = worker.join();
            check!(
                state == ThreadState::Exited(1000 + cpu as u64),
                "placed on CPU {cpu}: {state:?} (2000 + n: found on CPU n)"
            );
        }
        Ok(())
    });

    if cpus < 2 {
        println!("one CPU: the cross-CPU tests need two or more");
        return suite.finish();
    }

    suite.run("every_cpu_runs_a_thread_at_once", || {
        STOP.store(false, Ordering::Release);
        let mut workers = alloc::vec::Vec::new();
        for (cpu, counter) in PROGRESS.iter().enumerate().take(cpus).skip(1) {
            counter.store(0, Ordering::Relaxed);
            workers.push(
                Builder::new(PRIORITY)
                    .cpu(cpu)
                    .spawn(spinner, cpu)
                    .map_err(err)?,
            );
        }
        // This thread makes no system call meanwhile: the others advance only if their
        // CPUs run them.
        let all_ran = spin_until(10, || (1..cpus).all(|cpu| progress(cpu) > 100_000));
        STOP.store(true, Ordering::Release);
        for worker in &workers {
            check!(
                worker.join() == ThreadState::Exited(0),
                "{:?}",
                worker.state()
            );
        }
        check!(
            all_ran,
            "progress after 10 s without a system call here: {:?}",
            (1..cpus).map(progress).collect::<alloc::vec::Vec<_>>()
        );
        Ok(())
    });

    suite.run("calls_and_replies_cross_cpus", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        for cpu in 1..cpus {
            let server = Builder::new(PRIORITY)
                .cpu(cpu)
                .spawn(echo_server, endpoint.slot() as usize)
                .map_err(err)?;
            for i in 0..ROUNDS {
                let reply = endpoint.call(&Message::new(1, [i, 0, 0, 0])).map_err(err)?;
                check!(
                    reply.words[0] == i + 1 && reply.words[1] == cpu as u64,
                    "call {i} to CPU {cpu}: answer {} from CPU {}",
                    reply.words[0],
                    reply.words[1]
                );
            }
            let last = endpoint
                .call(&Message::new(LABEL_STOP, [0; 4]))
                .map_err(err)?;
            check!(last.words[0] == ROUNDS, "answered {}", last.words[0]);
            check!(
                server.join() == ThreadState::Exited(ROUNDS),
                "{:?}",
                server.state()
            );
        }
        Ok(())
    });

    suite.run("signals_wake_waiters_on_other_cpus", || {
        let ping: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        let pong: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        PING.store(ping.slot(), Ordering::Relaxed);
        PONG.store(pong.slot(), Ordering::Relaxed);
        let cpu = cpus - 1;
        let waiter = Builder::new(PRIORITY)
            .cpu(cpu)
            .spawn(ponger, 0)
            .map_err(err)?;
        for round in 0..ROUNDS {
            ping.signal().map_err(err)?;
            let word = pong.wait().map_err(err)?;
            check!(word == 1, "round {round}: word {word:#x}");
        }
        check!(
            waiter.join() == ThreadState::Exited(cpu as u64),
            "{:?}",
            waiter.state()
        );
        Ok(())
    });

    suite.run(
        "a_thread_another_cpu_runs_is_suspended_read_and_resumed",
        || {
            STOP.store(false, Ordering::Release);
            PROGRESS[1].store(0, Ordering::Relaxed);
            SUSPENDED.store(false, Ordering::Release);
            RAN_SUSPENDED.store(0, Ordering::Relaxed);
            let worker = Builder::new(PRIORITY)
                .cpu(1)
                .spawn(watched_spinner, 1)
                .map_err(err)?;
            check!(spin_until(10, || progress(1) > 10_000), "it never ran");
            for round in 0..100 {
                worker.tcb().suspend().map_err(err)?;
                SUSPENDED.store(true, Ordering::Release);
                let stopped_at = progress(1);
                for _ in 0..200_000 {
                    core::hint::spin_loop();
                }
                let later = progress(1);
                check!(
                    later == stopped_at,
                    "round {round}: it advanced from {stopped_at} to {later} after suspend returned"
                );
                let ran = RAN_SUSPENDED.load(Ordering::Relaxed);
                check!(
                    ran == 0,
                    "round {round}: it ran {ran} iterations after suspend returned"
                );
                let registers = worker.tcb().read_registers().map_err(err)?;
                let body = watched_spinner as *const () as u64;
                check!(
                    registers.pc >= body && registers.pc < body + 4096,
                    "round {round}: pc {:#x}, the loop is at {body:#x}",
                    registers.pc
                );
                SUSPENDED.store(false, Ordering::Release);
                worker.tcb().resume().map_err(err)?;
                check!(
                    spin_until(10, || progress(1) > later + 10_000),
                    "round {round}: it did not run again after resume"
                );
            }
            STOP.store(true, Ordering::Release);
            check!(
                worker.join() == ThreadState::Exited(0),
                "{:?}",
                worker.state()
            );
            Ok(())
        },
    );

    suite.run("a_thread_another_cpu_runs_is_destroyed", || {
        STOP.store(false, Ordering::Release);
        for (cpu, counter) in PROGRESS.iter().enumerate().take(cpus).skip(1) {
            counter.store(0, Ordering::Relaxed);
            let worker = Builder::new(PRIORITY)
                .cpu(cpu)
                .spawn(spinner, cpu)
                .map_err(err)?;
            check!(spin_until(10, || progress(cpu) > 10_000), "it never ran");
            worker.tcb().delete().map_err(err)?;
            let stopped_at = progress(cpu);
            for _ in 0..200_000 {
                core::hint::spin_loop();
            }
            check!(
                progress(cpu) == stopped_at,
                "CPU {cpu}: it advanced from {stopped_at} to {} after its TCB was deleted",
                progress(cpu)
            );
            // The CPU goes on: a new thread runs there.
            let next = Builder::new(PRIORITY)
                .cpu(cpu)
                .spawn(report_cpu, cpu)
                .map_err(err)?;
            check!(
                next.join() == ThreadState::Exited(1000 + cpu as u64),
                "CPU {cpu} afterwards: {:?}",
                next.state()
            );
        }
        Ok(())
    });

    suite.run("fp_registers_follow_a_thread_between_cpus", || {
        STOP.store(false, Ordering::Release);
        // Another FP/SIMD user on every CPU, so that each move meets registers that hold
        // someone else's state.
        let mut clobbers = alloc::vec::Vec::new();
        for cpu in 0..cpus {
            clobbers.push(
                Builder::new(PRIORITY)
                    .cpu(cpu)
                    .spawn(fp_clobber, cpu)
                    .map_err(err)?,
            );
        }
        // The mover needs its own TCB capability to move itself: it waits until this
        // thread has published the one the spawn made.
        let mover = Builder::new(PRIORITY).spawn(fp_mover_start, 0).map_err(err)?;
        MOVER_TCB.store(mover.tcb().slot(), Ordering::Release);
        let state = mover.join();
        STOP.store(true, Ordering::Release);
        for clobber in &clobbers {
            check!(clobber.join() == ThreadState::Exited(0), "{:?}", clobber.state());
        }
        check!(
            state == ThreadState::Exited(0),
            "{state:?} (1e6 + n: the move failed in round n; 2e6 + n: on the wrong CPU; 3e6 + n: d8 changed)"
        );
        Ok(())
    });

    suite.run("an_unmapped_frame_faults_at_once_on_another_cpu", || {
        let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        cap::map_with_tables(frame, own, WATCHED_PAGE, rights::READ, 0, untyped).map_err(err)?;
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        EPOCH.store(0, Ordering::Release);
        STALE.store(0, Ordering::Relaxed);
        let reader = Builder::new(PRIORITY)
            .cpu(1)
            .fault_endpoint(endpoint.slot())
            .spawn(page_reader, 0)
            .map_err(err)?;
        for round in 0..ROUNDS {
            let before = READS.load(Ordering::Acquire);
            check!(
                spin_until(10, || READS.load(Ordering::Acquire) > before + 2),
                "round {round}: the reader did not read the mapped page"
            );
            frame.unmap().map_err(err)?;
            EPOCH.store(2 * round + 1, Ordering::Release);
            let fault = wait_for_fault(endpoint, round)?;
            check!(
                fault.message.info.label == fault::LABEL_MEMORY
                    && fault.message.words[fault::ADDRESS] == WATCHED_PAGE,
                "round {round}: fault label {} at {:#x}",
                fault.message.info.label,
                fault.message.words[fault::ADDRESS]
            );
            EPOCH.store(2 * round + 2, Ordering::Release);
            frame.map(own, WATCHED_PAGE, rights::READ, 0).map_err(err)?;
            ipc::reply(&Message::new(fault::RESUME, [0; 4])).map_err(err)?;
        }
        frame.unmap().map_err(err)?;
        EPOCH.store(2 * ROUNDS + 1, Ordering::Release);
        let _ = wait_for_fault(endpoint, ROUNDS)?;
        ipc::reply(&Message::new(fault::STOP, [0; 4])).map_err(err)?;
        check!(
            reader.join() == ThreadState::Faulted,
            "reader {:?}",
            reader.state()
        );
        let stale = STALE.load(Ordering::Relaxed);
        check!(
            stale == 0,
            "{stale} reads succeeded after the unmap had returned"
        );
        Ok(())
    });

    suite.run("a_ring_carries_items_between_cpus", || {
        let producer = Builder::new(PRIORITY)
            .cpu(cpus - 1)
            .spawn(ring_producer, 0)
            .map_err(err)?;
        let mut consumer = loop {
            if let Some(consumer) = RING_CONSUMER.lock().take() {
                break consumer;
            }
            sys::yield_now();
        };
        for expected in 0..RING_ITEMS {
            let mut item = None;
            let got = spin_until(10, || {
                item = consumer.try_pop().ok();
                item.is_some()
            });
            check!(got, "item {expected} never came");
            check!(item == Some(expected), "item {expected}: {item:?}");
        }
        check!(
            producer.join() == ThreadState::Exited(cpus as u64 - 1),
            "{:?}",
            producer.state()
        );
        Ok(())
    });

    suite.finish()
}

static MOVER_TCB: AtomicU64 = AtomicU64::new(0);

/// Waits until `main` has published this thread's TCB, then runs [`fp_mover`].
fn fp_mover_start(_: usize) -> u64 {
    if !yield_until(10, || MOVER_TCB.load(Ordering::Acquire) != 0) {
        return u64::MAX;
    }
    fp_mover(MOVER_TCB.load(Ordering::Acquire) as usize)
}

/// Waits (polling, at most 10 s) for a fault message on `endpoint`.
fn wait_for_fault(endpoint: Cap<Endpoint>, round: u64) -> Result<ipc::Received, String> {
    let deadline = time::now_ticks() + time::ticks_per_second() * 10;
    loop {
        match endpoint.nb_recv() {
            Ok(fault) => return Ok(fault),
            Err(Error::WouldBlock) if time::now_ticks() < deadline => sys::yield_now(),
            Err(e) => return Err(format!("round {round}: no fault from the reader: {e:?}")),
        }
    }
}
