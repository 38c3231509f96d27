//! User faults: each kind is reported by the kernel, stops only the faulting thread, and
//! the next test still passes.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::arch::asm;
use kaal_abi::{fault, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, AddressSpace, Cap, Endpoint, Frame4K};
use kaal_user::ipc::{self, Message};
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

fn store_value(address: usize, value: u64) {
    // SAFETY: as in `load`, for a store of `value`; after the fault handler maps the
    // page, the store completes into memory this task owns.
    unsafe { asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)) };
}

const HANDLED_PAGE: usize = 0x5000_0000;

/// Touches an unmapped page: its fault handler maps it, and the thread completes.
fn touch_unmapped(_: usize) -> u64 {
    let first = load(HANDLED_PAGE);
    store_value(HANDLED_PAGE + 8, 0x1234);
    first + load(HANDLED_PAGE + 8)
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
    let target = undefined_instruction as *const () as usize + 2;
    // SAFETY: branching to a misaligned address raises a PC alignment fault.
    unsafe { asm!("br {t}", t = in(reg) target, options(nostack)) };
    0
}

/// A test's name and the thread body that faults.
type FaultCase = (&'static str, fn(usize) -> u64);

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("faults");
    let cases: [FaultCase; 7] = [
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

    let untyped = cap::largest_ram_untyped(boot).expect("RAM untyped");
    suite.run(
        "page_fault_handler_maps_the_page_and_the_thread_completes",
        || {
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
            let badged = endpoint
                .mint(
                    cap::allocate_slot().map_err(|e| format!("{e:?}"))?,
                    rights::WRITE,
                    0xf1,
                )
                .map_err(|e| format!("{e:?}"))?;
            let victim =
                thread::spawn_with_fault_handler(touch_unmapped, 0, PRIORITY, badged.slot())
                    .map_err(|e| format!("{e:?}"))?;
            // The victim runs when we block here, faults, and its fault arrives as a call.
            let fault = endpoint.recv().map_err(|e| format!("{e:?}"))?;
            check!(
                fault.message.info.label == fault::LABEL_MEMORY,
                "label {}",
                fault.message.info.label
            );
            check!(fault.badge == 0xf1, "badge {:#x}", fault.badge);
            check!(
                fault.message.words[fault::ADDRESS] == HANDLED_PAGE as u64,
                "address {:#x}",
                fault.message.words[fault::ADDRESS]
            );
            check!(
                fault.message.words[fault::KIND_DETAIL] == 0,
                "not a read fault"
            );
            let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
            let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
            cap::map_with_tables(
                frame,
                own,
                HANDLED_PAGE as u64,
                rights::READ | rights::WRITE,
                0,
                untyped,
            )
            .map_err(|e| format!("{e:?}"))?;
            ipc::reply(&Message::new(fault::RESUME, [0; 4])).map_err(|e| format!("{e:?}"))?;
            check!(
                victim.join() == ThreadState::Exited(0x1234),
                "victim ended {:?}",
                victim.state()
            );
            Ok(())
        },
    );
    suite.run("undefined_instruction_handler_stops_the_thread", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let victim =
            thread::spawn_with_fault_handler(undefined_instruction, 0, PRIORITY, endpoint.slot())
                .map_err(|e| format!("{e:?}"))?;
        let fault = endpoint.recv().map_err(|e| format!("{e:?}"))?;
        check!(
            fault.message.info.label == fault::LABEL_UNDEFINED,
            "label {}",
            fault.message.info.label
        );
        ipc::reply(&Message::new(fault::STOP, [0; 4])).map_err(|e| format!("{e:?}"))?;
        check!(
            victim.join() == ThreadState::Faulted,
            "victim ended {:?}",
            victim.state()
        );
        Ok(())
    });
    suite.run("registers_are_never_written_to_read_only_memory", || {
        let tcb: Cap<kaal_user::cap::Tcb> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let target = READ_ONLY.as_ptr() as u64;
        // SAFETY: the kernel refuses (read-only memory), so nothing is written; were it
        // to write, it would be into memory this test only inspects afterwards.
        let (status, _, _) = unsafe {
            cap::raw_syscall6_unchecked(
                kaal_abi::Syscall::TcbReadRegisters as u64,
                [tcb.slot(), target, 0, 0, 0, 0],
            )
        };
        check!(
            status == kaal_abi::Error::BadAddress as u64,
            "read-only buffer gave {status}"
        );
        check!(
            core::hint::black_box(&READ_ONLY) == &[1, 2, 3, 4],
            "read-only data changed"
        );
        Ok(())
    });
    suite.run("others_still_run_after_handled_faults", || {
        let healthy =
            thread::spawn(|n| n as u64 + 1, 41, PRIORITY).map_err(|e| format!("{e:?}"))?;
        check!(
            healthy.join() == ThreadState::Exited(42),
            "healthy thread {:?}",
            healthy.state()
        );
        Ok(())
    });
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
