//! The kernel on the host: system-call dispatch, IPC, notifications, interrupts and
//! object teardown, run through the kernel's own entry points on the simulated machine
//! of [`crate::arch::host`]. A test plays the CPU: it writes the running thread's
//! registers, enters the kernel as an `svc` would, re-issues a call the kernel restarted
//! (as the CPU re-executes the `svc`), and reads back what each thread got.
//!
//! Runs under `cargo test -p kaal-kernel` and, unchanged, under Miri
//! (`cargo +nightly miri test -p kaal-kernel --lib kernel::tests`).

use super::*;
use crate::arch::context::UserContext;
use crate::arch::gic::Gic;
use crate::arch::host::{machine, raise_interrupt};
use crate::capability::{CSpace, Capability, ObjectType, Rights, SlotRef};
use crate::frame_allocator::PhysRange;
use crate::objects::{KernelObjects, cnode_capability, initialise_cnode, untyped_capability};
use kaal_abi::{Error, MessageInfo, Syscall, slots};
use std::alloc::Layout;

/// The simulated RAM: 4 MiB, aligned to its size. The first MiB holds what a boot makes
/// (root CNode, root TCB, tables); the top 2 MiB are the root task's untyped memory.
const ARENA_BYTES: usize = 4 << 20;
const ROOT_RADIX: u8 = 8;
/// Root CSpace: slots 1-6 as on a real boot (`kaal_abi::slots`), then the untyped.
const UNTYPED: u64 = 7;
/// The first slot a test may fill.
const FREE: u64 = 8;
const ROOT_PRIORITY: u8 = 100;
/// The timer's interrupt id on the simulated machine.
const TIMER_IRQ: u32 = 27;

struct Arena {
    base: *mut u8,
}

impl Arena {
    fn layout() -> Layout {
        Layout::from_size_align(ARENA_BYTES, ARENA_BYTES).expect("arena layout")
    }

    fn new() -> Self {
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(Self::layout()) };
        assert!(!base.is_null(), "arena allocation");
        Self { base }
    }

    fn address(&self) -> u64 {
        self.base as u64
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.base, Self::layout()) };
    }
}

/// A kernel over simulated RAM with a root thread running, as after boot.
struct World {
    // Field order: the kernel goes before the memory its objects live in.
    kernel: Kernel,
    _arena: Arena,
    root: ThreadRef,
}

/// What a system call returned to its thread: `x0` as an error, or `(x1, x2)`.
type Outcome = Result<(u64, u64), Error>;

impl World {
    fn new() -> Self {
        let arena = Arena::new();
        let base = arena.address();
        let cnode = base;
        let thread = base + (64 << 10);
        let empty_user_table = base + (128 << 10);
        let root_space = base + (192 << 10);
        let services = Services {
            gic: Gic,
            timer_irq: TIMER_IRQ,
            tick_period: 1000,
            psci: None,
            semihosting: false,
            empty_user_table,
            ram: vec![PhysRange {
                start: base,
                end: base + ARENA_BYTES as u64,
            }],
        };
        // SAFETY: the arena is this kernel's alone; no other store reaches it.
        let mut kernel = Kernel::new(services, unsafe { KernelObjects::new() });
        // SAFETY: the first 32 KiB of the arena are for this CNode alone.
        unsafe { initialise_cnode(cnode, ROOT_RADIX) };
        // SAFETY: 2 KiB of zeroed arena at `thread` for this TCB alone.
        let number = unsafe { kernel.initialise_tcb(thread) };
        assert_eq!(number, 1);
        kernel.claim_asid(1, root_space);
        let mut cspace = CSpace::new(&mut kernel.objects);
        let roots = [
            cnode_capability(cnode, ROOT_RADIX),
            Capability::new(ObjectType::IrqControl, 0, Rights::ALL),
            Capability::new(ObjectType::Tcb, thread, Rights::ALL),
            Capability::new(ObjectType::AddressSpace, root_space, Rights::ALL).with_extra(1),
            Capability::new(ObjectType::SystemControl, 0, Rights::ALL),
            Capability::new(ObjectType::Console, 0, Rights::ALL),
            untyped_capability(base + (2 << 20), 21, false).expect("untyped"),
        ];
        for (index, cap) in roots.into_iter().enumerate() {
            cspace
                .insert_root(SlotRef::new(cnode, index as u32 + 1), cap)
                .expect("root slot");
        }
        for (source, index) in [
            (slots::ROOT_CNODE, CSPACE_SLOT),
            (slots::ROOT_ADDRESS_SPACE, VSPACE_SLOT),
        ] {
            cspace
                .derive(
                    SlotRef::new(cnode, source as u32),
                    tcb_slot(thread, index),
                    Rights::ALL,
                    None,
                )
                .expect("root thread slot");
        }
        let t = kernel.objects.tcb_mut(thread);
        t.context = UserContext::new(0x40_0000, 0x80_0000, 0, 0);
        t.priority = ROOT_PRIORITY;
        kernel.make_ready(thread);
        assert_eq!(kernel.schedule_once(), Scheduled::Running);
        // SAFETY: the simulated UART ignores its address.
        unsafe { crate::console::init(0) };
        Self {
            kernel,
            _arena: arena,
            root: thread,
        }
    }

    fn current(&self) -> ThreadRef {
        self.kernel.current.expect("a thread runs")
    }

    fn context(&self, thread: ThreadRef) -> &UserContext {
        &self.kernel.objects.tcb(thread).context
    }

    fn state(&self, thread: ThreadRef) -> ThreadState {
        self.kernel.objects.tcb(thread).state
    }

    /// The running thread issues system call `number` with `args` in `x0..`: the CPU
    /// part of an `svc`. A restarted call is issued again, as the CPU re-executes the
    /// `svc` the kernel rewound the thread to, after taking the pending interrupts.
    fn issue(&mut self, number: u64, args: &[u64]) {
        let me = self.current();
        let t = self.kernel.objects.tcb_mut(me);
        t.context.x[..args.len()].copy_from_slice(args);
        t.context.x[8] = number;
        t.context.pc += 4;
        let after_svc = t.context.pc;
        self.enter(UserEntry::Syscall);
        while self.kernel.current == Some(me) && self.context(me).pc == after_svc - 4 {
            self.take_interrupts();
            self.kernel.objects.tcb_mut(me).context.pc = after_svc;
            self.enter(UserEntry::Syscall);
        }
    }

    /// Enters the kernel and, unless the thread runs on, lets the scheduler choose.
    fn enter(&mut self, entry: UserEntry) {
        if !self.kernel.enter(entry) && self.kernel.schedule_once() == Scheduled::AllEnded {
            // The machine powers off: nothing runs any more.
            self.kernel.current = None;
        }
    }

    /// Takes every pending interrupt, as the CPU does when it returns to user space.
    fn take_interrupts(&mut self) {
        while machine(|m| !m.pending.is_empty()) {
            self.enter(UserEntry::Interrupt);
        }
    }

    /// What the thread's registers say its last system call returned.
    fn outcome(&self, thread: ThreadRef) -> Outcome {
        let x = &self.context(thread).x;
        match x[0] {
            0 => Ok((x[1], x[2])),
            code => Err(Error::from_code(code).expect("an ABI error code")),
        }
    }

    /// The running thread makes `call`; returns what it got (if it still runs).
    fn call(&mut self, call: Syscall, args: &[u64]) -> Outcome {
        let me = self.current();
        self.issue(call as u64, args);
        self.outcome(me)
    }

    /// Retypes `count` objects of `ty` from the root untyped into slots from `slot`.
    fn retype(&mut self, ty: ObjectType, size_bits: u64, slot: u64, count: u64) -> u64 {
        self.call(
            Syscall::UntypedRetype,
            &[UNTYPED, ty.raw(), size_bits, slot, count],
        )
        .unwrap_or_else(|e| panic!("retype {ty:?}: {e:?}"))
        .0
    }

