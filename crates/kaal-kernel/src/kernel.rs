//! The running kernel: scheduling, system calls, thread objects and user faults.
//!
//! All state lives in one [`Kernel`] behind a lock that every entry from user space takes.
//! The kernel is not preemptible: interrupts are masked while it runs, except in the idle
//! loop, which holds no lock while it waits. Threads are TCB objects in memory retyped
//! from untyped RAM (or, for the root task's first thread, boot memory), named by their
//! physical address.

use crate::arch::context::PSTATE_EL0;
use crate::arch::esr::{self, ExceptionClass};
use crate::arch::exceptions::{set_current_context, wait_with_interrupts_enabled};
use crate::arch::gic::{Gic, SPURIOUS_START};
use crate::arch::mmu::{asid_bits, flush_asid, install_user_table, phys_to_virt};
use crate::arch::page_table::{PAGE_SIZE, TranslationTable};
use crate::arch::{psci, semihosting, timer};
use crate::arch::{restore_fp, save_fp, trap_user_fp};
use crate::capability::{
    CSpace, Capability, DeleteOutcome, DyingCNodes, ObjectType, Rights, SlotRef,
};
use crate::kprintln;
use crate::memory::LinearTables;
use crate::objects::{CapabilityCalls, KernelObjects, abi_error};
use crate::platform::PsciConduit;
use crate::scheduler::{RunQueues, ThreadRef};
use crate::thread::{CSPACE_SLOT, IPC_BUFFER_SLOT, Tcb, ThreadState, VSPACE_SLOT};
use crate::vspace::Asids;
use alloc::vec::Vec;
use kaal_abi::zerocopy::IntoBytes;
use kaal_abi::{CONSOLE_WRITE_MAX_BYTES, Error, Syscall, ThreadStatus, UserRegisters};
use spin::Mutex;

/// Platform services the kernel needs while running.
pub struct Services {
    /// Interrupt controller.
    pub gic: Gic,
    /// Interrupt id of the scheduler's timer.
    pub timer_irq: u32,
    /// Counter ticks between timer interrupts.
    pub tick_period: u64,
    /// PSCI conduit for power off.
    pub psci: Option<PsciConduit>,
    /// Whether semihosting (test exit) is available.
    pub semihosting: bool,
    /// An all-invalid user translation table, for when no address space is active.
    pub empty_user_table: u64,
    /// RAM: the only physical memory in the kernel's linear map (devices are not).
    pub ram: Vec<crate::frame_allocator::PhysRange>,
}

/// The kernel's state.
pub struct Kernel {
    /// Every kernel object (threads, endpoints, notifications, CNode slots), reached
    /// only through this store, so the compiler checks that no two mutable references
    /// to one object exist (see [`KernelObjects`]).
    pub(crate) objects: KernelObjects,
    pub(crate) run_queues: RunQueues,
    pub(crate) current: Option<ThreadRef>,
    fp_owner: Option<ThreadRef>,
    active_space: Option<u64>,
    pub(crate) reschedule: bool,
    pub(crate) result_written: bool,
    pub(crate) services: Services,
    ticks: u64,
    next_thread_number: u64,
    live_threads: u64,
    /// The ASID of each live address space (see [`crate::vspace`]).
    asids: Asids,
    /// The last mapping tag handed out (see [`crate::mapping`]).
    mapping_tags: u64,
    /// Where each interrupt line is delivered.
    /// (On the boot heap: it is too big for the boot stack.)
    pub(crate) irqs: alloc::boxed::Box<[crate::interrupts::IrqBinding]>,
    /// Destroyed CNodes whose slots are still to be emptied (see
    /// [`Kernel::finish_teardown`]).
    dying: DyingCNodes,
    /// The destroyed CNode being emptied and the next of its slots to empty.
    emptying: Option<(Capability, u32)>,
    /// Where a preempted `cap_revoke` stopped: the calling thread, the slot it revokes
    /// and the descendant its walk had reached. Kept only until the next system call
    /// other than that thread's re-issued revoke.
    revoke_resume: Option<(ThreadRef, SlotRef, SlotRef)>,
}

/// Work done between two looks for a pending interrupt in `cap_revoke` and in tearing
/// down destroyed CNodes, in units: a deleted capability (with whatever its deletion
/// destroys, bar a CNode's slots) costs [`DELETION_UNITS`], a slot looked at in a
/// dying CNode or eight links walked down a derivation chain cost one. A batch is a few
/// thousand instructions (see docs/benchmarks.md).
const PREEMPTION_UNITS: u32 = 64;
/// What deleting one capability costs in [`PREEMPTION_UNITS`].
const DELETION_UNITS: u32 = 4;
/// How many first-child links a revoke walks down at most before it counts the work.
const WALK_LINKS: usize = 64;

/// The work left before the next look for a pending interrupt.
struct Budget(u32);

impl Budget {
    const fn new() -> Self {
        Self(PREEMPTION_UNITS)
    }

    /// Counts `units` of work done; says whether to stop for a pending interrupt, which
    /// is looked for each time the batch is used up.
    fn spend(&mut self, units: u32) -> bool {
        if self.0 > units {
            self.0 -= units;
            return false;
        }
        self.0 = PREEMPTION_UNITS;
        crate::objects::interrupt_pending()
    }
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// The ASID table: one root-table word per ASID the CPU has (2 KiB for 8-bit ASIDs,
/// 512 KiB for 16-bit ones), zeroed, from boot memory (too big for the kernel heap).
#[cfg(target_os = "none")]
fn asid_roots() -> &'static mut [u64] {
    let entries = 1usize << asid_bits();
    let bytes = (entries * core::mem::size_of::<u64>()) as u64;
    let size = bytes.next_multiple_of(crate::frame_allocator::FRAME_SIZE);
    let table = crate::memory::FRAMES
        .lock()
        .allocate_contiguous(size, crate::frame_allocator::FRAME_SIZE)
        .expect("memory for the ASID table");
    kprintln!(
        "  {}-bit ASIDs: {} address spaces at once",
        asid_bits(),
        entries - 1
    );
    // SAFETY: the frames are RAM in the linear map, just allocated for this table
    // alone, which lives as long as the kernel; zeroing them makes every `u64` valid.
    unsafe {
        let start = phys_to_virt(table) as *mut u64;
        core::ptr::write_bytes(start, 0, entries);
        core::slice::from_raw_parts_mut(start, entries)
    }
}

/// The ASID table of a kernel in a host test: from the host's heap, for the test's
/// whole run.
#[cfg(not(target_os = "none"))]
fn asid_roots() -> &'static mut [u64] {
    alloc::vec![0u64; 1usize << asid_bits()].leak()
}

