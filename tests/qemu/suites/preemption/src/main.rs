//! Long kernel work is preemptible: `untyped_retype` zeroes a large untyped in bounded
//! steps and, when an interrupt is pending, stops and is restarted. A retype of the
//! largest memory the configuration has must be zeroed and complete; an interrupt-driven
//! higher-priority thread must keep running on time while it runs; and a retype stopped
//! part way, continued after another thread retyped from the same untyped and changed
//! its arguments, must hand out only zeroed memory, and none twice. `cap_revoke` is
//! preemptible the same way: the interrupt-driven thread must run on time during a
//! revoke of over 100,000 capabilities too.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kaal_abi::{Error, ObjectType, Syscall, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{
    self, AddressSpace, CNode, Cap, Endpoint, Frame2M, Frame4K, IrqControl, IrqHandler,
    Notification, Untyped,
};
use kaal_user::memory::MappedFrame;
use kaal_user::{BootInfo, println, sys, thread, time};

kaal_user::entry!(main);

// PL031 registers.
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCCR: usize = 0x0c;
const RTCIMSC: usize = 0x10;
const RTCICR: usize = 0x1c;
const RTC_VADDR: u64 = 0x30_0000_0000;
/// Where the 2 MiB frames under test are mapped, one after another.
const BIG_VADDR: u64 = 0x28_0000_0000;
/// Where the 4 KiB frames of the interfering thread are mapped.
const SMALL_VADDR: u64 = 0x2c_0000_0000;
const FRAME2M: u64 = 2 << 20;
const ROOT_PRIORITY: u8 = 128;
/// Alarms (one second each) in the latency test.
const ROUNDS: usize = 5;

fn err(error: Error) -> String {
    format!("{error:?}")
}

/// Word `index` of the memory mapped at `vaddr`.
fn read_word(vaddr: u64, index: u64) -> u64 {
    // SAFETY: callers pass memory this task mapped readable (RAM frames it holds), the
    // address is 8-byte aligned, and any bits are a valid `u64`.
    #[allow(unsafe_code)]
    unsafe {
        ((vaddr + index * 8) as *const u64).read_volatile()
    }
}

/// Writes word `index` of the memory mapped at `vaddr`.
fn write_word(vaddr: u64, index: u64, value: u64) {
    // SAFETY: callers pass memory this task mapped writable (RAM frames it holds, used
    // by nothing else), 8-byte aligned.
    #[allow(unsafe_code)]
    unsafe {
        ((vaddr + index * 8) as *mut u64).write_volatile(value)
    }
}

/// Maps the 2 MiB frames in slots `first..first + count` read-write from `BIG_VADDR`,
/// checks every word is zero, then writes a non-zero word into every 512 bytes (for the
/// next retype of the memory to clear), and unmaps them.
fn check_zero_and_dirty(first: u64, count: u64, tables: Cap<Untyped>) -> Result<(), String> {
    let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
    for i in 0..count {
        let frame = Cap::<Frame2M>::from_slot(first + i);
        let vaddr = BIG_VADDR + i * FRAME2M;
        cap::map_with_tables(frame, own, vaddr, rights::READ | rights::WRITE, 0, tables)
            .map_err(|e| format!("mapping frame {i}: {e:?}"))?;
        for word in 0..FRAME2M / 8 {
            let value = read_word(vaddr, word);
            check!(value == 0, "frame {i} word {word} is {value:#x}, not zero");
        }
        for word in (0..FRAME2M / 8).step_by(64) {
            write_word(vaddr, word, 0xdead_0000 | i);
        }
        frame.unmap().map_err(err)?;
    }
    Ok(())
}

/// The boot-info index of the largest RAM untyped and its size.
fn largest(boot: &BootInfo<'_>) -> (Cap<Untyped>, u64) {
    let caps = boot.caps();
    let (index, size) = boot
        .untyped()
        .take(caps.untyped.count as usize)
        .enumerate()
        .map(|(i, r)| (i, r.size_bytes))
        .max_by_key(|&(_, size)| size)
        .expect("RAM untyped");
    (
        Cap::from_slot(u64::from(caps.untyped.start) + index as u64),
        size,
    )
}

/// The untyped the retyping threads work on, its base and size.
struct Region {
    base: u64,
    bytes: u64,
}

// Shared with the retyping threads.
static REGION: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static RETYPES: AtomicU64 = AtomicU64::new(0);
/// The counter value at which the next alarm is due.
static DUE: AtomicU64 = AtomicU64::new(0);
static FAILURE: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);
static DONE: AtomicBool = AtomicBool::new(false);
static RESULT: AtomicU64 = AtomicU64::new(0);

