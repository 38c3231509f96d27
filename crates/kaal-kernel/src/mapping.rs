//! Address spaces built by user space: page tables and frames mapped through their
//! capabilities.
//!
//! ## Mapping records
//!
//! A mapped frame or page-table capability records where it is mapped
//! ([`MappingRecord`]): the ASID of the address space, the virtual address and, for a
//! table, its level, in `extra`; for a frame also the *tag* of the mapping, in `badge`.
//! Unmapping (`frame_unmap`, or deleting the capability) looks the ASID up and removes
//! the entry only if it is still this capability's. A record can outlive what it
//! describes: the address space can be destroyed (and its ASID given to a new one), and
//! the page table holding a frame's entry can be unlinked (its last capability deleted)
//! and another table linked in its place. In either case the same frame may be mapped at
//! the same address again, through another capability, so "the entry at the recorded
//! address maps this frame" does not prove that this capability installed it.
//!
//! ## Why tags beside the entries
//!
//! Every mapping gets a tag from a 64-bit counter that is never reused. The kernel writes
//! it beside the leaf entry, in the second page of the level-2 or level-3 `PageTable`
//! object that holds the entry (so a `PageTable` is 8 KiB: the table and 512 tag words;
//! tables the kernel builds at boot have the same layout), and in the frame capability.
//! An unmap removes the entry only if the walk from the recorded address space reaches a
//! valid entry for this frame whose tag is the capability's. A stale record never
//! matches: a table linked in place of an unlinked one was zeroed when it was retyped, a
//! new address space starts without tables, and no tag is handed out twice.
//!
//! The alternatives weighed: identifying address spaces by an id unique over the
//! system's life closes the ASID-reuse case but not a replaced table; a per-table
//! identity in the record needs the table's identity found from its physical address,
//! which again means storage per table; recording the owning capability's slot beside
//! each entry works too but must follow the capability on every move. A tag costs a
//! second page per page table, one 64-bit counter and two stores per map and unmap, and
//! nothing when capabilities move (the tag travels in the capability). Copies of a frame
//! capability start unmapped, without a tag.
//!
//! Page-table records need no tag: a table capability cannot be copied and a table is
//! linked once in its life (its capability says mapped until it is deleted), so the
//! table's own physical address, checked in the parent entry, identifies the link.

use crate::arch::mmu::{flush_asid, flush_page};
use crate::arch::page_table::{
    BLOCK_2M, MapError, MemoryKind, PAGE_SIZE, PageAttrs, TranslationTable,
};
use crate::capability::{Capability, ObjectType, Rights};
use crate::kernel::{Kernel, SyscallResult};
use crate::memory::LinearTables;
use crate::objects::{abi_error, resolve};
use crate::vspace::{MAPPED, MappingRecord};
use kaal_abi::{Error, layout, map_attributes, rights};

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
    /// An address space to map into: that changes it, so it takes the write right.
    fn address_space(&self, cspace: &Capability, pointer: u64) -> Result<(u64, u16), Error> {
        let cap = self.lookup_with(cspace, pointer, ObjectType::AddressSpace, Rights::WRITE)?;
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
        self.objects.slot_cap_mut(slot).extra = MappingRecord {
            asid,
            vaddr: base,
            level,
            tag: 0,
        }
        .extra();
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
        let frame = self.objects.cap(slot).map_err(abi_error)?;
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
        // The first page stays unmapped, so that a null pointer always faults.
        if vaddr < layout::USER_START
            || vaddr
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
        let tag = self.next_mapping_tag();
        TranslationTable::at(root)
            .map_tagged(&mut LinearTables, vaddr, frame.object, attrs, block, tag)
            .map_err(map_error)?;
        let record = MappingRecord {
            asid,
            vaddr,
            level: if block { 2 } else { 3 },
            tag,
        };
        let cap = self.objects.slot_cap_mut(slot);
        cap.extra = record.extra();
        cap.badge = tag;
        Ok((0, 0))
    }

    /// `frame_unmap`.
    pub(crate) fn frame_unmap(&mut self, cspace: &Capability, pointer: u64) -> SyscallResult {
        let slot = resolve(cspace, pointer)?;
        let frame = self.objects.cap(slot).map_err(abi_error)?;
        if !frame.object_type.is_frame() {
            return Err(Error::WrongObjectType);
        }
        if frame.extra & MAPPED == 0 {
            return Err(Error::NotMapped);
        }
        self.unmap_frame(&frame);
        let cap = self.objects.slot_cap_mut(slot);
        cap.extra = 0;
        cap.badge = 0;
        Ok((0, 0))
    }

    /// Removes the mapping a frame capability records, if it is still in place and still
    /// this capability's (its tag is beside the entry).
    pub(crate) fn unmap_frame(&mut self, frame: &Capability) {
        let Some(record) = MappingRecord::decode(frame.extra, frame.badge) else {
            return;
        };
        let root = self.asid_root(record.asid);
        if root != 0 {
            let block = frame.object_type == ObjectType::Frame2M;
            if TranslationTable::at(root).unmap_tagged(
                &mut LinearTables,
                record.vaddr,
                frame.object,
                block,
                record.tag,
            ) {
                flush_page(record.asid, record.vaddr);
            }
        }
    }

    /// Unlinks a page table whose last capability went, if it is still linked.
    pub(crate) fn unmap_page_table(&mut self, table: &Capability) {
        let Some(record) = MappingRecord::decode(table.extra, 0) else {
            return;
        };
        let root = self.asid_root(record.asid);
        if root != 0
            && TranslationTable::at(root).unlink_table(
                &mut LinearTables,
                record.vaddr,
                record.level,
                table.object,
            )
        {
            flush_asid(record.asid);
        }
    }
}
