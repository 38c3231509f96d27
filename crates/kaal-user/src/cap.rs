//! Typed capabilities and the calls on them.
//!
//! A capability is named by its slot in the task's CSpace; [`Cap<T>`] adds the object
//! type, so an endpoint capability cannot be passed where an untyped one is expected.
//!
//! ```ignore
//! let untyped = Cap::<Untyped>::from_slot(boot.caps().untyped.start.into());
//! let endpoint: Cap<Endpoint> = untyped.retype_one(0)?;
//! let badged = endpoint.mint(cap::allocate_slot()?, rights::ALL, 42)?;
//! ```

use core::marker::PhantomData;
use kaal_abi::{Error, ObjectType, Syscall};

/// A kind of kernel object.
pub trait ObjectKind {
    /// Its ABI type.
    const TYPE: ObjectType;
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum $name {}
            impl ObjectKind for $name {
                const TYPE: ObjectType = ObjectType::$name;
            }
        )*
    };
}

kinds! {
    /// Untyped memory.
    Untyped,
    /// A thread control block.
    Tcb,
    /// A synchronous endpoint.
    Endpoint,
    /// A notification.
    Notification,
    /// A CNode.
    CNode,
    /// A 4 KiB frame.
    Frame4K,
    /// A 2 MiB frame.
    Frame2M,
    /// A translation table.
    PageTable,
    /// An address-space root.
    AddressSpace,
    /// IRQ control.
    IrqControl,
    /// An IRQ handler.
    IrqHandler,
    /// System control (power off).
    SystemControl,
    /// The kernel console (`console_write`).
    Console,
}

/// A capability to an object of kind `T`, held in slot `slot` of the caller's CSpace.
#[derive(Debug, PartialEq, Eq)]
pub struct Cap<T: ObjectKind> {
    slot: u64,
    kind: PhantomData<T>,
}

impl<T: ObjectKind> Clone for Cap<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ObjectKind> Copy for Cap<T> {}