    /// Makes a thread in the root's CSpace and address space, at `priority`, ready to
    /// run at `pc`; its TCB capability goes in `slot`.
    fn spawn(&mut self, slot: u64, priority: u8) -> ThreadRef {
        let thread = self.retype(ObjectType::Tcb, 0, slot, 1);
        self.call(
            Syscall::TcbConfigure,
            &[slot, slots::ROOT_CNODE, slots::ROOT_ADDRESS_SPACE, 0, 0, 0],
        )
        .expect("configure");
        self.call(Syscall::TcbSetPriority, &[slot, u64::from(priority)])
            .expect("priority");
        self.kernel.objects.tcb_mut(thread).context = UserContext::new(0x40_1000, 0x70_0000, 0, 0);
        self.call(Syscall::TcbResume, &[slot]).expect("resume");
        thread
    }

    /// Runs threads by yielding until `thread` is the running one.
    fn run_until(&mut self, thread: ThreadRef) {
        for _ in 0..16 {
            if self.kernel.current == Some(thread) {
                return;
            }
            self.issue(Syscall::Yield as u64, &[]);
        }
        panic!("thread {thread:#x} never ran");
    }

    fn console(&self) -> String {
        machine(|m| String::from_utf8_lossy(&m.console).into_owned())
    }
}

fn message(label: u64, words: &[u64]) -> Vec<u64> {
    let mut registers = vec![0, MessageInfo::new(label, words.len() as u8).to_raw()];
    registers.extend_from_slice(words);
    registers
}

#[test]
fn simple_calls_answer_in_the_callers_registers() {
    let mut world = World::new();
    assert_eq!(world.call(Syscall::ThreadId, &[]), Ok((1, 0)));
    assert_eq!(
        world.call(Syscall::AbiVersion, &[]),
        Ok((kaal_abi::ABI_VERSION.encode(), 0))
    );
    assert_eq!(
        world.outcome(world.root),
        Ok((kaal_abi::ABI_VERSION.encode(), 0))
    );
    world.issue(0, &[]);
    assert_eq!(world.outcome(world.root), Err(Error::UnknownSyscall));
    world.issue(u64::MAX, &[1, 2, 3]);
    assert_eq!(world.outcome(world.root), Err(Error::UnknownSyscall));
    assert_eq!(
        world.call(Syscall::CapIdentify, &[slots::ROOT_CNODE]),
        Ok((ObjectType::CNode.raw(), Rights::ALL.bits()))
    );
    assert_eq!(
        world.call(Syscall::CapIdentify, &[0]),
        Err(Error::InvalidCapability)
    );
    // Not configured for semihosting or PSCI: refused, the thread goes on.
    assert_eq!(
        world.call(Syscall::DebugExit, &[slots::SYSTEM_CONTROL, 3]),
        Err(Error::NotSupported)
    );
    assert_eq!(
        world.call(Syscall::PowerOff, &[slots::SYSTEM_CONTROL]),
        Err(Error::NotSupported)
    );
    assert_eq!(world.current(), world.root);
}

#[test]
fn call_and_reply_recv_carry_message_badge_and_reply() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let endpoint = FREE;
    let badged = FREE + 1;
    world
        .call(
            Syscall::CapMint,
            &[endpoint, badged, Rights::ALL.bits(), 0xb1],
        )
        .expect("mint");
    let server = world.spawn(FREE + 2, ROOT_PRIORITY);
    world.run_until(server);
    // The server waits for a message: it blocks and the root runs.
    world.issue(Syscall::Recv as u64, &[endpoint]);
    assert_eq!(world.state(server), ThreadState::BlockedOnReceive);
    assert_eq!(world.current(), world.root);

    // The root calls through the badged copy; the server runs at once (fast path).
    let mut args = message(7, &[11, 22]);
    args[0] = badged;
    world.issue(Syscall::Call as u64, &args);
    assert_eq!(world.state(world.root), ThreadState::BlockedOnReply);
    assert_eq!(world.current(), server);
    let got = world.context(server).x;
    assert_eq!(got[0], 0);
    let info = MessageInfo::from_raw(got[1]);
    assert_eq!((info.label, info.length), (7, 2));
    assert_eq!(&got[2..4], &[11, 22]);
    assert_eq!(got[6], 0xb1, "the badge of the capability called through");

    // The server replies and waits again: the root gets the reply and runs.
    let mut args = message(9, &[33]);
    args[0] = endpoint;
    world.issue(Syscall::ReplyRecv as u64, &args);
    assert_eq!(world.state(server), ThreadState::BlockedOnReceive);
    assert_eq!(world.current(), world.root);
    let got = world.context(world.root).x;
    assert_eq!(got[0], 0);
    let info = MessageInfo::from_raw(got[1]);
    assert_eq!((info.label, info.length), (9, 1));
    assert_eq!(got[2], 33);

    // No reply right is left: a second reply fails (the server is blocked, so the root
    // checks from its side that nothing answers its own reply).
    assert_eq!(
        world.call(Syscall::Reply, &[]),
        Err(Error::InvalidCapability)
    );
}

#[test]
fn send_without_a_receiver_blocks_or_would_block() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let mut args = message(1, &[5]);
    args[0] = FREE;
    world.issue(Syscall::NbSend as u64, &args);
    assert_eq!(world.outcome(world.root), Err(Error::WouldBlock));
    world.issue(Syscall::NbRecv as u64, &[FREE]);
    assert_eq!(world.outcome(world.root), Err(Error::WouldBlock));
    // Read-only and write-only copies refuse the other direction.
    world
        .call(Syscall::CapCopy, &[FREE, FREE + 1, Rights::READ.bits()])
        .expect("copy");
    args[0] = FREE + 1;
    world.issue(Syscall::NbSend as u64, &args);
    assert_eq!(world.outcome(world.root), Err(Error::MissingRights));
    // A blocked sender is found by a later receiver.
    let sender = world.spawn(FREE + 2, ROOT_PRIORITY);
    world.run_until(sender);
    args[0] = FREE;
    world.issue(Syscall::Send as u64, &args);
    assert_eq!(world.state(sender), ThreadState::BlockedOnSend);
    assert_eq!(world.current(), world.root);
    world.issue(Syscall::Recv as u64, &[FREE]);
    assert_eq!(world.outcome(world.root).map(|_| ()), Ok(()));
    assert_eq!(world.context(world.root).x[2], 5);
    assert_eq!(world.state(sender), ThreadState::Ready);
    assert_eq!(world.context(sender).x[0], 0, "the sender's send succeeded");
}

