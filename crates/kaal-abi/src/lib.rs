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
//! | `x1`, `x2` |                           | the call's results on success, if it has any |
//!
//! All other general-purpose registers are preserved, and on an error only `x0` is
//! written; IPC calls return their message in more registers (see [`MessageInfo`]).
//! `docs/abi.md` describes each call.
//!
//! The crate is the one definition of the ABI's types: [`Syscall`], [`Error`],
//! [`ObjectType`], [`Rights`], [`ThreadStatus`], [`UserRegisters`], [`IpcBuffer`] and
//! [`MessageInfo`]. The kernel and `kaal-user` use these and keep no copies; the byte
//! layouts convert through [`zerocopy`] and are frozen by tests.
//!
//! ## Versioning
//!
//! Numbers and error codes are only ever appended; a number is never reused. The ABI
//! as a whole has a version, [`ABI_VERSION`] (an [`AbiVersion`], major and minor),
//! which the kernel reports through [`Syscall::AbiVersion`]; that call's number (43)
//! and result format are frozen across all versions, so any component can ask any
//! kernel. A component runs on a kernel when [`is_compatible`] says so: same major
//! version, and a kernel minor version at least the one it was built for.
//!
//! ```
//! use kaal_abi::{Error, Syscall};
//! assert_eq!(Syscall::from_number(1), Some(Syscall::ConsoleWrite));
//! assert_eq!(Syscall::from_number(9999), None);
//! assert_eq!(Error::from_code(Error::BadAddress as u64), Some(Error::BadAddress));
//! ```
#![no_std]
#![forbid(unsafe_code)]

/// The zerocopy version the ABI's byte layouts derive with.
pub use zerocopy;

/// The version of this ABI: what the kernel built from this crate reports through
/// [`Syscall::AbiVersion`], and what a component built against this crate expects.
///
/// 1.0 is the first version that components check at start (`kaal-user` does, before
/// `main`). The minor version grows when the ABI gains something (a call, an error
/// code, an object type, a flag) that older components do not use; the major version
/// grows when something a component may rely on changes or goes. See
/// [`is_compatible`].
pub const ABI_VERSION: AbiVersion = AbiVersion::new(1, 1);

/// A version of the system-call ABI: major and minor.
///
/// [`Syscall::AbiVersion`] returns it in `x1` as [`AbiVersion::encode`] writes it,
/// `major << 16 | minor`; that format is frozen across all ABI versions. It prints as
/// `major.minor`, and orders by major, then minor.
///
/// ```
/// use kaal_abi::{ABI_VERSION, AbiVersion, is_compatible};
///
/// let raw = ABI_VERSION.encode();
/// assert_eq!(raw, 1 << 16 | 1); // 1.1
/// assert_eq!(AbiVersion::decode(raw), Some(ABI_VERSION));
/// assert_eq!(AbiVersion::decode(1 << 32), None); // bits 32..63 are always 0
/// assert_eq!(AbiVersion::new(1, 2).to_string(), "1.2");
///
/// // A component built for 1.0 runs on a 1.3 kernel, not on a 2.0 one.
/// let built_for = AbiVersion::new(1, 0);
/// assert!(is_compatible(built_for, AbiVersion::new(1, 3)));
/// assert!(!is_compatible(built_for, AbiVersion::new(2, 0)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbiVersion {
    /// Grows when something a component may rely on changes or goes: components built
    /// for another major version do not run.
    pub major: u16,
    /// Grows when the ABI only gains something: a component built for a minor version
    /// runs on kernels of that minor version and later ones of the same major.
    pub minor: u16,
}

impl AbiVersion {
    /// Version `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// The value [`Syscall::AbiVersion`] returns in `x1`: `major << 16 | minor`.
    pub const fn encode(self) -> u64 {
        (self.major as u64) << 16 | self.minor as u64
    }

    /// Decodes the value [`Syscall::AbiVersion`] returned in `x1`, or `None` if a bit
    /// above bit 31 is set (no kernel sets one).
    pub const fn decode(raw: u64) -> Option<Self> {
        if raw >> 32 != 0 {
            return None;
        }
        Some(Self::new((raw >> 16) as u16, raw as u16))
    }
}

