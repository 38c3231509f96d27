//! Interrupt latency during a large retype, in guest instructions (`cargo xtask bench`,
//! QEMU with `-icount shift=0 -rtc clock=vm`): a lower-priority thread retypes half the
//! largest RAM untyped into 2 MiB frames and revokes them, again and again, while this
//! thread sets PL031 alarms and waits for each. QEMU raises the alarm exactly one second
//! of virtual time after the match register is written, so the time from then until this
//! thread runs is how long the kernel kept the interrupt waiting (at most one step of the
//! retype's zeroing, plus exception entry, delivery and the switch), counted exactly.
//! Prints the worst of `ROUNDS`.
//!
//! Then the same during a revoke of over 100,000 capabilities: a lower-priority thread
//! copies an endpoint capability into every slot of 25 radix-12 CNodes and, a millisecond
//! of virtual time before each alarm is due, revokes the endpoint, so every alarm falls
//! in the revoke (which takes tens of milliseconds).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kaal_abi::rights;
use kaal_abi::slots;
use kaal_user::cap::{
    self, CNode, Cap, Endpoint, Frame2M, Frame4K, IrqControl, IrqHandler, Notification, Tcb,
    Untyped,
};
use kaal_user::memory::MappedFrame;
use kaal_user::{BootInfo, println, sys, thread, time};

kaal_user::entry!(main);

const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCCR: usize = 0x0c;
const RTCIMSC: usize = 0x10;
const RTCICR: usize = 0x1c;
const RTC_VADDR: u64 = 0x30_0000_0000;
const ROUNDS: usize = 5;

static UNTYPED: AtomicU64 = AtomicU64::new(0);
static FRAMES: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static RETYPES: AtomicU64 = AtomicU64::new(0);
/// The revoke phase: the endpoint, the first of the CNodes, the counter value at which
/// the next alarm is due (0 before the first), revokes done, failures.
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static CNODES: AtomicU64 = AtomicU64::new(0);
static DUE: AtomicU64 = AtomicU64::new(0);
static REVOKES: AtomicU64 = AtomicU64::new(0);
static REVOKE_FAILED: AtomicBool = AtomicBool::new(false);
/// A notification the revoking thread signals after each revoke (or failure).
static FINISHED: AtomicU64 = AtomicU64::new(0);
const CNODE_COUNT: u64 = 25;
const CNODE_RADIX: u8 = 12;
/// Capabilities each revoke removes: every slot but slot 0 of each CNode.
const REVOKED: u64 = CNODE_COUNT * ((1 << CNODE_RADIX) - 1);

/// Lower-priority threads that have ended.
static EXITED: AtomicU64 = AtomicU64::new(0);

/// Ends a lower-priority thread: counts it and wakes the root task.
fn exit(code: u64) -> u64 {
    EXITED.fetch_add(1, Ordering::Relaxed);
    let _ = Cap::<Notification>::from_slot(FINISHED.load(Ordering::Relaxed)).signal();
    code
}

/// Tells the lower-priority thread to stop and waits until it has, so that the next
/// phase runs alone.
fn stop_worker(finished: Cap<Notification>) {
    let ended = EXITED.load(Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
    while EXITED.load(Ordering::Relaxed) == ended {
        if finished.wait().is_err() {
            fail("waiting for a thread to stop");
        }
    }
}

/// Retypes the untyped into 2 MiB frames and revokes them until told to stop.
fn retyper(_: usize) -> u64 {
    exit(retype_until_stopped())
}

fn retype_until_stopped() -> u64 {
    let untyped = Cap::<Untyped>::from_slot(UNTYPED.load(Ordering::Relaxed));
    let count = FRAMES.load(Ordering::Relaxed);
    let Ok(first) = cap::allocate_slots(count) else {
        return 1;
    };
    while !STOP.load(Ordering::Relaxed) {
        if untyped.retype::<Frame2M>(0, first, count as u32).is_err() || untyped.revoke().is_err() {
            return 1;
        }
        RETYPES.fetch_add(1, Ordering::Relaxed);
    }
    0
}

/// For each alarm: fills the CNodes with copies of the endpoint, waits until a
/// millisecond before the alarm is due, and revokes them all.
fn revoker(_: usize) -> u64 {
    exit(revoke_until_stopped())
}

fn revoke_until_stopped() -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(ENDPOINT.load(Ordering::Relaxed));
    let first = CNODES.load(Ordering::Relaxed);
    let finished = Cap::<Notification>::from_slot(FINISHED.load(Ordering::Relaxed));
    let mut done_for = 0;
    while !STOP.load(Ordering::Relaxed) {
        let due = DUE.load(Ordering::Relaxed);
        if due == done_for {
            continue;
        }
        for cnode in first..first + CNODE_COUNT {
            for index in 1..1 << CNODE_RADIX {
                if endpoint
                    .copy_to(Cap::<CNode>::from_slot(cnode), index, rights::READ)
                    .is_err()
                {
                    REVOKE_FAILED.store(true, Ordering::Relaxed);
                    let _ = finished.signal();
                    return 1;
                }
            }
        }
        let start = due.saturating_sub(time::ticks_per_second() / 1000);
        while time::now_ticks() < start {}
        if endpoint.revoke().is_err() || endpoint.identify().is_err() {
            REVOKE_FAILED.store(true, Ordering::Relaxed);
            let _ = finished.signal();
            return 1;
        }
        REVOKES.fetch_add(1, Ordering::Relaxed);
        done_for = due;
        let _ = finished.signal();
    }
    0
}