#[test]
fn signals_wake_waiters_and_bound_receivers_and_accumulate() {
    let mut world = World::new();
    world.retype(ObjectType::Notification, 0, FREE, 1);
    let notification = FREE;
    world
        .call(
            Syscall::CapMint,
            &[notification, FREE + 1, Rights::WRITE.bits(), 0b100],
        )
        .expect("mint");
    // With nobody waiting, signals accumulate and a poll takes them.
    world.call(Syscall::Signal, &[FREE + 1]).expect("signal");
    world
        .call(Syscall::Signal, &[notification])
        .expect("signal");
    assert_eq!(world.call(Syscall::Poll, &[notification]), Ok((0b101, 0)));
    assert_eq!(world.call(Syscall::Poll, &[notification]), Ok((0, 0)));
    // A signal-only copy may not wait.
    assert_eq!(
        world.call(Syscall::Wait, &[FREE + 1]),
        Err(Error::MissingRights)
    );

    // A higher-priority waiter runs as soon as it is signalled.
    let waiter = world.spawn(FREE + 2, ROOT_PRIORITY);
    world
        .call(
            Syscall::TcbSetPriority,
            &[FREE + 2, u64::from(ROOT_PRIORITY)],
        )
        .expect("priority");
    world.run_until(waiter);
    world.issue(Syscall::Wait as u64, &[notification]);
    assert_eq!(world.state(waiter), ThreadState::BlockedOnNotification);
    world.call(Syscall::Signal, &[FREE + 1]).expect("signal");
    assert_eq!(world.state(waiter), ThreadState::Ready);
    assert_eq!(world.outcome(waiter), Ok((0b100, 0)));

    // A thread bound to the notification gets its signals while it waits on an
    // endpoint, marked as a notification.
    world.retype(ObjectType::Endpoint, 0, FREE + 3, 1);
    world
        .call(Syscall::TcbBindNotification, &[FREE + 2, notification])
        .expect("bind");
    assert_eq!(
        world.call(Syscall::TcbBindNotification, &[FREE + 2, notification]),
        Err(Error::IllegalOperation)
    );
    world.run_until(waiter);
    world.issue(Syscall::Recv as u64, &[FREE + 3]);
    assert_eq!(world.state(waiter), ThreadState::BlockedOnReceive);
    world.call(Syscall::Signal, &[FREE + 1]).expect("signal");
    assert_eq!(world.state(waiter), ThreadState::Ready);
    let x = world.context(waiter).x;
    assert!(MessageInfo::from_raw(x[1]).notification);
    assert_eq!(x[6], 0b100);
}

#[test]
fn device_interrupts_reach_their_notification_once_until_acknowledged() {
    let mut world = World::new();
    world.retype(ObjectType::Notification, 0, FREE, 1);
    let handler = FREE + 1;
    assert_eq!(
        world.call(
            Syscall::IrqControlGet,
            &[slots::IRQ_CONTROL, u64::from(TIMER_IRQ), handler]
        ),
        Err(Error::InvalidArgument),
        "the kernel's own timer is not handed out"
    );
    world
        .call(Syscall::IrqControlGet, &[slots::IRQ_CONTROL, 40, handler])
        .expect("handler");
    assert_eq!(
        world.call(Syscall::IrqControlGet, &[slots::IRQ_CONTROL, 40, FREE + 2]),
        Err(Error::IllegalOperation),
        "one handler per line"
    );
    world
        .call(Syscall::IrqHandlerSetNotification, &[handler, FREE])
        .expect("set notification");
    assert!(machine(|m| m.enabled.contains(&40)));
    raise_interrupt(40);
    world.take_interrupts();
    assert!(
        !machine(|m| m.enabled.contains(&40)),
        "masked until acknowledged"
    );
    assert_eq!(world.call(Syscall::Poll, &[FREE]), Ok((1, 0)));
    world.call(Syscall::IrqHandlerAck, &[handler]).expect("ack");
    assert!(machine(|m| m.enabled.contains(&40)));
    // The timer interrupt asks for a reschedule and re-arms the timer.
    let armed = machine(|m| m.timer_armed.len());
    raise_interrupt(TIMER_IRQ);
    world.take_interrupts();
    assert_eq!(machine(|m| m.timer_armed.len()), armed + 1);
    assert!(machine(
        |m| m.ended.contains(&40) && m.ended.contains(&TIMER_IRQ)
    ));
    // Deleting the handler frees and masks the line.
    world.call(Syscall::CapDelete, &[handler]).expect("delete");
    assert!(!machine(|m| m.enabled.contains(&40)));
    world
        .call(Syscall::IrqControlGet, &[slots::IRQ_CONTROL, 40, handler])
        .expect("the line is free again");
}

#[test]
fn deleting_an_endpoint_wakes_its_waiters_with_an_error() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let waiter = world.spawn(FREE + 1, ROOT_PRIORITY);
    world.run_until(waiter);
    world.issue(Syscall::Recv as u64, &[FREE]);
    assert_eq!(world.state(waiter), ThreadState::BlockedOnReceive);
    world.call(Syscall::CapDelete, &[FREE]).expect("delete");
    assert_eq!(world.state(waiter), ThreadState::Ready);
    assert_eq!(world.outcome(waiter), Err(Error::InvalidCapability));
}

#[test]
fn a_server_that_dies_aborts_its_caller() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let server = world.spawn(FREE + 1, ROOT_PRIORITY);
    world.run_until(server);
    world.issue(Syscall::Recv as u64, &[FREE]);
    let mut args = message(1, &[]);
    args[0] = FREE;
    world.issue(Syscall::Call as u64, &args);
    assert_eq!(world.current(), server);
    // The server exits holding the reply right: the caller is told, not left waiting.
    world.issue(Syscall::ThreadExit as u64, &[4]);
    assert_eq!(world.state(server), ThreadState::Exited);
    assert_eq!(world.current(), world.root);
    assert_eq!(world.outcome(world.root), Err(Error::Aborted));
    assert_eq!(
        world.call(Syscall::TcbStatus, &[FREE + 1]),
        Ok((kaal_abi::ThreadStatus::Exited as u64, 4))
    );
}

#[test]
fn revoking_the_untyped_destroys_everything_made_from_it() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let first = world.spawn(FREE + 1, ROOT_PRIORITY);
    let second = world.spawn(FREE + 2, ROOT_PRIORITY);
    world.run_until(first);
    world.issue(Syscall::Recv as u64, &[FREE]);
    world.run_until(second);
    world.issue(Syscall::Recv as u64, &[FREE]);
    assert_eq!(world.current(), world.root);
    assert_eq!(world.kernel.live_threads, 3);
    let (removed, _) = world.call(Syscall::CapRevoke, &[UNTYPED]).expect("revoke");
    assert_eq!(removed, 3, "the endpoint and two TCBs");
    assert_eq!(world.kernel.live_threads, 1);
    assert_eq!(
        world.call(Syscall::CapIdentify, &[FREE]),
        Err(Error::InvalidCapability)
    );
    // The memory is the untyped's again: the same objects can be made anew, at the
    // same addresses.
    let again = world.retype(ObjectType::Tcb, 0, FREE + 1, 1);
    assert_eq!(
        again,
        world._arena.address() + (2 << 20),
        "the untyped's first byte"
    );
    assert!(first > again && second > again);
}

#[test]
fn a_cnode_teardown_stopped_for_interrupts_is_finished_by_the_next_call() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    // A CNode of 256 slots, each holding a copy of the endpoint.
    let cnode = FREE + 1;
    world.retype(ObjectType::CNode, 8, cnode, 1);
    for index in 1..256 {
        world
            .call(
                Syscall::CapCopyTo,
                &[FREE, cnode, index, Rights::ALL.bits()],
            )
            .expect("copy");
    }
    // Every look for an interrupt finds one for a while: the teardown of the deleted
    // CNode stops part way many times.
    machine(|m| m.forced_preemptions = 1_000);
    world.call(Syscall::CapDelete, &[cnode]).expect("delete");
    assert!(world.kernel.teardown_pending(), "stopped part way");
    // Each call first finishes some teardown; restarts re-issue it until done.
    machine(|m| m.forced_preemptions = 0);
    assert_eq!(world.call(Syscall::ThreadId, &[]), Ok((1, 0)));
    assert!(!world.kernel.teardown_pending());
    // Every copy is gone: the endpoint's own capability has no children left.
    assert_eq!(world.call(Syscall::CapRevoke, &[FREE]), Ok((0, 0)));
}

