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

/// A spawned thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thread {
    tcb: Cap<Tcb>,
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

    /// Waits (yielding) until the thread has ended and returns how it ended.
    pub fn join(&self) -> ThreadState {
        loop {
            match self.state() {
                ThreadState::Alive => sys::yield_now(),
                ended => return ended,
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
    let memory = THREAD_MEMORY.load(Ordering::Relaxed);
    if memory == 0 {
        return Err(Error::NotSupported);
    }
    let slot = cap::allocate_slot()?;
    Cap::<Untyped>::from_slot(memory).retype::<Tcb>(0, slot, 1)?;
    let tcb = Cap::<Tcb>::from_slot(slot);
    let started = (|| {
        tcb.configure(
            Cap::<CNode>::from_slot(slots::ROOT_CNODE),
            Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE),
            None,
            0,
        )?;
        tcb.set_priority(priority)?;
        let stack = vec![0u8; STACK_BYTES].leak();
        let top = (stack.as_ptr() as usize + STACK_BYTES) & !15;
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
        Ok(()) => Ok(Thread { tcb }),
        Err(error) => {
            let _ = tcb.delete();
            Err(error)
        }
    }
}
