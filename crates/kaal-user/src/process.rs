//! Building a process from untyped memory: its own address space, CSpace and thread,
//! loaded from an ELF image (for example a component of the boot archive).
//!
//! ```ignore
//! let archive = kaal_user::components()?;
//! let server = Process::create(untyped, archive.get("echo-server").unwrap(), 8)?;
//! endpoint.copy_to(server.cnode(), 5, rights::READ)?;
//! server.start(0, 100)?;
//! ```
//!
//! The new process's CSpace follows the root task's conventions for its own objects:
//! its CNode in slot 1, its TCB in slot 3, its address space in slot 4; a copy of the
//! builder's console capability (write right only) goes in slot 2, [`CONSOLE_SLOT`]
//! (unless [`ProcessOptions::console`] says otherwise), so that it can print; the
//! builder's caller hands it whatever else it needs in slots from [`FIRST_FREE_SLOT`] on. Its
//! stack ends at `ROOT_STACK_TOP` and its IPC buffer is a page further down, past a
//! guard page.
//!
//! Every object is made from the one untyped capability the builder is given, and every
//! slot of the builder's CSpace that the build used is recorded ([`Process::slots`]): a
//! supervisor destroys the process by revoking that untyped capability, then returns the
//! slots with [`Process::release_slots`].
//!
//! The image is checked before anything is made, by the planner the kernel uses for the
//! root task ([`kaal_bootinfo::loader`]): a malformed image, a segment over the stack,
//! the IPC buffer, the start-up record or a window the caller reserves
//! ([`ProcessOptions::reserved`]), overlapping or writable and executable segments are
//! refused with a [`ProcessError::BadImage`] that names the segment and the rule. A build
//! that fails later (out of memory, a refused system call) deletes every capability it
//! made and returns every slot it took, so the untyped memory and the slot allocator are
//! as they were before.

use crate::cap::{
    self, AddressSpace, CNode, Cap, Console, Frame, Frame4K, ObjectKind, PageTable, Tcb, Untyped,
};
use alloc::vec::Vec;
use kaal_abi::{Error, UserRegisters, layout, map_attributes, rights, slots};
use kaal_bootinfo::loader::{self, LoadError, LoadPlan, Rules, Window};
use kaal_bootinfo::startup::{STARTUP_MAX_BYTES, STARTUP_VADDR};

/// Slot of a new process's CSpace that holds its console capability (in the root task,
/// IRQ control's slot: a process never gets that one there).
pub const CONSOLE_SLOT: u64 = 2;
/// First slot of a new process's CSpace that the builder leaves free; its starter puts
/// the capabilities it hands over in `FIRST_FREE_SLOT..CHILD_OWN_SLOTS.start`.
pub const FIRST_FREE_SLOT: u64 = 5;
/// Slots the process's own runtime hands out (to retype objects, spawn threads).
pub const CHILD_OWN_SLOTS: core::ops::Range<u64> = 32..64;
/// Smallest CNode radix a process may be built with (it must hold `CHILD_OWN_SLOTS`).
pub const MIN_CNODE_RADIX: u8 = 6;
/// Default stack size of a new process.
pub const STACK_BYTES: u64 = 64 * 1024;
/// Default limit on the memory an image's segments may take
/// ([`ProcessOptions::max_image_bytes`]).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// Where the builder maps frames in its own address space to fill them.
const SCRATCH_VADDR: u64 = 0x10_0000_0000;
const PAGE: u64 = 4096;

/// Where a new process's IPC buffer is mapped (with the default stack size).
pub const IPC_BUFFER_VADDR: u64 = ipc_buffer_vaddr(STACK_BYTES);

/// Where the IPC buffer of a process with a stack of `stack_bytes` is mapped.
pub const fn ipc_buffer_vaddr(stack_bytes: u64) -> u64 {
    layout::ROOT_STACK_TOP - stack_bytes - 2 * PAGE
}