#[inline]
pub(crate) fn call(number: Syscall, args: [u64; 6]) -> Result<(u64, u64), Error> {
    // SAFETY: the typed wrappers in this crate are the only callers; the one pointer the
    // kernel writes through (`read_registers`) is to a local they own.
    match unsafe { raw_syscall6_unchecked(number as u64, args) } {
        (0, value, extra) => Ok((value, extra)),
        (code, _, _) => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}

/// Issues a system call with six arguments, returning raw `(x0, x1, x2)`: for tests of
/// the kernel's argument checking; normal code uses the typed wrappers.
///
/// Safe for any arguments, because it refuses (with `InvalidArgument`, without entering
/// the kernel) the one call through which the kernel writes the caller's memory at an
/// address the caller chooses, `tcb_read_registers`: use [`Cap::read_registers`] or
/// [`raw_syscall6_unchecked`].
pub fn raw_syscall6(number: u64, args: [u64; 6]) -> (u64, u64, u64) {
    if number == Syscall::TcbReadRegisters as u64 {
        return (Error::InvalidArgument as u64, 0, 0);
    }
    // SAFETY: no call left writes memory through a caller-chosen pointer; the assembly
    // declares every register the kernel may write.
    unsafe { raw_syscall6_unchecked(number, args) }
}

/// As [`raw_syscall6`], for every call.
///
/// # Safety
/// Where the kernel writes through a pointer argument (`tcb_read_registers`), that
/// pointer must name memory the caller may overwrite with those bytes
/// (`USER_REGISTERS_BYTES`), with no live reference to it.
pub unsafe fn raw_syscall6_unchecked(number: u64, args: [u64; 6]) -> (u64, u64, u64) {
    #[cfg(target_os = "none")]
    {
        let (status, value, extra): (u64, u64, u64);
        // SAFETY: the kernel validates every argument; it writes at most x0..x6 (IPC
        // calls), all declared here; memory writes are the caller's contract.
        unsafe {
            core::arch::asm!(
                "svc #0",
                inlateout("x0") args[0] => status,
                inlateout("x1") args[1] => value,
                inlateout("x2") args[2] => extra,
                inlateout("x3") args[3] => _,
                inlateout("x4") args[4] => _,
                inlateout("x5") args[5] => _,
                lateout("x6") _,
                in("x8") number,
                options(nostack),
            );
        }
        (status, value, extra)
    }
    #[cfg(not(target_os = "none"))]
    {
        let _ = (number, args);
        (Error::NotSupported as u64, 0, 0)
    }
}

impl<T: ObjectKind> Cap<T> {
    /// The capability in `slot`, taken to be of kind `T` (the kernel checks the type on
    /// every use).
    pub const fn from_slot(slot: u64) -> Self {
        Self {
            slot,
            kind: PhantomData,
        }
    }

    /// The slot holding this capability.
    pub const fn slot(&self) -> u64 {
        self.slot
    }

    /// Copies the capability into empty slot `destination`, keeping only `rights`.
    pub fn copy(&self, destination: u64, rights: u64) -> Result<Cap<T>, Error> {
        call(Syscall::CapCopy, [self.slot, destination, rights, 0, 0, 0])?;
        Ok(Cap::from_slot(destination))
    }

    /// Copies the capability with a badge (endpoints and notifications).
    pub fn mint(&self, destination: u64, rights: u64, badge: u64) -> Result<Cap<T>, Error> {
        call(
            Syscall::CapMint,
            [self.slot, destination, rights, badge, 0, 0],
        )?;
        Ok(Cap::from_slot(destination))
    }

    /// Moves the capability to empty slot `destination`.
    pub fn move_to(self, destination: u64) -> Result<Cap<T>, Error> {
        call(Syscall::CapMove, [self.slot, destination, 0, 0, 0, 0])?;
        Ok(Cap::from_slot(destination))
    }

    /// Deletes the capability; the object is destroyed with its last capability.
    pub fn delete(self) -> Result<(), Error> {
        call(Syscall::CapDelete, [self.slot, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// Deletes every capability derived from this one; returns how many went in the
    /// kernel's last issue of the call (a long revoke is restarted after interrupts, and
    /// only the issue that finishes returns a count).
    pub fn revoke(&self) -> Result<u64, Error> {
        call(Syscall::CapRevoke, [self.slot, 0, 0, 0, 0, 0]).map(|(count, _)| count)
    }

    /// The object type and rights bits of the capability in the slot.
    pub fn identify(&self) -> Result<(ObjectType, u64), Error> {
        identify(self.slot)
    }
}

/// The object type and rights of whatever capability is in `slot`.
pub fn identify(slot: u64) -> Result<(ObjectType, u64), Error> {
    let (ty, rights) = call(Syscall::CapIdentify, [slot, 0, 0, 0, 0, 0])?;
    Ok((
        ObjectType::from_raw(ty).ok_or(Error::InvalidArgument)?,
        rights,
    ))
}

impl Cap<Untyped> {
    /// Retypes `count` objects of kind `K` into the empty slots from `destination` on.
    /// `size_bits` is the size of an untyped object or the radix of a CNode (ignored
    /// otherwise). Returns the physical address of the first object. The objects are
    /// contiguous when one call makes them all; a split retype (below) is contiguous
    /// only if no other thread retypes from the same untyped between its calls.
    ///
    /// One system call creates at most [`kaal_abi::RETYPE_MAX_COUNT`] objects; a larger
    /// `count` is made in several, and if one of them fails, the capabilities the
    /// earlier ones created are deleted again before the error is returned (their
    /// memory comes back when the untyped is revoked or all its children are gone).
    pub fn retype<K: ObjectKind>(
        &self,
        size_bits: u8,
        destination: u64,
        count: u32,
    ) -> Result<u64, Error> {
        let max = kaal_abi::RETYPE_MAX_COUNT as u32;
        let mut first_address = None;
        let mut done = 0;
        loop {
            let batch = (count - done).min(max);
            let args = [
                self.slot,
                K::TYPE as u64,
                u64::from(size_bits),
                destination + u64::from(done),
                // A count of 0 goes to the kernel, which refuses it.
                u64::from(batch),
                0,
            ];
            match call(Syscall::UntypedRetype, args) {
                Ok((address, _)) => {
                    first_address.get_or_insert(address);
                    done += batch;
                    if done == count {
                        return Ok(first_address.unwrap_or(address));
                    }
                }
                Err(error) => {
                    for slot in destination..destination + u64::from(done) {
                        let _ = call(Syscall::CapDelete, [slot, 0, 0, 0, 0, 0]);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Retypes one object of kind `K` into a slot from the task-wide allocator.
    pub fn retype_one<K: ObjectKind>(&self, size_bits: u8) -> Result<Cap<K>, Error> {
        let slot = allocate_slot()?;
        match self.retype::<K>(size_bits, slot, 1) {
            Ok(_) => Ok(Cap::from_slot(slot)),
            Err(error) => {
                let _ = free_slot(slot);
                Err(error)
            }
        }
    }
}

/// The root task's largest RAM untyped capability, per the boot info.
pub fn largest_ram_untyped(boot: &crate::BootInfo<'_>) -> Option<Cap<Untyped>> {
    let caps = boot.caps();
    boot.untyped()
        .take(caps.untyped.count as usize)
        .enumerate()
        .max_by_key(|(_, region)| region.size_bytes)
        .map(|(index, _)| Cap::from_slot(u64::from(caps.untyped.start) + index as u64))
}

pub use crate::slots::{SlotAllocator, SlotError};

impl From<SlotError> for Error {
    fn from(error: SlotError) -> Self {
        match error {
            SlotError::OutOfSlots | SlotError::ZeroCount => Error::OutOfResources,
            SlotError::NotAllocated(_) => Error::InvalidArgument,
        }
    }
}

impl SlotAllocator {
    /// The root task's free slots, as the boot info describes them.
    pub fn from_boot_info(boot: &crate::BootInfo<'_>) -> Self {
        Self::new(
            u64::from(boot.caps().first_free),
            1 << kaal_abi::slots::ROOT_CNODE_RADIX,
        )
    }
}

/// The task-wide allocator (none until the runtime gives it the task's free slots),
/// behind a lock whose waiters sleep (see [`crate::sync`]).
pub(crate) static SLOTS: crate::sync::Mutex<Option<SlotAllocator>> = crate::sync::Mutex::new(None);

/// Runs `f` with the slot allocator's lock held (a test hook: see `crate::test_hooks`).
pub(crate) fn with_slots_locked<R>(f: impl FnOnce() -> R) -> R {
    let _slots = SLOTS.lock();
    f()
}

/// Gives the task's free slots to the global allocator (done by the runtime at start).
pub fn init_slots(allocator: SlotAllocator) {
    // The old allocator is dropped after the lock is released.
    let _old = SLOTS.lock().replace(allocator);
}

fn with_slots<T>(
    operation: impl FnOnce(&mut SlotAllocator) -> Result<T, SlotError>,
) -> Result<T, Error> {
    let mut slots = SLOTS.lock();
    let slots = slots.as_mut().ok_or(Error::OutOfResources)?;
    operation(slots).map_err(Error::from)
}

/// An empty slot of the task's CSpace, from the task-wide allocator.
pub fn allocate_slot() -> Result<u64, Error> {
    with_slots(SlotAllocator::allocate)
}

/// `count` consecutive empty slots from the task-wide allocator; returns the first.
pub fn allocate_slots(count: u64) -> Result<u64, Error> {
    with_slots(|slots| slots.allocate_range(count))
}

/// Returns an empty slot to the task-wide allocator.
pub fn free_slot(slot: u64) -> Result<(), Error> {
    with_slots(|slots| slots.free(slot))
}

/// How many slots the task-wide allocator can still hand out.
pub fn available_slots() -> u64 {
    SLOTS.lock().as_ref().map_or(0, SlotAllocator::free_count)
}

impl Cap<Tcb> {
    /// Gives the thread its CSpace, address space, IPC buffer (frame and address) and
    /// fault endpoint (a capability pointer in its own CSpace; 0 for none).
    pub fn configure(
        &self,
        cspace: Cap<CNode>,
        address_space: Cap<AddressSpace>,
        ipc_buffer: Option<(Cap<Frame4K>, u64)>,
        fault_endpoint: u64,
    ) -> Result<(), Error> {
        let (frame, vaddr) = ipc_buffer.map_or((0, 0), |(frame, vaddr)| (frame.slot(), vaddr));
        call(
            Syscall::TcbConfigure,
            [
                self.slot,
                cspace.slot(),
                address_space.slot(),
                frame,
                vaddr,
                fault_endpoint,
            ],
        )
        .map(|_| ())
    }

    /// Sets the priority (at most the caller's).
    pub fn set_priority(&self, priority: u8) -> Result<(), Error> {
        call(
            Syscall::TcbSetPriority,
            [self.slot, u64::from(priority), 0, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// Makes the thread run on CPU `cpu` (0 is the boot CPU; the boot info's
    /// `system().cpus_online` says how many there are). A ready thread moves at once, a
    /// running one at its CPU's next scheduling pass. A CPU that is not online is
    /// [`Error::InvalidArgument`]; a kernel before ABI 1.1 answers
    /// [`Error::UnknownSyscall`].
    pub fn set_affinity(&self, cpu: usize) -> Result<(), Error> {
        call(Syscall::TcbSetAffinity, [self.slot, cpu as u64, 0, 0, 0, 0]).map(|_| ())
    }

    /// Reads the thread's registers.
    pub fn read_registers(&self) -> Result<kaal_abi::UserRegisters, Error> {
        let mut registers = kaal_abi::UserRegisters::default();
        let pointer = &mut registers as *mut kaal_abi::UserRegisters as u64;
        call(Syscall::TcbReadRegisters, [self.slot, pointer, 0, 0, 0, 0])?;
        Ok(registers)
    }

    /// Sets the thread's registers (not the caller's own).
    pub fn write_registers(&self, registers: &kaal_abi::UserRegisters) -> Result<(), Error> {
        let pointer = registers as *const kaal_abi::UserRegisters as u64;
        call(Syscall::TcbWriteRegisters, [self.slot, pointer, 0, 0, 0, 0]).map(|_| ())
    }

    /// Makes the thread runnable.
    pub fn resume(&self) -> Result<(), Error> {
        call(Syscall::TcbResume, [self.slot, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// Stops the thread until resumed.
    pub fn suspend(&self) -> Result<(), Error> {
        call(Syscall::TcbSuspend, [self.slot, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// What became of the thread.
    pub fn status(&self) -> Result<crate::sys::ThreadState, Error> {
        use crate::sys::ThreadState;
        let (status, code) = call(Syscall::TcbStatus, [self.slot, 0, 0, 0, 0, 0])?;
        Ok(match kaal_abi::ThreadStatus::from_raw(status) {
            Some(kaal_abi::ThreadStatus::Alive) => ThreadState::Alive,
            Some(kaal_abi::ThreadStatus::Exited) => ThreadState::Exited(code),
            Some(kaal_abi::ThreadStatus::Faulted) => ThreadState::Faulted,
            Some(kaal_abi::ThreadStatus::Inactive) => ThreadState::Inactive,
            None => return Err(Error::InvalidArgument),
        })
    }

    /// Binds a notification: its signals wake the thread in `recv` on any endpoint.
    pub fn bind_notification(&self, notification: Cap<Notification>) -> Result<(), Error> {
        call(
            Syscall::TcbBindNotification,
            [self.slot, notification.slot(), 0, 0, 0, 0],
        )
        .map(|_| ())
    }
}

impl<T: ObjectKind> Cap<T> {
    /// Copies the capability into slot `index` of another CNode (`cnode`, a CNode
    /// capability in this task's CSpace), keeping only `rights`.
    pub fn copy_to(&self, cnode: Cap<CNode>, index: u64, rights: u64) -> Result<(), Error> {
        call(
            Syscall::CapCopyTo,
            [self.slot, cnode.slot(), index, rights, 0, 0],
        )
        .map(|_| ())
    }

    /// Moves the capability into slot `index` of another CNode.
    pub fn move_to_cnode(self, cnode: Cap<CNode>, index: u64) -> Result<(), Error> {
        call(
            Syscall::CapMoveTo,
            [self.slot, cnode.slot(), index, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// As [`Cap::copy_to`], with a badge.
    pub fn mint_to(
        &self,
        cnode: Cap<CNode>,
        index: u64,
        rights: u64,
        badge: u64,
    ) -> Result<(), Error> {
        call(
            Syscall::CapMintTo,
            [self.slot, cnode.slot(), index, rights, badge, 0],
        )
        .map(|_| ())
    }
}

/// Frames: mapping and unmapping.
pub trait Frame: ObjectKind {
    /// Size in bytes.
    const BYTES: u64;
}
impl Frame for Frame4K {
    const BYTES: u64 = 4096;
}
impl Frame for Frame2M {
    const BYTES: u64 = 2 * 1024 * 1024;
}

impl<T: Frame> Cap<T> {
    /// Maps the frame at `vaddr` in `space` with `rights` (read/write bits) and
    /// `attributes` (`kaal_abi::map_attributes`).
    pub fn map(
        &self,
        space: Cap<AddressSpace>,
        vaddr: u64,
        rights: u64,
        attributes: u64,
    ) -> Result<(), Error> {
        call(
            Syscall::FrameMap,
            [self.slot, space.slot(), vaddr, rights, attributes, 0],
        )
        .map(|_| ())
    }

    /// Removes the mapping made through this capability.
    pub fn unmap(&self) -> Result<(), Error> {
        call(Syscall::FrameUnmap, [self.slot, 0, 0, 0, 0, 0]).map(|_| ())
    }
}

impl Cap<PageTable> {
    /// Links the table into `space` as the first missing level on the way to `vaddr`;
    /// returns the level (2 or 3).
    pub fn map(&self, space: Cap<AddressSpace>, vaddr: u64) -> Result<u32, Error> {
        call(
            Syscall::PageTableMap,
            [self.slot, space.slot(), vaddr, 0, 0, 0],
        )
        .map(|(level, _)| level as u32)
    }
}

/// Maps `frame` at `vaddr` in `space`, first creating (from `untyped`) and linking any
/// page tables the address needs.
pub fn map_with_tables<T: Frame>(
    frame: Cap<T>,
    space: Cap<AddressSpace>,
    vaddr: u64,
    rights: u64,
    attributes: u64,
    untyped: Cap<Untyped>,
) -> Result<(), Error> {
    loop {
        match frame.map(space, vaddr, rights, attributes) {
            Err(Error::MissingPageTable) => {
                let table: Cap<PageTable> = untyped.retype_one(0)?;
                table.map(space, vaddr)?;
            }
            other => return other,
        }
    }
}

impl Cap<Console> {
    /// Writes `bytes` to the kernel console; returns how many were written. Longer
    /// writes than one call takes ([`kaal_abi::CONSOLE_WRITE_MAX_BYTES`]) are split,
    /// each piece ending at a line end where there is one ([`console_pieces`]), so that
    /// a line is not cut where another task's output could come between.
    pub fn write(&self, bytes: &[u8]) -> Result<usize, Error> {
        let mut written = 0;
        for piece in console_pieces(bytes) {
            // The kernel stops early when the UART's FIFO is full (taking at least one
            // byte each time): the rest goes in the next call.
            let mut rest = piece;
            while !rest.is_empty() {
                let (count, _) = call(
                    Syscall::ConsoleWrite,
                    [self.slot, rest.as_ptr() as u64, rest.len() as u64, 0, 0, 0],
                )?;
                let count = (count as usize).clamp(1, rest.len());
                rest = &rest[count..];
                written += count;
            }
        }
        Ok(written)
    }
}

/// Splits `bytes` into the pieces [`Cap::<Console>::write`] passes to one
/// `console_write` each: at most [`kaal_abi::CONSOLE_WRITE_MAX_BYTES`] bytes, cut after
/// the last `\n` that fits (or at the maximum, in a longer line).
///
/// ```
/// use kaal_abi::CONSOLE_WRITE_MAX_BYTES as MAX;
/// use kaal_user::cap::console_pieces;
///
/// let text = [b"short\n".as_slice(), &[b'x'; MAX], b"\nend"].concat();
/// let pieces: Vec<&[u8]> = console_pieces(&text).collect();
/// assert_eq!(pieces[0], b"short\n");
/// assert_eq!(pieces[1], &[b'x'; MAX][..]);
/// assert_eq!(pieces[2], b"\nend");
/// assert_eq!(console_pieces(b"").count(), 0);
/// ```
pub fn console_pieces(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let max = kaal_abi::CONSOLE_WRITE_MAX_BYTES;
        let length = if rest.len() <= max {
            rest.len()
        } else {
            rest[..max]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(max, |at| at + 1)
        };
        let (piece, tail) = rest.split_at(length);
        rest = tail;
        Some(piece)
    })
}

impl Cap<IrqControl> {
    /// Creates the handler capability for interrupt `irq` in empty slot `destination`.
    pub fn get(&self, irq: u32, destination: u64) -> Result<Cap<IrqHandler>, Error> {
        call(
            Syscall::IrqControlGet,
            [self.slot, u64::from(irq), destination, 0, 0, 0],
        )?;
        Ok(Cap::from_slot(destination))
    }
}

impl Cap<IrqHandler> {
    /// Routes the interrupt to `notification` and enables it.
    pub fn set_notification(&self, notification: Cap<Notification>) -> Result<(), Error> {
        call(
            Syscall::IrqHandlerSetNotification,
            [self.slot, notification.slot(), 0, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// Unmasks the interrupt after the device was served.
    pub fn ack(&self) -> Result<(), Error> {
        call(Syscall::IrqHandlerAck, [self.slot, 0, 0, 0, 0, 0]).map(|_| ())
    }
}
