//! Address spaces built by user space: page tables and frames mapped through their
//! capabilities.
//!
//! A mapped frame or page-table capability records where it is mapped in its `extra`
//! word: [`MAPPED`] | level << 56 (tables) | ASID << 40 | virtual address. Unmapping looks
//! the ASID up and removes the entry only if it still maps this object, so a stale record
//! (its address space gone, its ASID reused) can never remove someone else's mapping.

use crate::arch::mmu::{flush_asid, flush_page};
use crate::arch::page_table::{
    BLOCK_2M, MapError, MemoryKind, PAGE_SIZE, PageAttrs, TranslationTable,
};
use crate::capability::{CSpace, Capability, ObjectType, Rights};
use crate::kernel::{ASIDS, Kernel, SyscallResult};
use crate::memory::LinearTables;
use crate::objects::{KernelSlots, abi_error, resolve};
use kaal_abi::{Error, layout, map_attributes, rights};

/// Set in `extra` of a mapped frame or page-table capability.
pub const MAPPED: u64 = 1 << 63;
const ADDRESS_BITS: u64 = (1 << 40) - 1;

fn record(asid: u16, vaddr: u64, level: u32) -> u64 {
    MAPPED | (u64::from(level) << 56) | (u64::from(asid) << 40) | (vaddr & ADDRESS_BITS)
}

fn decode(extra: u64) -> Option<(u16, u64, u32)> {
    (extra & MAPPED != 0).then_some({
        (
            ((extra >> 40) & 0xffff) as u16 & 0xff,
            extra & ADDRESS_BITS,
            ((extra >> 56) & 0x7f) as u32,
        )
    })
}

fn map_error(error: MapError) -> Error {
    match error {
        MapError::WriteAndExecute => Error::IllegalOperation,
        MapError::Misaligned { .. } => Error::Alignment,
        MapError::OutOfRange(_) => Error::InvalidArgument,
        MapError::AlreadyMapped(_) => Error::AlreadyMapped,
        MapError::OutOfMemory | MapError::MissingTable(_) => Error::MissingPageTable,
    }
}

impl Kernel {
    fn address_space(&self, cspace: &Capability, pointer: u64) -> Result<(u64, u16), Error> {
        let cap = self.lookup(cspace, pointer, ObjectType::AddressSpace)?;
        Ok((cap.object, cap.extra as u16))
    }

    /// `page_table_map`.
    pub(crate) fn page_table_map(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let [table_pointer, space_pointer, vaddr, ..] = args;
        let table = self.lookup(cspace, table_pointer, ObjectType::PageTable)?;
        let (root, asid) = self.address_space(cspace, space_pointer)?;
        if table.extra & MAPPED != 0 {
            return Err(Error::AlreadyMapped);
        }
        if vaddr >= layout::USER_END {
            return Err(Error::InvalidArgument);
        }
        let level = TranslationTable::at(root)
            .install_table(&mut LinearTables, vaddr, table.object)
            .map_err(map_error)?;
        let span_bits = if level == 2 { 30 } else { 21 };
        let base = vaddr & !((1u64 << span_bits) - 1);
        let slot = resolve(cspace, table_pointer)?;
        KernelSlots.slot_cap_mut(slot).extra = record(asid, base, level);
        Ok((u64::from(level), 0))
    }

    /// `frame_map`.
    pub(crate) fn frame_map(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let [
            frame_pointer,
            space_pointer,
            vaddr,
            requested,
            attributes,
            _,
        ] = args;
        let slot = resolve(cspace, frame_pointer)?;
        let frame = CSpace::new(&mut KernelSlots)
            .lookup(slot)
            .map_err(abi_error)?;
        let block = match frame.object_type {
            ObjectType::Frame4K => false,
            ObjectType::Frame2M => true,
            _ => return Err(Error::WrongObjectType),
        };
        let (root, asid) = self.address_space(cspace, space_pointer)?;
        if frame.extra & MAPPED != 0 {
            return Err(Error::AlreadyMapped);
        }
        if requested & !(rights::READ | rights::WRITE) != 0
            || attributes
                & !(map_attributes::EXECUTE | map_attributes::UNCACHED | map_attributes::DEVICE)
                != 0
        {
            return Err(Error::InvalidArgument);
        }
        let wanted = Rights::from_bits(requested).ok_or(Error::InvalidArgument)?;
        if !frame.rights.contains(wanted) || !frame.rights.contains(Rights::READ) {
            return Err(Error::MissingRights);
        }
        let size = if block { BLOCK_2M } else { PAGE_SIZE };
        if vaddr
            .checked_add(size)
            .is_none_or(|end| end > layout::USER_END)
        {
            return Err(Error::InvalidArgument);
        }
        let kind = if attributes & map_attributes::DEVICE != 0 {
            MemoryKind::Device
        } else if attributes & map_attributes::UNCACHED != 0 {
            MemoryKind::NormalUncached
        } else {
            MemoryKind::Normal
        };
        let attrs = PageAttrs {
            kind,
            write: wanted.contains(Rights::WRITE),
            execute: attributes & map_attributes::EXECUTE != 0,
            user: true,
        };
        TranslationTable::at(root)
            .map_existing(&mut LinearTables, vaddr, frame.object, attrs, block)
            .map_err(map_error)?;
        KernelSlots.slot_cap_mut(slot).extra = record(asid, vaddr, if block { 2 } else { 3 });
        Ok((0, 0))
    }

    /// `frame_unmap`.
    pub(crate) fn frame_unmap(&mut self, cspace: &Capability, pointer: u64) -> SyscallResult {
        let slot = resolve(cspace, pointer)?;
        let frame = CSpace::new(&mut KernelSlots)
            .lookup(slot)
            .map_err(abi_error)?;
        if !frame.object_type.is_frame() {
            return Err(Error::WrongObjectType);
        }
        if frame.extra & MAPPED == 0 {
            return Err(Error::NotMapped);
        }
        self.unmap_frame(&frame);
        KernelSlots.slot_cap_mut(slot).extra = 0;
        Ok((0, 0))
    }

    /// Removes the mapping a frame capability records, if it is still in place.
    pub(crate) fn unmap_frame(&mut self, frame: &Capability) {
        let Some((asid, vaddr, _)) = decode(frame.extra) else {
            return;
        };
        let root = self.asid_root(asid);
        if root != 0 {
            let block = frame.object_type == ObjectType::Frame2M;
            if TranslationTable::at(root).unmap(&mut LinearTables, vaddr, frame.object, block) {
                flush_page(asid, vaddr);
            }
        }
    }

    /// Unlinks a page table whose last capability went, if it is still linked.
    pub(crate) fn unmap_page_table(&mut self, table: &Capability) {
        let Some((asid, vaddr, level)) = decode(table.extra) else {
            return;
        };
        let root = self.asid_root(asid);
        if root != 0
            && TranslationTable::at(root).unlink_table(
                &mut LinearTables,
                vaddr,
                level,
                table.object,
            )
        {
            flush_asid(asid);
        }
    }

    fn asid_root(&self, asid: u16) -> u64 {
        if (asid as usize) < ASIDS {
            self.asid_table()[asid as usize]
        } else {
            0
        }
    }
}
