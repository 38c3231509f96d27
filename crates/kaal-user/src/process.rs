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
//! its CNode in slot 1, its TCB in slot 3, its address space in slot 4; the builder's
//! caller hands it whatever else it needs in slots from [`FIRST_FREE_SLOT`] on. Its
//! stack is [`STACK_BYTES`] below `ROOT_STACK_TOP` and its IPC buffer a page further
//! down, past a guard page.

use crate::cap::{self, AddressSpace, CNode, Cap, Frame4K, Tcb, Untyped, map_with_tables};
use elf::ElfBytes;
use elf::abi::{PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use kaal_abi::{Error, UserRegisters, layout, map_attributes, rights, slots};

/// First slot of a new process's CSpace that the builder leaves free; its starter puts
/// the capabilities it hands over in `FIRST_FREE_SLOT..CHILD_OWN_SLOTS.start`.
pub const FIRST_FREE_SLOT: u64 = 5;
/// Slots the process's own runtime hands out (to retype objects, spawn threads).
pub const CHILD_OWN_SLOTS: core::ops::Range<u64> = 32..64;
/// Smallest CNode radix a process may be built with (it must hold `CHILD_OWN_SLOTS`).
pub const MIN_CNODE_RADIX: u8 = 6;
/// Stack size of a new process.
pub const STACK_BYTES: u64 = 64 * 1024;
/// Where the builder maps frames in its own address space to fill them.
const SCRATCH_VADDR: u64 = 0x10_0000_0000;
const PAGE: u64 = 4096;

/// Where a new process's IPC buffer is mapped.
pub const IPC_BUFFER_VADDR: u64 = layout::ROOT_STACK_TOP - STACK_BYTES - 2 * PAGE;

/// Why a process could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessError {
    /// The ELF image is malformed or not a static AArch64 executable.
    BadImage,
    /// A system call failed.
    Kernel(Error),
}

impl From<Error> for ProcessError {
    fn from(error: Error) -> Self {
        Self::Kernel(error)
    }
}

/// A process under construction or running.
#[derive(Clone, Copy, Debug)]
pub struct Process {
    tcb: Cap<Tcb>,
    cnode: Cap<CNode>,
    space: Cap<AddressSpace>,
    entry: u64,
}

/// Copies `bytes` into `frame` (a fresh 4 KiB frame) through the scratch mapping.
fn fill(
    frame: Cap<Frame4K>,
    offset: usize,
    bytes: &[u8],
    untyped: Cap<Untyped>,
) -> Result<(), Error> {
    let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
    let scratch = frame.copy(cap::allocate_slot()?, rights::ALL)?;
    map_with_tables(
        scratch,
        own,
        SCRATCH_VADDR,
        rights::READ | rights::WRITE,
        0,
        untyped,
    )?;
    // SAFETY: the frame was just mapped writable at SCRATCH_VADDR in this address space
    // and nothing else uses that address; `offset + bytes.len()` is within the page
    // (callers split at page boundaries).
    let page = unsafe { core::slice::from_raw_parts_mut(SCRATCH_VADDR as *mut u8, PAGE as usize) };
    page[offset..offset + bytes.len()].copy_from_slice(bytes);
    scratch.unmap()?;
    scratch.delete()
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
        if cnode_radix < MIN_CNODE_RADIX {
            return Err(ProcessError::Kernel(Error::InvalidArgument));
        }
        let file =
            ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| ProcessError::BadImage)?;
        let segments = file.segments().ok_or(ProcessError::BadImage)?;
        let cnode: Cap<CNode> = untyped.retype_one(cnode_radix)?;
        let space: Cap<AddressSpace> = untyped.retype_one(0)?;
        let tcb: Cap<Tcb> = untyped.retype_one(0)?;

        for segment in segments
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        {
            let start = segment.p_vaddr & !(PAGE - 1);
            let end = segment
                .p_vaddr
                .checked_add(segment.p_memsz)
                .ok_or(ProcessError::BadImage)?;
            let file_end = segment
                .p_offset
                .checked_add(segment.p_filesz)
                .ok_or(ProcessError::BadImage)?;
            let data = image
                .get(segment.p_offset as usize..file_end as usize)
                .ok_or(ProcessError::BadImage)?;
            let mut access = rights::READ;
            let mut attributes = 0;
            if segment.p_flags & PF_W != 0 {
                access |= rights::WRITE;
            }
            if segment.p_flags & PF_X != 0 {
                attributes |= map_attributes::EXECUTE;
            }
            let mut page = start;
            while page < end {
                let frame: Cap<Frame4K> = untyped.retype_one(0)?;
                // The part of the file that lands in this page.
                let from = page.max(segment.p_vaddr);
                let to = (page + PAGE).min(segment.p_vaddr + segment.p_filesz);
                if from < to {
                    let offset = (from - segment.p_vaddr) as usize;
                    fill(
                        frame,
                        (from - page) as usize,
                        &data[offset..offset + (to - from) as usize],
                        untyped,
                    )?;
                }
                map_with_tables(frame, space, page, access, attributes, untyped)?;
                page += PAGE;
            }
        }
        let mut page = layout::ROOT_STACK_TOP - STACK_BYTES;
        while page < layout::ROOT_STACK_TOP {
            let frame: Cap<Frame4K> = untyped.retype_one(0)?;
            map_with_tables(frame, space, page, rights::READ | rights::WRITE, 0, untyped)?;
            page += PAGE;
        }
        let ipc_buffer: Cap<Frame4K> = untyped.retype_one(0)?;
        map_with_tables(
            ipc_buffer,
            space,
            IPC_BUFFER_VADDR,
            rights::READ | rights::WRITE,
            0,
            untyped,
        )?;

        cnode.copy_to(cnode, slots::ROOT_CNODE, rights::ALL)?;
        tcb.copy_to(cnode, slots::ROOT_TCB, rights::ALL)?;
        space.copy_to(cnode, slots::ROOT_ADDRESS_SPACE, rights::ALL)?;
        tcb.configure(cnode, space, Some((ipc_buffer, IPC_BUFFER_VADDR)), 0)?;
        Ok(Self {
            tcb,
            cnode,
            space,
            entry: file.ehdr.e_entry,
        })
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

    /// Sets the capability pointer (in the process's CSpace) of its fault endpoint.
    pub fn set_fault_endpoint(&self, pointer: u64) -> Result<(), Error> {
        self.tcb.configure(self.cnode, self.space, None, pointer)
    }

    /// Starts the process at its entry point with `x0 = argument`, at `priority`.
    pub fn start(&self, argument: u64, priority: u8) -> Result<(), Error> {
        let mut registers = UserRegisters {
            sp: layout::ROOT_STACK_TOP,
            pc: self.entry,
            ..Default::default()
        };
        registers.x[0] = argument;
        self.tcb.write_registers(&registers)?;
        self.tcb.set_priority(priority)?;
        self.tcb.resume()
    }
}