/// Why a process could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessError {
    /// The ELF image is malformed, not a static AArch64 executable, or breaks a loading
    /// rule; the error names which (and the segment).
    BadImage(LoadError),
    /// A system call failed.
    Kernel(Error),
}

impl From<Error> for ProcessError {
    fn from(error: Error) -> Self {
        Self::Kernel(error)
    }
}

impl core::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadImage(error) => write!(f, "ELF image refused: {error}"),
            Self::Kernel(error) => write!(f, "kernel refused: {error}"),
        }
    }
}

/// How to build a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessOptions {
    /// Its CSpace has `2^cnode_radix` slots (at least [`MIN_CNODE_RADIX`]).
    pub cnode_radix: u8,
    /// Stack size in bytes (a multiple of 4 KiB, not zero).
    pub stack_bytes: u64,
    /// Untyped memory for the page tables of the builder's own scratch mapping (through
    /// which it fills the new process's frames); `None`: the process's own memory. A
    /// supervisor that rebuilds processes passes its own memory, so that the tables are
    /// made once and never charged to, or destroyed with, a process.
    pub scratch: Option<Cap<Untyped>>,
    /// Windows of the new address space the caller maps itself after the build (a heap,
    /// mappings it grants): no segment of the image may touch them. The stack, its guard
    /// page, the IPC buffer and the start-up record page at
    /// [`STARTUP_VADDR`] are always reserved.
    pub reserved: &'static [Window],
    /// Most bytes of memory the image's segments may take (whole pages).
    pub max_image_bytes: u64,
    /// The console capability (in the builder's CSpace) a copy of which, with the write
    /// right only, the process gets in [`CONSOLE_SLOT`]; `None`: none (it cannot
    /// print). By default the builder's own ([`crate::sys::console`]); if the builder
    /// holds none, the process gets none either.
    pub console: Option<Cap<Console>>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            cnode_radix: 8,
            stack_bytes: STACK_BYTES,
            scratch: None,
            reserved: &[],
            max_image_bytes: MAX_IMAGE_BYTES,
            console: Some(crate::sys::console()),
        }
    }
}

impl ProcessOptions {
    /// Checks `image` against the loading rules for a process built with these options.
    pub fn plan(&self, image: &[u8]) -> Result<LoadPlan, LoadError> {
        // The stack and IPC buffer sit under `ROOT_STACK_TOP`: a stack that does not fit
        // leaves no room for the image.
        if self.stack_bytes > layout::ROOT_STACK_TOP / 2 {
            return Err(LoadError::TooLarge {
                bytes: self.stack_bytes,
                limit: layout::ROOT_STACK_TOP / 2,
            });
        }
        let ipc_buffer = ipc_buffer_vaddr(self.stack_bytes);
        let mut reserved = Vec::with_capacity(self.reserved.len() + 3);
        reserved.extend([
            Window::new("IPC buffer", ipc_buffer, ipc_buffer + PAGE),
            // From the guard page under the stack to its top.
            Window::new("stack", ipc_buffer + PAGE, layout::ROOT_STACK_TOP),
            Window::new(
                "start-up record",
                STARTUP_VADDR,
                STARTUP_VADDR + STARTUP_MAX_BYTES as u64,
            ),
        ]);
        reserved.extend_from_slice(self.reserved);
        loader::plan(
            image,
            &Rules {
                user_start: layout::USER_START,
                user_end: layout::USER_END,
                reserved: &reserved,
                max_bytes: self.max_image_bytes,
            },
        )
    }
}

/// A process under construction or running.
#[derive(Debug)]
pub struct Process {
    tcb: Cap<Tcb>,
    cnode: Cap<CNode>,
    space: Cap<AddressSpace>,
    entry: u64,
    untyped: Cap<Untyped>,
    slots: Vec<u64>,
    ipc_buffer: Option<(Cap<Frame4K>, u64)>,
}