#[test]
fn a_revoke_stopped_for_interrupts_is_restarted_and_completes() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    for index in 0..64 {
        world
            .call(
                Syscall::CapCopy,
                &[FREE, FREE + 1 + index, Rights::ALL.bits()],
            )
            .expect("copy");
    }
    // Interrupts keep arriving while the revoke runs: it is stopped at its preemption
    // points, the interrupts are taken, and the re-issued call carries on.
    machine(|m| m.forced_preemptions = 40);
    let result = world.call(Syscall::CapRevoke, &[FREE]);
    assert!(result.is_ok(), "{result:?}");
    assert!(
        machine(|m| m.forced_preemptions) < 40,
        "the revoke looked for interrupts and was stopped"
    );
    for index in 0..64 {
        assert_eq!(
            world.call(Syscall::CapIdentify, &[FREE + 1 + index]),
            Err(Error::InvalidCapability)
        );
    }
    assert_eq!(
        world.call(Syscall::CapIdentify, &[FREE]),
        Ok((ObjectType::Endpoint.raw(), Rights::ALL.bits()))
    );
}

#[test]
fn destroying_a_running_threads_tcb_stops_it_and_the_scheduler_moves_on() {
    let mut world = World::new();
    let other = world.spawn(FREE, ROOT_PRIORITY);
    // The root deletes its own TCB capability's only copy: it is destroyed mid-call.
    world.issue(Syscall::CapDelete as u64, &[slots::ROOT_TCB]);
    assert_eq!(world.kernel.current, Some(other));
    assert_eq!(world.kernel.live_threads, 1);
}

#[test]
fn a_user_fault_without_a_handler_stops_the_thread_and_is_reported() {
    let mut world = World::new();
    let other = world.spawn(FREE, ROOT_PRIORITY);
    // A data abort from EL0 (EC 0x24), translation fault at level 3, on read.
    let esr = (0x24 << 26) | 0x7;
    world.enter(UserEntry::Fault {
        esr,
        far: 0xdead_0000,
        pc: 0x40_0000,
    });
    assert_eq!(world.state(world.root), ThreadState::Faulted);
    assert_eq!(world.kernel.current, Some(other));
    let console = world.console();
    assert!(
        console.contains("user fault: thread 1") && console.contains("address 0xdead0000"),
        "{console}"
    );
}

#[test]
#[should_panic(expected = "one thread asked for twice")]
fn the_object_store_never_hands_out_one_thread_twice() {
    let mut world = World::new();
    let root = world.root;
    let _ = world.kernel.objects.tcb_pair_mut(root, root);
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// An argument worth trying: a small slot number, an edge value, an address in
    /// or near the arena, or anything.
    fn argument(&mut self, arena: u64) -> u64 {
        match self.below(6) {
            0 | 1 => self.below(24),
            2 => [0, 1, u64::MAX, 1 << 63, 0xfff, 0x1000][self.below(6) as usize],
            3 => arena + self.below(ARENA_BYTES as u64),
            4 => self.below(64),
            _ => self.next(),
        }
    }
}

/// Random system calls with random arguments from every thread of a small system: the
/// kernel answers each with a result or an error code, never a panic, and its books stay
/// balanced. The calls that end the world (the root exits or loses its CSpace) start a
/// new one.
#[test]
fn random_system_calls_never_break_the_kernel() {
    let calls: u64 = if cfg!(miri) { 300 } else { 40_000 };
    let mut random = Random(0x6b61_616c_2d68_6f73);
    let mut world = World::new();
    let mut made = 0u64;
    let (mut worlds, mut succeeded) = (0u64, 0u64);
    for _ in 0..calls {
        if world.kernel.current.is_none() || made == 0 {
            world = World::new();
            worlds += 1;
            // Something to act on: an endpoint, a notification, a thread, a CNode.
            world.retype(ObjectType::Endpoint, 0, FREE, 1);
            world.retype(ObjectType::Notification, 0, FREE + 1, 1);
            world.spawn(FREE + 2, ROOT_PRIORITY);
            world.retype(ObjectType::CNode, 2, FREE + 3, 1);
            made = 1;
        }
        let arena = world._arena.address();
        let number = match random.below(10) {
            // Never the calls that end the run's only root on purpose too often.
            0 => random.below(64),
            _ => Syscall::ALL[random.below(Syscall::ALL.len() as u64) as usize] as u64,
        };
        if number == Syscall::ThreadExit as u64 && random.below(8) != 0 {
            continue;
        }
        let args: Vec<u64> = (0..6).map(|_| random.argument(arena)).collect();
        if random.below(50) == 0 {
            raise_interrupt(if random.below(2) == 0 { TIMER_IRQ } else { 40 });
        }
        let caller = world.current();
        world.issue(number, &args);
        world.take_interrupts();
        if world.kernel.current.is_none() {
            made = 0;
            continue;
        }
        let me = world.current();
        assert_eq!(
            world.state(me),
            ThreadState::Running,
            "call {number} {args:x?}"
        );
        if me == caller {
            // A caller that runs on holds a success or an ABI error code.
            let code = world.context(me).x[0];
            assert!(
                code == 0 || Error::from_code(code).is_some(),
                "call {number} {args:x?}: x0 = {code:#x}"
            );
            if code == 0 {
                succeeded += 1;
            }
        }
    }
    eprintln!("random system calls: {calls} calls, {succeeded} succeeded, {worlds} systems");
    assert!(succeeded > calls / 50, "too few calls did anything");
}

/// One step of the differential test: what the running thread does.
fn random_ipc_step(world: &mut World, random: &mut Random, endpoints: [u64; 2], notification: u64) {
    // The two endpoints, a copy of the first badged 0x77 and a write-only copy of the
    // second.
    let endpoint = [endpoints[0], endpoints[1], FREE + 7, FREE + 8][random.below(4) as usize];
    let length = random.below(7);
    let mut args = message(random.below(1 << 20), &[]);
    args[0] = endpoint;
    for _ in 0..length {
        args.push(random.next());
    }
    args.truncate(6);
    // Half the time any message info at all: any label, length, capability count and
    // notification bit.
    if random.below(2) == 0 {
        args[1] = random.next();
    }
    let first_thread = FREE + 3;
    let (number, args) = match random.below(18) {
        0 | 1 => (Syscall::Call, args),
        2 | 3 => (Syscall::ReplyRecv, args),
        4 => (Syscall::Recv, vec![endpoint]),
        5 => (Syscall::Send, args),
        6 => (Syscall::NbSend, args),
        7 => (Syscall::Signal, vec![notification]),
        8 => (Syscall::Wait, vec![notification]),
        9 => (Syscall::Yield, vec![]),
        10 => (Syscall::TcbSuspend, vec![first_thread + random.below(3)]),
        11 | 12 => (Syscall::TcbResume, vec![first_thread + random.below(3)]),
        // A write-only unbadged copy, and a read-only copy badged 5.
        13 => (Syscall::Signal, vec![FREE + 9]),
        14 => (Syscall::Wait, vec![FREE + 10]),
        15 => (Syscall::Poll, vec![notification]),
        16 => (
            Syscall::TcbSetPriority,
            vec![first_thread + random.below(3), 70 + random.below(31)],
        ),
        _ => (Syscall::Reply, args),
    };
    world.issue(number as u64, &args);
}

/// What a step can change of one thread: its state, its argument/result registers, and
/// (relative to the world's memory) whom it may reply to, what it waits on, and whether
/// it is queued.
type ThreadSnapshot = (u64, ThreadState, [u64; 8], u64, u64, bool);

/// Everything a step can change, with addresses made relative to the world's memory:
/// who runs, and every thread's [`ThreadSnapshot`].
fn snapshot(world: &World, threads: &[ThreadRef]) -> Vec<ThreadSnapshot> {
    let base = world._arena.address();
    let relative = |t: ThreadRef| if t == 0 { 0 } else { t - base };
    let mut all = vec![(
        world.kernel.current.map_or(0, relative),
        ThreadState::Running,
        [0; 8],
        0,
        0,
        false,
    )];
    for &thread in threads {
        let x = world.context(thread).x;
        all.push((
            relative(thread),
            world.state(thread),
            core::array::from_fn(|i| x[i]),
            relative(world.kernel.objects.tcb(thread).reply_to),
            relative(world.kernel.objects.tcb(thread).blocked_on),
            world.kernel.objects.tcb(thread).queued,
        ));
    }
    all
}