impl core::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Whether a component built for ABI `built_for` may run on a kernel that reports ABI
/// `kernel`: the same major version, and a kernel minor version at least the one the
/// component was built for.
///
/// The minor version only grows by additions, so a newer kernel of the same major
/// version still has everything the component uses; an older minor version may lack a
/// call or flag the component relies on, and another major version changed or removed
/// something. `kaal-user`'s runtime applies this rule at start and refuses to run
/// `main` (printing both versions) when it does not hold.
///
/// ```
/// use kaal_abi::{AbiVersion, is_compatible};
///
/// let v = AbiVersion::new;
/// assert!(is_compatible(v(1, 0), v(1, 0)));
/// assert!(is_compatible(v(1, 0), v(1, 7))); // the kernel only gained things
/// assert!(!is_compatible(v(1, 2), v(1, 1))); // the kernel may lack what 1.2 added
/// assert!(!is_compatible(v(1, 0), v(2, 0))); // another major version
/// assert!(!is_compatible(v(2, 0), v(1, 9)));
/// ```
pub const fn is_compatible(built_for: AbiVersion, kernel: AbiVersion) -> bool {
    built_for.major == kernel.major && kernel.minor >= built_for.minor
}

/// Largest number of objects one [`Syscall::UntypedRetype`] creates. The zeroing of a
/// retype is preempted and restarted, but creating the objects is one step with
/// interrupts masked, so the count is bounded (as by seL4's retype fan-out limit): a
/// larger count is [`Error::InvalidArgument`]. `kaal-user` splits larger requests into
/// calls of at most this many.
pub const RETYPE_MAX_COUNT: u64 = 256;

/// Largest number of bytes one [`Syscall::ConsoleWrite`] accepts, so that one call keeps
/// the kernel (which sends the bytes with interrupts masked) busy for a bounded time;
/// it also stops early when the UART's FIFO is full. `kaal-user` splits longer writes.
pub const CONSOLE_WRITE_MAX_BYTES: usize = 256;

/// How every line of the kernel's own console messages starts. A line a user task
/// writes that starts like this (or with any beginning of it, where its write ends
/// first) is printed after [`CONSOLE_USER_MARK`], so that no task can pass its output
/// off as the kernel's.
pub const CONSOLE_KERNEL_PREFIX: &str = "[kaal";

