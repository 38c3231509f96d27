//! System-call wrappers. See `kaal-abi` for the numbers and the register convention.

use crate::cap::{Cap, Console};
use core::sync::atomic::{AtomicU64, Ordering};
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
    /// Not resumed yet, suspended, or stopped because its address space went away.
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

/// Slot of this task's console capability: [`kaal_abi::slots::CONSOLE`] in the root
/// task, [`crate::process::CONSOLE_SLOT`] in a task it built.
static CONSOLE_SLOT: AtomicU64 = AtomicU64::new(crate::process::CONSOLE_SLOT);

/// This task's console capability: where the kernel (for the root task) or the task's
/// builder ([`crate::process`]) put it. A task given none finds its slot empty, and its
/// writes fail with [`Error::InvalidCapability`] (`print!` drops them).
pub fn console() -> Cap<Console> {
    Cap::from_slot(CONSOLE_SLOT.load(Ordering::Relaxed))
}

/// Sets the slot [`console`] names (the runtime's start, for the root task).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_console_slot(slot: u64) {
    CONSOLE_SLOT.store(slot, Ordering::Relaxed);
}

/// Writes bytes to the kernel console through this task's console capability
/// ([`console`]); returns how many were written. Splits long writes (see
/// [`Cap::<Console>::write`]).
pub fn console_write(bytes: &[u8]) -> Result<usize, Error> {
    console().write(bytes)
}

/// Gives the rest of this time slice to other threads of the same priority.
pub fn yield_now() {
    // Yield cannot fail.
    let _ = call(Syscall::Yield, [0; 4]);
}

/// Ends the calling thread with `code`.
pub fn thread_exit(code: u64) -> ! {
    // `thread_exit` does not return on a kernel of this ABI; on one that does not know
    // the call (another major version), give the CPU away for good rather than panic
    // (the panic handler would end here again).
    let _ = call(Syscall::ThreadExit, [code, 0, 0, 0]);
    loop {
        let _ = call(Syscall::Yield, [0; 4]);
    }
}

/// The calling thread's id.
pub fn thread_id() -> ThreadId {
    ThreadId(
        call(Syscall::ThreadId, [0; 4])
            .map(|(id, _)| id)
            .unwrap_or(u64::MAX),
    )
}

/// The ABI version of the kernel this task runs on ([`Syscall::AbiVersion`]).
///
/// Fails with [`Error::UnknownSyscall`] on a kernel older than ABI 1.0, which has no such
/// call, and with [`Error::InvalidArgument`] if the kernel's answer is not a version
/// (a bit above bit 31 set; no kernel does that). The runtime asks once at start and
/// refuses to run `main` unless [`kaal_abi::is_compatible`] accepts the kernel's
/// version; a task normally has no need to ask again.
///
/// ```no_run
/// use kaal_user::{println, sys};
///
/// match sys::abi_version() {
///     Ok(kernel) => println!("the kernel speaks KaaL ABI {kernel}"),
///     Err(error) => println!("no ABI version: {error}"),
/// }
/// ```
pub fn abi_version() -> Result<kaal_abi::AbiVersion, Error> {
    let (raw, _) = call(Syscall::AbiVersion, [0; 4])?;
    kaal_abi::AbiVersion::decode(raw).ok_or(Error::InvalidArgument)
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
