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
//! * The IPC fast paths change nothing but speed: the same pseudo-random sequence of
//!   calls, replies and signals between threads of several priorities, run with the
//!   fast paths on and then off (hook `SET_FAST_PATHS`), gives the same transcript:
//!   every result, badge, message word and the order in which the threads ran.
//! * `thread_id`, answered in the exception vector before anything is saved, returns
//!   what the general path returns (`svc #1`, which the vector leaves to it) and leaves
//!   every register but the results as it was; a fault taken with `x8` = 8 is still a
//!   fault.
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
/// How many of the forced answers are still unused.
const FORCED_LEFT: u64 = 6;
/// How many system calls the general entry has taken.
const GENERAL_SYSCALLS: u64 = 7;
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

/// Turn the IPC fast paths off (`x1` = 0) or on.
const SET_FAST_PATHS: u64 = 5;

/// The differential run's shared state: the transcript every thread appends to, and
/// the endpoints and notifications of its servers and waiters.
const SERVERS: usize = 3;
const WAITERS: usize = 2;
const STEPS: usize = 2000;
const TRANSCRIPT_WORDS: usize = 4 * STEPS + 64;
static TRANSCRIPT: [AtomicU64; TRANSCRIPT_WORDS] = [const { AtomicU64::new(0) }; TRANSCRIPT_WORDS];
static TRANSCRIPT_LENGTH: AtomicU64 = AtomicU64::new(0);
static SERVER_ENDPOINTS: [AtomicU64; SERVERS] = [const { AtomicU64::new(0) }; SERVERS];
static WAITER_NOTIFICATIONS: [AtomicU64; WAITERS] = [const { AtomicU64::new(0) }; WAITERS];
/// The label that ends a server or waiter.
const QUIT: u64 = 0xdead;

/// Appends one event to the transcript.
fn record(event: u64) {
    let at = TRANSCRIPT_LENGTH.fetch_add(1, core::sync::atomic::Ordering::Relaxed) as usize;
    if let Some(slot) = TRANSCRIPT.get(at) {
        slot.store(event, core::sync::atomic::Ordering::Relaxed);
    }
}

/// A server: answers each call with words derived from the message and the badge, and
/// records what it received, until told to quit.
fn differential_server(index: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(
        SERVER_ENDPOINTS[index].load(core::sync::atomic::Ordering::Relaxed),
    );
    let Ok(mut received) = endpoint.recv() else {
        return 1;
    };
    loop {
        let m = received.message;
        record(0x5e << 56 | (index as u64) << 48 | received.badge << 16 | m.info.label);
        record(m.words[0] ^ m.words[3]);
        if m.info.label == QUIT {
            // Answer, then wait for good (the test suspends and deletes the thread).
            let _ = ipc::reply(&Message::new(QUIT, [0; 4]));
            let _ = endpoint.recv();
            return 3;
        }
        if m.info.label & 0x100 != 0 {
            // Wake a waiter, perhaps of higher priority than this server: the signal's
            // fast path hands the processor over at once.
            let waiter = (m.words[1] as usize) % WAITERS;
            let notification = Cap::<Notification>::from_slot(
                WAITER_NOTIFICATIONS[waiter].load(core::sync::atomic::Ordering::Relaxed),
            );
            if let Err(error) = notification.signal() {
                return 0x400 | error as u64;
            }
            record(0x52 << 56 | (index as u64) << 48 | waiter as u64);
        }
        let answer = Message::new(
            m.info.label + 1,
            [
                m.words[0].wrapping_add(received.badge),
                m.words[1] ^ index as u64,
                m.words[2].rotate_left(7),
                m.words[3].wrapping_mul(3),
            ],
        );
        match endpoint.reply_recv(&answer) {
            Ok(next) => received = next,
            Err(_) => return 2,
        }
    }
}