/// The kind of hostile work [`window_worker`] does: console writes or object creation.
static WORK: AtomicU64 = AtomicU64::new(0);
const WORK_CONSOLE: u64 = 1;
const WORK_CREATE: u64 = 2;
/// The untyped and the first of the slots the object-creation work retypes into.
static CREATE_UNTYPED: AtomicU64 = AtomicU64::new(0);
static CREATE_FIRST: AtomicU64 = AtomicU64::new(0);
/// TCBs each object-creation retype makes: the most one call accepts.
const CREATE_COUNT: u32 = kaal_abi::RETYPE_MAX_COUNT as u32;
/// The longest of three calls of the hostile work, in ticks.
static CALL_TICKS: AtomicU64 = AtomicU64::new(0);
/// Calls made by [`window_worker`].
static WORK_CALLS: AtomicU64 = AtomicU64::new(0);

/// One console write of the most output one call can make: 255 control characters,
/// each printed as two (caret notation), and a line end.
fn console_once() -> Result<(), kaal_abi::Error> {
    let mut line = [0x01u8; kaal_abi::CONSOLE_WRITE_MAX_BYTES];
    line[kaal_abi::CONSOLE_WRITE_MAX_BYTES - 1] = b'\n';
    sys::console_write(&line).map(|_| ())
}

/// Retypes the most TCBs one call makes; returns how long the call took, in ticks.
fn create_once() -> Result<u64, kaal_abi::Error> {
    let untyped = Cap::<Untyped>::from_slot(CREATE_UNTYPED.load(Ordering::Relaxed));
    let start = time::now_ticks();
    untyped.retype::<Tcb>(0, CREATE_FIRST.load(Ordering::Relaxed), CREATE_COUNT)?;
    Ok(time::now_ticks() - start)
}

/// For each alarm, one call of the hostile work below this thread's priority, started
/// so that the alarm falls 1/2, 1/4, ... 1/32 of the call's length (the longest of
/// three, measured first) before its end: the masked part of a console write is its
/// kernel half, that of a retype its end (it zeroes the memory preemptibly, then
/// creates the TCBs in one step). Created objects are revoked between rounds.
fn window_worker(_: usize) -> u64 {
    exit(work_until_stopped())
}

fn work_until_stopped() -> u64 {
    let finished = Cap::<Notification>::from_slot(FINISHED.load(Ordering::Relaxed));
    let fail = || {
        REVOKE_FAILED.store(true, Ordering::Relaxed);
        let _ = finished.signal();
        1
    };
    let untyped = Cap::<Untyped>::from_slot(CREATE_UNTYPED.load(Ordering::Relaxed));
    let creating = WORK.load(Ordering::Relaxed) == WORK_CREATE;
    // One call, timed; created objects are revoked after it.
    let once = || {
        let start = time::now_ticks();
        if creating {
            create_once()?;
        } else {
            console_once()?;
        }
        let ticks = time::now_ticks() - start;
        if creating {
            untyped.revoke()?;
        }
        Ok::<u64, kaal_abi::Error>(ticks)
    };
    let mut length = 0;
    for _ in 0..3 {
        match once() {
            Ok(ticks) => length = length.max(ticks),
            Err(_) => return fail(),
        }
    }
    CALL_TICKS.store(length, Ordering::Relaxed);
    let mut done_for = 0;
    let mut round = 0;
    while !STOP.load(Ordering::Relaxed) {
        let due = DUE.load(Ordering::Relaxed);
        if due == done_for {
            continue;
        }
        let before_end = length >> (round + 1);
        while time::now_ticks() + length < due + before_end {}
        if once().is_err() {
            return fail();
        }
        WORK_CALLS.fetch_add(1, Ordering::Relaxed);
        round += 1;
        done_for = due;
        let _ = finished.signal();
    }
    0
}

