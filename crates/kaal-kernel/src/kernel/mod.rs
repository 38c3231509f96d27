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

/// The run queues of every CPU, indexed by CPU number (always below
/// [`crate::smp::MAX_CPUS`], a power of two, so the index is masked rather than checked).
pub(crate) struct PerCpuQueues(alloc::boxed::Box<[RunQueues; crate::smp::MAX_CPUS]>);

const _: () = assert!(crate::smp::MAX_CPUS.is_power_of_two());

impl PerCpuQueues {
    /// Empty queues, built on the heap (32 KiB: not on the boot stack).
    fn new() -> Self {
        let queues: alloc::boxed::Box<[RunQueues]> = (0..crate::smp::MAX_CPUS)
            .map(|_| RunQueues::new())
            .collect();
        Self(queues.try_into().expect("MAX_CPUS queues"))
    }
}

impl core::ops::Index<usize> for PerCpuQueues {
    type Output = RunQueues;
    #[inline(always)]
    fn index(&self, cpu: usize) -> &RunQueues {
        &self.0[cpu & (crate::smp::MAX_CPUS - 1)]
    }
}

impl core::ops::IndexMut<usize> for PerCpuQueues {
    #[inline(always)]
    fn index_mut(&mut self, cpu: usize) -> &mut RunQueues {
        &mut self.0[cpu & (crate::smp::MAX_CPUS - 1)]
    }
}

/// What the kernel keeps for each CPU: the fields of [`Kernel`] of the same names.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuState {
    pub(crate) current: Option<ThreadRef>,
    pub(crate) fp_owner: Option<ThreadRef>,
    pub(crate) active_space: Option<u64>,
    pub(crate) reschedule: bool,
    /// Another CPU took this CPU's thread over while this one waited for the lock (see
    /// [`Kernel::stall`]): the entry this CPU waited with is no longer its business (an
    /// interrupt is still taken).
    pub(crate) entry_taken: bool,
}

/// What the lock holder does with the system call a thread it takes over from another
/// CPU may have entered with ([`Kernel::stall`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoidEntry {
    /// The thread issues it again when it next runs (it was stopped, reconfigured or
    /// moved).
    Restart,
    /// It is dropped: the thread's registers were rewritten, its pc included, or the
    /// thread is being destroyed.
    Drop,
}

/// The kernel's state.
pub struct Kernel {
    /// Every kernel object (threads, endpoints, notifications, CNode slots), reached
    /// only through this store, so the compiler checks that no two mutable references
    /// to one object exist (see [`KernelObjects`]).
    pub(crate) objects: KernelObjects,
    /// One run queue per CPU (a thread waits in the queue of its affinity CPU).
    pub(crate) queues: PerCpuQueues,
    /// The CPU that holds the lock now, whose state the four fields below are.
    pub(crate) cpu: usize,
    /// The thread this CPU runs (or returns to): the one `TPIDR_EL1` names.
    pub(crate) current: Option<ThreadRef>,
    /// Whose FP/SIMD state this CPU's registers hold (lazy switching).
    pub(crate) fp_owner: Option<ThreadRef>,
    /// The address space in this CPU's `TTBR0_EL1`.
    active_space: Option<u64>,
    pub(crate) reschedule: bool,
    /// Another CPU took this CPU's thread over while this one waited for the lock
    /// ([`CpuState::entry_taken`], moved here when this CPU takes the lock).
    pub(crate) entry_taken: bool,
    /// The same four for every other CPU, while another holds the lock (the entry of
    /// `cpu` is stale until it leaves: see [`Kernel::enter_cpu`]).
    cpus: [CpuState; crate::smp::MAX_CPUS],
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
    /// Whether the IPC fast paths are on ([`Kernel::fast_syscall`], [`Kernel::hand_over`],
    /// [`Kernel::preempt_to`]). Always in a shipped kernel; the test hooks can turn
    /// them off, so that a suite can run the same operations both ways and compare
    /// every result.
    pub(crate) fast_paths: bool,
    /// Switches the fast paths made (so a test can tell that they ran).
    pub(crate) fast_path_switches: u64,
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
    alloc::boxed::Box::leak(alloc::vec![0u64; 1usize << asid_bits()].into_boxed_slice())
}