/// Copies `bytes` into `frame` at `offset` through a scratch mapping in this task.
/// `offset + bytes.len()` must be within the page.
pub fn write_frame(
    frame: Cap<Frame4K>,
    offset: usize,
    bytes: &[u8],
    untyped: Cap<Untyped>,
) -> Result<(), Error> {
    write_frame_with(frame, offset, bytes, || untyped.retype_one(0))
}

/// As [`write_frame`], with the page tables of the scratch mapping (if it needs any)
/// made by `new_table`.
fn write_frame_with(
    frame: Cap<Frame4K>,
    offset: usize,
    bytes: &[u8],
    mut new_table: impl FnMut() -> Result<Cap<PageTable>, Error>,
) -> Result<(), Error> {
    let end = offset
        .checked_add(bytes.len())
        .ok_or(Error::InvalidArgument)?;
    if end > PAGE as usize {
        return Err(Error::InvalidArgument);
    }
    let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
    let slot = cap::allocate_slot()?;
    let scratch = match frame.copy(slot, rights::ALL) {
        Ok(scratch) => scratch,
        Err(error) => {
            let _ = cap::free_slot(slot);
            return Err(error);
        }
    };
    let result = loop {
        match scratch.map(own, SCRATCH_VADDR, rights::READ | rights::WRITE, 0) {
            Err(Error::MissingPageTable) => {
                if let Err(error) = new_table().and_then(|table| table.map(own, SCRATCH_VADDR)) {
                    break Err(error);
                }
            }
            other => break other,
        }
    }
    .map(|()| {
        // SAFETY: the frame was just mapped writable at SCRATCH_VADDR in this address
        // space and nothing else uses that address while the builder runs (one build at
        // a time per task); `offset + bytes.len()` is within the page (checked above).
        let page =
            unsafe { core::slice::from_raw_parts_mut(SCRATCH_VADDR as *mut u8, PAGE as usize) };
        page[offset..end].copy_from_slice(bytes);
    });
    let _ = scratch.unmap();
    let deleted = scratch.delete();
    if deleted.is_ok() {
        let _ = cap::free_slot(slot);
    }
    result.and(deleted)
}

impl Process {
    /// Loads `image` into a new address space made from `untyped`, with a CSpace of
    /// `2^cnode_radix` slots and a thread ready to start. Uses this task's CSpace slots
    /// from the task-wide allocator.
    pub fn create(
        untyped: Cap<Untyped>,
        image: &[u8],
        cnode_radix: u8,
    ) -> Result<Self, ProcessError> {
        Self::build(
            untyped,
            image,
            &ProcessOptions {
                cnode_radix,
                ..ProcessOptions::default()
            },
        )
    }

    /// Retypes one object from the process's untyped memory, recording the slot.
    pub fn retype<K: ObjectKind>(&mut self, size_bits: u8) -> Result<Cap<K>, Error> {
        retype_recorded(self.untyped, &mut self.slots, size_bits)
    }

    /// As [`Process::create`], with options. The image is checked first
    /// ([`ProcessOptions::plan`]); nothing is made from a bad one. If the build fails
    /// after that, every capability it made is deleted and every slot it took returned:
    /// `untyped` has no children left that the build made, and the slot allocator is as
    /// before.
    pub fn build(
        untyped: Cap<Untyped>,
        image: &[u8],
        options: &ProcessOptions,
    ) -> Result<Self, ProcessError> {
        if options.cnode_radix < MIN_CNODE_RADIX
            || options.stack_bytes == 0
            || !options.stack_bytes.is_multiple_of(PAGE)
            || options.stack_bytes > layout::ROOT_STACK_TOP / 2
        {
            return Err(ProcessError::Kernel(Error::InvalidArgument));
        }
        let plan = options.plan(image).map_err(ProcessError::BadImage)?;
        let mut recorded = Vec::new();
        let made = (|| {
            let cnode: Cap<CNode> = retype_recorded(untyped, &mut recorded, options.cnode_radix)?;
            let space: Cap<AddressSpace> = retype_recorded(untyped, &mut recorded, 0)?;
            let tcb: Cap<Tcb> = retype_recorded(untyped, &mut recorded, 0)?;
            Ok::<_, Error>((cnode, space, tcb))
        })();
        let (cnode, space, tcb) = match made {
            Ok(objects) => objects,
            Err(error) => {
                abandon(&recorded);
                return Err(error.into());
            }
        };
        let mut process = Self {
            tcb,
            cnode,
            space,
            entry: plan.entry(),
            untyped,
            slots: recorded,
            ipc_buffer: None,
        };
        match process.load(image, &plan, options) {
            Ok(()) => Ok(process),
            Err(error) => {
                abandon(&process.slots);
                Err(error.into())
            }
        }
    }