/// Runs [`window_worker`] doing `work` below this thread's priority while five alarms
/// fire; returns the worst lateness in instructions.
fn worst_during(
    work: u64,
    rtc: &MappedFrame,
    alarm: Cap<Notification>,
    handler: Cap<IrqHandler>,
    finished: Cap<Notification>,
) -> u64 {
    WORK.store(work, Ordering::Relaxed);
    WORK_CALLS.store(0, Ordering::Relaxed);
    STOP.store(false, Ordering::Relaxed);
    DUE.store(0, Ordering::Relaxed);
    if thread::spawn(window_worker, 0, 10).is_err() {
        fail("hostile thread");
    }
    let worst = alarm_rounds(rtc, alarm, handler, Some(finished));
    stop_worker(finished);
    if WORK_CALLS.load(Ordering::Relaxed) == 0 {
        fail("the hostile thread made no call");
    }
    worst
}

/// Sets `ROUNDS` alarms one second of virtual time ahead and waits for each; returns
/// the worst lateness in instructions. With `finished`, waits after each alarm until
/// the lower-priority worker says it is done with that round.
fn alarm_rounds(
    rtc: &MappedFrame,
    alarm: Cap<Notification>,
    handler: Cap<IrqHandler>,
    finished: Option<Cap<Notification>>,
) -> u64 {
    let nanoseconds_per_tick = 1_000_000_000 / time::ticks_per_second();
    let mut worst = 0;
    for _ in 0..ROUNDS {
        let at = rtc.read32(RTCDR).unwrap_or(0).wrapping_add(1);
        let due = time::now_ticks() + time::ticks_per_second();
        DUE.store(due, Ordering::Relaxed);
        rtc.write32(RTCMR, at);
        if alarm.wait().is_err() {
            fail("waiting for the alarm");
        }
        worst = worst.max(time::now_ticks().saturating_sub(due) * nanoseconds_per_tick);
        rtc.write32(RTCICR, 1);
        let _ = handler.ack();
        if let Some(finished) = finished {
            // Let the round's work end before the next round.
            if finished.wait().is_err() || REVOKE_FAILED.load(Ordering::Relaxed) {
                fail("the hostile thread failed");
            }
        }
    }
    worst
}