/// What the kernel puts before a user line that would otherwise look like one of its
/// own (see [`CONSOLE_KERNEL_PREFIX`]).
pub const CONSOLE_USER_MARK: &str = "[user] ";

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
        /// `console_write(console, ptr, len)`: writes `len` bytes (at most
        /// [`CONSOLE_WRITE_MAX_BYTES`]) from the caller's memory to the kernel console,
        /// through a [`ObjectType::Console`] capability with the write right. A line
        /// that starts like a kernel message ([`CONSOLE_KERNEL_PREFIX`]) is marked as
        /// user output ([`CONSOLE_USER_MARK`]). Returns the number of bytes written in
        /// `x1`: fewer than `len` (but at least one) when the UART's transmit FIFO
        /// filled, so that the kernel never waits for the line to drain; the caller
        /// writes the rest with another call (`kaal-user` does).
        ConsoleWrite = 1,
        /// `yield()`: gives up the rest of the time slice to threads of equal priority.
        Yield = 2,
        /// `thread_exit(code)`: ends the calling thread. Does not return.
        ThreadExit = 3,
        // 4 and 5 were the boot-phase `thread_create` and `thread_status`, replaced by
        // TCB objects; they are never reused.
        /// `power_off(system_control)`: switches the machine off through PSCI. Needs the
        /// system-control capability. Does not return on success.
        PowerOff = 6,
        /// `debug_exit(system_control, code)`: ends the emulator with `code` through
        /// semihosting. For tests; needs the system-control capability; fails with
        /// [`Error::NotSupported`] when the kernel was not configured for it.
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
        /// `tcb_configure(tcb, cspace, address_space, ipc_buffer_frame, ipc_buffer_vaddr,
        /// fault_endpoint)`: gives a thread its CSpace root (a CNode capability), its
        /// address space, optionally an IPC buffer (frame capability slot, 0 for none, and
        /// where it is mapped) and the capability pointer of its fault endpoint in its own
        /// CSpace (0 for none).
        TcbConfigure = 16,
        /// `tcb_set_priority(tcb, priority)`: at most the caller's own priority.
        TcbSetPriority = 17,
        /// `tcb_read_registers(tcb, buffer)`: writes the thread's [`UserRegisters`] to
        /// `buffer` in the caller's memory.
        TcbReadRegisters = 18,
        /// `tcb_write_registers(tcb, buffer)`: sets the thread's registers from a
        /// [`UserRegisters`] at `buffer`. Not allowed on the calling thread.
        TcbWriteRegisters = 19,
        /// `tcb_resume(tcb)`: makes an inactive (new or suspended) thread runnable.
        TcbResume = 20,
        /// `tcb_suspend(tcb)`: stops a thread until resumed; ends any IPC it waits in. A
        /// thread suspended in a blocking call (not in a fault) finds that call failed
        /// with [`Error::Aborted`] when it is resumed.
        TcbSuspend = 21,
        /// `tcb_status(tcb)`: a [`ThreadStatus`] in `x1` and, for an exited thread, its
        /// exit code in `x2`.
        TcbStatus = 22,
        /// `send(endpoint, info, mr0..mr3)`: sends a message, waiting for a receiver.
        /// Needs the write right. See "IPC registers" below.
        Send = 23,
        /// `nb_send(endpoint, info, mr0..mr3)`: sends only if a receiver is waiting,
        /// else fails with [`Error::WouldBlock`].
        NbSend = 24,
        /// `call(endpoint, info, mr0..mr3)`: sends and waits for the reply; the receiver
        /// gets a one-shot right to reply to the caller.
        Call = 25,
        /// `recv(endpoint)`: waits for a message. Needs the read right.
        Recv = 26,
        /// `nb_recv(endpoint)`: receives only if a sender is waiting, else fails with
        /// [`Error::WouldBlock`].
        NbRecv = 27,
        /// `reply(info, mr0..mr3)`: answers the last call received (once).
        Reply = 28,
        /// `reply_recv(endpoint, info, mr0..mr3)`: replies (if there is a caller) and
        /// waits for the next message, in one system call.
        ReplyRecv = 29,
        /// `signal(notification)`: ORs the capability's badge (1 for an unbadged
        /// capability) into the notification word, waking a waiter. Needs the write right.
        Signal = 30,
        /// `wait(notification)`: waits until the word is non-zero, returns it in `x1`
        /// and clears it. Needs the read right.
        Wait = 31,
        /// `poll(notification)`: returns the word in `x1` (possibly 0) and clears it.
        Poll = 32,
        /// `tcb_bind_notification(tcb, notification)`: signals to the notification wake
        /// the thread while it waits in `recv` on any endpoint.
        TcbBindNotification = 33,
        /// `page_table_map(table, address_space, vaddr)`: links a page-table object in as
        /// the first missing translation level on the way to `vaddr` (level 2, then 3).
        PageTableMap = 34,
        /// `frame_map(frame, address_space, vaddr, rights, attributes)`: maps a frame at
        /// `vaddr` (aligned to the frame size) with `rights` (read/write bits, at most the
        /// capability's) and [`map_attributes`]. Writable and executable together is
        /// refused. One capability maps once; copy it to map the frame again.
        FrameMap = 35,
        /// `frame_unmap(frame)`: removes the mapping made through this capability.
        FrameUnmap = 36,
        /// `cap_copy_to(source, cnode, index, rights)`: copies a capability into slot
        /// `index` of another CNode (named by a CNode capability in the caller's CSpace):
        /// how a task hands capabilities to a task it builds.
        CapCopyTo = 37,
        /// `cap_mint_to(source, cnode, index, rights, badge)`: as `cap_copy_to`, setting
        /// the badge.
        CapMintTo = 38,
        /// `cap_move_to(source, cnode, index)`: moves a capability into slot `index` of
        /// another CNode (how untyped memory is handed to another task).
        CapMoveTo = 39,
        /// `irq_control_get(irq_control, irq, destination)`: creates the handler
        /// capability for interrupt `irq` (a shared peripheral interrupt, 32 or above,
        /// not already handed out) in an empty slot.
        IrqControlGet = 40,
        /// `irq_handler_set_notification(handler, notification)`: the interrupt signals
        /// this notification (with the capability's badge) and is enabled.
        IrqHandlerSetNotification = 41,
        /// `irq_handler_ack(handler)`: unmasks the interrupt again. The kernel masks it
        /// each time it signals, so a driver acknowledges after serving the device.
        IrqHandlerAck = 42,
        /// `abi_version()`: returns the kernel's ABI version in `x1`, encoded as
        /// `major << 16 | minor` ([`AbiVersion::encode`]; bits 32..63 are 0). Takes no
        /// arguments, needs no capability and cannot fail.
        ///
        /// Frozen across **all** ABI versions, past and future: the number 43, that it
        /// takes no arguments and the format of its result never change, in any major
        /// version, so that any component can ask any kernel which ABI it speaks before
        /// it relies on anything else (see [`is_compatible`]). A kernel older than ABI
        /// 1.0 has no such call and answers [`Error::UnknownSyscall`].
        AbiVersion = 43,
        /// `tcb_set_affinity(tcb, cpu)`: the thread runs on CPU `cpu` (0 is the boot CPU;
        /// the boot info's `cpus_online` says how many there are) from now on; every
        /// thread starts on CPU 0. A ready thread moves at once, a running one at its
        /// CPU's next scheduling pass, a blocked one when it wakes. Needs the write right;
        /// a CPU that is not online is [`Error::InvalidArgument`]. Since ABI 1.1.
        TcbSetAffinity = 44,
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
        /// Something is already mapped there, or the capability is already mapped.
        #[error("already mapped")]
        AlreadyMapped = 15,
        /// The capability is not mapped.
        #[error("not mapped")]
        NotMapped = 16,
        /// A page table the mapping needs is missing; map one with `page_table_map`.
        #[error("page table missing")]
        MissingPageTable = 17,
        /// The thread that received this call ended (faulted, exited, was suspended or
        /// destroyed) before replying: the request may or may not have been carried out.
        #[error("the receiver ended before replying")]
        Aborted = 18,
    }
    from_code
}

