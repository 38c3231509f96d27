//! System-call wrappers. See `kaal-abi` for the numbers and the register convention.

use kaal_abi::{Error, Syscall};

/// Identifier of a thread, as `thread_id` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadId(pub u64);

/// What became of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Running, ready or blocked.
    Alive,
    /// Called `thread_exit` with this code.
    Exited(u64),
    /// Stopped by the kernel after a fault.
    Faulted,
    /// Not resumed yet, or suspended.
    Inactive,
}

fn call(call: Syscall, args: [u64; 4]) -> Result<(u64, u64), Error> {
    crate::cap::call(call, [args[0], args[1], args[2], args[3], 0, 0])
}

/// Issues system call `number` with raw arguments, returning the raw `(x0, x1, x2)`.
/// For tests of the kernel's argument checking; normal code uses the typed wrappers.
/// See [`crate::cap::raw_syscall6`], which this calls with `x4 = x5 = 0`.
pub fn raw_syscall(number: u64, args: [u64; 4]) -> (u64, u64, u64) {
    crate::cap::raw_syscall6(number, [args[0], args[1], args[2], args[3], 0, 0])
}

/// Writes bytes to the kernel console; returns how many were written.
pub fn console_write(bytes: &[u8]) -> Result<usize, Error> {
    let mut written = 0;
    for chunk in bytes.chunks(kaal_abi::CONSOLE_WRITE_MAX_BYTES) {
        let (count, _) = call(
            Syscall::ConsoleWrite,
            [chunk.as_ptr() as u64, chunk.len() as u64, 0, 0],
        )?;
        written += count as usize;
    }
    Ok(written)
}

/// Gives the rest of this time slice to other threads of the same priority.
pub fn yield_now() {
    // Yield cannot fail.
    let _ = call(Syscall::Yield, [0; 4]);
}

/// Ends the calling thread with `code`.
pub fn thread_exit(code: u64) -> ! {
    let _ = call(Syscall::ThreadExit, [code, 0, 0, 0]);
    unreachable!("thread_exit returned")
}

/// The calling thread's id.
pub fn thread_id() -> ThreadId {
    ThreadId(
        call(Syscall::ThreadId, [0; 4])
            .map(|(id, _)| id)
            .unwrap_or(u64::MAX),
    )
}

/// Switches the machine off (PSCI), with the system-control capability in its root-task
/// slot. Returns the error if the kernel could not (or the task does not hold it).
pub fn power_off() -> Error {
    let control = kaal_abi::slots::SYSTEM_CONTROL;
    call(Syscall::PowerOff, [control, 0, 0, 0])
        .err()
        .unwrap_or(Error::NotSupported)
}

/// Ends the emulator with `code` (semihosting; for tests), with the system-control
/// capability in its root-task slot. Returns the error if the kernel was not configured
/// for it (or the task does not hold the capability).
pub fn debug_exit(code: u32) -> Error {
    let control = kaal_abi::slots::SYSTEM_CONTROL;
    call(Syscall::DebugExit, [control, u64::from(code), 0, 0])
        .err()
        .unwrap_or(Error::NotSupported)
}

/// Makes this thread take a memory fault on purpose (a write to address 8, never
/// mapped): for fault-injection tests and a shell's `crash` command. The thread's fault
/// endpoint (for a component, the broker) gets the fault; without one the thread stops.
pub fn raise_memory_fault() -> ! {
    #[cfg(target_os = "none")]
    {
        // SAFETY: address 8 is below `layout::USER_START` and never mapped, so the write
        // faults before it changes any memory (like an MMIO access to a fixed address,
        // the pointer takes exposed provenance); the thread does not continue past it.
        unsafe { core::ptr::with_exposed_provenance_mut::<u64>(8).write_volatile(0xdead) };
    }
    loop {
        yield_now();
    }
}
