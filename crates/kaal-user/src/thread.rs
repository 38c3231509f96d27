//! Threads in the task's own address space, made from untyped memory.
//!
//! ```ignore
//! let worker = kaal_user::thread::spawn(|n| n as u64 * 2, 21, 128)?;
//! assert_eq!(worker.join(), kaal_user::sys::ThreadState::Exited(42));
//! ```
//!
//! Each thread is a TCB retyped from the task's thread memory (an untyped capability the
//! runtime picks at start: the root task's largest RAM untyped), configured with the
//! task's own CSpace and address space (slots `ROOT_CNODE` and `ROOT_ADDRESS_SPACE`).
//! Before the first one starts, the runtime's locks (heap, slot allocator) each get a
//! notification from the same memory, so that a thread waiting for one sleeps instead of
//! spinning (see [`crate::sync`]).

use crate::cap::{self, AddressSpace, CNode, Cap, Tcb, Untyped};
use crate::sys::{self, ThreadState};
use alloc::boxed::Box;
use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_abi::{Error, UserRegisters, slots};

/// Stack size of a spawned thread.
pub const STACK_BYTES: usize = 16 * 1024;

static THREAD_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Sets the untyped capability new threads are retyped from.
pub fn set_thread_memory(untyped: Cap<Untyped>) {
    THREAD_MEMORY.store(untyped.slot(), Ordering::Relaxed);
}

struct Start {
    main: fn(usize) -> u64,
    arg: usize,
}

/// A spawned thread. Its stack is freed when [`Thread::join`] sees it has ended.
#[derive(Debug)]
pub struct Thread {
    tcb: Cap<Tcb>,
    /// Address and length of the heap stack, until freed.
    stack: core::cell::Cell<Option<(usize, usize)>>,
}

impl Thread {
    /// The thread's TCB capability.
    pub fn tcb(&self) -> Cap<Tcb> {
        self.tcb
    }

    /// What became of the thread so far.
    pub fn state(&self) -> ThreadState {
        self.tcb.status().unwrap_or(ThreadState::Faulted)
    }

    /// Waits (yielding, so only threads of this thread's priority or higher run
    /// meanwhile) until the thread has ended or was suspended, and returns its state.
    /// The stack is freed once the thread has exited or faulted: the kernel never
    /// resumes such a thread. A suspended thread keeps its stack, since whoever
    /// suspended it may resume it.
    pub fn join(&self) -> ThreadState {
        loop {
            // Only a state the kernel reported frees the stack: a failed query (the TCB
            // capability was deleted) says nothing about the thread.
            let Ok(state) = self.tcb.status() else {
                return ThreadState::Faulted;
            };
            match state {
                ThreadState::Alive => sys::yield_now(),
                ended => {
                    if matches!(ended, ThreadState::Exited(_) | ThreadState::Faulted)
                        && let Some((address, length)) = self.stack.take()
                    {
                        let stack = core::ptr::slice_from_raw_parts_mut(address as *mut u8, length);
                        // SAFETY: the stack came from `Box::leak` in `spawn`, and the
                        // thread that used it has ended for good, so nothing refers to it.
                        drop(unsafe { Box::from_raw(stack) });
                    }
                    return ended;
                }
            }
        }
    }
}

extern "C" fn trampoline(start: usize) -> ! {
    // SAFETY: `spawn` passes a pointer from `Box::into_raw` to exactly one new thread.
    let start = unsafe { Box::from_raw(start as *mut Start) };
    let code = (start.main)(start.arg);
    sys::thread_exit(code)
}

/// Starts `main(arg)` on a new thread at `priority` (at most the caller's). Its return
/// value becomes its exit code. The thread's stack comes from the heap and is not
/// reclaimed when the thread ends.
pub fn spawn(main: fn(usize) -> u64, arg: usize, priority: u8) -> Result<Thread, Error> {
    spawn_with_fault_handler(main, arg, priority, 0)
}

/// As [`spawn`], with the capability pointer of a fault endpoint: the thread's faults
/// become calls on it (see `kaal_abi::fault`) instead of stopping the thread.
pub fn spawn_with_fault_handler(
    main: fn(usize) -> u64,
    arg: usize,
    priority: u8,
    fault_endpoint: u64,
) -> Result<Thread, Error> {
    spawn_configured(main, arg, priority, fault_endpoint, None)
}