/// Kernel object types, for `untyped_retype` and `cap_identify`: the one definition the
/// kernel and user space share.
///
/// The numbers are part of the ABI: append only, never renumber. 12 is reserved (for
/// reply objects) and is no type: [`ObjectType::from_raw`] refuses it, as the kernel's
/// retype does. [`ObjectType::Null`] is the type of an empty slot; nothing is retyped to
/// it and `cap_identify` never reports it. In memory the enum is 32 bits wide, so that a
/// kernel capability stays 32 bytes.
///
/// ```
/// use kaal_abi::ObjectType;
///
/// assert_eq!(ObjectType::from_raw(6), Some(ObjectType::Frame4K));
/// assert_eq!(ObjectType::from_raw(12), None);
/// assert!(ObjectType::Endpoint.is_badgeable() && !ObjectType::Untyped.is_derivable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ObjectType {
    /// No object: the type of an empty slot. Never retyped to.
    Null = 0,
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
    /// A translation table below the top level (8 KiB: the table and its mapping tags).
    PageTable = 8,
    /// The root of an address space (an L1 table with an ASID).
    AddressSpace = 9,
    /// The right to create IRQ handler capabilities (one per system).
    IrqControl = 10,
    /// The right to handle one interrupt line.
    IrqHandler = 11,
    // 12 is reserved for reply objects.
    /// The right to switch the machine off (and, in tests, to end the emulator).
    SystemControl = 13,
    /// The right to write to the kernel console (`console_write`).
    Console = 14,
}

impl ObjectType {
    /// Every type, in numeric order (12 is reserved and absent).
    pub const ALL: [Self; 14] = [
        Self::Null,
        Self::Untyped,
        Self::Tcb,
        Self::Endpoint,
        Self::Notification,
        Self::CNode,
        Self::Frame4K,
        Self::Frame2M,
        Self::PageTable,
        Self::AddressSpace,
        Self::IrqControl,
        Self::IrqHandler,
        Self::SystemControl,
        Self::Console,
    ];

    /// The type with ABI number `raw`, if there is one.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i] as u64 == raw {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The ABI number.
    pub const fn raw(self) -> u64 {
        self as u64
    }

    /// Whether capabilities to this type may be copied or minted.
    ///
    /// Untyped and IRQ control capabilities may not: they are the only ones that parent
    /// capabilities to *other* objects (see [`ObjectType::issues_children`]), and an
    /// untyped capability carries its allocation watermark, which a copy would
    /// duplicate. Move them instead; split untyped memory by retyping it into smaller
    /// untyped objects. Page tables cannot be copied either: the one capability records
    /// where its table is linked, so the kernel can always unlink it before the memory
    /// is reused (a copy without that record could outlive it while the table stays
    /// linked).
    pub const fn is_derivable(self) -> bool {
        !matches!(
            self,
            Self::Null | Self::Untyped | Self::IrqControl | Self::PageTable
        )
    }

    /// Whether a capability of this type can be the parent of capabilities to other
    /// objects (retype children of an untyped, IRQ handlers issued by IRQ control).
    pub const fn issues_children(self) -> bool {
        matches!(self, Self::Untyped | Self::IrqControl)
    }

