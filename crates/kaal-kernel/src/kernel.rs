//! The running kernel: threads, the scheduler, system calls and user faults.
//!
//! All state lives in one [`Kernel`] behind a lock that every entry from user space takes.
//! The kernel is not preemptible: interrupts are masked while it runs, except in the idle
//! loop, which holds no lock while it waits.

use crate::arch::context::{UserContext, restore_fp, save_fp};
use crate::arch::esr::{self, ExceptionClass};
use crate::arch::exceptions::{set_current_context, wait_with_interrupts_enabled};
use crate::arch::gic::{Gic, SPURIOUS_START};
use crate::arch::mmu::{install_user_table, phys_to_virt};
use crate::arch::page_table::{PAGE_SIZE, TranslationTable};
use crate::arch::{psci, semihosting, timer};
use crate::capability::Capability;
use crate::kprintln;
use crate::memory::LinearTables;
use crate::objects::CapabilityCalls;
use crate::platform::PsciConduit;
use crate::scheduler::{RunQueues, ThreadId};
use alloc::boxed::Box;
use alloc::vec::Vec;
use kaal_abi::{CONSOLE_WRITE_MAX_BYTES, Error, Syscall, ThreadStatus};
use spin::Mutex;

/// Most threads one boot can create.
pub const MAX_THREADS: usize = 128;

/// Life cycle of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// In a run queue.
    Ready,
    /// On the CPU.
    Running,
    /// Called `thread_exit` with this code.
    Exited(u64),
    /// Stopped after a fault.
    Faulted,
}

impl ThreadState {
    fn is_alive(self) -> bool {
        matches!(self, Self::Ready | Self::Running)
    }
}

/// A user thread.
pub struct Thread {
    context: UserContext,
    cspace: Capability,
    priority: u8,
    state: ThreadState,
    space: usize,
    name: &'static str,
}

/// A user address space.
pub struct AddressSpace {
    /// Its translation table.
    pub table: TranslationTable,
    /// Its address-space identifier.
    pub asid: u16,
}

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
}

/// The kernel's state.
pub struct Kernel {
    // Boxed so each thread's context keeps its address (TPIDR_EL1 points at it).
    #[allow(clippy::vec_box)]
    threads: Vec<Box<Thread>>,
    run_queues: RunQueues<MAX_THREADS>,
    current: Option<ThreadId>,
    fp_owner: Option<ThreadId>,
    active_space: Option<usize>,
    reschedule: bool,
    spaces: Vec<AddressSpace>,
    services: Services,
    ticks: u64,
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

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
}

type SyscallResult = Result<(u64, u64), Error>;

impl Kernel {
    /// A kernel with no threads yet.
    pub fn new(services: Services) -> Self {
        Self {
            threads: Vec::with_capacity(MAX_THREADS),
            run_queues: RunQueues::new(),
            current: None,
            fp_owner: None,
            active_space: None,
            reschedule: false,
            spaces: Vec::new(),
            services,
            ticks: 0,
        }
    }

    /// Adds an address space and returns its index.
    pub fn add_space(&mut self, space: AddressSpace) -> usize {
        self.spaces.push(space);
        self.spaces.len() - 1
    }

    /// Creates a ready thread.
    pub fn spawn(
        &mut self,
        name: &'static str,
        cspace: Capability,
        space: usize,
        context: UserContext,
        priority: u8,
    ) -> Result<ThreadId, Error> {
        if self.threads.len() == MAX_THREADS {
            return Err(Error::OutOfResources);
        }
        let id = self.threads.len();
        self.threads.push(Box::new(Thread {
            context,
            cspace,
            priority,
            state: ThreadState::Ready,
            space,
            name,
        }));
        self.run_queues.push_back(id, priority);
        Ok(id)
    }

    fn current_thread(&mut self) -> &mut Thread {
        let id = self
            .current
            .expect("a user entry always has a current thread");
        &mut self.threads[id]
    }