/// The same random IPC (calls, reply-receives, receives, sends, replies, signals, waits,
/// polls, yields, suspensions, resumptions and priority changes among four threads of
/// three priorities, one with a bound notification; any message info; badged, unbadged,
/// read-only and write-only copies) with the fast paths on and off: every step leaves
/// the same thread running and every thread in the same state, with the same registers,
/// reply right, wait and queue flag. The fast paths must also have run.
#[test]
fn fast_paths_change_nothing_but_speed() {
    let steps = if cfg!(miri) { 200 } else { 40_000 };
    let (mut fast_switches, mut done, mut seed) = (0, 0, 0u64);
    while done < steps {
        seed += 1;
        let mut worlds = [World::new(), World::new()];
        worlds[1].kernel.fast_paths = false;
        let mut threads = Vec::new();
        for world in &mut worlds {
            world.retype(ObjectType::Endpoint, 0, FREE, 2);
            world.retype(ObjectType::Notification, 0, FREE + 2, 1);
            let mut made = vec![world.root];
            for (source, slot, rights, badge) in [
                (FREE, FREE + 7, Rights::ALL, 0x77),
                (FREE + 1, FREE + 8, Rights::WRITE, 0),
                (FREE + 2, FREE + 9, Rights::WRITE, 0),
                (FREE + 2, FREE + 10, Rights::READ, 5),
            ] {
                world
                    .call(Syscall::CapMint, &[source, slot, rights.bits(), badge])
                    .expect("mint");
            }
            for (i, priority) in [ROOT_PRIORITY, ROOT_PRIORITY - 10, ROOT_PRIORITY - 20]
                .into_iter()
                .enumerate()
            {
                made.push(world.spawn(FREE + 3 + i as u64, priority));
            }
            // The priority-90 thread takes the notification's signals while it receives.
            world
                .call(Syscall::TcbBindNotification, &[FREE + 4, FREE + 2])
                .expect("bind");
            threads.push(made);
        }
        let mut randoms = [Random(seed * 0x9e37_79b9), Random(seed * 0x9e37_79b9)];
        for step in 0.. {
            done += 1;
            for (world, random) in worlds.iter_mut().zip(&mut randoms) {
                if world.kernel.current.is_some() {
                    random_ipc_step(world, random, [FREE, FREE + 1], FREE + 2);
                }
            }
            let (a, b) = (
                snapshot(&worlds[0], &threads[0]),
                snapshot(&worlds[1], &threads[1]),
            );
            assert_eq!(a, b, "seed {seed}, step {step}");
            if worlds[0].kernel.current.is_none() {
                // Everyone waits: this run is over.
                break;
            }
        }
        fast_switches += worlds[0].kernel.fast_path_switches;
        assert_eq!(worlds[1].kernel.fast_path_switches, 0);
    }
    eprintln!("fast paths: {fast_switches} switches in {done} steps, {seed} runs");
    // (Under Miri the walk is 200 steps, which take some ten switches.)
    let least = if cfg!(miri) { 3 } else { 100 };
    assert!(
        fast_switches > least,
        "the fast paths hardly ran: {fast_switches}"
    );
}

/// Makes a 4 KiB frame in `slot` (an IPC buffer) and returns its address.
fn frame(world: &mut World, slot: u64) -> u64 {
    world.retype(ObjectType::Frame4K, 0, slot, 1)
}

/// `tcb_configure` on the TCB in slot `tcb`: the root's CSpace and address space, the
/// IPC buffer in slot `ipc_frame` (0 for none), the fault endpoint in slot `fault`.
fn configure(world: &mut World, tcb: u64, ipc_frame: u64, fault: u64) {
    let vaddr = if ipc_frame == 0 { 0 } else { 0x50_0000 };
    world
        .call(
            Syscall::TcbConfigure,
            &[
                tcb,
                slots::ROOT_CNODE,
                slots::ROOT_ADDRESS_SPACE,
                ipc_frame,
                vaddr,
                fault,
            ],
        )
        .expect("configure");
}

#[test]
fn long_messages_cross_distinct_and_shared_ipc_buffers() {
    for shared in [false, true] {
        let mut world = World::new();
        world.retype(ObjectType::Endpoint, 0, FREE, 1);
        let mine = frame(&mut world, FREE + 1);
        let theirs = if shared {
            mine
        } else {
            frame(&mut world, FREE + 2)
        };
        configure(&mut world, slots::ROOT_TCB, FREE + 1, 0);
        let server = world.spawn(FREE + 3, ROOT_PRIORITY);
        configure(
            &mut world,
            FREE + 3,
            if shared { FREE + 1 } else { FREE + 2 },
            0,
        );
        world.run_until(server);
        world.issue(Syscall::Recv as u64, &[FREE]);
        assert_eq!(world.current(), world.root);
        world.kernel.objects.ipc_buffer_mut(mine).mr[4..10].copy_from_slice(&[4, 5, 6, 7, 8, 9]);
        let mut args = message(3, &[0, 1, 2, 3]);
        args[0] = FREE;
        args[1] = MessageInfo::new(3, 10).to_raw();
        world.issue(Syscall::Call as u64, &args);
        assert_eq!(world.current(), server);
        let x = world.context(server).x;
        assert_eq!(MessageInfo::from_raw(x[1]).length, 10);
        assert_eq!(&x[2..6], &[0, 1, 2, 3]);
        assert_eq!(
            world.kernel.objects.ipc_buffer_mut(theirs).mr[4..10],
            [4, 5, 6, 7, 8, 9],
            "shared buffer: {shared}"
        );
    }
}

#[test]
fn a_granted_capability_lands_in_the_receive_slot() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let buffer = frame(&mut world, FREE + 1);
    configure(&mut world, slots::ROOT_TCB, FREE + 1, 0);
    let server = world.spawn(FREE + 3, ROOT_PRIORITY);
    configure(&mut world, FREE + 3, FREE + 1, 0);
    world.run_until(server);
    world.kernel.objects.ipc_buffer_mut(buffer).receive_slot = FREE + 10;
    world.issue(Syscall::Recv as u64, &[FREE]);
    world.kernel.objects.ipc_buffer_mut(buffer).send_cap = FREE;
    let mut info = MessageInfo::new(3, 0);
    info.caps = 1;
    // Through a copy without the grant right nothing moves; with it, the capability
    // arrives and the receiver is told.
    world
        .call(
            Syscall::CapCopy,
            &[FREE, FREE + 4, Rights::READ_WRITE.bits()],
        )
        .expect("copy");
    world.issue(Syscall::Send as u64, &[FREE + 4, info.to_raw()]);
    assert_eq!(MessageInfo::from_raw(world.context(server).x[1]).caps, 0);
    assert_eq!(
        world.call(Syscall::CapIdentify, &[FREE + 10]),
        Err(Error::InvalidCapability)
    );
    world.run_until(server);
    world.issue(Syscall::Recv as u64, &[FREE]);
    world.issue(Syscall::Send as u64, &[FREE, info.to_raw()]);
    assert_eq!(MessageInfo::from_raw(world.context(server).x[1]).caps, 1);
    assert_eq!(
        world.call(Syscall::CapIdentify, &[FREE + 10]).map(|r| r.0),
        Ok(ObjectType::Endpoint.raw())
    );
}