    /// Whether objects of this type are made from memory by retype (all but null, IRQ
    /// control, IRQ handlers, system control and the console).
    pub const fn is_memory(self) -> bool {
        !matches!(
            self,
            Self::Null | Self::IrqControl | Self::IrqHandler | Self::SystemControl | Self::Console
        )
    }

    /// Whether badges mean something for this type (endpoints and notifications).
    pub const fn is_badgeable(self) -> bool {
        matches!(self, Self::Endpoint | Self::Notification)
    }

    /// Whether this is a frame type (the only types device untyped memory retypes to,
    /// besides smaller device untyped).
    pub const fn is_frame(self) -> bool {
        matches!(self, Self::Frame4K | Self::Frame2M)
    }
}

/// The rights a capability grants over its object: a small set of bits, the one
/// definition the kernel and user space share (the [`rights`] constants are its bits).
///
/// Deriving a capability intersects its rights with the source's
/// ([`Rights::intersection`]), so rights can only shrink along the derivation tree.
///
/// ```
/// use kaal_abi::Rights;
///
/// let rw = Rights::READ.union(Rights::WRITE);
/// assert_eq!(rw, Rights::READ_WRITE);
/// assert!(rw.contains(Rights::READ) && !rw.contains(Rights::GRANT));
/// assert_eq!(Rights::from_bits(8), None);
/// assert_eq!(format!("{rw:?}"), "Rights(rw-)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    /// No rights.
    pub const NONE: Self = Self(0);
    /// Read: receive on an endpoint, wait on a notification, map a frame readable.
    pub const READ: Self = Self(1 << 0);
    /// Write: send on an endpoint, signal a notification, map a frame writable.
    pub const WRITE: Self = Self(1 << 1);
    /// Grant: pass capabilities through an endpoint.
    pub const GRANT: Self = Self(1 << 2);
    /// Read and write.
    pub const READ_WRITE: Self = Self(Self::READ.0 | Self::WRITE.0);
    /// Every right.
    pub const ALL: Self = Self(Self::READ.0 | Self::WRITE.0 | Self::GRANT.0);

    /// The raw bits, as passed through the system-call ABI.
    pub const fn bits(self) -> u64 {
        self.0 as u64
    }

    /// The rights for `bits`, or `None` if a bit outside [`Rights::ALL`] is set.
    pub const fn from_bits(bits: u64) -> Option<Self> {
        if bits & !Self::ALL.bits() == 0 {
            Some(Self(bits as u8))
        } else {
            None
        }
    }

    /// The rights present in both `self` and `other`.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The rights present in either `self` or `other` (for building masks; deriving a
    /// capability never uses it).
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every right in `other` is also in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no right is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Debug for Rights {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let flag = |r: Self, c: char| if self.contains(r) { c } else { '-' };
        write!(
            f,
            "Rights({}{}{})",
            flag(Self::READ, 'r'),
            flag(Self::WRITE, 'w'),
            flag(Self::GRANT, 'g')
        )
    }
}

/// The register file as `tcb_read_registers` and `tcb_write_registers` exchange it.
///
/// Its bytes are the ABI (33 little-endian words, `x0..x30`, `sp`, `pc`); the kernel and
/// user space convert through zerocopy, never by hand:
///
/// ```
/// use kaal_abi::UserRegisters;
/// use kaal_abi::zerocopy::{FromBytes, IntoBytes};
///
/// let mut registers = UserRegisters::default();
/// registers.pc = 0x1000;
/// let bytes = registers.as_bytes();
/// assert_eq!(bytes.len(), kaal_abi::USER_REGISTERS_BYTES);
/// assert_eq!(UserRegisters::read_from_bytes(bytes), Ok(registers));
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct UserRegisters {
    /// `x0` to `x30`.
    pub x: [u64; 31],
    /// Stack pointer.
    pub sp: u64,
    /// Program counter.
    pub pc: u64,
}

/// Size of [`UserRegisters`] in bytes.
pub const USER_REGISTERS_BYTES: usize = 33 * 8;
const _: () = assert!(core::mem::size_of::<UserRegisters>() == USER_REGISTERS_BYTES);

/// Number of message registers: 4 travel in registers, the rest in the IPC buffer.
pub const MESSAGE_REGISTERS: usize = 64;
/// Message registers passed in `x2..x5`.
pub const REGISTER_MESSAGE_REGISTERS: usize = 4;