/// A host test's kernel gives its ASID table back to the host's heap.
#[cfg(not(target_os = "none"))]
impl Drop for Kernel {
    fn drop(&mut self) {
        let roots: *mut [u64] = self.asids.take_roots();
        // SAFETY: on the host the table comes from `Vec::leak` in `asid_roots` (a boxed
        // slice's allocation) and nothing else refers to it once taken back.
        drop(unsafe { alloc::boxed::Box::from_raw(roots) });
    }
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
            queues: PerCpuQueues::new(),
            cpu: 0,
            current: None,
            fp_owner: None,
            active_space: None,
            reschedule: false,
            entry_taken: false,
            cpus: [CpuState::default(); crate::smp::MAX_CPUS],
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
            fast_paths: true,
            fast_path_switches: 0,
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

    fn current_thread(&mut self) -> &mut Tcb {
        let thread = self
            .current
            .expect("a user entry always has a current thread");
        self.objects.tcb_mut(thread)
    }

    #[inline(never)]
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
                    self.current_thread().set_result(result);
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
            // `svc #0` with this number is answered at the entry (`exceptions.rs`).
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
                let vspace_ok = t.has_address_space();
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
            Syscall::TcbSetAffinity => self.tcb_set_affinity(&cspace, args[0], args[1]),
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

    fn power_off_or_halt(&self) -> ! {
        if let Some(conduit) = self.services.psci {
            psci::system_off(conduit);
        }
        loop {
            crate::arch::wait_for_interrupt();
        }
    }
}

/// Installs the kernel state. Called once by the boot path.
pub fn install(kernel: Kernel) {
    *KERNEL.lock() = Some(kernel);
}

/// Runs `f` on the kernel state, on behalf of the CPU this runs on. While another CPU
/// holds the lock, this one serves that CPU's requests (see [`crate::smp`]).
pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    with_kernel_on(crate::smp::this_cpu(), f)
}

/// [`with_kernel`] on CPU `me`, the CPU this runs on.
#[inline(always)]
fn with_kernel_on<R>(me: usize, f: impl FnOnce(&mut Kernel) -> R) -> R {
    let mut guard = loop {
        if let Some(guard) = KERNEL.try_lock() {
            break guard;
        }
        crate::smp::serve(me);
        crate::smp::relax();
    };
    let kernel = guard.as_mut().expect("kernel state installed at boot");
    kernel.enter_cpu(me);
    f(kernel)
}

/// Handles an entry from user space and chooses the thread to return to. Returns when
/// `TPIDR_EL1` names a runnable thread; idles (with interrupts enabled) until then.
pub fn on_user_entry(entry: UserEntry) {
    // What this CPU waits for the lock with, for a CPU that takes its thread over
    // meanwhile (`Kernel::stall`).
    let me = crate::smp::this_cpu();
    crate::smp::note_entry(me, matches!(entry, UserEntry::Syscall));
    // The scheduler's first pass runs under the same hold of the lock as the entry: a
    // call that blocks or yields switches threads without leaving and re-taking it.
    let scheduled = with_kernel_on(me, |kernel| {
        if kernel.enter(entry) {
            Scheduled::Running
        } else {
            kernel.schedule_or_power_off()
        }
    });
    if scheduled != Scheduled::Running {
        wait_with_interrupts_enabled();
        schedule();
    }
}

/// Chooses the next thread and installs it, idling while none is ready.
pub fn schedule() {
    while with_kernel(Kernel::schedule_or_power_off) != Scheduled::Running {
        wait_with_interrupts_enabled();
    }
}

impl Kernel {
    /// One pass of the scheduler; when every user thread has ended, the machine
    /// powers off.
    fn schedule_or_power_off(&mut self) -> Scheduled {
        let scheduled = self.schedule_once();
        if scheduled == Scheduled::AllEnded {
            kprintln!("[kaal] every user thread has ended; powering off");
            self.power_off_or_halt()
        }
        scheduled
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
    crate::smp::note_entry(crate::smp::this_cpu(), false);
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
    // Back to user mode through the scheduler: another CPU may have taken this CPU's
    // thread over while it waited for the lock.
    on_user_entry(UserEntry::Interrupt);
}

mod cpus;
mod fastpath;
mod faults;
mod scheduling;
mod teardown;
mod threads;
mod user_memory;

pub(crate) use scheduling::Scheduled;
#[cfg(all(target_os = "none", feature = "test-hooks", debug_assertions))]
pub(crate) use scheduling::set_fast_paths;
use teardown::Budget;

#[cfg(test)]
mod tests;