/// A waiter: records each notification word it wakes with (the test suspends and
/// deletes the thread).
fn differential_waiter(index: usize) -> u64 {
    let notification = Cap::<Notification>::from_slot(
        WAITER_NOTIFICATIONS[index].load(core::sync::atomic::Ordering::Relaxed),
    );
    loop {
        match notification.wait() {
            Ok(word) => record(0xa1 << 56 | (index as u64) << 48 | word),
            Err(_) => return 1,
        }
    }
}

/// Runs the pseudo-random sequence from `seed` and returns the transcript's length and
/// a copy of its first words' hash and the transcript itself (in `out`).
fn differential_run(
    untyped: Cap<Untyped>,
    seed: u64,
    out: &mut alloc::vec::Vec<u64>,
) -> Result<(), alloc::string::String> {
    use core::sync::atomic::Ordering::Relaxed;
    let e = |what: &'static str| move |error: kaal_abi::Error| format!("{what}: {error:?}");
    TRANSCRIPT_LENGTH.store(0, Relaxed);
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Servers and waiters all below this thread (no peer of its priority, so that timer
    // ticks, which land differently in the two runs, change no order): waiters at 127
    // and 126, above the servers at 125, 124 and 123 that signal them.
    let server_priorities = [PRIORITY - 3, PRIORITY - 4, PRIORITY - 5];
    let waiter_priorities = [PRIORITY - 1, PRIORITY - 2];
    let mut endpoints = alloc::vec::Vec::new();
    let mut threads = alloc::vec::Vec::new();
    for index in 0..SERVERS {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(e("endpoint"))?;
        SERVER_ENDPOINTS[index].store(endpoint.slot(), Relaxed);
        endpoints.push(endpoint);
        threads.push(
            thread::spawn(differential_server, index, server_priorities[index])
                .map_err(e("server"))?,
        );
    }
    let mut notifications = alloc::vec::Vec::new();
    for index in 0..WAITERS {
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(e("notification"))?;
        WAITER_NOTIFICATIONS[index].store(notification.slot(), Relaxed);
        notifications.push(notification);
        threads.push(
            thread::spawn(differential_waiter, index, waiter_priorities[index])
                .map_err(e("waiter"))?,
        );
    }
    // Badged copies of each endpoint.
    let mut badged = alloc::vec::Vec::new();
    for (index, endpoint) in endpoints.iter().enumerate() {
        for badge in 1..=2u64 {
            badged.push((
                index,
                endpoint
                    .mint(
                        cap::allocate_slot().map_err(e("slot"))?,
                        rights::WRITE,
                        badge * 0x10 + index as u64,
                    )
                    .map_err(e("mint"))?,
            ));
        }
    }
    // One call to each server first, so that every thread waits where it should.
    for endpoint in &endpoints {
        endpoint
            .call(&Message::new(0, [0; 4]))
            .map_err(e("first call"))?;
    }
    for step in 0..STEPS as u64 {
        let choice = next();
        match choice % 4 {
            0..=1 => {
                let (index, target) = &badged[(choice >> 8) as usize % badged.len()];
                let words = [next(), next(), step, next()];
                let label = (choice >> 20) & 0xfff;
                let reply = target.call(&Message::new(label, words)).map_err(|error| {
                    let states: alloc::vec::Vec<_> = threads.iter().map(|t| t.state()).collect();
                    format!("step {step}: call to server {index}: {error:?}; threads {states:?}")
                })?;
                record(0xc0 << 56 | (*index as u64) << 48 | reply.info.label);
                record(reply.words.iter().fold(0, |a, w| a.rotate_left(9) ^ w));
            }
            2 => {
                let index = (choice >> 8) as usize % WAITERS;
                notifications[index].signal().map_err(e("signal"))?;
                record(0x51 << 56 | index as u64);
            }
            _ => {
                kaal_user::sys::yield_now();
                record(0x7e << 56 | step);
            }
        }
    }
    // Each server answers a last call; then every thread is suspended and destroyed
    // where it waits (joining would have this thread spin above the lower ones).
    for endpoint in &endpoints {
        endpoint
            .call(&Message::new(QUIT, [0; 4]))
            .map_err(e("quit"))?;
    }
    for thread in threads {
        thread.tcb().suspend().map_err(e("suspend"))?;
        let state = thread.state();
        check!(state == ThreadState::Inactive, "a thread was {state:?}");
        thread.tcb().delete().map_err(e("delete"))?;
    }
    let length = TRANSCRIPT_LENGTH.load(Relaxed) as usize;
    check!(length <= TRANSCRIPT_WORDS, "transcript overflow: {length}");
    out.clear();
    out.extend(TRANSCRIPT[..length].iter().map(|w| w.load(Relaxed)));
    Ok(())
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

// `probe_thread_id(buffer, general)`: sets x0..x30 to known values (x8 = 8, `thread_id`)
// and the flags to N and V, makes the call with `svc #0` (the vector's own path) or, if
// `general` is not 0, `svc #1` (the general path: the immediate is ignored), and stores
// x0..x30 and NZCV as they came back into `buffer` (32 words).
core::arch::global_asm!(
    r#"
.macro PATTERN
    movz    x0, #0x9000, lsl #16
    msr     nzcv, x0                    // N and V
    movz    x29, #0x101d
    movz    x30, #0x101e
    movz    x0, #0x1000
    movz    x1, #0x1001
    movz    x2, #0x1002
    movz    x3, #0x1003
    movz    x4, #0x1004
    movz    x5, #0x1005
    movz    x6, #0x1006
    movz    x7, #0x1007
    movz    x8, #8
    movz    x9, #0x1009
    movz    x10, #0x100a
    movz    x11, #0x100b
    movz    x12, #0x100c
    movz    x13, #0x100d
    movz    x14, #0x100e
    movz    x15, #0x100f
    movz    x16, #0x1010
    movz    x17, #0x1011
    movz    x18, #0x1012
    movz    x19, #0x1013
    movz    x20, #0x1014
    movz    x21, #0x1015
    movz    x22, #0x1016
    movz    x23, #0x1017
    movz    x24, #0x1018
    movz    x25, #0x1019
    movz    x26, #0x101a
    movz    x27, #0x101b
    movz    x28, #0x101c
.endm
.global probe_thread_id
probe_thread_id:
    sub     sp, sp, #112
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    str     x0, [sp, #96]
    cbnz    x1, 1f
    PATTERN
    svc     #0
    b       2f
1:  PATTERN
    svc     #1
2:  str     x28, [sp, #104]
    ldr     x28, [sp, #96]
    stp     x0, x1, [x28, #0]
    stp     x2, x3, [x28, #16]
    stp     x4, x5, [x28, #32]
    stp     x6, x7, [x28, #48]
    stp     x8, x9, [x28, #64]
    stp     x10, x11, [x28, #80]
    stp     x12, x13, [x28, #96]
    stp     x14, x15, [x28, #112]
    stp     x16, x17, [x28, #128]
    stp     x18, x19, [x28, #144]
    stp     x20, x21, [x28, #160]
    stp     x22, x23, [x28, #176]
    stp     x24, x25, [x28, #192]
    stp     x26, x27, [x28, #208]
    ldr     x0, [sp, #104]
    stp     x0, x29, [x28, #224]
    mrs     x0, nzcv
    stp     x30, x0, [x28, #240]
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #112
    ret
.global fault_with_thread_id_number
fault_with_thread_id_number:
    movz    x8, #8
    mov     x9, #0
    ldr     x0, [x9]
    ret
"#
);

unsafe extern "C" {
    fn probe_thread_id(buffer: *mut [u64; 32], general: u64);
    fn fault_with_thread_id_number() -> u64;
}

/// `thread_id` with every register x0..x30 and the flags set beforehand; the registers
/// and NZCV after it.
fn thread_id_registers(general: bool) -> [u64; 32] {
    let mut registers = [0u64; 32];
    // SAFETY: `probe_thread_id` saves and restores every callee-saved register and the
    // link register, and writes only the 32 words of `registers`.
    unsafe { probe_thread_id(&mut registers, u64::from(general)) };
    registers
}

/// Loads from address 0 with `x8` = 8 (`thread_id`'s number): a fault, never a call.
fn fault_with_x8(_: usize) -> u64 {
    // SAFETY: the function faults (nothing is mapped at 0); if it returned, it would
    // return like any function.
    unsafe { fault_with_thread_id_number() }
}

fn hooks_possible() -> Result<u64, alloc::string::String> {
    let possible = hook(QUERY);
    check!(
        possible & (1 << RAISE_FIQ) != 0 && possible < 0x1_0000,
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

    suite.run("thread_id_at_the_entry_is_the_general_answer", || {
        // Which entry each took: the general one counts its calls (hook 7).
        let before = hook(GENERAL_SYSCALLS);
        let fast = thread_id_registers(false);
        let between = hook(GENERAL_SYSCALLS);
        let general = thread_id_registers(true);
        let after = hook(GENERAL_SYSCALLS);
        check!(
            (between - before, after - between) == (0, 1),
            "general entries: {} for svc #0, {} for svc #1",
            between - before,
            after - between
        );
        check!(
            fast[..3] == general[..3],
            "the vector answered {:#x?}, the general path {:#x?}",
            &fast[..3],
            &general[..3]
        );
        check!(
            fast[0] == 0 && fast[1] != 0 && fast[2] == 0,
            "results {:#x?}",
            &fast[..3]
        );
        for (registers, path) in [(fast, "vector"), (general, "general path")] {
            for (n, &value) in registers.iter().enumerate().take(31).skip(3) {
                let expected = if n == 8 { 8 } else { 0x1000 + n as u64 };
                check!(value == expected, "{path}: x{n} came back {value:#x}");
            }
            check!(
                registers[31] == 0x9000_0000,
                "{path}: flags came back {:#x}",
                registers[31]
            );
        }
        let faulting = thread::spawn(fault_with_x8, 0, PRIORITY).map_err(|e| format!("{e:?}"))?;
        let state = faulting.join();
        check!(
            state == ThreadState::Faulted,
            "a load from 0 with x8 = 8 ended as {state:?}"
        );
        Ok(())
    });
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
        // The victim runs when this thread yields; but a timer tick may hand the CPU
        // back (the two take turns) before its call reached the teardown, so this
        // thread yields until the forced stop has been used.
        let mut yields = 0;
        while hook(FORCED_LEFT) != 0 {
            check!(
                yields < 10_000,
                "the victim's configure never reached its teardown"
            );
            kaal_user::sys::yield_now();
            yields += 1;
        }
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
    suite.run("fast_paths_change_nothing_but_speed", || {
        let mut fast = alloc::vec::Vec::new();
        let mut general = alloc::vec::Vec::new();
        for seed in [0x9e37_79b9_7f4a_7c15u64, 0x1234_5678_9abc_def1] {
            let before = hook_with(SET_FAST_PATHS, 1);
            differential_run(untyped, seed, &mut fast)?;
            let fast_switches = hook_with(SET_FAST_PATHS, 0) - before;
            let run = differential_run(untyped, seed, &mut general);
            let general_switches = hook_with(SET_FAST_PATHS, 1) - before - fast_switches;
            run?;
            check!(
                fast_switches > STEPS as u64 / 4 && general_switches == 0,
                "fast-path switches: {fast_switches} with them on, {general_switches} off"
            );
            check!(fast.len() > 2 * STEPS, "only {} events", fast.len());
            if let Some(at) = (0..fast.len().max(general.len()))
                .find(|&i| fast.get(i) != general.get(i))
            {
                return Err(format!(
                    "seed {seed:#x}: transcripts differ at event {at} of {}/{}: fast {:#x?}, general {:#x?}",
                    fast.len(),
                    general.len(),
                    fast.get(at),
                    general.get(at)
                ));
            }
            println!(
                "seed {seed:#x}: {} events, identical with and without fast paths ({fast_switches} fast-path switches)",
                fast.len()
            );
        }
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