/// The first words of a thread's IPC buffer page.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct IpcBuffer {
    /// Message registers; `mr[0..4]` are ignored (they travel in registers).
    pub mr: [u64; MESSAGE_REGISTERS],
    /// Capability pointer of the capability to send with the next message that carries
    /// one (`MessageInfo::caps == 1`, on an endpoint capability with the grant right).
    pub send_cap: u64,
    /// Empty slot (in the receiver's CSpace) for a capability that arrives with a message;
    /// 0 to accept none.
    pub receive_slot: u64,
}

/// Describes a message: label, length in message registers and capabilities carried.
///
/// IPC registers: on `send`, `nb_send`, `call`, `reply` and `reply_recv` the thread
/// passes the endpoint in `x0` (ignored by `reply`), the [`MessageInfo`] in `x1` and the
/// first four message registers in `x2..x5`; the rest come from its IPC buffer. A thread
/// returning from `recv`, `nb_recv`, `call` or `reply_recv` finds `x0` = 0 (or an error
/// code), the received [`MessageInfo`] in `x1`, message registers in `x2..x5` (and its IPC
/// buffer) and the sender's badge in `x6`. A notification delivered to a bound thread in
/// `recv` arrives with [`MessageInfo::NOTIFICATION`] set and the notification word in `x6`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// Free for the protocol's use (48 bits).
    pub label: u64,
    /// Number of message registers (at most [`MESSAGE_REGISTERS`]).
    pub length: u8,
    /// Number of capabilities carried (0 or 1).
    pub caps: u8,
    /// Set on a notification delivered through `recv` to a bound thread.
    pub notification: bool,
}

impl MessageInfo {
    /// Flag bit of [`MessageInfo::notification`] in the raw form.
    pub const NOTIFICATION: u64 = 1 << 9;

    /// A message with `label` and `length` message registers.
    pub const fn new(label: u64, length: u8) -> Self {
        Self {
            label,
            length,
            caps: 0,
            notification: false,
        }
    }

    /// The raw register value.
    pub const fn to_raw(self) -> u64 {
        (self.length as u64 & 0x7f)
            | ((self.caps as u64 & 0x3) << 7)
            | if self.notification {
                Self::NOTIFICATION
            } else {
                0
            }
            | (self.label << 16)
    }

    /// Decodes a raw value; lengths above [`MESSAGE_REGISTERS`] are clamped.
    pub const fn from_raw(raw: u64) -> Self {
        let length = (raw & 0x7f) as u8;
        Self {
            label: raw >> 16,
            length: if length as usize > MESSAGE_REGISTERS {
                MESSAGE_REGISTERS as u8
            } else {
                length
            },
            caps: ((raw >> 7) & 0x3) as u8,
            notification: raw & Self::NOTIFICATION != 0,
        }
    }
}

/// Fixed slots of the root task's CSpace (a single CNode; a capability pointer is a slot
/// index). The boot info's initial-capability ranges say where the untyped capabilities
/// and the first free slot are.
pub mod slots {
    /// The root task's first thread.
    pub const ROOT_TCB: u64 = 3;
    /// The root task's address space.
    pub const ROOT_ADDRESS_SPACE: u64 = 4;
    /// The system-control capability (power off; in tests, ending the emulator).
    pub const SYSTEM_CONTROL: u64 = 5;
    /// The console capability (`console_write`), which the root task hands on to the
    /// tasks it builds. The untyped capabilities follow it.
    pub const CONSOLE: u64 = 6;
    /// Slot 0 is never used, so that 0 is never a valid capability.
    pub const NULL: u64 = 0;
    /// The root task's own CNode (its CSpace).
    pub const ROOT_CNODE: u64 = 1;
    /// The IRQ-control capability.
    pub const IRQ_CONTROL: u64 = 2;
    /// Number of slots in the root CNode, as a power of two.
    pub const ROOT_CNODE_RADIX: u8 = 12;
}