#[test]
fn a_fault_goes_to_the_handler_and_a_stop_reply_ends_the_thread() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let faulty = world.spawn(FREE + 1, ROOT_PRIORITY);
    configure(&mut world, FREE + 1, 0, FREE);
    // The root handles faults: it waits on the endpoint.
    world.issue(Syscall::Recv as u64, &[FREE]);
    assert_eq!(world.current(), faulty);
    world.enter(UserEntry::Fault {
        esr: (0x24 << 26) | 0x7,
        far: 0x1234,
        pc: 0x40_1000,
    });
    assert_eq!(world.current(), world.root);
    assert_eq!(world.state(faulty), ThreadState::BlockedOnReply);
    let x = world.context(world.root).x;
    assert_eq!(
        MessageInfo::from_raw(x[1]).label,
        kaal_abi::fault::LABEL_MEMORY
    );
    assert_eq!((x[2], x[3]), (0x1234, 0x40_1000));
    let mut args = message(kaal_abi::fault::STOP, &[]);
    args[0] = FREE;
    world.issue(Syscall::Reply as u64, &args);
    assert_eq!(world.state(faulty), ThreadState::Faulted);
    assert!(
        !world.console().contains("user fault"),
        "handled, not reported"
    );
}

#[test]
fn a_caller_suspended_in_its_call_is_told_aborted_when_resumed() {
    let mut world = World::new();
    world.retype(ObjectType::Endpoint, 0, FREE, 1);
    let server = world.spawn(FREE + 1, ROOT_PRIORITY);
    let client = world.spawn(FREE + 2, ROOT_PRIORITY);
    world.run_until(server);
    world.issue(Syscall::Recv as u64, &[FREE]);
    world.run_until(client);
    let mut args = message(1, &[]);
    args[0] = FREE;
    world.issue(Syscall::Call as u64, &args);
    world.run_until(server);
    world
        .call(Syscall::TcbSuspend, &[FREE + 2])
        .expect("suspend");
    assert_eq!(
        world.call(Syscall::Reply, &[]),
        Err(Error::InvalidCapability)
    );
    world.call(Syscall::TcbResume, &[FREE + 2]).expect("resume");
    world.run_until(client);
    assert_eq!(world.outcome(client), Err(Error::Aborted));
}

/// Every TCB reachable from the root CSpace (through nested CNodes).
fn reachable_threads(world: &World) -> Vec<ThreadRef> {
    let mut threads = std::collections::BTreeSet::from([world.root]);
    let mut cnodes = vec![cnode_capability(world._arena.address(), ROOT_RADIX)];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(cnode) = cnodes.pop() {
        if !seen.insert(cnode.object) {
            continue;
        }
        for index in 1..(1u32 << cnode.extra) {
            if let Ok(cap) = world.kernel.objects.cap(SlotRef::new(cnode.object, index)) {
                match cap.object_type {
                    ObjectType::Tcb => {
                        threads.insert(cap.object);
                    }
                    ObjectType::CNode => cnodes.push(cap),
                    _ => {}
                }
            }
        }
    }
    threads.into_iter().collect()
}

/// The kernel's books: the live-thread count matches the threads' states, every ready
/// thread is queued, reply links and notification bindings go both ways, and no reply
/// right names a thread that is gone.
fn check_books(world: &World, context: &str) {
    let threads = reachable_threads(world);
    let objects = &world.kernel.objects;
    let mut live = 0;
    for &thread in &threads {
        let t = objects.tcb(thread);
        if t.state != ThreadState::Inactive && !t.state.has_ended() {
            live += 1;
        }
        if t.state == ThreadState::Ready {
            assert!(t.queued, "{context}: a ready thread is not queued");
        }
        if t.state == ThreadState::BlockedOnReply && t.blocked_on != 0 {
            assert_eq!(
                objects.tcb(t.blocked_on).reply_to,
                thread,
                "{context}: reply link"
            );
        }
        if t.reply_to != 0 {
            assert!(
                threads.contains(&t.reply_to),
                "{context}: a reply right names a thread that is gone"
            );
        }
        if t.bound_notification != 0 {
            assert_eq!(
                objects.notification(t.bound_notification).bound,
                thread,
                "{context}: binding"
            );
        }
    }
    assert_eq!(world.kernel.live_threads, live, "{context}: live threads");
}

/// Random system calls and faults among threads with IPC buffers (distinct and shared,
/// with random capability-transfer slots) and fault endpoints; after every one the
/// kernel's books balance ([`check_books`]).
#[test]
fn random_calls_and_faults_keep_the_books_balanced() {
    let calls: u64 = if cfg!(miri) { 300 } else { 30_000 };
    let mut random = Random(0x1234_5678_9abc_def1);
    let mut world = World::new();
    let mut fresh = true;
    let mut faults = 0;
    for step in 0..calls {
        if fresh || world.kernel.current.is_none() {
            world = World::new();
            world.retype(ObjectType::Endpoint, 0, FREE, 1);
            world.retype(ObjectType::Notification, 0, FREE + 1, 1);
            world.retype(ObjectType::Frame4K, 0, FREE + 4, 2);
            configure(&mut world, slots::ROOT_TCB, FREE + 4, 0);
            world.spawn(FREE + 2, ROOT_PRIORITY - (random.below(2) as u8) * 5);
            configure(&mut world, FREE + 2, FREE + 5, FREE);
            world.spawn(FREE + 6, ROOT_PRIORITY);
            let shared = if random.below(2) == 0 {
                FREE + 4
            } else {
                FREE + 5
            };
            configure(&mut world, FREE + 6, shared, FREE);
            world.retype(ObjectType::CNode, 2, FREE + 3, 1);
            fresh = false;
        }
        let arena = world._arena.address();
        let number = Syscall::ALL[random.below(Syscall::ALL.len() as u64) as usize] as u64;
        if number == Syscall::ThreadExit as u64 && random.below(8) != 0 {
            continue;
        }
        let mut args: Vec<u64> = (0..6)
            .map(|_| match random.below(3) {
                0 => random.below(14),
                _ => random.argument(arena),
            })
            .collect();
        if random.below(3) == 0 {
            args[1] = MessageInfo::new(random.below(4), random.below(70) as u8).to_raw()
                | (random.below(2) << 7);
        }
        for slot in [FREE + 4, FREE + 5] {
            if let Ok(cap) = world.kernel.objects.cap(SlotRef::new(arena, slot as u32))
                && cap.object_type == ObjectType::Frame4K
            {
                let buffer = world.kernel.objects.ipc_buffer_mut(cap.object);
                buffer.send_cap = random.below(16);
                buffer.receive_slot = random.below(16);
            }
        }
        if random.below(25) == 0 {
            faults += 1;
            world.enter(UserEntry::Fault {
                esr: (0x24 << 26) | 0x7,
                far: 0x10,
                pc: 0x40_0000,
            });
        } else {
            world.issue(number, &args);
        }
        world.take_interrupts();
        if world.kernel.current.is_some() {
            check_books(&world, &format!("step {step}, call {number} {args:x?}"));
        }
    }
    assert!(faults > calls / 50, "too few faults: {faults}");
}

/// A world whose test plays two CPUs: thread `worker` (TCB in `FREE`) placed on CPU 1
/// and running there, the root thread running on CPU 0, which holds the lock.
fn two_cpus() -> (World, ThreadRef) {
    let mut world = World::new();
    machine(|m| m.online_cpus = 0b11);
    let worker = world.spawn(FREE, ROOT_PRIORITY);
    machine(|m| m.pokes.clear());
    world
        .call(Syscall::TcbSetAffinity, &[FREE, 1])
        .expect("affinity");
    assert_eq!(world.kernel.objects.tcb(worker).affinity, 1);
    assert_eq!(machine(|m| m.pokes.clone()), [1], "CPU 1 idles: it is told");
    // CPU 1 takes the lock and schedules: the worker was waiting in its queue.
    world.kernel.enter_cpu(1);
    assert_eq!(world.kernel.current, None);
    assert_eq!(world.kernel.schedule_once(), Scheduled::Running);
    assert_eq!(world.kernel.current, Some(worker));
    world.kernel.enter_cpu(0);
    assert_eq!(
        world.kernel.current,
        Some(world.root),
        "CPU 0's state came back"
    );
    (world, worker)
}

