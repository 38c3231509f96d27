//! Threads in the task's own address space.
//!
//! ```ignore
//! let worker = kaal_user::thread::spawn(|n| n as u64 * 2, 21, 128)?;
//! assert_eq!(worker.join(), kaal_user::sys::ThreadState::Exited(42));
//! ```

use crate::sys::{self, ThreadId, ThreadState};
use alloc::boxed::Box;
use alloc::vec;
use kaal_abi::Error;

/// Stack size of a spawned thread.
pub const STACK_BYTES: usize = 16 * 1024;

struct Start {
    main: fn(usize) -> u64,
    arg: usize,
}

/// A spawned thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thread {
    id: ThreadId,
}

impl Thread {
    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// What became of the thread so far.
    pub fn state(&self) -> ThreadState {
        sys::thread_status(self.id).unwrap_or(ThreadState::Faulted)
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
    let stack = vec![0u8; STACK_BYTES].leak();
    let top = (stack.as_ptr() as usize + STACK_BYTES) & !15;
    let start = Box::into_raw(Box::new(Start { main, arg })) as usize;
    // SAFETY: the leaked stack belongs to the new thread alone; `trampoline` never returns
    // and takes the `Start` pointer it is given.
    match unsafe { sys::thread_create(trampoline, top, start, priority) } {
        Ok(id) => Ok(Thread { id }),
        Err(error) => {
            // SAFETY: the kernel refused, so no thread owns `start`; reclaim it.
            drop(unsafe { Box::from_raw(start as *mut Start) });
            Err(error)
        }
    }
}