/// What brought a user thread into the kernel.
#[derive(Clone, Copy, Debug)]
pub enum UserEntry {
    /// `SVC`.
    Syscall,
    /// A fault: the syndrome, the faulting address and the program counter.
    Fault {
        /// `ESR_EL1`.
        esr: u64,
        /// `FAR_EL1`.
        far: u64,
        /// Faulting instruction.
        pc: u64,
    },
    /// An interrupt.
    Interrupt,
    /// The first FP/SIMD instruction since the thread was switched in.
    FpAccess,
}

pub(crate) type SyscallResult = Result<(u64, u64), Error>;

fn tcb_slot(thread: ThreadRef, index: u32) -> SlotRef {
    SlotRef::new(Tcb::slots_key(thread), index)
}

impl Kernel {
    /// A kernel with no threads yet, over the kernel's object store.
    pub fn new(services: Services, objects: KernelObjects) -> Self {
        Self {
            objects,
            run_queues: RunQueues::new(),
            current: None,
            fp_owner: None,
            active_space: None,
            reschedule: false,
            result_written: false,
            services,
            ticks: 0,
            next_thread_number: 1,
            live_threads: 0,
            asids: Asids::new(asid_roots()),
            mapping_tags: 0,
            irqs:
                alloc::vec![crate::interrupts::IrqBinding::default(); crate::interrupts::INTERRUPTS]
                    .into_boxed_slice(),
            dying: DyingCNodes::new(),
            emptying: None,
            revoke_resume: None,
        }
    }

    /// Records that `asid` names the address space rooted at `root` (boot).
    pub fn claim_asid(&mut self, asid: u16, root: u64) {
        self.asids.claim(asid, root);
    }

    /// The root table of the live address space with `asid`, or 0 if none has it.
    pub(crate) fn asid_root(&self, asid: u16) -> u64 {
        self.asids.root(asid)
    }

    /// A mapping tag never handed out before (a 64-bit count cannot wrap in practice:
    /// one map per nanosecond takes 584 years).
    pub(crate) fn next_mapping_tag(&mut self) -> u64 {
        self.mapping_tags += 1;
        self.mapping_tags
    }

    /// Writes a fresh TCB at `thread` and returns its number.
    ///
    /// # Safety
    /// `thread` must be memory for a TCB that nothing else uses.
    pub unsafe fn initialise_tcb(&mut self, thread: ThreadRef) -> u64 {
        let number = self.next_thread_number;
        self.next_thread_number += 1;
        // SAFETY: per the caller.
        unsafe { (phys_to_virt(thread) as *mut Tcb).write(Tcb::new(number)) };
        number
    }

    /// Makes `thread` ready to run, preempting the current thread if it is of higher
    /// priority.
    pub(crate) fn make_ready(&mut self, thread: ThreadRef) {
        let t = self.objects.tcb_mut(thread);
        if !t.state.has_ended() && t.state != ThreadState::Running && !t.queued {
            if t.state == ThreadState::Inactive {
                self.live_threads += 1;
            }
            t.state = ThreadState::Ready;
            t.queued = true;
            let priority = t.priority;
            self.run_queues
                .push_back(&mut self.objects, thread, priority);
            if let Some(current) = self.current
                && priority > self.objects.tcb(current).priority
            {
                self.reschedule = true;
            }
        }
    }

    /// Takes `thread` out of the run queue if it is there.
    fn unready(&mut self, thread: ThreadRef) {
        let t = self.objects.tcb_mut(thread);
        if t.queued && t.state == ThreadState::Ready {
            t.queued = false;
            let priority = t.priority;
            self.run_queues.remove(&mut self.objects, thread, priority);
        }
    }

    /// Ends `thread` (exit, fault, suspension or destruction): out of every queue, and a
    /// reschedule if it was running.
    pub(crate) fn stop(&mut self, thread: ThreadRef, state: ThreadState) {
        self.unready(thread);
        self.cancel_ipc(thread);
        self.abort_caller(thread);
        let t = self.objects.tcb_mut(thread);
        let was_live = !matches!(t.state, ThreadState::Inactive) && !t.state.has_ended();
        if was_live {
            self.live_threads -= 1;
        }
        t.state = state;
        t.in_fault = false;
        if self.current == Some(thread) {
            self.reschedule = true;
        }
    }

    fn current_thread(&mut self) -> &mut Tcb {
        let thread = self
            .current
            .expect("a user entry always has a current thread");
        self.objects.tcb_mut(thread)
    }

    fn handle(&mut self, entry: UserEntry) {
        match entry {
            UserEntry::Syscall => {
                let context = &self.current_thread().context;
                let number = context.x[8];
                let args: [u64; 6] = core::array::from_fn(|i| context.x[i]);
                self.result_written = false;
                let caller = self.current;
                let result = self.syscall(number, args);
                // An error is the caller's: a fast path that switched threads must have
                // succeeded, or the error would land in the thread it switched to.
                debug_assert!(result.is_ok() || self.current == caller || self.current.is_none());
                // A thread that ended or blocked does not get a result now, nor one whose
                // IPC already wrote it.
                let running =
                    self.current.is_some() && self.current_thread().state == ThreadState::Running;
                if running && (!self.result_written || result.is_err()) {
                    let context = &mut self.current_thread().context;
                    match result {
                        Ok((value, extra)) => {
                            context.x[0] = 0;
                            context.x[1] = value;
                            context.x[2] = extra;
                        }
                        Err(error) => context.x[0] = error as u64,
                    }
                }
            }
            UserEntry::Fault { esr, far, pc } => self.user_fault(esr, far, pc),
            UserEntry::Interrupt => self.interrupt(),
            UserEntry::FpAccess => self.take_fp(),
        }
    }