/// The thread `worker`, running on CPU `cpu`, enters system call `call` (with `x0` =
/// `first`) and waits for the lock there: the CPU part of its `svc`. Returns the pc
/// after the `svc`.
fn enter_call_elsewhere(
    world: &mut World,
    worker: ThreadRef,
    cpu: usize,
    call: Syscall,
    first: u64,
) -> u64 {
    let t = world.kernel.objects.tcb_mut(worker);
    t.context.x[0] = first;
    t.context.x[8] = call as u64;
    t.context.pc += 4;
    let after_svc = t.context.pc;
    crate::smp::note_entry(cpu, true);
    after_svc
}

#[test]
fn a_thread_placed_on_another_cpu_runs_there_and_not_here() {
    let (mut world, worker) = two_cpus();
    // CPU 0 yields with nothing else ready for it: the root runs on; the worker is CPU 1's.
    world.issue(Syscall::Yield as u64, &[]);
    assert_eq!(world.kernel.current, Some(world.root));
    assert_eq!(world.state(worker), ThreadState::Running);
    assert_eq!(world.kernel.running_elsewhere(worker), Some(1));
}

#[test]
fn placement_on_a_cpu_that_is_not_online_is_refused() {
    let mut world = World::new();
    world.spawn(FREE, ROOT_PRIORITY);
    for cpu in [1, 7, 8, 255, u64::MAX] {
        assert_eq!(
            world.call(Syscall::TcbSetAffinity, &[FREE, cpu]),
            Err(Error::InvalidArgument),
            "CPU {cpu}"
        );
    }
    assert_eq!(world.call(Syscall::TcbSetAffinity, &[FREE, 0]), Ok((0, 0)));
}

#[test]
fn destroying_a_thread_another_cpu_runs_stalls_that_cpu_and_forgets_the_thread() {
    let (mut world, worker) = two_cpus();
    machine(|m| m.requests.clear());
    world.call(Syscall::CapDelete, &[FREE]).expect("delete");
    assert!(
        machine(|m| m.requests.contains(&(1, crate::smp::STALL))),
        "CPU 1 was not stalled before the TCB went: {:?}",
        machine(|m| m.requests.clone())
    );
    assert_eq!(world.kernel.running_elsewhere(worker), None);
    // CPU 1 gets the lock with the worker's system call pending: it is not carried out,
    // and CPU 1 idles.
    world.kernel.enter_cpu(1);
    assert_eq!(world.kernel.current, None);
    assert!(!world.kernel.enter(UserEntry::Syscall));
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
}

#[test]
fn a_call_entered_while_another_cpu_suspended_the_thread_is_issued_again() {
    let (mut world, worker) = two_cpus();
    // The worker, on CPU 1, makes a system call; before CPU 1 gets the lock, CPU 0
    // suspends it.
    let after_svc = enter_call_elsewhere(&mut world, worker, 1, Syscall::Yield, 0);
    machine(|m| m.requests.clear());
    world.call(Syscall::TcbSuspend, &[FREE]).expect("suspend");
    assert_eq!(machine(|m| m.requests.clone()), [(1, crate::smp::STALL)]);
    assert_eq!(world.state(worker), ThreadState::Inactive);
    world.kernel.enter_cpu(1);
    assert!(
        !world.kernel.enter(UserEntry::Syscall),
        "the call was carried out"
    );
    assert_eq!(
        world.context(worker).pc,
        after_svc - 4,
        "not rewound to its svc"
    );
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
    // Resumed from CPU 0, it goes back to CPU 1's queue, which is told.
    world.kernel.enter_cpu(0);
    machine(|m| m.pokes.clear());
    world.call(Syscall::TcbResume, &[FREE]).expect("resume");
    assert_eq!(machine(|m| m.pokes.clone()), [1]);
    world.kernel.enter_cpu(1);
    assert_eq!(world.kernel.schedule_once(), Scheduled::Running);
    assert_eq!(world.kernel.current, Some(worker));
}

#[test]
fn registers_written_from_another_cpu_replace_the_pending_call() {
    let (mut world, worker) = two_cpus();
    enter_call_elsewhere(&mut world, worker, 1, Syscall::ThreadExit, 0);
    // CPU 0 writes the worker's registers (pc 0x40_2000) from a buffer in the root's
    // memory: the user buffer is simulated RAM the kernel reads through its map.
    let registers = kaal_abi::UserRegisters {
        pc: 0x40_2000,
        sp: 0x70_0000,
        ..Default::default()
    };
    // The buffer: a frame mapped in the root's address space at 0x60_0000.
    const BUFFER: u64 = 0x60_0000;
    for slot in [FREE + 1, FREE + 2] {
        world.retype(ObjectType::PageTable, 0, slot, 1);
        world
            .call(
                Syscall::PageTableMap,
                &[slot, slots::ROOT_ADDRESS_SPACE, BUFFER],
            )
            .expect("page table");
    }
    let physical = frame(&mut world, FREE + 3);
    world
        .call(
            Syscall::FrameMap,
            &[
                FREE + 3,
                slots::ROOT_ADDRESS_SPACE,
                BUFFER,
                kaal_abi::rights::READ,
                0,
            ],
        )
        .expect("map the buffer");
    // SAFETY: the frame is simulated RAM at its physical (host) address, 4 KiB, aligned,
    // and nothing else uses it.
    unsafe { (physical as *mut kaal_abi::UserRegisters).write(registers) };
    world
        .call(Syscall::TcbWriteRegisters, &[FREE, BUFFER])
        .expect("write registers");
    assert_eq!(
        world.context(worker).pc,
        0x40_2000,
        "the new pc was rewound"
    );
    // CPU 0 took the worker over: CPU 1 drops its pending exit and runs it again from
    // its queue, from the new pc.
    assert_eq!(world.state(worker), ThreadState::Ready);
    world.kernel.enter_cpu(1);
    assert!(
        !world.kernel.enter(UserEntry::Syscall),
        "the exit was carried out"
    );
    assert_eq!(world.kernel.schedule_once(), Scheduled::Running);
    assert_eq!(world.kernel.current, Some(worker));
    assert_eq!(world.context(worker).pc, 0x40_2000);
}

#[test]
fn a_thread_moving_away_has_its_fp_state_saved_where_it_lives() {
    let (mut world, worker) = two_cpus();
    // On CPU 1 the worker uses FP/SIMD: CPU 1's registers hold its state.
    world.kernel.enter_cpu(1);
    world.kernel.take_fp();
    world.kernel.enter_cpu(0);
    machine(|m| m.requests.clear());
    world
        .call(Syscall::TcbSetAffinity, &[FREE, 0])
        .expect("affinity");
    let requests = machine(|m| m.requests.clone());
    assert!(
        requests.contains(&(1, crate::smp::SAVE_FP)),
        "CPU 1 was not asked to save the state: {requests:?}"
    );
    // CPU 1's scheduler hands the worker over: it lands in CPU 0's queue.
    world.kernel.enter_cpu(1);
    assert!(!world.kernel.enter(UserEntry::Interrupt));
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
    assert_eq!(world.state(worker), ThreadState::Ready);
    world.kernel.enter_cpu(0);
    world.issue(Syscall::Yield as u64, &[]);
    assert_eq!(world.kernel.current, Some(worker), "CPU 0 runs it now");
}