/// Fault messages: what a thread's fault handler receives when the thread faults.
///
/// A thread configured with a fault endpoint (`tcb_configure`) that takes a fault the
/// kernel cannot handle does not stop: the kernel makes it `call` that endpoint with a
/// message labelled with the fault kind and words [`fault::ADDRESS`], [`fault::PC`],
/// [`fault::SYNDROME`], [`fault::KIND_DETAIL`]; the badge is that of the thread's
/// fault-endpoint capability. The handler `reply`s: label [`fault::RESUME`] restarts the
/// faulting instruction (after, say, mapping the missing page), label [`fault::STOP`]
/// stops the thread as a fault with no handler.
pub mod fault {
    /// Translation, permission, access-flag or alignment fault on a data access or
    /// instruction fetch (`KIND_DETAIL` is 1 for a fetch, 2 for a write, 0 for a read).
    pub const LABEL_MEMORY: u64 = 1;
    /// Undefined instruction.
    pub const LABEL_UNDEFINED: u64 = 2;
    /// Any other exception of the thread: a synchronous one (breakpoint, PC or SP
    /// misalignment, ...) or an SError (asynchronous abort, e.g. a bad device access)
    /// taken while it ran, with syndrome class 0x2f.
    pub const LABEL_OTHER: u64 = 3;
    /// Word 0: the faulting address (`FAR_EL1`) for memory faults.
    pub const ADDRESS: usize = 0;
    /// Word 1: the faulting instruction's address.
    pub const PC: usize = 1;
    /// Word 2: the exception syndrome (`ESR_EL1`).
    pub const SYNDROME: usize = 2;
    /// Word 3: kind-specific detail.
    pub const KIND_DETAIL: usize = 3;
    /// Reply label: restart the faulting instruction.
    pub const RESUME: u64 = 0;
    /// Reply label: stop the thread.
    pub const STOP: u64 = 1;
}

/// Attribute bits of `frame_map`.
pub mod map_attributes {
    /// Executable (never together with write).
    pub const EXECUTE: u64 = 1 << 0;
    /// Normal memory, not cached.
    pub const UNCACHED: u64 = 1 << 1;
    /// Device memory (nGnRE), for MMIO registers.
    pub const DEVICE: u64 = 1 << 2;
}

/// Capability rights, as bits. Minting and copying can only remove rights.
pub mod rights {
    use super::Rights;

    /// Read: receive on endpoints, wait on notifications, map frames readable.
    pub const READ: u64 = Rights::READ.bits();
    /// Write: send on endpoints, signal notifications, map frames writable.
    pub const WRITE: u64 = Rights::WRITE.bits();
    /// Grant: send capabilities through an endpoint.
    pub const GRANT: u64 = Rights::GRANT.bits();
    /// All rights.
    pub const ALL: u64 = Rights::ALL.bits();
}