    fn syscall(&mut self, number: u64, args: [u64; 6]) -> SyscallResult {
        // Taken only when there is one: moving the 48-byte option costs a `memcpy` call
        // on every system call otherwise.
        let resume = match self.revoke_resume {
            Some(_) => self.revoke_resume.take(),
            None => None,
        };
        // A teardown left unfinished by a preempted call comes first: until the dying
        // CNodes are empty their memory must not be reused, so no call does new work.
        if self.teardown_pending() {
            if !self.finish_teardown(&mut Budget::new()) {
                if self.current.is_some() {
                    self.restart_syscall();
                }
                // Only deletions happened: the preempted revoke's place is still good.
                self.revoke_resume = resume;
                return Ok((0, 0));
            }
            if self.current.is_none() {
                // The teardown destroyed the caller.
                return Ok((0, 0));
            }
            if self.current_thread().state != ThreadState::Running {
                // It stopped the caller (its address space went): the call is issued
                // again if the thread is resumed.
                self.restart_syscall();
                return Ok((0, 0));
            }
        }
        let call = Syscall::from_number(number).ok_or(Error::UnknownSyscall)?;
        let cspace = self.current_thread().slots[CSPACE_SLOT as usize].cap;
        match call {
            Syscall::ConsoleWrite => {
                self.lookup_with(&cspace, args[0], ObjectType::Console, Rights::WRITE)?;
                self.console_write(args[1], args[2])
            }
            Syscall::Yield => {
                self.reschedule = true;
                Ok((0, 0))
            }
            Syscall::ThreadExit => {
                let me = self.current.expect("current thread");
                self.current_thread().exit_code = args[0];
                self.stop(me, ThreadState::Exited);
                Ok((0, 0))
            }
            Syscall::ThreadId => Ok((self.current_thread().number, 0)),
            Syscall::AbiVersion => Ok((kaal_abi::ABI_VERSION.encode(), 0)),
            Syscall::PowerOff => {
                self.lookup(&cspace, args[0], ObjectType::SystemControl)?;
                let conduit = self.services.psci.ok_or(Error::NotSupported)?;
                kprintln!(
                    "[kaal] power off requested by thread {}",
                    self.current_thread().number
                );
                psci::system_off(conduit);
                Err(Error::NotSupported)
            }
            Syscall::DebugExit => {
                self.lookup(&cspace, args[0], ObjectType::SystemControl)?;
                if !self.services.semihosting {
                    return Err(Error::NotSupported);
                }
                let code = u32::try_from(args[1]).map_err(|_| Error::InvalidArgument)?;
                // SAFETY: the kernel was configured with semihosting available.
                unsafe { semihosting::exit(code) }
            }
            Syscall::CapCopy => self.caps(&cspace).derive(args[0], args[1], args[2], None),
            Syscall::CapMint => self
                .caps(&cspace)
                .derive(args[0], args[1], args[2], Some(args[3])),
            Syscall::CapMove => self.caps(&cspace).move_cap(args[0], args[1]),
            Syscall::CapCopyTo => self
                .caps(&cspace)
                .derive_to(args[0], args[1], args[2], args[3], None),
            Syscall::CapMintTo => {
                self.caps(&cspace)
                    .derive_to(args[0], args[1], args[2], args[3], Some(args[4]))
            }
            Syscall::CapMoveTo => self.caps(&cspace).move_to(args[0], args[1], args[2]),
            Syscall::CapDelete => {
                let mut deleted = None;
                let result = self
                    .caps(&cspace)
                    .delete(args[0], |outcome| deleted = Some(*outcome));
                if let Some(outcome) = deleted {
                    self.release(outcome);
                }
                result
            }
            Syscall::CapRevoke => self.revoke(&cspace, args[0], resume),
            Syscall::CapIdentify => self.caps(&cspace).identify(args[0]),
            Syscall::UntypedRetype => self.retype(&cspace, args),
            Syscall::TcbConfigure => self.tcb_configure(&cspace, args),
            Syscall::TcbSetPriority => {
                let thread = self.lookup_tcb(&cspace, args[0], Rights::WRITE)?;
                let priority = u8::try_from(args[1]).map_err(|_| Error::InvalidArgument)?;
                if priority > self.current_thread().priority {
                    return Err(Error::InvalidArgument);
                }
                let queued = {
                    let t = self.objects.tcb_mut(thread);
                    t.queued && t.state == ThreadState::Ready
                };
                self.unready(thread);
                self.objects.tcb_mut(thread).priority = priority;
                if queued {
                    self.make_ready(thread);
                }
                Ok((0, 0))
            }
            Syscall::TcbReadRegisters => self.tcb_read_registers(&cspace, args[0], args[1]),
            Syscall::TcbWriteRegisters => self.tcb_write_registers(&cspace, args[0], args[1]),
            Syscall::TcbResume => {
                let thread = self.lookup_tcb(&cspace, args[0], Rights::WRITE)?;
                let t = self.objects.tcb_mut(thread);
                if t.state != ThreadState::Inactive {
                    return Ok((0, 0));
                }
                let cspace_ok = t.slots[CSPACE_SLOT as usize].cap.object_type == ObjectType::CNode;
                let vspace_ok =
                    t.slots[VSPACE_SLOT as usize].cap.object_type == ObjectType::AddressSpace;
                if !cspace_ok || !vspace_ok {
                    return Err(Error::IllegalOperation);
                }
                self.make_ready(thread);
                Ok((0, 0))
            }
            Syscall::TcbSuspend => {
                let thread = self.lookup_tcb(&cspace, args[0], Rights::WRITE)?;
                if !self.objects.tcb_mut(thread).state.has_ended() {
                    self.stop(thread, ThreadState::Inactive);
                }
                Ok((0, 0))
            }
            Syscall::Send => self.send(&cspace, args[0], true, false),
            Syscall::NbSend => self.send(&cspace, args[0], false, false),
            Syscall::Call => self.send(&cspace, args[0], true, true),
            Syscall::Recv => self.receive(&cspace, args[0], true),
            Syscall::NbRecv => self.receive(&cspace, args[0], false),
            Syscall::Reply => self.reply().map(|()| (0, 0)),
            Syscall::ReplyRecv => self.reply_receive(&cspace, args[0]),
            Syscall::Signal => self.signal(&cspace, args[0]),
            Syscall::Wait => self.wait(&cspace, args[0], true),
            Syscall::Poll => self.wait(&cspace, args[0], false),
            Syscall::TcbBindNotification => self.bind_notification(&cspace, args[0], args[1]),
            Syscall::IrqControlGet => self.irq_control_get(&cspace, args),
            Syscall::IrqHandlerSetNotification => {
                self.irq_set_notification(&cspace, args[0], args[1])
            }
            Syscall::IrqHandlerAck => self.irq_ack(&cspace, args[0]),
            Syscall::PageTableMap => self.page_table_map(&cspace, args),
            Syscall::FrameMap => self.frame_map(&cspace, args),
            Syscall::FrameUnmap => self.frame_unmap(&cspace, args[0]),
            Syscall::TcbStatus => {
                let thread = self.lookup_tcb(&cspace, args[0], Rights::READ)?;
                let t = self.objects.tcb_mut(thread);
                Ok(match t.state {
                    ThreadState::Exited => (ThreadStatus::Exited as u64, t.exit_code),
                    ThreadState::Faulted => (ThreadStatus::Faulted as u64, 0),
                    ThreadState::Inactive => (ThreadStatus::Inactive as u64, 0),
                    _ => (ThreadStatus::Alive as u64, 0),
                })
            }
        }
    }

    /// The capability system calls, on the caller's CSpace root `cspace`.
    fn caps<'a>(&'a mut self, cspace: &'a Capability) -> CapabilityCalls<'a> {
        CapabilityCalls {
            cspace,
            objects: &mut self.objects,
        }
    }

    /// Looks up a capability of type `ty` in the caller's CSpace.
    pub(crate) fn lookup(
        &self,
        cspace: &Capability,
        pointer: u64,
        ty: ObjectType,
    ) -> Result<Capability, Error> {
        let slot = crate::objects::resolve(cspace, pointer)?;
        let cap = self.objects.cap(slot).map_err(abi_error)?;
        if cap.object_type != ty {
            return Err(Error::WrongObjectType);
        }
        Ok(cap)
    }