fn fail(what: &str) -> ! {
    println!("[bench] retype latency: {what}");
    sys::debug_exit(1);
    sys::thread_exit(1)
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let caps = boot.caps();
    let (index, bytes) = boot
        .untyped()
        .take(caps.untyped.count as usize)
        .enumerate()
        .map(|(i, r)| (i, r.size_bytes))
        .max_by_key(|&(_, size)| size)
        .unwrap_or_else(|| fail("no RAM untyped"));
    let parent = Cap::<Untyped>::from_slot(u64::from(caps.untyped.start) + index as u64);
    let bits = bytes.trailing_zeros() as u8 - 1;
    let child = parent
        .retype_one::<Untyped>(bits)
        .unwrap_or_else(|_| fail("child untyped"));
    UNTYPED.store(child.slot(), Ordering::Relaxed);
    FRAMES.store((1 << bits) / (2 << 20), Ordering::Relaxed);

    let rtc_device = boot
        .find_device("arm,pl031")
        .unwrap_or_else(|| fail("no PL031"));
    let irq = rtc_device.irqs().next().unwrap_or_else(|| fail("no IRQ"));
    let device = boot
        .untyped()
        .enumerate()
        .skip(caps.untyped.count as usize)
        .find(|(_, r)| r.base <= rtc_device.base && rtc_device.base < r.base + r.size_bytes)
        .map(|(i, _)| Cap::<Untyped>::from_slot(u64::from(caps.untyped.start) + i as u64))
        .unwrap_or_else(|| fail("no device untyped for the PL031"));
    let frame: Cap<Frame4K> = device.retype_one(0).unwrap_or_else(|_| fail("RTC frame"));
    let rtc = MappedFrame::device(frame, RTC_VADDR, parent).unwrap_or_else(|_| fail("RTC mapping"));
    rtc.write32(RTCCR, 1);
    rtc.write32(RTCICR, 1);
    let alarm: Cap<Notification> = parent
        .retype_one(0)
        .unwrap_or_else(|_| fail("notification"));
    let handler: Cap<IrqHandler> = Cap::<IrqControl>::from_slot(slots::IRQ_CONTROL)
        .get(irq, cap::allocate_slot().unwrap_or_else(|_| fail("slot")))
        .unwrap_or_else(|_| fail("IRQ handler"));
    if handler.set_notification(alarm).is_err() {
        fail("routing the IRQ");
    }
    rtc.write32(RTCIMSC, 1);

    let finished: Cap<Notification> = parent
        .retype_one(0)
        .unwrap_or_else(|_| fail("notification"));
    FINISHED.store(finished.slot(), Ordering::Relaxed);
    if thread::spawn(retyper, 0, 10).is_err() {
        fail("retyping thread");
    }
    let worst = alarm_rounds(&rtc, alarm, handler, None);
    stop_worker(finished);
    if RETYPES.load(Ordering::Relaxed) == 0 {
        fail("no retype finished");
    }
    println!(
        "[bench] retype_interrupt_latency_worst: {worst} instructions ({} MiB retyped {} times)",
        1u64 << (bits - 20),
        RETYPES.load(Ordering::Relaxed)
    );

    // A revoke of over 100,000 capabilities instead.
    let endpoint: Cap<Endpoint> = parent.retype_one(0).unwrap_or_else(|_| fail("endpoint"));
    let first = cap::allocate_slots(CNODE_COUNT).unwrap_or_else(|_| fail("CNode slots"));
    if parent
        .retype::<CNode>(CNODE_RADIX, first, CNODE_COUNT as u32)
        .is_err()
    {
        fail("CNodes");
    }
    ENDPOINT.store(endpoint.slot(), Ordering::Relaxed);
    CNODES.store(first, Ordering::Relaxed);
    STOP.store(false, Ordering::Relaxed);
    if thread::spawn(revoker, 0, 10).is_err() {
        fail("revoking thread");
    }
    let worst = alarm_rounds(&rtc, alarm, handler, Some(finished));
    stop_worker(finished);
    println!(
        "[bench] revoke_interrupt_latency_worst: {worst} instructions ({REVOKED} capabilities revoked {} times)",
        REVOKES.load(Ordering::Relaxed)
    );
    // Console writes of the most output one call can make, then retypes making the most
    // TCBs one call may.
    let worst = worst_during(WORK_CONSOLE, &rtc, alarm, handler, finished);
    println!(
        "[bench] console_interrupt_latency_worst: {worst} instructions ({} writes of {} bytes, each up to {} instructions)",
        WORK_CALLS.load(Ordering::Relaxed),
        kaal_abi::CONSOLE_WRITE_MAX_BYTES,
        CALL_TICKS.load(Ordering::Relaxed) * (1_000_000_000 / time::ticks_per_second())
    );
    let tcbs = parent
        .retype_one::<Untyped>(CREATE_COUNT.next_power_of_two().trailing_zeros() as u8 + 11)
        .unwrap_or_else(|_| fail("untyped for TCBs"));
    CREATE_UNTYPED.store(tcbs.slot(), Ordering::Relaxed);
    CREATE_FIRST.store(
        cap::allocate_slots(u64::from(CREATE_COUNT)).unwrap_or_else(|_| fail("TCB slots")),
        Ordering::Relaxed,
    );
    let worst = worst_during(WORK_CREATE, &rtc, alarm, handler, finished);
    println!(
        "[bench] create_interrupt_latency_worst: {worst} instructions ({} retypes of {CREATE_COUNT} TCBs, each {} instructions)",
        WORK_CALLS.load(Ordering::Relaxed),
        CALL_TICKS.load(Ordering::Relaxed) * (1_000_000_000 / time::ticks_per_second())
    );
    println!("[bench] done");
    sys::debug_exit(0);
    0
}