numbered! {
    /// What [`Syscall::TcbStatus`] reports about a thread.
    pub enum ThreadStatus {
        /// Ready, running or blocked: the thread has not ended.
        Alive = 0,
        /// The thread called `thread_exit`; `x2` holds its code.
        Exited = 1,
        /// The thread was stopped by the kernel after a fault it could not handle.
        Faulted = 2,
        /// The thread has not been resumed, or was suspended.
        Inactive = 3,
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
        assert_eq!(Syscall::from_number(4), None);
        assert_eq!(Syscall::TcbStatus as u64, 22);
        assert_eq!(Syscall::IrqHandlerAck as u64, 42);
        // Frozen across every ABI version, past and future: any component can ask any
        // kernel for its version with call 43 and read `major << 16 | minor` in `x1`.
        assert_eq!(Syscall::AbiVersion as u64, 43);
        assert_eq!(Syscall::from_number(43), Some(Syscall::AbiVersion));
        assert_eq!(Syscall::from_number(5), None);
        assert_eq!(Syscall::TcbSetAffinity as u64, 44);
        assert_eq!(Syscall::from_number(45), None);
        assert_eq!(Syscall::ALL.last(), Some(&Syscall::TcbSetAffinity));
        assert!(
            Syscall::ALL
                .windows(2)
                .all(|w| (w[0] as u64) < (w[1] as u64))
        );
        assert_eq!(Syscall::from_number(0), None);
        assert_eq!(ObjectType::Console as u64, 14);
        assert_eq!(slots::CONSOLE, slots::SYSTEM_CONTROL + 1);
    }

    #[test]
    fn object_type_numbers_are_frozen_and_twelve_is_reserved() {
        for (raw, ty) in [
            (0, ObjectType::Null),
            (1, ObjectType::Untyped),
            (2, ObjectType::Tcb),
            (3, ObjectType::Endpoint),
            (4, ObjectType::Notification),
            (5, ObjectType::CNode),
            (6, ObjectType::Frame4K),
            (7, ObjectType::Frame2M),
            (8, ObjectType::PageTable),
            (9, ObjectType::AddressSpace),
            (10, ObjectType::IrqControl),
            (11, ObjectType::IrqHandler),
            (13, ObjectType::SystemControl),
            (14, ObjectType::Console),
        ] {
            assert_eq!(ty.raw(), raw);
            assert_eq!(ObjectType::from_raw(raw), Some(ty));
        }
        for raw in [12, 15, 16, 1 << 32, u64::MAX] {
            assert_eq!(ObjectType::from_raw(raw), None, "{raw}");
        }
        assert_eq!(core::mem::size_of::<ObjectType>(), 4);
        assert!(ObjectType::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rights_are_three_bits_and_only_shrink() {
        assert_eq!((rights::READ, rights::WRITE, rights::GRANT), (1, 2, 4));
        assert_eq!(rights::ALL, 7);
        assert_eq!(Rights::from_bits(0), Some(Rights::NONE));
        assert_eq!(Rights::from_bits(7), Some(Rights::ALL));
        assert_eq!(Rights::from_bits(8), None);
        assert_eq!(Rights::from_bits(1 << 63 | 1), None);
        for a in 0..8 {
            for b in 0..8 {
                let (ra, rb) = (Rights::from_bits(a).unwrap(), Rights::from_bits(b).unwrap());
                let i = ra.intersection(rb);
                assert!(ra.contains(i) && rb.contains(i));
                assert_eq!(i.bits(), a & b);
                assert_eq!(ra.union(rb).bits(), a | b);
                assert_eq!(ra.contains(rb), a & b == b);
            }
        }
    }

    #[test]
    fn register_file_and_ipc_buffer_layouts_are_frozen() {
        use core::mem::{offset_of, size_of};
        assert_eq!(size_of::<UserRegisters>(), 264);
        assert_eq!(offset_of!(UserRegisters, x), 0);
        assert_eq!(offset_of!(UserRegisters, sp), 248);
        assert_eq!(offset_of!(UserRegisters, pc), 256);
        assert_eq!(size_of::<IpcBuffer>(), 528);
        assert_eq!(offset_of!(IpcBuffer, mr), 0);
        assert_eq!(offset_of!(IpcBuffer, send_cap), 512);
        assert_eq!(offset_of!(IpcBuffer, receive_slot), 520);
        let mut registers = UserRegisters::default();
        registers.x[1] = 0x0102_0304_0506_0708;
        registers.pc = 1;
        let bytes = zerocopy::IntoBytes::as_bytes(&registers);
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(bytes[256], 1);
    }

    #[test]
    fn message_info_round_trips_and_clamps() {
        let info = MessageInfo {
            label: 0xbeef,
            length: 7,
            caps: 1,
            notification: false,
        };
        assert_eq!(MessageInfo::from_raw(info.to_raw()), info);
        assert_eq!(MessageInfo::from_raw(127).length, MESSAGE_REGISTERS as u8);
        assert!(MessageInfo::from_raw(MessageInfo::NOTIFICATION).notification);
    }

    #[test]
    fn abi_version_encoding_is_frozen() {
        assert_eq!(ABI_VERSION, AbiVersion::new(1, 1));
        assert_eq!(AbiVersion::new(1, 0).encode(), 0x1_0000);
        assert_eq!(AbiVersion::new(0x1234, 0xabcd).encode(), 0x1234_abcd);
        assert_eq!(AbiVersion::new(u16::MAX, u16::MAX).encode(), 0xffff_ffff);
        for (major, minor) in [(0, 0), (0, 1), (1, 0), (1, 65535), (65535, 0), (9, 3)] {
            let v = AbiVersion::new(major, minor);
            assert_eq!(AbiVersion::decode(v.encode()), Some(v));
        }
        assert_eq!(AbiVersion::decode(0x1_0000_0000), None);
        assert_eq!(AbiVersion::decode(u64::MAX), None);
        assert!(AbiVersion::new(1, 9) < AbiVersion::new(2, 0));
    }

    #[test]
    fn compatibility_is_same_major_and_no_older_kernel_minor() {
        let v = AbiVersion::new;
        for major in 0..4u16 {
            for minor in 0..4u16 {
                for kernel_major in 0..4u16 {
                    for kernel_minor in 0..4u16 {
                        assert_eq!(
                            is_compatible(v(major, minor), v(kernel_major, kernel_minor)),
                            major == kernel_major && kernel_minor >= minor
                        );
                    }
                }
            }
        }
        assert!(is_compatible(ABI_VERSION, ABI_VERSION));
        assert!(!is_compatible(v(9, 0), ABI_VERSION));
        assert!(!is_compatible(ABI_VERSION, v(0, 1)));
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