    /// Looks up a capability of type `ty` that has `rights`.
    pub(crate) fn lookup_with(
        &self,
        cspace: &Capability,
        pointer: u64,
        ty: ObjectType,
        rights: Rights,
    ) -> Result<Capability, Error> {
        let cap = self.lookup(cspace, pointer, ty)?;
        if !cap.rights.contains(rights) {
            return Err(Error::MissingRights);
        }
        Ok(cap)
    }

    /// Looks up a TCB capability with `rights`: read to observe the thread (status,
    /// registers), write to change it (configure, priority, registers, resume, suspend,
    /// binding).
    fn lookup_tcb(
        &self,
        cspace: &Capability,
        pointer: u64,
        rights: Rights,
    ) -> Result<ThreadRef, Error> {
        Ok(self
            .lookup_with(cspace, pointer, ObjectType::Tcb, rights)?
            .object)
    }

    /// Makes the current system call start again: the thread's pc goes back to its
    /// `svc` (4 bytes before the return address) with its argument registers untouched,
    /// so that when it next runs, after the kernel has taken the interrupt that stopped
    /// the call, it issues the call again, as seL4 restarts a preempted call. Whatever
    /// the registers then hold is checked afresh; the call's recorded progress must be
    /// safe for any arguments.
    fn restart_syscall(&mut self) {
        let context = &mut self.current_thread().context;
        context.pc = context.pc.wrapping_sub(4);
        // Nothing is written to the registers.
        self.result_written = true;
    }

    /// `untyped_retype`, restarted while it zeroes memory when an interrupt is pending
    /// ([`CapabilityCalls::retype`]).
    fn retype(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let ty = ObjectType::from_raw(args[1]);
        let count = args[4];
        if ty == Some(ObjectType::AddressSpace) && count > self.asids.free() as u64 {
            return Err(Error::OutOfResources);
        }
        let Some(address) = self
            .caps(cspace)
            .retype(args[0], args[1], args[2], args[3], args[4])?
        else {
            // Preempted with its progress recorded: the pending interrupt is taken on the
            // way out, and the call is issued again when the thread next runs.
            self.restart_syscall();
            return Ok((0, 0));
        };
        match ty {
            Some(ObjectType::Tcb) => {
                for index in 0..count {
                    let thread = address + (index << crate::capability::TCB_SIZE_BITS);
                    let number = self.next_thread_number;
                    self.next_thread_number += 1;
                    // SAFETY: retype just carved this TCB from untyped RAM, zeroed.
                    unsafe { Tcb::initialise_zeroed(phys_to_virt(thread) as *mut Tcb, number) };
                }
            }
            Some(ObjectType::AddressSpace) => {
                for index in 0..count {
                    let root = address + index * PAGE_SIZE;
                    let asid = self.asids.allocate(root).expect("checked above");
                    let slot = crate::objects::resolve(cspace, args[3] + index)
                        .expect("retype checked it");
                    // SAFETY: the slot was just filled by retype.
                    self.objects.slot_cap_mut(slot).extra = u64::from(asid);
                }
            }
            _ => {}
        }
        Ok((address, 0))
    }

    fn tcb_configure(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let [
            tcb_pointer,
            cnode,
            vspace,
            ipc_frame,
            ipc_vaddr,
            fault_endpoint,
        ] = args;
        let thread = self.lookup_tcb(cspace, tcb_pointer, Rights::WRITE)?;
        let slot = |pointer| crate::objects::resolve(cspace, pointer);
        let sources = [
            (CSPACE_SLOT, slot(cnode)?, ObjectType::CNode),
            (VSPACE_SLOT, slot(vspace)?, ObjectType::AddressSpace),
        ];
        for (index, source, ty) in sources {
            // A CSpace root allows every operation on its slots, an address space lets
            // the thread change its mappings' contents: both need the write right.
            self.lookup_with(cspace, u64::from(source.index), ty, Rights::WRITE)?;
            let _ = index;
        }
        let ipc = if ipc_frame != 0 {
            if ipc_vaddr % PAGE_SIZE != 0 || ipc_vaddr >= kaal_abi::layout::USER_END {
                return Err(Error::Alignment);
            }
            let frame = self.lookup(cspace, ipc_frame, ObjectType::Frame4K)?;
            // The kernel writes received messages into it, through the linear map.
            if !frame.rights.contains(Rights::READ_WRITE) {
                return Err(Error::MissingRights);
            }
            if !self.is_ram(frame.object) {
                return Err(Error::IllegalOperation);
            }
            Some(slot(ipc_frame)?)
        } else {
            None
        };
        // Replace the thread's slots: delete what was there (tearing down whatever that
        // destroys before the next), copy the new capabilities.
        let mut cnode_destroyed = false;
        for index in [CSPACE_SLOT, VSPACE_SLOT, IPC_BUFFER_SLOT] {
            if let Ok(outcome) = CSpace::new(&mut self.objects).delete(tcb_slot(thread, index)) {
                cnode_destroyed |=
                    outcome.last_reference && outcome.cap.object_type == ObjectType::CNode;
                self.release(outcome);
            }
        }
        if cnode_destroyed || self.teardown_pending() {
            // Destroying the old CSpace root destroys what it held: maybe the thread
            // itself, the caller, or the sources' CNode; and the teardown may have
            // stopped part way for an interrupt. Nothing checked above still holds, so
            // the call is issued again and checked afresh (after the teardown ends);
            // the old slots are empty now, so the second issue deletes nothing. (An
            // address space or frame destroyed here destroys nothing else.)
            if self.current.is_some() {
                self.restart_syscall();
            }
            return Ok((0, 0));
        }
        let mut space = CSpace::new(&mut self.objects);
        for (index, source, _) in sources {
            space
                .derive(source, tcb_slot(thread, index), Rights::ALL, None)
                .map_err(abi_error)?;
        }
        if let Some(source) = ipc {
            space
                .derive(source, tcb_slot(thread, IPC_BUFFER_SLOT), Rights::ALL, None)
                .map_err(abi_error)?;
        }
        let t = self.objects.tcb_mut(thread);
        t.ipc_buffer_vaddr = if ipc.is_some() { ipc_vaddr } else { 0 };
        t.fault_endpoint = fault_endpoint;
        Ok((0, 0))
    }

    fn tcb_read_registers(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        buffer: u64,
    ) -> SyscallResult {
        let thread = self.lookup_tcb(cspace, pointer, Rights::READ)?;
        let t = self.objects.tcb_mut(thread);
        let registers = UserRegisters {
            x: t.context.x,
            sp: t.context.sp,
            pc: t.context.pc,
        };
        self.copy_to_user(buffer, registers.as_bytes())?;
        Ok((0, 0))
    }

