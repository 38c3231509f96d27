//! # kaal-abi: the KaaL system-call ABI
//!
//! This crate is data shared by the kernel and user space: system-call numbers, the
//! register convention and the error codes. It contains no code that runs a system call;
//! user space uses the wrappers in `kaal-user`, the kernel decodes calls with
//! [`Syscall::from_number`].
//!
//! ## Register convention (AArch64)
//!
//! A task enters the kernel with `svc #0`:
//!
//! | register | on entry                    | on return                                  |
//! |----------|-----------------------------|--------------------------------------------|
//! | `x8`     | system-call number          | preserved                                  |
//! | `x0..x5` | arguments                   | `x0`: 0 for success or an [`Error`] code   |
//! | `x1`     |                             | the call's result value, if it has one     |
//!
//! All other general-purpose registers are preserved. `docs/abi.md` describes each call.
//!
//! ## Versioning
//!
//! Numbers and error codes are only ever appended; a number is never reused.
//!
//! ```
//! use kaal_abi::{Error, Syscall};
//! assert_eq!(Syscall::from_number(1), Some(Syscall::ConsoleWrite));
//! assert_eq!(Syscall::from_number(9999), None);
//! assert_eq!(Error::from_code(Error::BadAddress as u64), Some(Error::BadAddress));
//! ```
#![no_std]
#![forbid(unsafe_code)]

/// Version of this ABI as (major, minor). A major change breaks old binaries.
pub const ABI_VERSION: (u16, u16) = (0, 1);

/// Largest number of bytes one [`Syscall::ConsoleWrite`] accepts.
pub const CONSOLE_WRITE_MAX_BYTES: usize = 4096;

/// Lowest and highest thread priority. Higher numbers run first.
pub const PRIORITY_MIN: u8 = 0;
/// See [`PRIORITY_MIN`].
pub const PRIORITY_MAX: u8 = 255;

/// Where things are in a root task's address space. Other tasks choose their own layout.
pub mod layout {
    /// Lowest user virtual address the kernel maps (page 0 stays unmapped).
    pub const USER_START: u64 = 0x1000;
    /// One past the highest user virtual address (39-bit user address space).
    pub const USER_END: u64 = 1 << 39;
    /// Top of the root task's initial stack; the page below its bottom is left unmapped as
    /// a guard.
    pub const ROOT_STACK_TOP: u64 = 0x0000_0040_0000_0000;
    /// Size of the root task's initial stack.
    pub const ROOT_STACK_BYTES: u64 = 256 * 1024;
    /// Where the component archive is mapped read-only in the root task.
    pub const ARCHIVE_VADDR: u64 = 0x0000_0000_2000_0000;
}