/// Retypes the whole region into 2 MiB frames and revokes them, again and again from a
/// millisecond before each alarm, until told to stop; then signals the notification in
/// slot `done`.
fn retype_loop(done: usize) -> u64 {
    let untyped = Cap::<Untyped>::from_slot(REGION.load(Ordering::Relaxed));
    let count = RETYPES.load(Ordering::Relaxed) as u32;
    RETYPES.store(0, Ordering::Relaxed);
    let first = cap::allocate_slots(u64::from(count)).unwrap_or(0);
    let lead = time::ticks_per_second() / 1000;
    while !STOP.load(Ordering::Relaxed) {
        // Start a retype a millisecond before the alarm is due, so that the alarm falls
        // inside one (a retype of the region takes several times longer).
        let due = DUE.load(Ordering::Relaxed);
        if time::now_ticks() + lead < due {
            continue;
        }
        if let Err(error) = untyped.retype::<Frame2M>(0, first, count) {
            FAILURE.store(error as u64, Ordering::Relaxed);
            break;
        }
        // (The count is of the last issue of a revoke that may have been restarted.)
        if untyped.revoke().is_err() || cap::identify(first).is_ok() {
            FAILURE.store(u64::MAX, Ordering::Relaxed);
            break;
        }
        RETYPES.fetch_add(1, Ordering::Relaxed);
    }
    let _ = Cap::<Notification>::from_slot(done as u64).signal();
    0
}

/// CNodes the revoke test fills with copies of an endpoint, and their size.
const REVOKE_CNODES: u64 = 25;
const REVOKE_RADIX: u8 = 12;
/// The revoke test's endpoint, first CNode and a notification signalled after each
/// revoke (or failure).
static REVOKE_ENDPOINT: AtomicU64 = AtomicU64::new(0);
static REVOKE_FIRST: AtomicU64 = AtomicU64::new(0);
static REVOKE_FINISHED: AtomicU64 = AtomicU64::new(0);

/// For each alarm (each new `DUE`): copies the endpoint into every slot of the CNodes
/// (over 100,000 capabilities), then revokes them all from a millisecond before the
/// alarm is due, so that it falls inside the revoke; until told to stop.
fn revoke_loop(_: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(REVOKE_ENDPOINT.load(Ordering::Relaxed));
    let first = REVOKE_FIRST.load(Ordering::Relaxed);
    let finished = Cap::<Notification>::from_slot(REVOKE_FINISHED.load(Ordering::Relaxed));
    let lead = time::ticks_per_second() / 1000;
    let mut done_for = 0;
    while !STOP.load(Ordering::Relaxed) {
        let due = DUE.load(Ordering::Relaxed);
        if due == done_for {
            continue;
        }
        for cnode in first..first + REVOKE_CNODES {
            for index in 1..1 << REVOKE_RADIX {
                if let Err(error) =
                    endpoint.copy_to(Cap::<CNode>::from_slot(cnode), index, rights::READ)
                {
                    FAILURE.store(error as u64, Ordering::Relaxed);
                    let _ = finished.signal();
                    return 1;
                }
            }
        }
        while time::now_ticks() + lead < due {}
        if endpoint.revoke().is_err() || endpoint.identify().is_err() {
            FAILURE.store(u64::MAX, Ordering::Relaxed);
            let _ = finished.signal();
            return 1;
        }
        RETYPES.fetch_add(1, Ordering::Relaxed);
        done_for = due;
        let _ = finished.signal();
    }
    0
}