    fn tcb_write_registers(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        buffer: u64,
    ) -> SyscallResult {
        let thread = self.lookup_tcb(cspace, pointer, Rights::WRITE)?;
        if Some(thread) == self.current {
            return Err(Error::IllegalOperation);
        }
        let mut registers = UserRegisters::default();
        self.copy_from_user(buffer, registers.as_mut_bytes())?;
        let t = self.objects.tcb_mut(thread);
        t.context.x = registers.x;
        t.context.sp = registers.sp;
        t.context.pc = registers.pc;
        // User space chooses registers, never the privilege level or interrupt masks.
        t.context.pstate = PSTATE_EL0;
        Ok((0, 0))
    }

    /// The current thread's address-space root and ASID.
    fn current_space(&mut self) -> Option<(u64, u16)> {
        let cap = self.current_thread().slots[VSPACE_SLOT as usize].cap;
        (cap.object_type == ObjectType::AddressSpace).then_some((cap.object, cap.extra as u16))
    }

    /// Physical address of user address `va` in the current thread's address space, if
    /// mapped for user access (and writable if `write`).
    pub(crate) fn user_translate(&mut self, va: u64, write: bool) -> Option<u64> {
        // The tables are indexed by the low 39 bits of an address in either half: an
        // upper-half pointer would reach the user mapping its low bits name.
        if va >= kaal_abi::layout::USER_END {
            return None;
        }
        let (root, _) = self.current_space()?;
        let (physical, attrs) = TranslationTable::at(root).translate(&mut LinearTables, va)?;
        // Device frames may be mapped in user space but are not in the kernel's linear
        // map: the kernel never touches them on a thread's behalf.
        (attrs.user && (!write || attrs.write) && self.is_ram(physical)).then_some(physical)
    }

    /// Whether `physical` is RAM (and so reachable through the linear map).
    pub(crate) fn is_ram(&self, physical: u64) -> bool {
        self.services
            .ram
            .iter()
            .any(|r| r.start <= physical && physical < r.end)
    }

    /// Copies `buffer.len()` bytes from the current thread's memory at `pointer`.
    pub(crate) fn copy_from_user(&mut self, pointer: u64, buffer: &mut [u8]) -> Result<(), Error> {
        self.copy_user(pointer, buffer.len(), false, |offset, physical, length| {
            // SAFETY: `physical..+length` is one page of the caller's mapped RAM.
            let source =
                unsafe { core::slice::from_raw_parts(phys_to_virt(physical) as *const u8, length) };
            buffer[offset..offset + length].copy_from_slice(source);
        })
    }

    /// Copies `bytes` into the current thread's writable memory at `pointer`.
    pub(crate) fn copy_to_user(&mut self, pointer: u64, bytes: &[u8]) -> Result<(), Error> {
        self.copy_user(pointer, bytes.len(), true, |offset, physical, length| {
            // SAFETY: `physical..+length` is one page of the caller's writable RAM.
            let target = unsafe {
                core::slice::from_raw_parts_mut(phys_to_virt(physical) as *mut u8, length)
            };
            target.copy_from_slice(&bytes[offset..offset + length]);
        })
    }

    fn copy_user(
        &mut self,
        pointer: u64,
        length: usize,
        write: bool,
        mut each: impl FnMut(usize, u64, usize),
    ) -> Result<(), Error> {
        let end = pointer
            .checked_add(length as u64)
            .filter(|&end| end <= kaal_abi::layout::USER_END)
            .ok_or(Error::BadAddress)?;
        // Every address below is under `USER_END`, so the page steps cannot overflow.
        // Check every page before touching any, so a failed copy changes nothing.
        let mut at = pointer;
        while at < end {
            self.user_translate(at, write).ok_or(Error::BadAddress)?;
            at = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        }
        let mut at = pointer;
        while at < end {
            let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(end - at);
            let physical = self.user_translate(at, write).ok_or(Error::BadAddress)?;
            each((at - pointer) as usize, physical, chunk as usize);
            at += chunk;
        }
        Ok(())
    }

    /// Writes at most [`CONSOLE_WRITE_MAX_BYTES`] bytes of the caller's memory to the
    /// console (interrupts are masked meanwhile, so the bound bounds the time; a full
    /// UART FIFO ends the write early, see [`crate::console::write_user`]), marking
    /// lines that look like the kernel's (the caller's capability is checked already).
    /// Returns how many bytes were written.
    fn console_write(&mut self, pointer: u64, length: u64) -> SyscallResult {
        if length > CONSOLE_WRITE_MAX_BYTES as u64 {
            return Err(Error::InvalidArgument);
        }
        let mut buffer = [0u8; CONSOLE_WRITE_MAX_BYTES];
        self.copy_from_user(pointer, &mut buffer[..length as usize])?;
        let written = crate::console::write_user(&buffer[..length as usize]);
        Ok((written as u64, 0))
    }

    /// `cap_revoke`: deletes every descendant of the capability at `pointer`, one at a
    /// time, tearing down what each deletion destroys before the next, so a revoke of
    /// any size needs no kernel memory. Every [`PREEMPTION_UNITS`] of work it looks for
    /// a pending interrupt and, if there is one, stops and is restarted
    /// ([`Kernel::restart_syscall`]): the deleted capabilities are gone, so the
    /// re-issued call (with whatever arguments) carries on; `resume` is where the
    /// previous issue's walk had got to, if nothing but deletions happened since.
    /// Returns how many descendants the walk deleted in the issue that finished (not
    /// those that went with a CNode it destroyed).
    fn revoke(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        resume: Option<(ThreadRef, SlotRef, SlotRef)>,
    ) -> SyscallResult {
        let at = crate::objects::resolve(cspace, pointer)?;
        let occupied = |objects: &KernelObjects, slot| objects.cap(slot).is_ok();
        self.objects.cap(at).map_err(abi_error)?;
        // Deletion keeps every surviving descendant of `at` below `at` and refills no
        // slot, so an occupied slot the last issue reached is still below `at`.
        let mut from = match resume {
            Some((thread, revoked, reached))
                if Some(thread) == self.current
                    && revoked == at
                    && occupied(&self.objects, reached) =>
            {
                reached
            }
            _ => at,
        };
        let mut budget = Budget::new();
        let mut removed = 0u64;
        loop {
            let (leaf, walked) = CSpace::new(&mut self.objects)
                .descend(from, WALK_LINKS)
                .map_err(abi_error)?;
            let deeper = CSpace::new(&mut self.objects)
                .has_children(leaf)
                .map_err(abi_error)?;
            let stop = if deeper {
                // Part way down a long chain.
                from = leaf;
                budget.spend(walked.div_ceil(8) as u32)
            } else {
                let step = CSpace::new(&mut self.objects)
                    .revoke_step(at, leaf)
                    .map_err(abi_error)?;
                let Some((outcome, parent)) = step else {
                    return Ok((removed, 0));
                };
                removed += 1;
                self.retire(&outcome);
                let finished = self.finish_teardown(&mut budget);
                if !occupied(&self.objects, at) {
                    // What it destroyed held the revoked capability itself (an untyped
                    // inside a CNode made from it): nothing is left below it. The rest
                    // of the teardown, if any, waits for the next system call.
                    return Ok((removed, 0));
                }
                // Teardown only deletes, so a surviving slot is still below `at`; if
                // it emptied the next start, the walk begins again from the top.
                from = if occupied(&self.objects, parent) {
                    parent
                } else {
                    at
                };
                !finished || budget.spend(DELETION_UNITS + walked.div_ceil(8) as u32)
            };
            if stop {
                // (Unless the revoke destroyed the caller's own thread.)
                if let Some(thread) = self.current {
                    self.revoke_resume = Some((thread, at, from));
                    self.restart_syscall();
                }
                return Ok((0, 0));
            }
        }
    }

