//! Exceptions that QEMU's emulated machine never raises by itself, set up by the test
//! kernel's hooks (`kaal_kernel::arch::test_hooks`, armed with `kaal.test.hooks=1`): a
//! hook only creates the hardware condition, the kernel's normal vectors handle it.
//!
//! * An SError taken from EL0 (a virtual SError pended through EL2; configurations
//!   without EL2 skip it) is a fault of the thread: it reaches the fault endpoint, or
//!   the kernel reports it and stops only that thread.
//! * An FIQ taken from EL0 (a group-0 SGI) is reported and ignored; the thread goes on.
//! * A `tcb_configure` whose first deletion destroys the configured thread itself (the
//!   CNode holding its last capability), with the teardown stopped part way (forced
//!   preemption), writes nothing into the dead thread: the capabilities it was to get
//!   gain no child.
//! * Last, after the summary line: a kernel stack overflow ends the run with a clear
//!   report (`expect.txt`) and the kernel's panic exit status (`suite.txt`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::arch::asm;
use core::sync::atomic::AtomicU64;
use kaal_abi::fault;
use kaal_abi::{Syscall, UserRegisters, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, AddressSpace, CNode, Cap, Endpoint, Notification, Tcb, Untyped};
use kaal_user::ipc::{self, Message};
use kaal_user::sys::ThreadState;
use kaal_user::{BootInfo, println, thread};

kaal_user::entry!(main);

const PRIORITY: u8 = 128;

/// Which hooks the kernel can run here (bit `n`: hook `n`).
const QUERY: u64 = 0;
/// Pend a virtual SError, taken on the return to EL0.
const PEND_SERROR: u64 = 1;
/// Raise an FIQ, taken on the return to EL0.
const RAISE_FIQ: u64 = 2;
/// Answer "an interrupt is pending" at the next `x1` preemption points.
const FORCE_PREEMPTION: u64 = 4;
/// Radix of the victim's CSpace: slot 1 holds its TCB capability, slot 2 a
/// notification it waits on, slots 3.. copies that make its teardown long, the last two
/// the capabilities it configures itself with.
const VICTIM_RADIX: u8 = 6;
const VICTIM_SELF: u64 = 1;
const VICTIM_WAKE: u64 = 2;
const VICTIM_SPACE: u64 = (1 << VICTIM_RADIX) - 2;
const VICTIM_CNODE: u64 = (1 << VICTIM_RADIX) - 1;
/// The victim's stack.
static VICTIM_STACK: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// The victim's code, entered through its registers: waits for the signal, then
/// configures itself with the CNode and address space at the top of its CSpace. The
/// first deletion of that call destroys its CSpace root, which holds its last TCB
/// capability.
extern "C" fn configure_self() -> ! {
    let _ = cap::raw_syscall6(Syscall::Wait as u64, [VICTIM_WAKE, 0, 0, 0, 0, 0]);
    let _ = cap::raw_syscall6(
        Syscall::TcbConfigure as u64,
        [VICTIM_SELF, VICTIM_CNODE, VICTIM_SPACE, 0, 0, 0],
    );
    // Only reached if the thread outlived its own destruction.
    loop {
        let _ = cap::raw_syscall6(Syscall::Yield as u64, [0; 6]);
    }
}

/// Calls hook `number` with argument `argument` in `x1`.
fn hook_with(number: u64, argument: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `hook`.
    unsafe {
        asm!(
            "svc #0x7e57",
            inout("x0") number => result,
            in("x1") argument,
            in("x8") u64::MAX,
            clobber_abi("C"),
            options(nostack),
        );
    }
    result
}

/// Overflow the kernel stack.
const OVERFLOW_KERNEL_STACK: u64 = 3;

/// ESR_EL1 exception class of an SError.
const EC_SERROR: u64 = 0x2f;