/// One retype of `count` (in `RETYPES`) 2 MiB frames into slots from `first`, its result
/// in `RESULT` (the address, or the error code with bit 63 set).
fn retype_once(first: usize) -> u64 {
    let untyped = Cap::<Untyped>::from_slot(REGION.load(Ordering::Relaxed));
    let count = RETYPES.load(Ordering::Relaxed) as u32;
    STARTED.store(true, Ordering::SeqCst);
    let result = match untyped.retype::<Frame2M>(0, first as u64, count) {
        Ok(address) => address,
        Err(error) => (1 << 63) | error as u64,
    };
    RESULT.store(result, Ordering::SeqCst);
    DONE.store(true, Ordering::SeqCst);
    0
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("preemption");
    let (parent, parent_bytes) = largest(boot);
    // Half the largest untyped (the other half holds threads and page tables), as a
    // child of its own that the tests retype and revoke whole.
    let bits = parent_bytes.trailing_zeros() as u8 - 1;
    let child = parent.retype_one::<Untyped>(bits).expect("child untyped");
    let region = Region {
        base: 0,
        bytes: 1 << bits,
    };
    let frames = region.bytes / FRAME2M;
    println!(
        "[preemption] retyping a {} MiB untyped into {frames} 2 MiB frames",
        region.bytes >> 20
    );
    REGION.store(child.slot(), Ordering::Relaxed);
    let mut region = region;

    suite.run("a_large_retype_is_zeroed_and_complete", || {
        let first = cap::allocate_slots(frames + 1).map_err(err)?;
        for round in 0..2 {
            let address = child
                .retype::<Frame2M>(0, first, frames as u32)
                .map_err(|e| format!("round {round}: {e:?}"))?;
            if round == 0 {
                region.base = address;
            }
            check!(
                address == region.base && address % region.bytes == 0,
                "round {round}: first frame at {address:#x}"
            );
            for i in 0..frames {
                check!(
                    cap::identify(first + i).map(|(ty, _)| ty) == Ok(ObjectType::Frame2M),
                    "round {round}: slot {i} is not a 2 MiB frame"
                );
            }
            check!(
                cap::identify(first + frames) == Err(Error::InvalidCapability),
                "round {round}: one frame too many"
            );
            // Round 1 gets the memory round 0 dirtied: the retype zeroed it again.
            check_zero_and_dirty(first, frames, parent)
                .map_err(|e| format!("round {round}: {e}"))?;
            // The count is of the last issue, if the revoke was restarted.
            let revoked = child.revoke().map_err(err)?;
            check!(revoked <= frames, "round {round}: revoked {revoked}");
            check!(
                cap::identify(first).is_err() && cap::identify(first + frames - 1).is_err(),
                "round {round}: frames left after the revoke"
            );
        }
        Ok(())
    });

    suite.run("an_interrupt_driven_thread_runs_on_time_during_a_large_retype", || {
        let rtc_device = boot.find_device("arm,pl031").ok_or("no PL031")?;
        let irq = rtc_device.irqs().next().ok_or("no PL031 interrupt")?;
        let caps = boot.caps();
        let index = boot
            .untyped()
            .enumerate()
            .skip(caps.untyped.count as usize)
            .find(|(_, r)| r.base <= rtc_device.base && rtc_device.base < r.base + r.size_bytes)
            .map(|(i, _)| i)
            .ok_or("no device untyped covers the PL031")?;
        let device = Cap::<Untyped>::from_slot(u64::from(caps.untyped.start) + index as u64);
        let frame: Cap<Frame4K> = device.retype_one(0).map_err(err)?;
        let rtc = MappedFrame::device(frame, RTC_VADDR, parent).map_err(err)?;
        rtc.write32(RTCCR, 1);
        rtc.write32(RTCIMSC, 0);
        rtc.write32(RTCICR, 1);
        let alarm: Cap<Notification> = parent.retype_one(0).map_err(err)?;
        let done: Cap<Notification> = parent.retype_one(0).map_err(err)?;
        let handler: Cap<IrqHandler> = Cap::<IrqControl>::from_slot(slots::IRQ_CONTROL)
            .get(irq, cap::allocate_slot().map_err(err)?)
            .map_err(err)?;
        handler.set_notification(alarm).map_err(err)?;
        rtc.write32(RTCIMSC, 1);

        STOP.store(false, Ordering::Relaxed);
        FAILURE.store(0, Ordering::Relaxed);
        RETYPES.store(frames, Ordering::Relaxed);
        let worker = thread::spawn(retype_loop, done.slot() as usize, 10).map_err(err)?;
        let mut late = Vec::new();
        for _ in 0..ROUNDS {
            // The alarm is due exactly one second after the match register is written.
            let at = rtc.read32(RTCDR).unwrap_or(0).wrapping_add(1);
            let due = time::now_ticks() + time::ticks_per_second();
            DUE.store(due, Ordering::Relaxed);
            rtc.write32(RTCMR, at);
            // Blocks: the retyping thread runs until the alarm.
            alarm.wait().map_err(err)?;
            late.push(time::now_ticks().saturating_sub(due));
            rtc.write32(RTCICR, 1);
            handler.ack().map_err(err)?;
        }
        STOP.store(true, Ordering::Relaxed);
        done.wait().map_err(err)?;
        rtc.write32(RTCIMSC, 0);
        handler.delete().map_err(err)?;
        // It signalled and was preempted at once: it cannot run below this thread to
        // end, so it is stopped.
        worker.tcb().suspend().map_err(err)?;
        let _ = worker.join();
        let retypes = RETYPES.load(Ordering::Relaxed);
        let failure = FAILURE.load(Ordering::Relaxed);
        check!(failure == 0, "the retyping thread failed ({failure:#x})");
        check!(retypes >= 2, "only {retypes} retypes meanwhile");
        let per_ms = time::ticks_per_second() / 1000;
        println!(
            "[preemption] alarm lateness in counter ticks ({per_ms} per ms): {late:?}, during {retypes} retypes of {} MiB",
            region.bytes >> 20
        );
        late.sort_unstable();
        // Generous: one round may suffer the host's scheduling; the rest must be within
        // 10 ms (the kernel's part is some 20,000 instructions, microseconds). A retype
        // run to completion with interrupts masked makes every round later than that:
        // each alarm falls a millisecond into a retype of the region, which takes
        // 7,000,000 instructions or more (15 to 30 ms under QEMU).
        let bound = time::ticks_per_second() / 100;
        check!(
            late[ROUNDS - 2] < bound,
            "the alarm thread ran late: {late:?} ticks (bound {bound})"
        );
        Ok(())
    });

    suite.run("an_interrupt_driven_thread_runs_on_time_during_a_large_revoke", || {
        let rtc_device = boot.find_device("arm,pl031").ok_or("no PL031")?;
        let irq = rtc_device.irqs().next().ok_or("no PL031 interrupt")?;
        let caps = boot.caps();
        let index = boot
            .untyped()
            .enumerate()
            .skip(caps.untyped.count as usize)
            .find(|(_, r)| r.base <= rtc_device.base && rtc_device.base < r.base + r.size_bytes)
            .map(|(i, _)| i)
            .ok_or("no device untyped covers the PL031")?;
        let device = Cap::<Untyped>::from_slot(u64::from(caps.untyped.start) + index as u64);
        // The latency test above took the PL031's frame: start the device memory again.
        device.revoke().map_err(err)?;
        let frame: Cap<Frame4K> = device.retype_one(0).map_err(err)?;
        let rtc = MappedFrame::device(frame, RTC_VADDR + 0x1000, parent).map_err(err)?;
        rtc.write32(RTCCR, 1);
        rtc.write32(RTCIMSC, 0);
        rtc.write32(RTCICR, 1);
        let alarm: Cap<Notification> = parent.retype_one(0).map_err(err)?;
        let finished: Cap<Notification> = parent.retype_one(0).map_err(err)?;
        let endpoint: Cap<Endpoint> = parent.retype_one(0).map_err(err)?;
        let first = cap::allocate_slots(REVOKE_CNODES).map_err(err)?;
        parent
            .retype::<CNode>(REVOKE_RADIX, first, REVOKE_CNODES as u32)
            .map_err(err)?;
        let handler: Cap<IrqHandler> = Cap::<IrqControl>::from_slot(slots::IRQ_CONTROL)
            .get(irq, cap::allocate_slot().map_err(err)?)
            .map_err(err)?;
        handler.set_notification(alarm).map_err(err)?;
        rtc.write32(RTCIMSC, 1);

        REVOKE_ENDPOINT.store(endpoint.slot(), Ordering::Relaxed);
        REVOKE_FIRST.store(first, Ordering::Relaxed);
        REVOKE_FINISHED.store(finished.slot(), Ordering::Relaxed);
        STOP.store(false, Ordering::Relaxed);
        FAILURE.store(0, Ordering::Relaxed);
        RETYPES.store(0, Ordering::Relaxed);
        DUE.store(0, Ordering::Relaxed);
        let worker = thread::spawn(revoke_loop, 0, 10).map_err(err)?;
        let mut late = Vec::new();
        for _ in 0..ROUNDS {
            let at = rtc.read32(RTCDR).unwrap_or(0).wrapping_add(1);
            let due = time::now_ticks() + time::ticks_per_second();
            DUE.store(due, Ordering::Relaxed);
            rtc.write32(RTCMR, at);
            // Blocks: the revoking thread fills the CNodes and revokes until the alarm.
            alarm.wait().map_err(err)?;
            late.push(time::now_ticks().saturating_sub(due));
            rtc.write32(RTCICR, 1);
            handler.ack().map_err(err)?;
            // The rest of the revoke, before the next round.
            finished.wait().map_err(err)?;
            let failure = FAILURE.load(Ordering::Relaxed);
            check!(failure == 0, "the revoking thread failed ({failure:#x})");
        }
        STOP.store(true, Ordering::Relaxed);
        rtc.write32(RTCIMSC, 0);
        handler.delete().map_err(err)?;
        worker.tcb().suspend().map_err(err)?;
        let _ = worker.join();
        let revokes = RETYPES.load(Ordering::Relaxed);
        check!(revokes == ROUNDS as u64, "only {revokes} revokes");
        let per_ms = time::ticks_per_second() / 1000;
        println!(
            "[preemption] alarm lateness in counter ticks ({per_ms} per ms): {late:?}, during revokes of {} capabilities",
            REVOKE_CNODES * ((1 << REVOKE_RADIX) - 1)
        );
        late.sort_unstable();
        // As for the retype: one round may suffer the host's scheduling, the rest must
        // be within 10 ms. A revoke run to completion with interrupts masked makes every
        // round later than that: it takes some 25,000,000 instructions (tens of ms under
        // QEMU) and the alarm falls a millisecond into it.
        let bound = time::ticks_per_second() / 100;
        check!(
            late[ROUNDS - 2] < bound,
            "the alarm thread ran late: {late:?} ticks (bound {bound})"
        );
        for slot in (first..first + REVOKE_CNODES).chain([endpoint.slot()]) {
            Cap::<CNode>::from_slot(slot).delete().map_err(err)?;
            cap::free_slot(slot).map_err(err)?;
        }
        Ok(())
    });

    suite.run("a_restarted_retype_with_changed_arguments_hands_out_zero_memory_once", || {
        // A thread of this thread's priority retypes the region into 2 MiB frames (all
        // but one, to leave room), and the timer's round robin stops it part way. Each
        // time this thread runs while that retype is unfinished, it retypes a 4 KiB
        // frame from the same untyped, fills it, and the first time also changes the
        // stopped call's count. The continued retype must not zero or hand out those
        // frames, must hand out only zero memory, and must make the new count.
        let count = frames - 1;
        let first = cap::allocate_slots(count).map_err(err)?;
        STARTED.store(false, Ordering::SeqCst);
        DONE.store(false, Ordering::SeqCst);
        RETYPES.store(count, Ordering::Relaxed);
        let worker = thread::spawn(retype_once, first as usize, ROOT_PRIORITY).map_err(err)?;
        let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
        let mut small: Vec<(u64, u64)> = Vec::new();
        let mut changed = false;
        while !DONE.load(Ordering::SeqCst) {
            if STARTED.load(Ordering::SeqCst) && small.len() < 16 {
                let mut registers = worker.tcb().read_registers().map_err(err)?;
                if registers.x[8] == Syscall::UntypedRetype as u64 && !changed {
                    registers.x[4] = count - 1;
                    worker.tcb().write_registers(&registers).map_err(err)?;
                    changed = true;
                }
                let slot = cap::allocate_slot().map_err(err)?;
                let address = child.retype::<Frame4K>(0, slot, 1).map_err(err)?;
                let frame = Cap::<Frame4K>::from_slot(slot);
                let vaddr = SMALL_VADDR + small.len() as u64 * 4096;
                cap::map_with_tables(frame, own, vaddr, rights::READ | rights::WRITE, 0, parent)
                    .map_err(err)?;
                for word in 0..512 {
                    check!(read_word(vaddr, word) == 0, "a 4 KiB frame is not zero");
                    write_word(vaddr, word, 0x5a5a_0000 + small.len() as u64);
                }
                small.push((address, vaddr));
            }
            sys::yield_now();
        }
        let _ = worker.join();
        let result = RESULT.load(Ordering::SeqCst);
        check!(result >> 63 == 0, "the retype failed: {:#x}", result);
        println!(
            "[preemption] the retype was continued {} times with frames taken meanwhile",
            small.len()
        );
        check!(
            changed && !small.is_empty(),
            "the retype was never stopped part way (it ran to completion with interrupts masked)"
        );
        let made = count - 1;
        check!(
            cap::identify(first + made - 1).map(|(ty, _)| ty) == Ok(ObjectType::Frame2M)
                && cap::identify(first + made) == Err(Error::InvalidCapability),
            "the retype did not make the count written while it was stopped ({made}): it was not stopped part way and continued"
        );
        let end = result + made * FRAME2M;
        for (i, &(address, vaddr)) in small.iter().enumerate() {
            check!(
                address + 4096 <= result || address >= end,
                "4 KiB frame {i} at {address:#x} inside the retyped {result:#x}..{end:#x}"
            );
            for word in 0..512 {
                check!(
                    read_word(vaddr, word) == 0x5a5a_0000 + i as u64,
                    "4 KiB frame {i} was overwritten"
                );
            }
        }
        check!(
            end <= region.base + region.bytes,
            "frames past the region"
        );
        check_zero_and_dirty(first, made, parent)?;
        child.revoke().map_err(err)?;
        Ok(())
    });

    suite.finish()
}
