//! Threads: timer preemption, exit codes, yield, priorities, FP state across switches,
//! and the runtime's locks under priority inversion.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use kaal_abi::Error;
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, Cap, Notification, Tcb};
use kaal_user::sys::{self, ThreadState};
use kaal_user::{BootInfo, println, thread, time};

kaal_user::entry!(main);

const PRIORITY: u8 = 128;
const STEPS: usize = 12;
static LOG: [AtomicU8; 2 * STEPS] = [const { AtomicU8::new(0) }; 2 * STEPS];
static LOG_LENGTH: AtomicUsize = AtomicUsize::new(0);

/// Busy thread: never yields; logs each step and prints a line per step.
fn busy(tag: usize) -> u64 {
    for step in 0..STEPS {
        time::spin_for_micros(3_000);
        let at = LOG_LENGTH.fetch_add(1, Ordering::SeqCst);
        LOG[at].store(tag as u8, Ordering::SeqCst);
        println!("[thread {}] step {step}", if tag == 1 { 'A' } else { 'B' });
    }
    0
}

fn fp_work(seed: usize) -> u64 {
    let mut accumulator = seed as f64;
    for i in 0..200_000 {
        accumulator = black_box(accumulator * 1.000_000_1 + (i % 7) as f64 * 0.5);
    }
    accumulator.to_bits()
}

static FLAG: AtomicBool = AtomicBool::new(false);

/// What the lock tests contend for.
const HEAP: usize = 0;
const SLOTS: usize = 1;

/// Notifications of the lock tests: the low thread holds the lock, the high thread may
/// go, the high thread is done, the low thread is done.
static HOLDING: AtomicU64 = AtomicU64::new(0);
static GO: AtomicU64 = AtomicU64::new(0);
static HIGH_DONE: AtomicU64 = AtomicU64::new(0);
static LOW_DONE: AtomicU64 = AtomicU64::new(0);
/// What the high thread's allocation gave (0: failed).
static HIGH_RESULT: AtomicU64 = AtomicU64::new(0);

fn note(which: &AtomicU64) -> Cap<Notification> {
    Cap::from_slot(which.load(Ordering::SeqCst))
}

/// Low priority: takes the runtime lock, tells the main thread (which preempts it at
/// once), and releases the lock when it runs again.
fn hold_lock(what: usize) -> u64 {
    let announce = || {
        let _ = note(&HOLDING).signal();
    };
    match what {
        HEAP => kaal_user::test_hooks::with_heap_locked(announce),
        _ => kaal_user::test_hooks::with_slots_locked(announce),
    }
    let _ = note(&LOW_DONE).signal();
    0
}

/// High priority: once released, allocates what the low thread's lock guards. With a
/// spin lock this spins for ever: the holder has a lower priority and never runs again.
fn allocate_under_contention(what: usize) -> u64 {
    let _ = note(&GO).wait();
    let result = match what {
        HEAP => {
            let block = alloc::vec![0x5au8; 256];
            block.iter().map(|&b| u64::from(b)).sum::<u64>()
        }
        _ => match cap::allocate_slot() {
            Ok(slot) => {
                let _ = cap::free_slot(slot);
                slot
            }
            Err(_) => 0,
        },
    };
    HIGH_RESULT.store(result, Ordering::SeqCst);
    let _ = note(&HIGH_DONE).signal();
    0
}