    fn handle(&mut self, entry: UserEntry) {
        match entry {
            UserEntry::Syscall => {
                let context = &self.current_thread().context;
                let number = context.x[8];
                let args: [u64; 6] = core::array::from_fn(|i| context.x[i]);
                let result = self.syscall(number, args);
                // A thread that ended does not get a result.
                if self.current_thread().state == ThreadState::Running {
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
        }
    }

    fn syscall(&mut self, number: u64, args: [u64; 6]) -> SyscallResult {
        let call = Syscall::from_number(number).ok_or(Error::UnknownSyscall)?;
        let cspace = self.current_thread().cspace;
        let caps = CapabilityCalls { cspace: &cspace };
        match call {
            Syscall::ConsoleWrite => self.console_write(args[0], args[1]),
            Syscall::Yield => {
                self.reschedule = true;
                Ok((0, 0))
            }
            Syscall::ThreadExit => {
                self.current_thread().state = ThreadState::Exited(args[0]);
                Ok((0, 0))
            }
            Syscall::ThreadCreate => self.thread_create([args[0], args[1], args[2], args[3]]),
            Syscall::ThreadStatus => {
                let thread = self
                    .threads
                    .get(args[0] as usize)
                    .ok_or(Error::NoSuchThread)?;
                Ok(match thread.state {
                    ThreadState::Ready | ThreadState::Running => (ThreadStatus::Alive as u64, 0),
                    ThreadState::Exited(code) => (ThreadStatus::Exited as u64, code),
                    ThreadState::Faulted => (ThreadStatus::Faulted as u64, 0),
                })
            }
            Syscall::ThreadId => Ok((self.current.unwrap_or(0) as u64, 0)),
            Syscall::PowerOff => {
                let conduit = self.services.psci.ok_or(Error::NotSupported)?;
                kprintln!(
                    "[kaal] power off requested by thread {}",
                    self.current.unwrap_or(0)
                );
                psci::system_off(conduit);
                Err(Error::NotSupported)
            }
            Syscall::CapCopy => caps.derive(args[0], args[1], args[2], None),
            Syscall::CapMint => caps.derive(args[0], args[1], args[2], Some(args[3])),
            Syscall::CapMove => caps.move_cap(args[0], args[1]),
            Syscall::CapDelete => caps.delete(args[0], |cap| self.destroy(cap)),
            Syscall::CapRevoke => caps.revoke(args[0], |cap| self.destroy(cap)),
            Syscall::CapIdentify => caps.identify(args[0]),
            Syscall::UntypedRetype => caps.retype(args[0], args[1], args[2], args[3], args[4]),
            Syscall::DebugExit => {
                if !self.services.semihosting {
                    return Err(Error::NotSupported);
                }
                let code = u32::try_from(args[0]).map_err(|_| Error::InvalidArgument)?;
                // SAFETY: the kernel was configured with semihosting available.
                unsafe { semihosting::exit(code) }
            }
        }
    }

    /// Finds the physical address of user address `va` in the current thread's address
    /// space, if mapped for user access (and writable if `write`).
    fn user_translate(&mut self, va: u64, write: bool, execute: bool) -> Option<u64> {
        let space = self.current_thread().space;
        let (physical, attrs) = self.spaces[space].table.translate(&mut LinearTables, va)?;
        (attrs.user && (!write || attrs.write) && (!execute || attrs.execute)).then_some(physical)
    }

    fn console_write(&mut self, pointer: u64, length: u64) -> SyscallResult {
        if length > CONSOLE_WRITE_MAX_BYTES as u64 {
            return Err(Error::InvalidArgument);
        }
        let end = pointer.checked_add(length).ok_or(Error::BadAddress)?;
        let mut buffer = [0u8; CONSOLE_WRITE_MAX_BYTES];
        let mut at = pointer;
        while at < end {
            let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(end - at);
            let physical = self
                .user_translate(at, false, false)
                .ok_or(Error::BadAddress)?;
            let offset = (at - pointer) as usize;
            // SAFETY: `physical..physical+chunk` lies in one user page that is mapped for
            // the caller, so it is RAM in the linear map; the caller is not running.
            let source = unsafe {
                core::slice::from_raw_parts(phys_to_virt(physical) as *const u8, chunk as usize)
            };
            buffer[offset..offset + chunk as usize].copy_from_slice(source);
            at += chunk;
        }
        crate::console::write_bytes(&buffer[..length as usize]);
        Ok((length, 0))
    }

    fn thread_create(&mut self, [entry, stack_top, arg, priority]: [u64; 4]) -> SyscallResult {
        let caller_priority = self.current_thread().priority;
        let priority = u8::try_from(priority).map_err(|_| Error::InvalidArgument)?;
        if priority > caller_priority || stack_top % 16 != 0 {
            return Err(Error::InvalidArgument);
        }
        self.user_translate(entry, false, true)
            .ok_or(Error::BadAddress)?;
        self.user_translate(stack_top.wrapping_sub(16), true, false)
            .ok_or(Error::BadAddress)?;
        let (space, name, cspace) = {
            let me = self.current_thread();
            (me.space, me.name, me.cspace)
        };
        let id = self.spawn(
            name,
            cspace,
            space,
            UserContext::new(entry, stack_top, arg, 0),
            priority,
        )?;
        if priority > caller_priority {
            self.reschedule = true;
        }
        Ok((id as u64, 0))
    }

    /// Detaches kernel state from an object whose last capability was deleted. Its memory
    /// returns to its untyped parent when that is revoked or reset.
    fn destroy(&mut self, cap: &Capability) {
        use crate::capability::ObjectType as T;
        match cap.object_type {
            // No kernel state refers to these objects beyond their capabilities.
            T::Untyped | T::CNode | T::Frame4K | T::Frame2M | T::PageTable => {}
            T::Endpoint | T::Notification | T::Tcb | T::AddressSpace | T::Reply => {}
            T::IrqControl | T::IrqHandler | T::Null => {}
        }
    }

    fn user_fault(&mut self, esr: u64, far: u64, pc: u64) {
        let id = self.current.unwrap_or(0);
        let class = ExceptionClass::from_esr(esr);
        let thread = self.current_thread();
        thread.state = ThreadState::Faulted;
        let name = thread.name;
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
                    "[kaal] user fault: thread {id} ({name}) {}: {status} at level {level}{access}, address {far:#x}, pc {pc:#x}, ESR {esr:#x}; thread stopped",
                    class.name()
                ),
                None => kprintln!(
                    "[kaal] user fault: thread {id} ({name}) {}: {status}{access}, address {far:#x}, pc {pc:#x}, ESR {esr:#x}; thread stopped",
                    class.name()
                ),
            }
        } else {
            kprintln!(
                "[kaal] user fault: thread {id} ({name}) {} at pc {pc:#x}, ESR {esr:#x}; thread stopped",
                class.name()
            );
        }
        let context = &self.threads[id].context;
        for row in 0..8 {
            let r = row * 4;
            kprintln!(
                "[kaal]   x{r:<2} {:#018x}  x{:<2} {:#018x}  x{:<2} {:#018x}  {}",
                context.x[r],
                r + 1,
                context.x[r + 1],
                r + 2,
                context.x[r + 2],
                if r + 3 < 31 {
                    alloc::format!("x{:<2} {:#018x}", r + 3, context.x[r + 3])
                } else {
                    alloc::format!("sp  {:#018x}", context.sp)
                }
            );
        }
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
            } else {
                kprintln!("[kaal] unexpected interrupt {id}: disabled");
                self.services.gic.disable(id);
            }
            self.services.gic.end_of_interrupt(id);
        }
    }

    /// Picks the thread to run next, or `None` if no thread is ready.
    fn choose(&mut self) -> Option<ThreadId> {
        if let Some(current) = self.current {
            let thread = &self.threads[current];
            if thread.state == ThreadState::Running {
                let higher_ready = self
                    .run_queues
                    .highest_priority()
                    .is_some_and(|p| p > thread.priority);
                if self.reschedule {
                    self.run_queues.push_back(current, thread.priority);
                } else if higher_ready {
                    self.run_queues.push_front(current, thread.priority);
                } else {
                    return Some(current);
                }
                self.threads[current].state = ThreadState::Ready;
            }
        }
        self.reschedule = false;
        let (next, _) = self.run_queues.pop_highest()?;
        Some(next)
    }

    /// Makes `next` the running thread: FP state, address space and context pointer.
    fn switch_to(&mut self, next: ThreadId) {
        if self.fp_owner != Some(next) {
            if let Some(owner) = self.fp_owner.filter(|&o| self.threads[o].state.is_alive()) {
                save_fp(&mut self.threads[owner].context.fp);
            }
            restore_fp(&self.threads[next].context.fp);
            self.fp_owner = Some(next);
        }
        let space = self.threads[next].space;
        if self.active_space != Some(space) {
            let space_ref = &self.spaces[space];
            // SAFETY: the table holds only user mappings built by this kernel.
            unsafe { install_user_table(space_ref.table.root(), space_ref.asid) };
            self.active_space = Some(space);
        }
        self.current = Some(next);
        let thread = &mut self.threads[next];
        thread.state = ThreadState::Running;
        // SAFETY: the context lives in a boxed Thread that is never freed; Rust code only
        // touches it under the kernel lock while the thread is not running.
        unsafe { set_current_context(&mut thread.context) };
    }

    fn any_alive(&self) -> bool {
        self.threads.iter().any(|t| t.state.is_alive())
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

/// Runs `f` on the kernel state.
pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    f(KERNEL
        .lock()
        .as_mut()
        .expect("kernel state installed at boot"))
}

/// Handles an entry from user space and chooses the thread to return to. Returns when
/// `TPIDR_EL1` names a runnable thread; idles (with interrupts enabled) until then.
pub fn on_user_entry(entry: UserEntry) {
    with_kernel(|kernel| kernel.handle(entry));
    schedule();
}

/// Chooses the next thread and installs it, idling while none is ready.
pub fn schedule() {
    loop {
        let chosen = with_kernel(|kernel| match kernel.choose() {
            Some(next) => {
                kernel.switch_to(next);
                true
            }
            None if !kernel.any_alive() => {
                kprintln!("[kaal] every user thread has ended; powering off");
                kernel.power_off_or_halt()
            }
            None => {
                kernel.current = None;
                false
            }
        });
        if chosen {
            return;
        }
        wait_with_interrupts_enabled();
    }
}

/// Handles an interrupt taken while the kernel idles.
pub fn on_idle_interrupt() {
    with_kernel(|kernel| kernel.interrupt());
}
