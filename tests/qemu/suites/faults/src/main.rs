//! User faults: each kind is reported by the kernel, stops only the faulting thread, and
//! the next test still passes.
#![no_std]
#![no_main]

extern crate alloc;

use core::arch::asm;
use kaal_test_harness::{Suite, check};
use kaal_user::sys::ThreadState;
use kaal_user::{BootInfo, thread};

kaal_user::entry!(main);

const PRIORITY: u8 = 128;
static READ_ONLY: [u64; 4] = [1, 2, 3, 4];

fn load(address: usize) -> u64 {
    let value: u64;
    // SAFETY: a raw load in assembly; the address is deliberately invalid for this task,
    // so the kernel stops the thread before any value reaches Rust code.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) address, v = out(reg) value, options(nostack)) };
    value
}

fn store(address: usize) -> u64 {
    // SAFETY: as in `load`, for a store.
    unsafe { asm!("str xzr, [{a}]", a = in(reg) address, options(nostack)) };
    0
}

fn kernel_read(_: usize) -> u64 {
    load(0xffff_ff80_4008_0000)
}
fn unmapped_read(_: usize) -> u64 {
    load(0x7654_3000)
}
fn read_only_write(_: usize) -> u64 {
    store(READ_ONLY.as_ptr() as usize)
}
fn undefined_instruction(_: usize) -> u64 {
    // SAFETY: UDF always traps; the kernel stops the thread.
    unsafe { asm!("udf #0", options(nostack)) };
    0
}
fn execute_data(_: usize) -> u64 {
    let target = READ_ONLY.as_ptr() as usize;
    // SAFETY: branching into a non-executable page traps before anything executes.
    unsafe { asm!("blr {t}", t = in(reg) target, clobber_abi("C")) };
    0
}
fn breakpoint(_: usize) -> u64 {
    // SAFETY: BRK traps to the kernel, which stops the thread.
    unsafe { asm!("brk #0x42", options(nostack)) };
    0
}
fn misaligned_pc(_: usize) -> u64 {
    let target = undefined_instruction as usize + 2;
    // SAFETY: branching to a misaligned address raises a PC alignment fault.
    unsafe { asm!("br {t}", t = in(reg) target, options(nostack)) };
    0
}

fn main(_boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("faults");
    let cases: [(&str, fn(usize) -> u64); 7] = [
        ("kernel_address_read_is_stopped", kernel_read),
        ("unmapped_read_is_stopped", unmapped_read),
        ("write_to_read_only_data_is_stopped", read_only_write),
        ("undefined_instruction_is_stopped", undefined_instruction),
        ("executing_data_is_stopped", execute_data),
        ("breakpoint_is_stopped", breakpoint),
        ("misaligned_pc_is_stopped", misaligned_pc),
    ];
    for (name, body) in cases {
        suite.run(name, || {
            let victim =
                thread::spawn(body, 0, PRIORITY).map_err(|e| alloc::format!("spawn: {e}"))?;
            let state = victim.join();
            check!(state == ThreadState::Faulted, "thread ended as {state:?}");
            Ok(())
        });
        // The rest of the task is unharmed: a fresh thread still runs to completion.
        suite.run("next_thread_still_runs", || {
            let healthy = thread::spawn(|n| n as u64 + 1, 6, PRIORITY)
                .map_err(|e| alloc::format!("spawn: {e}"))?;
            check!(
                healthy.join() == ThreadState::Exited(7),
                "healthy thread {:?}",
                healthy.state()
            );
            Ok(())
        });
    }
    check_read_only_intact(&mut suite);
    suite.finish()
}

fn check_read_only_intact(suite: &mut Suite) {
    suite.run("read_only_data_unchanged", || {
        check!(
            core::hint::black_box(&READ_ONLY) == &[1, 2, 3, 4],
            "read-only data changed"
        );
        Ok(())
    });
}