    /// Fills `frame` at `offset` with `bytes`. The scratch mapping's page tables come
    /// from `scratch`, or else from the process's memory, recorded with its slots.
    fn fill(
        &mut self,
        frame: Cap<Frame4K>,
        offset: usize,
        bytes: &[u8],
        scratch: Option<Cap<Untyped>>,
    ) -> Result<(), Error> {
        match scratch {
            Some(untyped) => write_frame(frame, offset, bytes, untyped),
            None => write_frame_with(frame, offset, bytes, || self.retype(0)),
        }
    }

    fn load(
        &mut self,
        image: &[u8],
        plan: &LoadPlan,
        options: &ProcessOptions,
    ) -> Result<(), Error> {
        for segment in plan.segments() {
            let mut access = rights::READ;
            let mut attributes = 0;
            if segment.write {
                access |= rights::WRITE;
            }
            if segment.execute {
                attributes |= map_attributes::EXECUTE;
            }
            let (mut page, end) = segment.page_span();
            while page < end {
                let frame: Cap<Frame4K> = self.retype(0)?;
                if let Some((offset, range)) = segment.file_bytes_in_page(page) {
                    // The plan keeps every range inside the image.
                    let bytes = image.get(range).ok_or(Error::InvalidArgument)?;
                    self.fill(frame, offset, bytes, options.scratch)?;
                }
                self.map(frame, page, access, attributes)?;
                page += PAGE;
            }
        }
        self.map_new(
            layout::ROOT_STACK_TOP - options.stack_bytes,
            options.stack_bytes,
            rights::READ | rights::WRITE,
        )?;
        let ipc_buffer_vaddr = ipc_buffer_vaddr(options.stack_bytes);
        let ipc_buffer: Cap<Frame4K> = self.retype(0)?;
        self.map(
            ipc_buffer,
            ipc_buffer_vaddr,
            rights::READ | rights::WRITE,
            0,
        )?;

        let cnode = self.cnode;
        cnode.copy_to(cnode, slots::ROOT_CNODE, rights::ALL)?;
        self.tcb.copy_to(cnode, slots::ROOT_TCB, rights::ALL)?;
        self.space
            .copy_to(cnode, slots::ROOT_ADDRESS_SPACE, rights::ALL)?;
        if let Some(console) = options.console {
            match console.copy_to(cnode, CONSOLE_SLOT, rights::WRITE) {
                // The builder has no console to hand on: neither has the process.
                Ok(()) | Err(Error::InvalidCapability | Error::WrongObjectType) => {}
                Err(error) => return Err(error),
            }
        }
        self.ipc_buffer = Some((ipc_buffer, ipc_buffer_vaddr));
        self.tcb.configure(cnode, self.space, self.ipc_buffer, 0)?;
        Ok(())
    }

    /// Maps `frame` (a capability in this task's CSpace) at `vaddr` in the process,
    /// creating page tables from the process's untyped memory as needed.
    pub fn map<F: Frame>(
        &mut self,
        frame: Cap<F>,
        vaddr: u64,
        access: u64,
        attributes: u64,
    ) -> Result<(), Error> {
        loop {
            match frame.map(self.space, vaddr, access, attributes) {
                Err(Error::MissingPageTable) => {
                    let table: Cap<PageTable> = self.retype(0)?;
                    table.map(self.space, vaddr)?;
                }
                other => return other,
            }
        }
    }