/// A low-priority thread holds the heap's or slot allocator's lock and is preempted; a
/// higher-priority thread then allocates. It must sleep until the holder releases the
/// lock and then finish, not spin for ever.
fn contend(boot: &BootInfo<'_>, what: usize) -> Result<(), alloc::string::String> {
    let untyped = cap::largest_ram_untyped(boot).ok_or("no untyped memory")?;
    for which in [&HOLDING, &GO, &HIGH_DONE, &LOW_DONE] {
        if which.load(Ordering::SeqCst) == 0 {
            let notification: Cap<Notification> = untyped
                .retype_one(0)
                .map_err(|e| alloc::format!("notification: {e}"))?;
            which.store(notification.slot(), Ordering::SeqCst);
        }
    }
    HIGH_RESULT.store(0, Ordering::SeqCst);
    // The high thread first waits for `GO`, so the low one can take the lock.
    let high = thread::spawn(allocate_under_contention, what, PRIORITY - 1)
        .map_err(|e| alloc::format!("spawn high: {e}"))?;
    let low = thread::spawn(hold_lock, what, PRIORITY - 2)
        .map_err(|e| alloc::format!("spawn low: {e}"))?;
    // Nothing below allocates until the high thread is done: the lock is held.
    let _ = note(&HOLDING).wait();
    let _ = note(&GO).signal();
    let _ = note(&HIGH_DONE).wait();
    let _ = note(&LOW_DONE).wait();
    let result = HIGH_RESULT.load(Ordering::SeqCst);
    check!(result != 0, "the high thread's allocation failed");
    check!(
        high.join() == ThreadState::Exited(0),
        "high thread ended as {:?}",
        high.state()
    );
    // The low thread may still be on its way out: it runs only when we wait.
    check!(
        matches!(low.state(), ThreadState::Alive | ThreadState::Exited(0)),
        "low thread ended as {:?}",
        low.state()
    );
    println!("[threads] contended allocation ({what}) done: {result}");
    Ok(())
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("threads");

    suite.run("timer_preempts_busy_threads", || {
        let a = thread::spawn(busy, 1, PRIORITY).map_err(|e| alloc::format!("spawn A: {e}"))?;
        let b = thread::spawn(busy, 2, PRIORITY).map_err(|e| alloc::format!("spawn B: {e}"))?;
        check!(
            a.join() == ThreadState::Exited(0),
            "A ended as {:?}",
            a.state()
        );
        check!(
            b.join() == ThreadState::Exited(0),
            "B ended as {:?}",
            b.state()
        );
        let log: Vec<u8> = LOG.iter().map(|e| e.load(Ordering::SeqCst)).collect();
        let switches = log.windows(2).filter(|w| w[0] != w[1]).count();
        println!("[threads] step order {log:?}: {switches} switches");
        // Without preemption one thread would finish before the other starts (1 switch).
        check!(switches >= 3, "threads did not interleave: {log:?}");
        Ok(())
    });

    suite.run("exit_code_is_reported", || {
        let worker =
            thread::spawn(|n| n as u64 * 2, 21, PRIORITY).map_err(|e| alloc::format!("{e}"))?;
        check!(
            worker.join() == ThreadState::Exited(42),
            "got {:?}",
            worker.state()
        );
        Ok(())
    });

    suite.run("yield_runs_equal_priority_threads", || {
        FLAG.store(false, Ordering::SeqCst);
        thread::spawn(
            |_| {
                FLAG.store(true, Ordering::SeqCst);
                0
            },
            0,
            PRIORITY,
        )
        .map_err(|e| alloc::format!("{e}"))?;
        // A thread spawned at our priority runs only when we yield (or the tick expires).
        let mut yields = 0;
        while !FLAG.load(Ordering::SeqCst) && yields < 1000 {
            sys::yield_now();
            yields += 1;
        }
        check!(
            FLAG.load(Ordering::SeqCst),
            "flag never set after {yields} yields"
        );
        check!(yields <= 3, "needed {yields} yields");
        Ok(())
    });

    suite.run("lower_priority_thread_runs_only_when_we_wait", || {
        FLAG.store(false, Ordering::SeqCst);
        let low = thread::spawn(
            |_| {
                FLAG.store(true, Ordering::SeqCst);
                0
            },
            0,
            PRIORITY - 1,
        )
        .map_err(|e| alloc::format!("{e}"))?;
        sys::yield_now();
        time::spin_for_micros(30_000); // three ticks: a lower priority must not run
        check!(
            !FLAG.load(Ordering::SeqCst),
            "lower-priority thread ran while we were runnable"
        );
        check!(
            low.state() == ThreadState::Alive,
            "low thread state {:?}",
            low.state()
        );
        // It never will while we stay runnable: leave it parked.
        Ok(())
    });

    suite.run("priority_above_caller_is_refused", || {
        let result = thread::spawn(|_| 0, 0, PRIORITY + 1);
        check!(
            result.as_ref().err() == Some(&Error::InvalidArgument),
            "got {:?}",
            result
        );
        Ok(())
    });

    suite.run("status_of_a_non_thread_is_an_error", || {
        let empty = Cap::<Tcb>::from_slot(4000).status();
        check!(
            empty == Err(Error::InvalidCapability),
            "empty slot: {:?}",
            empty
        );
        let not_a_thread = Cap::<Tcb>::from_slot(kaal_abi::slots::ROOT_CNODE).status();
        check!(
            not_a_thread == Err(Error::WrongObjectType),
            "CNode slot: {:?}",
            not_a_thread
        );
        let me = Cap::<Tcb>::from_slot(kaal_abi::slots::ROOT_TCB).status();
        check!(me == Ok(ThreadState::Alive), "own status: {:?}", me);
        Ok(())
    });

    suite.run("a_suspended_thread_keeps_its_stack_and_resumes", || {
        FLAG.store(false, Ordering::SeqCst);
        let worker = thread::spawn(
            |_| {
                // Live data on the stack across the suspension.
                let mut numbers = [0u64; 64];
                for (i, n) in numbers.iter_mut().enumerate() {
                    *n = i as u64 * 3;
                }
                while !FLAG.load(Ordering::SeqCst) {
                    sys::yield_now();
                }
                core::hint::black_box(&numbers).iter().sum::<u64>()
            },
            0,
            PRIORITY,
        )
        .map_err(|e| alloc::format!("{e}"))?;
        sys::yield_now();
        worker.tcb().suspend().map_err(|e| alloc::format!("{e}"))?;
        check!(
            worker.join() == ThreadState::Inactive,
            "join of a suspended thread: {:?}",
            worker.state()
        );
        // Allocations that would reuse a freed stack.
        let filler: Vec<Vec<u8>> = (0..8)
            .map(|_| alloc::vec![0xa5u8; thread::STACK_BYTES])
            .collect();
        FLAG.store(true, Ordering::SeqCst);
        worker.tcb().resume().map_err(|e| alloc::format!("{e}"))?;
        check!(
            worker.join() == ThreadState::Exited(3 * 63 * 64 / 2),
            "resumed thread ended {:?}",
            worker.state()
        );
        drop(filler);
        Ok(())
    });

    suite.run("fp_registers_survive_preemption", || {
        let expected: Vec<u64> = (1..=3).map(fp_work).collect();
        let workers: Vec<_> = (1..=3)
            .map(|seed| thread::spawn(fp_work, seed, PRIORITY))
            .collect::<Result<_, _>>()
            .map_err(|e| alloc::format!("{e}"))?;
        for (worker, expected) in workers.iter().zip(&expected) {
            let state = worker.join();
            check!(
                state == ThreadState::Exited(*expected),
                "FP result {:?}, expected {:#x}",
                state,
                expected
            );
        }
        Ok(())
    });

    suite.run(
        "high_priority_allocation_waits_for_a_preempted_heap_holder",
        || contend(boot, HEAP),
    );

    suite.run(
        "high_priority_slot_allocation_waits_for_a_preempted_holder",
        || contend(boot, SLOTS),
    );

    suite.finish()
}