/// Calls test hook `number` (`svc #0x7e57`); 0 means done. A kernel without armed hooks
/// takes it as a system call with an invalid number and returns an error.
fn hook(number: u64) -> u64 {
    let result: u64;
    // SAFETY: a system-call trap; the kernel writes only x0 (and, for an ordinary system
    // call, the result registers, which `clobber_abi` covers).
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

/// Pends an SError and returns to EL0, where it is taken; returns `0x5e` if the thread
/// goes on afterwards (its fault handler resumed it).
fn serror_victim(_: usize) -> u64 {
    match hook(PEND_SERROR) {
        0 => 0x5e,
        error => 0x1000 + error,
    }
}

fn hooks_possible() -> Result<u64, alloc::string::String> {
    let possible = hook(QUERY);
    check!(
        possible & (1 << RAISE_FIQ) != 0 && possible < 0x100,
        "no test hooks (query gave {possible:#x}): is this the test kernel, with kaal.test.hooks=1?"
    );
    Ok(possible)
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("exceptions");
    let untyped = cap::largest_ram_untyped(boot).expect("RAM untyped");
    let serror_possible = hook(QUERY) & (1 << PEND_SERROR) != 0;
    if !serror_possible {
        println!("no EL2 here: QEMU raises no physical SError, the SError tests are skipped");
    }

    suite.run("test_hooks_are_armed", || {
        hooks_possible()?;
        Ok(())
    });
    suite.run("serror_from_el0_goes_to_the_fault_handler", || {
        if !serror_possible {
            return Ok(());
        }
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let victim = thread::spawn_with_fault_handler(serror_victim, 0, PRIORITY, endpoint.slot())
            .map_err(|e| format!("{e:?}"))?;
        let message = endpoint.recv().map_err(|e| format!("{e:?}"))?;
        let words = message.message.words;
        check!(
            message.message.info.label == fault::LABEL_OTHER,
            "label {}",
            message.message.info.label
        );
        check!(
            words[fault::SYNDROME] >> 26 == EC_SERROR,
            "syndrome {:#x} is not an SError",
            words[fault::SYNDROME]
        );
        check!(
            words[fault::ADDRESS] == 0,
            "address {:#x}",
            words[fault::ADDRESS]
        );
        check!(words[fault::PC] != 0, "no pc");
        // Resumed, the thread goes on from where the SError was taken.
        ipc::reply(&Message::new(fault::RESUME, [0; 4])).map_err(|e| format!("{e:?}"))?;
        let state = victim.join();
        check!(
            state == ThreadState::Exited(0x5e),
            "victim ended as {state:?}"
        );
        Ok(())
    });
    suite.run(
        "serror_from_el0_without_handler_stops_only_the_thread",
        || {
            if !serror_possible {
                return Ok(());
            }
            let victim = thread::spawn(serror_victim, 0, PRIORITY).map_err(|e| format!("{e:?}"))?;
            let state = victim.join();
            check!(state == ThreadState::Faulted, "victim ended as {state:?}");
            Ok(())
        },
    );
    suite.run("fiq_from_el0_is_reported_and_the_thread_goes_on", || {
        hooks_possible()?;
        // The FIQ is taken as this thread returns to EL0; it must come back here.
        let result = hook(RAISE_FIQ);
        check!(result == 0, "FIQ hook gave {result}");
        // And again, from a second thread: stray FIQs stay harmless.
        let other =
            thread::spawn(|_| hook(RAISE_FIQ) + 7, 0, PRIORITY).map_err(|e| format!("{e:?}"))?;
        let state = other.join();
        check!(state == ThreadState::Exited(7), "thread ended as {state:?}");
        Ok(())
    });
    suite.run("configure_destroying_its_own_thread_part_way", || {
        let e = |what: &'static str| move |error: kaal_abi::Error| format!("{what}: {error:?}");
        let block: Cap<Untyped> = untyped.retype_one(16).map_err(e("block"))?;
        let other: Cap<Untyped> = untyped.retype_one(16).map_err(e("other"))?;
        let cspace: Cap<CNode> = block.retype_one(VICTIM_RADIX).map_err(e("CSpace"))?;
        let victim: Cap<Tcb> = block.retype_one(0).map_err(e("TCB"))?;
        let wake: Cap<Notification> = block.retype_one(0).map_err(e("notification"))?;
        let cnode: Cap<CNode> = other.retype_one(2).map_err(e("CNode"))?;
        let space: Cap<AddressSpace> = other.retype_one(0).map_err(e("address space"))?;
        victim
            .configure(cspace, Cap::from_slot(slots::ROOT_ADDRESS_SPACE), None, 0)
            .map_err(e("configure"))?;
        // This thread's priority (the most it may give): the two take turns on yield.
        victim.set_priority(PRIORITY).map_err(e("priority"))?;
        let registers = UserRegisters {
            pc: configure_self as *const () as u64,
            sp: VICTIM_STACK.as_ptr_range().end as u64,
            ..UserRegisters::default()
        };
        victim.write_registers(&registers).map_err(e("registers"))?;
        wake.copy_to(cspace, VICTIM_WAKE, rights::ALL)
            .map_err(e("wake"))?;
        // Runs when this thread yields, and waits for the signal.
        victim.resume().map_err(e("resume"))?;
        kaal_user::sys::yield_now();
        for index in 3..VICTIM_SPACE {
            wake.copy_to(cspace, index, rights::READ)
                .map_err(e("filler"))?;
        }
        space
            .copy_to(cspace, VICTIM_SPACE, rights::ALL)
            .map_err(e("space copy"))?;
        cnode
            .copy_to(cspace, VICTIM_CNODE, rights::ALL)
            .map_err(e("CNode copy"))?;
        victim
            .move_to_cnode(cspace, VICTIM_SELF)
            .map_err(e("TCB move"))?;
        // The victim's CSpace slot holds the last capability to its CSpace now.
        cspace.delete().map_err(e("CSpace delete"))?;
        // The teardown that its call starts stops after its first batch, which
        // destroys the victim but not the last slots.
        let forced = hook_with(FORCE_PREEMPTION, 1);
        check!(forced == 0, "forcing a preemption gave {forced}");
        wake.signal().map_err(e("signal"))?;
        kaal_user::sys::yield_now();
        hook_with(FORCE_PREEMPTION, 0);
        // Nothing was derived into the dead thread's slots: neither capability it was
        // to be configured with has a child.
        let children = (
            cnode.revoke().map_err(e("CNode revoke"))?,
            space.revoke().map_err(e("space revoke"))?,
        );
        check!(
            children == (0, 0),
            "the destroyed thread's slots hold (CNode, address space) children {children:?}"
        );
        other.revoke().map_err(e("other revoke"))?;
        block.revoke().map_err(e("block revoke"))?;
        Ok(())
    });
    suite.run("others_still_run_and_time_goes_on", || {
        let healthy =
            thread::spawn(|n| n as u64 + 1, 41, PRIORITY).map_err(|e| format!("{e:?}"))?;
        check!(
            healthy.join() == ThreadState::Exited(42),
            "healthy thread {:?}",
            healthy.state()
        );
        // 20 ms pass while this thread yields (the timer goes on interrupting).
        let end = kaal_user::time::now_ticks() + kaal_user::time::ticks_per_second() / 50;
        while kaal_user::time::now_ticks() < end {
            kaal_user::sys::yield_now();
        }
        Ok(())
    });
    if !suite.report() {
        return 1;
    }
    // Last: the run ends here, with the kernel's report of its stack overflow.
    println!("overflowing the kernel stack: the kernel must report it and stop");
    let result = hook(OVERFLOW_KERNEL_STACK);
    println!("the kernel stack overflow hook returned {result}");
    1
}
