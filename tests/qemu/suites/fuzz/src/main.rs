//! The system-call fuzzer's root task: builds an unprivileged process (`fuzzer`) that
//! holds a capability of every type a component can hold, lets it make a million random
//! system calls (boundary and random arguments, hostile pointers), then checks the
//! kernel's invariants: the process ends as it should (it reports, never faults into
//! us), every object it made or was given is gone once its memory is revoked (the
//! untyped can be retyped whole again), and this task still works.
//!
//! Boot arguments: `kaal.fuzz.calls=N` (default 1,000,000), `kaal.fuzz.seed=S`
//! (default: from the host's time, so every run covers new ground; the seed is printed
//! for a replay).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use kaal_abi::{Error, rights, slots};
use kaal_test_harness::{Suite, bootarg, check};
use kaal_user::BootInfo;
use kaal_user::cap::{
    self, AddressSpace, CNode, Cap, Endpoint, Frame4K, IrqControl, Notification, PageTable, Tcb,
    Untyped,
};
use kaal_user::process::{Process, ProcessOptions};
use kaal_user::{bootinfo, println};

kaal_user::entry!(main);

/// Calls per run unless `kaal.fuzz.calls` says otherwise.
const DEFAULT_CALLS: u64 = 1_000_000;
/// The fuzzer's memory: every object it is given or makes comes from here.
const FUZZ_MEMORY_BITS: u8 = 22;
/// Its CSpace: 2^8 slots.
const CNODE_RADIX: u8 = 8;
/// Where its capabilities are (slots `GIVEN..GIVEN + 9`).
const GIVEN: u64 = 8;
/// The slot of its report endpoint, which its random arguments never name.
const REPORT_SLOT: u64 = 255;
/// Badge of the fuzzer's report capability.
const REPORT_BADGE: u64 = 0xf0;
/// Badge of its fault endpoint capability (the same endpoint, in slot `REPORT_SLOT - 1`).
const FAULT_BADGE: u64 = 0xf1;
/// An interrupt line nothing on QEMU `virt` uses, for the fuzzer's IRQ handler.
const SPARE_IRQ: u32 = 100;

fn err(error: Error) -> String {
    format!("{error:?}")
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("fuzz");
    let calls = bootarg(boot.bootargs(), "kaal.fuzz.calls")
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CALLS);
    let seed = bootarg(boot.bootargs(), "kaal.fuzz.seed")
        .and_then(|n| n.parse::<u32>().ok())
        .or_else(|| {
            bootarg(boot.bootargs(), "kaal.test.unix_time")
                .and_then(|n| n.parse::<u64>().ok())
                .map(|t| (t ^ (t >> 32)) as u32)
        })
        .unwrap_or(0x5eed)
        .max(1);
    let untyped = cap::largest_ram_untyped(boot).expect("RAM untyped");
    let archive = kaal_user::components().expect("component archive");
    suite.run(
        "a_million_random_system_calls_leave_the_kernel_whole",
        || {
            run_fuzzer(
                untyped,
                archive.get("fuzzer").ok_or("no fuzzer image")?,
                calls,
                seed,
            )
        },
    );
    suite.run("this_task_still_works", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        notification.signal().map_err(err)?;
        check!(notification.poll().map_err(err)? == 1, "signal and poll");
        endpoint.delete().map_err(err)?;
        notification.delete().map_err(err)?;
        check!(
            bootinfo::BOOT_INFO_VADDR != 0 && boot.untyped_count() > 0,
            "boot info"
        );
        Ok(())
    });
    suite.finish()
}