    /// Detaches kernel state from a deleted capability and, if it was the last one to
    /// its object, destroys the object, with everything that cascades from it (a TCB's
    /// slots, a CNode's slots, and so on through any nesting).
    ///
    /// Uses no kernel memory: destroyed CNodes wait to be emptied on a [`DyingCNodes`]
    /// stack linked through their own slot 0. Recursion is one level deep at most (a
    /// TCB's slots hold no TCB). The teardown stops for a pending interrupt and is
    /// then finished by the next system call, before it does anything else.
    pub(crate) fn release(&mut self, outcome: DeleteOutcome) {
        self.retire(&outcome);
        self.finish_teardown(&mut Budget::new());
    }

    /// Whether destroyed CNodes wait to be emptied.
    fn teardown_pending(&self) -> bool {
        self.emptying.is_some() || !self.dying.is_empty()
    }

    /// Empties the destroyed CNodes, one slot at a time, destroying in turn what that
    /// deletes; returns `false` if it stopped for a pending interrupt with work left.
    ///
    /// The progress lives in the kernel (the stack of dying CNodes and the slot reached
    /// in the one being emptied), so however big a teardown is, and whichever system
    /// call finishes it, no slot is looked at twice.
    fn finish_teardown(&mut self, budget: &mut Budget) -> bool {
        loop {
            let (cnode, index) = match self.emptying {
                Some(emptying) => emptying,
                // Slot 0 holds no capability (and `pop` emptied it).
                None => match self.dying.pop(&mut CSpace::new(&mut self.objects)) {
                    Some(cnode) => (cnode, 1),
                    None => return true,
                },
            };
            if index >= 1u32 << cap_radix(&cnode) {
                self.emptying = None;
                continue;
            }
            self.emptying = Some((cnode, index + 1));
            let slot = SlotRef::new(cnode.object, index);
            let units = match CSpace::new(&mut self.objects).delete(slot) {
                Ok(outcome) => {
                    self.retire(&outcome);
                    DELETION_UNITS
                }
                Err(_) => 1,
            };
            if budget.spend(units) && self.teardown_pending() {
                return false;
            }
        }
    }

    /// Handles one deletion: unmaps a frame capability's mapping and destroys the
    /// object if the capability was its last; a destroyed CNode goes onto `dying`.
    fn retire(&mut self, outcome: &DeleteOutcome) {
        // Every frame capability carries its own mapping.
        if outcome.cap.object_type.is_frame() {
            self.unmap_frame(&outcome.cap);
        }
        if outcome.last_reference {
            self.destroy_object(&outcome.cap);
        }
    }

    fn destroy_object(&mut self, cap: &Capability) {
        match cap.object_type {
            ObjectType::Tcb => {
                let thread = cap.object;
                self.stop(thread, ThreadState::Inactive);
                if self.current == Some(thread) {
                    self.current = None;
                }
                if self.fp_owner == Some(thread) {
                    self.fp_owner = None;
                }
                self.unbind_notification(thread);
                for index in [CSPACE_SLOT, VSPACE_SLOT, IPC_BUFFER_SLOT] {
                    if let Ok(outcome) =
                        CSpace::new(&mut self.objects).delete(tcb_slot(thread, index))
                    {
                        // A CNode, an address space or a frame (`tcb_configure` checks
                        // the types), never a TCB: this recursion stops here.
                        debug_assert_ne!(outcome.cap.object_type, ObjectType::Tcb);
                        self.retire(&outcome);
                    }
                }
            }
            ObjectType::AddressSpace => {
                // Off the CPU first, so no walk refills the TLB from the dying tables.
                if self.active_space == Some(cap.object) {
                    // SAFETY: the empty table maps nothing.
                    unsafe { install_user_table(self.services.empty_user_table, 0) };
                    self.active_space = None;
                }
                // The ASID goes back to the pool without a single translation tagged
                // with it, so the next space that gets it starts clean.
                let asid = cap.extra as u16;
                if self.asids.release(asid, cap.object) {
                    flush_asid(asid);
                }
            }
            ObjectType::CNode => self.dying.push(&mut CSpace::new(&mut self.objects), *cap),
            ObjectType::PageTable => self.unmap_page_table(cap),
            ObjectType::Endpoint => self.cancel_all_waiters(cap.object),
            ObjectType::Notification => {
                self.cancel_all_waiters(cap.object);
                self.unbind_notification_object(cap.object);
                self.unbind_interrupts_of(cap.object);
            }
            ObjectType::IrqHandler => self.release_interrupt(cap.object),
            _ => {}
        }
    }

    /// Sends the current thread's fault to its fault endpoint as a call, if it has a
    /// usable one; returns whether it did.
    fn send_fault(&mut self, esr: u64, far: u64, pc: u64) -> bool {
        let thread = self.current.expect("a fault has a current thread");
        let (pointer, cspace) = {
            let t = self.current_thread();
            (t.fault_endpoint, t.slots[CSPACE_SLOT as usize].cap)
        };
        if pointer == 0 {
            return false;
        }
        let Ok(cap) = self.lookup(&cspace, pointer, ObjectType::Endpoint) else {
            return false;
        };
        if !cap.rights.contains(Rights::WRITE) {
            return false;
        }
        let class = ExceptionClass::from_esr(esr);
        let (label, detail) = if class.is_abort() {
            let detail = if class == ExceptionClass::DataAbortLower {
                if esr::is_write(esr) { 2 } else { 0 }
            } else {
                1
            };
            (kaal_abi::fault::LABEL_MEMORY, detail)
        } else if class == ExceptionClass::UndefinedInstruction {
            (kaal_abi::fault::LABEL_UNDEFINED, 0)
        } else {
            // Everything else, SErrors (asynchronous aborts: ESR EC 0x2f, address 0)
            // included.
            (kaal_abi::fault::LABEL_OTHER, 0)
        };
        let t = self.current_thread();
        t.fault_message = [
            kaal_abi::MessageInfo::new(label, 4).to_raw(),
            far,
            pc,
            esr,
            detail,
        ];
        t.in_fault = true;
        let _ = self.send_from(thread, &cap, true, true);
        true
    }