/// As [`spawn`], with a fault endpoint (0 for none) and an IPC buffer: a frame and the
/// address where it is mapped in this address space (for messages longer than four
/// words and for capability transfer).
pub fn spawn_configured(
    main: fn(usize) -> u64,
    arg: usize,
    priority: u8,
    fault_endpoint: u64,
    ipc_buffer: Option<(Cap<crate::cap::Frame4K>, u64)>,
) -> Result<Thread, Error> {
    Builder {
        priority,
        fault_endpoint,
        ipc_buffer,
        cpu: None,
    }
    .spawn(main, arg)
}

/// How to start a thread: priority, CPU, fault endpoint and IPC buffer, for the cases
/// [`spawn`] and its variants do not cover.
///
/// ```ignore
/// // A worker on CPU 1 at priority 100.
/// let worker = kaal_user::thread::Builder::new(100).cpu(1).spawn(work, 0)?;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    priority: u8,
    fault_endpoint: u64,
    ipc_buffer: Option<(Cap<crate::cap::Frame4K>, u64)>,
    cpu: Option<usize>,
}

impl Builder {
    /// A thread at `priority` (at most the caller's), on CPU 0, with no fault endpoint
    /// and no IPC buffer.
    pub fn new(priority: u8) -> Self {
        Self {
            priority,
            fault_endpoint: 0,
            ipc_buffer: None,
            cpu: None,
        }
    }

    /// Runs the thread on CPU `cpu` (see [`Cap::<Tcb>::set_affinity`]); set before it
    /// first runs.
    pub fn cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Its faults become calls on the endpoint at this capability pointer (see
    /// [`spawn_with_fault_handler`]).
    pub fn fault_endpoint(mut self, pointer: u64) -> Self {
        self.fault_endpoint = pointer;
        self
    }

    /// An IPC buffer: a frame and where it is mapped in this address space.
    pub fn ipc_buffer(mut self, frame: Cap<crate::cap::Frame4K>, vaddr: u64) -> Self {
        self.ipc_buffer = Some((frame, vaddr));
        self
    }

    /// Starts `main(arg)` on the new thread; its return value becomes its exit code.
    pub fn spawn(self, main: fn(usize) -> u64, arg: usize) -> Result<Thread, Error> {
        spawn_thread(self, main, arg)
    }
}

fn spawn_thread(options: Builder, main: fn(usize) -> u64, arg: usize) -> Result<Thread, Error> {
    let Builder {
        priority,
        fault_endpoint,
        ipc_buffer,
        cpu,
    } = options;
    let memory = THREAD_MEMORY.load(Ordering::Relaxed);
    if memory == 0 {
        return Err(Error::NotSupported);
    }
    let memory = Cap::<Untyped>::from_slot(memory);
    // Before a second thread exists, the runtime's locks get what they sleep on.
    crate::sync::prepare_runtime_locks(memory)?;
    let slot = cap::allocate_slot()?;
    memory.retype::<Tcb>(0, slot, 1)?;
    let tcb = Cap::<Tcb>::from_slot(slot);
    let stack = vec![0u8; STACK_BYTES].leak();
    let top = (stack.as_ptr() as usize + STACK_BYTES) & !15;
    let started = (|| {
        tcb.configure(
            Cap::<CNode>::from_slot(slots::ROOT_CNODE),
            Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE),
            ipc_buffer,
            fault_endpoint,
        )?;
        tcb.set_priority(priority)?;
        if let Some(cpu) = cpu {
            tcb.set_affinity(cpu)?;
        }
        let start = Box::into_raw(Box::new(Start { main, arg })) as u64;
        let mut registers = UserRegisters {
            sp: top as u64,
            pc: trampoline as *const () as u64,
            ..Default::default()
        };
        registers.x[0] = start;
        tcb.write_registers(&registers)?;
        tcb.resume()
    })();
    match started {
        Ok(()) => Ok(Thread {
            tcb,
            stack: core::cell::Cell::new(Some((stack.as_mut_ptr() as usize, stack.len()))),
        }),
        Err(error) => {
            let _ = tcb.delete();
            // SAFETY: the thread never started, so nothing uses the leaked stack.
            drop(unsafe { Box::from_raw(stack as *mut [u8]) });
            Err(error)
        }
    }
}