#[test]
fn a_thread_destroyed_after_another_cpu_held_the_lock_voids_no_call_of_this_cpu() {
    // CPU 0 runs a thread while CPU 1 takes the lock for a moment (an idle tick): CPU 1
    // keeps a copy of CPU 0's state meanwhile, naming that thread.
    let mut world = World::new();
    machine(|m| m.online_cpus = 0b11);
    let worker = world.spawn(FREE, ROOT_PRIORITY);
    world.run_until(worker);
    world.kernel.enter_cpu(1);
    world.kernel.enter_cpu(0);
    world.run_until(world.root);
    // The root destroys the worker, then makes a call: it must be carried out.
    world.call(Syscall::CapDelete, &[FREE]).expect("delete");
    assert_eq!(
        world
            .call(Syscall::CapIdentify, &[slots::ROOT_CNODE])
            .map(|(ty, _)| ty),
        Ok(ObjectType::CNode.raw()),
        "the root's call after the deletion was dropped"
    );
}

/// Whether `thread` is linked into any CPU's run queue at its priority.
fn in_queues(world: &World, thread: ThreadRef) -> Vec<usize> {
    let priority = world.kernel.objects.tcb(thread).priority;
    (0..crate::smp::MAX_CPUS)
        .filter(|&cpu| {
            let mut next = world.kernel.queues[cpu].first(priority);
            while next != 0 {
                if next == thread {
                    return true;
                }
                next = world.kernel.objects.tcb(next).next;
            }
            false
        })
        .collect()
}

#[test]
fn a_thread_moved_while_its_cpu_waits_with_its_call_is_taken_over_whole() {
    let (mut world, worker) = two_cpus();
    // On CPU 1 the worker enters `yield`; before CPU 1 gets the lock, CPU 0 moves it.
    let after_svc = enter_call_elsewhere(&mut world, worker, 1, Syscall::Yield, 0);
    world
        .call(Syscall::TcbSetAffinity, &[FREE, 0])
        .expect("affinity");
    assert_eq!(
        world.context(worker).pc,
        after_svc - 4,
        "its call is not issued again"
    );
    assert_eq!(world.state(worker), ThreadState::Ready);
    assert_eq!(in_queues(&world, worker), [0], "in CPU 0's queue only");
    assert_eq!(world.kernel.running_elsewhere(worker), None);
    // CPU 1 does not carry the call out, and has nothing left to run.
    world.kernel.enter_cpu(1);
    assert!(!world.kernel.enter(UserEntry::Syscall));
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
    assert_eq!(in_queues(&world, worker), [0]);
    // CPU 0 runs it.
    world.kernel.enter_cpu(0);
    world.issue(Syscall::Yield as u64, &[]);
    assert_eq!(world.kernel.current, Some(worker));
    assert!(in_queues(&world, worker).is_empty());
}

#[test]
fn a_thread_suspended_moved_and_resumed_runs_on_one_cpu_only() {
    let (mut world, worker) = two_cpus();
    enter_call_elsewhere(&mut world, worker, 1, Syscall::Yield, 0);
    // CPU 0 wins the lock three times before CPU 1 gets it once.
    world.call(Syscall::TcbSuspend, &[FREE]).expect("suspend");
    world
        .call(Syscall::TcbSetAffinity, &[FREE, 0])
        .expect("affinity");
    world.call(Syscall::TcbResume, &[FREE]).expect("resume");
    world.issue(Syscall::Yield as u64, &[]);
    assert_eq!(world.kernel.current, Some(worker), "CPU 0 runs it");
    world.kernel.enter_cpu(1);
    assert!(!world.kernel.enter(UserEntry::Syscall));
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
    assert_eq!(world.state(worker), ThreadState::Running);
    assert!(
        in_queues(&world, worker).is_empty(),
        "a running thread in a run queue"
    );
    world.kernel.enter_cpu(0);
    assert_eq!(world.kernel.current, Some(worker));
}

#[test]
fn an_fp_trap_pending_on_the_old_cpu_does_not_take_the_moved_threads_fp_state() {
    let (mut world, worker) = two_cpus();
    assert_eq!(world.kernel.running_elsewhere(worker), Some(1));
    crate::smp::note_entry(1, false);
    world
        .call(Syscall::TcbSetAffinity, &[FREE, 0])
        .expect("affinity");
    // CPU 1 gets the lock with the worker's FP trap: not handled there.
    world.kernel.enter_cpu(1);
    assert!(!world.kernel.enter(UserEntry::FpAccess));
    assert_eq!(world.kernel.fp_owner, None);
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
    assert_eq!(world.kernel.objects.tcb(worker).affinity, 0);
}

#[test]
fn a_call_pending_while_the_address_space_is_revoked_is_not_carried_out() {
    let mut world = World::new();
    machine(|m| m.online_cpus = 0b11);
    let worker = world.spawn(FREE, ROOT_PRIORITY);
    // Its own address space (FREE + 1), the root's CSpace.
    world.retype(ObjectType::AddressSpace, 0, FREE + 1, 1);
    world
        .call(
            Syscall::TcbConfigure,
            &[FREE, slots::ROOT_CNODE, FREE + 1, 0, 0, 0],
        )
        .expect("configure");
    world.retype(ObjectType::Endpoint, 0, FREE + 2, 1);
    world
        .call(Syscall::TcbSetAffinity, &[FREE, 1])
        .expect("affinity");
    world.kernel.enter_cpu(1);
    assert_eq!(world.kernel.schedule_once(), Scheduled::Running);
    assert_eq!(world.kernel.current, Some(worker));
    // CPU 1: the worker enters `cap_delete(FREE + 2)` and waits for the lock.
    enter_call_elsewhere(&mut world, worker, 1, Syscall::CapDelete, FREE + 2);
    world.kernel.enter_cpu(0);
    // CPU 0: the root revokes the worker's address space (the worker's copy goes).
    world.call(Syscall::CapRevoke, &[FREE + 1]).expect("revoke");
    assert!(!world.kernel.objects.tcb(worker).has_address_space());
    // CPU 1 gets the lock.
    world.kernel.enter_cpu(1);
    assert!(
        !world.kernel.enter(UserEntry::Syscall),
        "the call was carried out"
    );
    assert_eq!(world.kernel.schedule_once(), Scheduled::Idle);
    assert_eq!(
        world.state(worker),
        ThreadState::Inactive,
        "stopped, as on one CPU"
    );
    world.kernel.enter_cpu(0);
    assert_eq!(
        world
            .call(Syscall::CapIdentify, &[FREE + 2])
            .map(|(ty, _)| ty),
        Ok(ObjectType::Endpoint.raw()),
        "a thread without an address space deleted a capability after the revoke returned"
    );
}

#[test]
fn a_failed_configure_leaves_a_thread_another_cpu_runs_alone() {
    let (mut world, worker) = two_cpus();
    let after_svc = enter_call_elsewhere(&mut world, worker, 1, Syscall::Yield, 0);
    machine(|m| m.requests.clear());
    // Slot 200 is empty: the configure fails.
    let result = world.call(
        Syscall::TcbConfigure,
        &[FREE, 200, slots::ROOT_ADDRESS_SPACE, 0, 0, 0],
    );
    assert!(result.is_err(), "configure should fail: {result:?}");
    assert!(
        machine(|m| m.requests.is_empty()),
        "a failed configure stalled CPU 1: {:?}",
        machine(|m| m.requests.clone())
    );
    assert_eq!(
        world.context(worker).pc,
        after_svc,
        "a failed configure rewound the target's pc"
    );
    assert_eq!(
        world.state(worker),
        ThreadState::Running,
        "a failed configure took the target over"
    );
}