    fn user_fault(&mut self, esr: u64, far: u64, pc: u64) {
        if self.send_fault(esr, far, pc) {
            return;
        }
        let thread = self.current.expect("a fault has a current thread");
        let number = self.current_thread().number;
        let class = ExceptionClass::from_esr(esr);
        if class.is_abort() {
            let (status, level) = esr::fault_status(esr);
            let access = if class == ExceptionClass::DataAbortLower {
                if esr::is_write(esr) {
                    " on write"
                } else {
                    " on read"
                }
            } else {
                " on instruction fetch"
            };
            match level {
                Some(level) => kprintln!(
                    "[kaal] user fault: thread {number} {}: {status} at level {level}{access}, address {far:#x}, pc {pc:#x}, ESR {esr:#x}; thread stopped",
                    class.name()
                ),
                None => kprintln!(
                    "[kaal] user fault: thread {number} {}: {status}{access}, address {far:#x}, pc {pc:#x}, ESR {esr:#x}; thread stopped",
                    class.name()
                ),
            }
        } else if class == ExceptionClass::SError {
            kprintln!(
                "[kaal] user fault: thread {number} SError (asynchronous abort, e.g. a bad device access) taken at pc {pc:#x}, ESR {esr:#x}; thread stopped"
            );
        } else {
            kprintln!(
                "[kaal] user fault: thread {number} {} at pc {pc:#x}, ESR {esr:#x}; thread stopped",
                class.name()
            );
        }
        let context = &self.current_thread().context;
        crate::console::print_registers(&context.x, context.sp, crate::console::print);
        self.stop(thread, ThreadState::Faulted);
    }

    fn interrupt(&mut self) {
        loop {
            let id = self.services.gic.acknowledge();
            if id >= SPURIOUS_START {
                break;
            }
            if id == self.services.timer_irq {
                timer::arm(self.services.tick_period);
                self.ticks += 1;
                self.reschedule = true;
            } else if !self.deliver_interrupt(id) {
                kprintln!("[kaal] unexpected interrupt {id}: disabled");
                self.services.gic.disable(id);
            }
            self.services.gic.end_of_interrupt(id);
        }
    }

    /// Picks the thread to run next, or `None` if no thread is ready.
    fn choose(&mut self) -> Option<ThreadRef> {
        if let Some(current) = self.current {
            let t = self.objects.tcb_mut(current);
            if t.state == ThreadState::Running
                && t.slots[VSPACE_SLOT as usize].cap.object_type != ObjectType::AddressSpace
            {
                // Its address space was deleted under it (perhaps by itself): it cannot
                // run on, and stops as if suspended, with nothing sent to its fault
                // endpoint.
                self.stop(current, ThreadState::Inactive);
            }
            let t = self.objects.tcb_mut(current);
            if t.state == ThreadState::Running {
                let priority = t.priority;
                let higher_ready = self
                    .run_queues
                    .highest_priority()
                    .is_some_and(|p| p > priority);
                let same_ready = self
                    .run_queues
                    .highest_priority()
                    .is_some_and(|p| p >= priority);
                if self.reschedule && same_ready {
                    t.state = ThreadState::Ready;
                    t.queued = true;
                    self.run_queues
                        .push_back(&mut self.objects, current, priority);
                } else if higher_ready {
                    t.state = ThreadState::Ready;
                    t.queued = true;
                    self.run_queues
                        .push_front(&mut self.objects, current, priority);
                } else {
                    self.reschedule = false;
                    return Some(current);
                }
            }
        }
        self.reschedule = false;
        loop {
            let (next, _) = self.run_queues.pop_highest(&mut self.objects)?;
            let t = self.objects.tcb_mut(next);
            t.queued = false;
            // A thread whose address space was deleted cannot run: it stops as above.
            if t.slots[VSPACE_SLOT as usize].cap.object_type != ObjectType::AddressSpace {
                t.state = ThreadState::Ready;
                self.stop(next, ThreadState::Inactive);
                continue;
            }
            return Some(next);
        }
    }

    /// Gives the FP/SIMD registers to the current thread: saves the previous owner's
    /// state, loads the current thread's, and stops trapping. Switching is lazy: a
    /// thread that never touches FP/SIMD between switches costs nothing.
    fn take_fp(&mut self) {
        let current = self.current.expect("an FP trap has a current thread");
        if self.fp_owner != Some(current) {
            if let Some(owner) = self.fp_owner {
                save_fp(&mut self.objects.tcb_mut(owner).context.fp);
            }
            restore_fp(&self.objects.tcb_mut(current).context.fp);
            self.fp_owner = Some(current);
        }
        trap_user_fp(false);
    }

    /// The fast path of a call or reply-receive whose caller has just blocked: if
    /// `next` (a thread the call unblocked, in no queue yet) outranks every ready thread,
    /// it runs at once, exactly as the scheduler would choose it, but without the run
    /// queue's round trip or the scheduler's second pass. Returns `false`, having done
    /// nothing, when that does not hold; the caller then makes `next` ready as usual.
    pub(crate) fn hand_over(&mut self, next: ThreadRef) -> bool {
        let Some((current, _)) = self.fast_path_target(next) else {
            return false;
        };
        if self.objects.tcb_mut(current).state == ThreadState::Running {
            return false;
        }
        self.fast_switch(next);
        true
    }

    /// The fast path of a signal that wakes a thread of higher priority than the running
    /// one: the signaller goes back to its run queue (at the back, as the scheduler puts
    /// a thread that a higher one preempts in a system call) and `next` runs at once.
    /// Returns `false`, having done nothing, unless `next` outranks the signaller and
    /// every ready thread. Only for `signal`: it writes the signaller's (successful)
    /// result itself.
    pub(crate) fn preempt_to(&mut self, next: ThreadRef) -> bool {
        let Some((current, theirs)) = self.fast_path_target(next) else {
            return false;
        };
        let me = self.objects.tcb(current);
        let ok = me.state == ThreadState::Running
            && me.slots[VSPACE_SLOT as usize].cap.object_type == ObjectType::AddressSpace;
        let mine = me.priority;
        if !ok || theirs <= mine {
            return false;
        }
        let me = self.objects.tcb_mut(current);
        // The signal's result (success) goes to the signaller now: when the call returns
        // the current thread is `next`, whose registers hold what it woke with.
        me.context.x[0] = 0;
        me.context.x[1] = 0;
        me.context.x[2] = 0;
        me.state = ThreadState::Ready;
        me.queued = true;
        self.result_written = true;
        self.run_queues.push_back(&mut self.objects, current, mine);
        self.fast_switch(next);
        true
    }