    /// Maps `bytes` (a multiple of 4 KiB) of fresh zeroed frames at `vaddr`.
    pub fn map_new(&mut self, vaddr: u64, bytes: u64, access: u64) -> Result<(), Error> {
        let mut page = vaddr;
        let end = vaddr.checked_add(bytes).ok_or(Error::InvalidArgument)?;
        while page < end {
            let frame: Cap<Frame4K> = self.retype(0)?;
            self.map(frame, page, access, 0)?;
            page += PAGE;
        }
        Ok(())
    }

    /// The process's thread.
    pub fn tcb(&self) -> Cap<Tcb> {
        self.tcb
    }

    /// The process's CSpace root, for handing it capabilities with `copy_to`.
    pub fn cnode(&self) -> Cap<CNode> {
        self.cnode
    }

    /// The process's address space, for sharing frames with it.
    pub fn address_space(&self) -> Cap<AddressSpace> {
        self.space
    }

    /// The untyped memory the process is made of.
    pub fn untyped(&self) -> Cap<Untyped> {
        self.untyped
    }

    /// The slots of this task's CSpace that the build used.
    pub fn slots(&self) -> &[u64] {
        &self.slots
    }

    /// Returns the recorded slots to the task-wide allocator. Call it after revoking
    /// the process's untyped memory, which empties them.
    pub fn release_slots(self) {
        release(&self.slots);
    }

    /// Sets the capability pointer (in the process's CSpace) of its fault endpoint,
    /// keeping its IPC buffer.
    pub fn set_fault_endpoint(&self, pointer: u64) -> Result<(), Error> {
        self.tcb
            .configure(self.cnode, self.space, self.ipc_buffer, pointer)
    }

    /// Starts the process at its entry point with `x0 = argument`, at `priority`.
    pub fn start(&self, argument: u64, priority: u8) -> Result<(), Error> {
        self.start_with(argument, 0, priority)
    }

    /// Starts the process with `x0` and `x1` as given, at `priority`.
    pub fn start_with(&self, x0: u64, x1: u64, priority: u8) -> Result<(), Error> {
        let mut registers = UserRegisters {
            sp: layout::ROOT_STACK_TOP,
            pc: self.entry,
            ..Default::default()
        };
        registers.x[0] = x0;
        registers.x[1] = x1;
        self.tcb.write_registers(&registers)?;
        self.tcb.set_priority(priority)?;
        self.tcb.resume()
    }
}

fn retype_recorded<K: ObjectKind>(
    untyped: Cap<Untyped>,
    recorded: &mut Vec<u64>,
    size_bits: u8,
) -> Result<Cap<K>, Error> {
    let slot = cap::allocate_slot()?;
    match untyped.retype::<K>(size_bits, slot, 1) {
        Ok(_) => {
            recorded.push(slot);
            Ok(Cap::from_slot(slot))
        }
        Err(error) => {
            let _ = cap::free_slot(slot);
            Err(error)
        }
    }
}

/// Undoes a build that failed: revokes and deletes every capability it made (last made
/// first, so that copies it put into the new CSpace or thread go too) and returns the slots.
fn abandon(slots: &[u64]) {
    for &slot in slots.iter().rev() {
        let _ = cap::call(kaal_abi::Syscall::CapRevoke, [slot, 0, 0, 0, 0, 0]);
        let _ = cap::call(kaal_abi::Syscall::CapDelete, [slot, 0, 0, 0, 0, 0]);
        let _ = cap::free_slot(slot);
    }
}

fn release(slots: &[u64]) {
    for &slot in slots {
        // A slot still holding a capability (its untyped was not revoked) is deleted
        // first so that the allocator never hands out an occupied slot.
        let _ = cap::call(kaal_abi::Syscall::CapDelete, [slot, 0, 0, 0, 0, 0]);
        let _ = cap::free_slot(slot);
    }
}