macro_rules! numbered {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:expr, )* }
        $from:ident
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u64)]
        pub enum $name { $( $(#[$vmeta])* $variant = $value, )* }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Decodes a raw number, or `None` if no such value exists.
            pub const fn $from(raw: u64) -> Option<Self> {
                match raw {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

numbered! {
    /// System-call numbers, passed in `x8`.
    pub enum Syscall {
        /// `console_write(ptr, len)`: writes `len` bytes (at most
        /// [`CONSOLE_WRITE_MAX_BYTES`]) from the caller's memory to the kernel console.
        /// Returns the number of bytes written in `x1`.
        ConsoleWrite = 1,
        /// `yield()`: gives up the rest of the time slice to threads of equal priority.
        Yield = 2,
        /// `thread_exit(code)`: ends the calling thread. Does not return.
        ThreadExit = 3,
        /// `thread_create(entry, stack_top, arg, priority)`: starts a thread in the
        /// caller's address space at `entry` with `x0 = arg` and `sp = stack_top`.
        /// Returns the new thread's id in `x1`. Boot-phase call: superseded by TCB objects
        /// retyped from untyped memory once the object model lands.
        ThreadCreate = 4,
        /// `thread_status(id)`: returns a [`ThreadStatus`] in `x1` and, for an exited
        /// thread, its exit code in `x2`.
        ThreadStatus = 5,
        /// `power_off()`: switches the machine off through PSCI. Does not return on success.
        PowerOff = 6,
        /// `debug_exit(code)`: ends the emulator with `code` through semihosting. For tests;
        /// fails with [`Error::NotSupported`] when the kernel was not configured for it.
        DebugExit = 7,
        /// `thread_id()`: returns the caller's thread id in `x1`.
        ThreadId = 8,
        /// `cap_copy(source, destination, rights)`: copies a capability between slots of
        /// the caller's CSpace, keeping only `rights` (bits from [`rights`]).
        CapCopy = 9,
        /// `cap_mint(source, destination, rights, badge)`: as copy, and sets the badge of
        /// an unbadged endpoint or notification capability.
        CapMint = 10,
        /// `cap_move(source, destination)`: moves a capability to an empty slot.
        CapMove = 11,
        /// `cap_delete(slot)`: empties a slot; the object dies with its last capability.
        CapDelete = 12,
        /// `cap_revoke(slot)`: deletes every capability derived from the one in `slot`.
        /// Revoking an untyped capability reclaims everything retyped from it.
        CapRevoke = 13,
        /// `cap_identify(slot)`: returns the [`ObjectType`] in `x1` and the rights bits in
        /// `x2`.
        CapIdentify = 14,
        /// `untyped_retype(untyped, type, size_bits, destination, count)`: creates `count`
        /// objects of `type` from untyped memory, their capabilities in `count`
        /// consecutive empty slots from `destination`. `size_bits` is used by untyped
        /// (the new region's size) and CNode (the number of slots, as a power of two).
        UntypedRetype = 15,
    }
    from_number
}

numbered! {
    /// Error codes returned in `x0`. Zero means success and is not an error.
    #[derive(thiserror::Error)]
    pub enum Error {
        /// `x8` held no known system-call number.
        #[error("unknown system call")]
        UnknownSyscall = 1,
        /// An argument was out of its allowed range.
        #[error("invalid argument")]
        InvalidArgument = 2,
        /// A pointer and length did not name memory the caller may access that way.
        #[error("bad user address")]
        BadAddress = 3,
        /// The kernel was not configured for this operation.
        #[error("operation not supported")]
        NotSupported = 4,
        /// The kernel ran out of a resource it needed (threads, memory).
        #[error("out of resources")]
        OutOfResources = 5,
        /// No thread has the given id.
        #[error("no such thread")]
        NoSuchThread = 6,
        /// The slot is outside the caller's CSpace or holds no capability.
        #[error("invalid capability slot")]
        InvalidCapability = 7,
        /// The capability names an object of another type.
        #[error("wrong object type")]
        WrongObjectType = 8,
        /// The capability lacks a right the operation needs.
        #[error("missing capability right")]
        MissingRights = 9,
        /// The destination slot already holds a capability.
        #[error("destination slot occupied")]
        SlotOccupied = 10,
        /// The untyped memory has too little space left.
        #[error("not enough untyped memory")]
        NotEnoughMemory = 11,
        /// A size or address is not suitably aligned.
        #[error("misaligned address or size")]
        Alignment = 12,
        /// The operation is not valid for this capability (e.g. badging a badged one,
        /// retyping device memory into a TCB).
        #[error("operation not valid for this capability")]
        IllegalOperation = 13,
        /// A non-blocking operation would have had to wait.
        #[error("operation would block")]
        WouldBlock = 14,
    }
    from_code
}

numbered! {
    /// Kernel object types, for `untyped_retype` and `cap_identify`.
    pub enum ObjectType {
        /// Untyped memory: the source of every other object.
        Untyped = 1,
        /// A thread control block.
        Tcb = 2,
        /// A synchronous IPC endpoint.
        Endpoint = 3,
        /// A notification word for asynchronous signals.
        Notification = 4,
        /// A node of capability slots.
        CNode = 5,
        /// A 4 KiB frame of memory.
        Frame4K = 6,
        /// A 2 MiB frame of memory.
        Frame2M = 7,
        /// A translation table (4 KiB).
        PageTable = 8,
        /// The root of an address space (an L1 table with an ASID).
        AddressSpace = 9,
        /// The right to create IRQ handler capabilities.
        IrqControl = 10,
        /// The right to handle one interrupt line.
        IrqHandler = 11,
    }
    from_raw
}

/// Fixed slots of the root task's CSpace (a single CNode; a capability pointer is a slot
/// index). The boot info's initial-capability ranges say where the untyped capabilities
/// and the first free slot are.
pub mod slots {
    /// Slot 0 is never used, so that 0 is never a valid capability.
    pub const NULL: u64 = 0;
    /// The root task's own CNode (its CSpace).
    pub const ROOT_CNODE: u64 = 1;
    /// The IRQ-control capability.
    pub const IRQ_CONTROL: u64 = 2;
    /// Number of slots in the root CNode, as a power of two.
    pub const ROOT_CNODE_RADIX: u8 = 12;
}

/// Capability rights, as bits. Minting and copying can only remove rights.
pub mod rights {
    /// Read: receive on endpoints, wait on notifications, map frames readable.
    pub const READ: u64 = 1 << 0;
    /// Write: send on endpoints, signal notifications, map frames writable.
    pub const WRITE: u64 = 1 << 1;
    /// Grant: send capabilities through an endpoint.
    pub const GRANT: u64 = 1 << 2;
    /// All rights.
    pub const ALL: u64 = READ | WRITE | GRANT;
}

numbered! {
    /// What [`Syscall::ThreadStatus`] reports about a thread.
    pub enum ThreadStatus {
        /// Ready, running or blocked: the thread has not ended.
        Alive = 0,
        /// The thread called `thread_exit`; `x2` holds its code.
        Exited = 1,
        /// The thread was stopped by the kernel after a fault it could not handle.
        Faulted = 2,
    }
    from_raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_frozen() {
        for s in Syscall::ALL {
            assert_eq!(Syscall::from_number(*s as u64), Some(*s));
        }
        // Frozen: these numbers are ABI.
        assert_eq!(Syscall::ConsoleWrite as u64, 1);
        assert_eq!(Syscall::ThreadId as u64, 8);
        assert_eq!(Syscall::from_number(0), None);
    }

    #[test]
    fn error_codes_round_trip_and_zero_is_success() {
        for e in Error::ALL {
            assert_ne!(*e as u64, 0);
            assert_eq!(Error::from_code(*e as u64), Some(*e));
        }
        assert_eq!(Error::from_code(0), None);
    }
}