    /// What both fast paths require: they are on, a thread is current, and `next` (just
    /// unblocked, in no queue, with an address space) outranks every ready thread, so
    /// that the scheduler would choose it. Returns the current thread and `next`'s
    /// priority.
    fn fast_path_target(&self, next: ThreadRef) -> Option<(ThreadRef, u8)> {
        if !FAST_PATHS.load(core::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let current = self.current?;
        let t = self.objects.tcb(next);
        let runnable = !t.queued
            && !t.state.has_ended()
            && !matches!(t.state, ThreadState::Inactive | ThreadState::Running)
            && t.slots[VSPACE_SLOT as usize].cap.object_type == ObjectType::AddressSpace
            && self
                .run_queues
                .highest_priority()
                .is_none_or(|p| p < t.priority);
        runnable.then_some((current, t.priority))
    }

    /// Runs `next` now, as the scheduler's choice would (see [`Kernel::hand_over`]).
    fn fast_switch(&mut self, next: ThreadRef) {
        self.switch_to(next);
        self.reschedule = false;
        count_fast_path();
    }

    /// Makes `next` the running thread: FP trapping, address space and context pointer.
    fn switch_to(&mut self, next: ThreadRef) {
        // The registers hold the FP state of `fp_owner`; anyone else traps on first use.
        trap_user_fp(self.fp_owner != Some(next));
        let t = self.objects.tcb_mut(next);
        let space = t.slots[VSPACE_SLOT as usize].cap;
        // `choose` only returns threads with an address space; stay safe regardless.
        debug_assert_eq!(space.object_type, ObjectType::AddressSpace);
        if space.object_type == ObjectType::AddressSpace && self.active_space != Some(space.object)
        {
            // SAFETY: an address-space capability names a live table holding only user
            // mappings; its ASID was assigned to it at retype.
            unsafe { install_user_table(space.object, space.extra as u16) };
            self.active_space = Some(space.object);
        }
        self.current = Some(next);
        t.state = ThreadState::Running;
        // SAFETY: the context lives in the TCB, which stays allocated while the thread
        // exists; Rust code only touches it under the kernel lock.
        unsafe { set_current_context(&mut t.context) };
    }

    fn power_off_or_halt(&self) -> ! {
        if let Some(conduit) = self.services.psci {
            psci::system_off(conduit);
        }
        loop {
            crate::arch::wait_for_interrupt();
        }
    }
}

fn cap_radix(cap: &Capability) -> u8 {
    cap.extra as u8
}

/// Whether the IPC fast paths ([`Kernel::hand_over`], [`Kernel::preempt_to`]) are on.
/// Always on in a shipped kernel; the test hooks can turn them off, so that a suite can
/// run the same operations both ways and compare every result.
static FAST_PATHS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Switches made by the IPC fast paths since boot, counted in test kernels only (so a
/// test can tell that they ran).
#[cfg(all(feature = "test-hooks", debug_assertions))]
static FAST_PATH_SWITCHES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn count_fast_path() {
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    FAST_PATH_SWITCHES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

/// Turns the IPC fast paths on or off (the test hooks' `SET_FAST_PATHS`); returns how
/// many switches they made since boot.
#[cfg(all(target_os = "none", feature = "test-hooks", debug_assertions))]
pub(crate) fn set_fast_paths(on: bool) -> u64 {
    FAST_PATHS.store(on, core::sync::atomic::Ordering::Relaxed);
    FAST_PATH_SWITCHES.load(core::sync::atomic::Ordering::Relaxed)
}

/// Installs the kernel state. Called once by the boot path.
pub fn install(kernel: Kernel) {
    *KERNEL.lock() = Some(kernel);
}

/// Runs `f` on the kernel state.
pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    f(KERNEL
        .lock()
        .as_mut()
        .expect("kernel state installed at boot"))
}

/// What one pass of the scheduler did ([`Kernel::schedule_once`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheduled {
    /// A thread is installed to run.
    Running,
    /// No thread is ready: the CPU idles until an interrupt makes one ready.
    Idle,
    /// Every user thread has ended.
    AllEnded,
}

impl Kernel {
    /// Handles an entry from user space; returns whether the current thread runs on
    /// without a pass through the scheduler.
    pub(crate) fn enter(&mut self, entry: UserEntry) -> bool {
        self.handle(entry);
        // Most system calls leave the caller running in its address space with nothing
        // more urgent ready: return to it without a second pass through the scheduler.
        // A thread whose address space went away (or changed) in the call goes through
        // the scheduler, which stops it (or installs its new space).
        self.current.is_some_and(|current| {
            let t = self.objects.tcb(current);
            let space = t.slots[VSPACE_SLOT as usize].cap;
            t.state == ThreadState::Running
                && space.object_type == ObjectType::AddressSpace
                && self.active_space == Some(space.object)
                && !self.reschedule
                && self
                    .run_queues
                    .highest_priority()
                    .is_none_or(|p| p <= t.priority)
        })
    }

    /// Chooses the next thread and installs it, if one is ready.
    pub(crate) fn schedule_once(&mut self) -> Scheduled {
        match self.choose() {
            Some(next) => {
                self.switch_to(next);
                Scheduled::Running
            }
            None if self.live_threads == 0 => Scheduled::AllEnded,
            None => {
                self.current = None;
                Scheduled::Idle
            }
        }
    }
}

/// Handles an entry from user space and chooses the thread to return to. Returns when
/// `TPIDR_EL1` names a runnable thread; idles (with interrupts enabled) until then.
pub fn on_user_entry(entry: UserEntry) {
    if !with_kernel(|kernel| kernel.enter(entry)) {
        schedule();
    }
}

/// Chooses the next thread and installs it, idling while none is ready.
pub fn schedule() {
    loop {
        let scheduled = with_kernel(|kernel| {
            let scheduled = kernel.schedule_once();
            if scheduled == Scheduled::AllEnded {
                kprintln!("[kaal] every user thread has ended; powering off");
                kernel.power_off_or_halt()
            }
            scheduled
        });
        if scheduled == Scheduled::Running {
            return;
        }
        wait_with_interrupts_enabled();
    }
}

/// Handles an interrupt taken while the kernel idles.
pub fn on_idle_interrupt() {
    with_kernel(|kernel| kernel.interrupt());
}

/// Handles an FIQ taken from EL0. The kernel uses no FIQs (its interrupts are group 1 on
/// GICv3, and IRQs on GICv2), so one is a stray: FIQ signalling is turned off at the GIC
/// ([`Gic::quiesce_fiq`]), the FIQ is reported, and the interrupted thread goes on.
pub fn on_user_fiq() {
    with_kernel(|kernel| {
        let number = match kernel.current {
            Some(_) => kernel.current_thread().number,
            None => 0,
        };
        match kernel.services.gic.quiesce_fiq() {
            Some(id) => kprintln!(
                "[kaal] FIQ taken from EL0 (thread {number}): group-0 interrupt {id} disabled and group 0 turned off; the kernel uses no FIQs, the thread goes on"
            ),
            None => kprintln!(
                "[kaal] FIQ taken from EL0 (thread {number}): FIQ signalling turned off at the GIC; the kernel uses no FIQs, the thread goes on"
            ),
        }
    });
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