/// Builds the fuzzer, gives it one capability of each type, runs it and checks.
fn run_fuzzer(untyped: Cap<Untyped>, image: &[u8], calls: u64, seed: u32) -> Result<(), String> {
    let memory: Cap<Untyped> = untyped.retype_one(FUZZ_MEMORY_BITS).map_err(err)?;
    // The process itself comes from other memory, so that revoking `memory` afterwards
    // takes exactly what the fuzzer was given and made.
    let process = Process::build(
        untyped,
        image,
        &ProcessOptions {
            cnode_radix: CNODE_RADIX,
            ..ProcessOptions::default()
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    let cnode = process.cnode();
    let given_untyped: Cap<Untyped> = memory.retype_one(16).map_err(err)?;
    let endpoint: Cap<Endpoint> = memory.retype_one(0).map_err(err)?;
    let notification: Cap<Notification> = memory.retype_one(0).map_err(err)?;
    let tcb: Cap<Tcb> = memory.retype_one(0).map_err(err)?;
    let small_cnode: Cap<CNode> = memory.retype_one(4).map_err(err)?;
    let frame: Cap<Frame4K> = memory.retype_one(0).map_err(err)?;
    let table: Cap<PageTable> = memory.retype_one(0).map_err(err)?;
    let space: Cap<AddressSpace> = memory.retype_one(0).map_err(err)?;
    let irq_control = Cap::<IrqControl>::from_slot(slots::IRQ_CONTROL);
    let handler = irq_control
        .get(SPARE_IRQ, cap::allocate_slot().map_err(err)?)
        .map_err(err)?;
    let given = [
        given_untyped.slot(),
        endpoint.slot(),
        notification.slot(),
        tcb.slot(),
        small_cnode.slot(),
        frame.slot(),
        table.slot(),
        space.slot(),
        handler.slot(),
    ];
    // Moved, not copied: page-table capabilities cannot be copied.
    for (i, &slot) in given.iter().enumerate() {
        Cap::<Untyped>::from_slot(slot)
            .move_to_cnode(cnode, GIVEN + i as u64)
            .map_err(|e| format!("giving slot {slot}: {e:?}"))?;
        cap::free_slot(slot).map_err(err)?;
    }
    let report: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
    let client = report
        .mint(
            cap::allocate_slot().map_err(err)?,
            rights::WRITE,
            REPORT_BADGE,
        )
        .map_err(err)?;
    client
        .copy_to(cnode, REPORT_SLOT, rights::WRITE)
        .map_err(err)?;
    let faults = report
        .mint(
            cap::allocate_slot().map_err(err)?,
            rights::WRITE,
            FAULT_BADGE,
        )
        .map_err(err)?;
    faults
        .copy_to(cnode, REPORT_SLOT - 1, rights::WRITE)
        .map_err(err)?;
    process.set_fault_endpoint(REPORT_SLOT - 1).map_err(err)?;
    let calls = calls.min(u64::from(u32::MAX));
    process
        .start(calls << 32 | u64::from(seed), 100)
        .map_err(err)?;
    let received = report.recv().map_err(err)?;
    check!(
        received.badge == REPORT_BADGE,
        "the fuzzer faulted (badge {:#x}, label {}, pc {:#x}, address {:#x}) instead of reporting",
        received.badge,
        received.message.info.label,
        received.message.words[kaal_abi::fault::PC],
        received.message.words[kaal_abi::fault::ADDRESS]
    );
    let [made, succeeded, unknown_status, _] = received.message.words;
    check!(
        unknown_status == 0,
        "{unknown_status} calls returned a status that is no error code"
    );
    check!(made == calls, "the fuzzer made {made} of {calls} calls");
    let _ = kaal_user::ipc::reply(&kaal_user::ipc::Message::new(0, [0; 4]));
    // Stop it and everything it started, then take back every object.
    let _ = process.tcb().suspend();
    memory
        .revoke()
        .map_err(|e| format!("revoking the fuzzer's memory: {e:?}"))?;
    // Both halves fit only if nothing is left in it.
    let halves = cap::allocate_slots(2).map_err(err)?;
    let whole = memory.retype::<Untyped>(FUZZ_MEMORY_BITS - 1, halves, 2);
    check!(
        whole.is_ok(),
        "after the revoke the fuzzer's memory is not whole again: {:?}",
        whole.err()
    );
    println!("syscall fuzz: {made} calls, seed {seed}, 0 kernel faults ({succeeded} succeeded)");
    Ok(())
}
