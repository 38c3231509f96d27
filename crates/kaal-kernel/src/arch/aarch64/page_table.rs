//! AArch64 VMSAv8-64 translation tables: 4 KiB granule, 39-bit virtual addresses, three
//! levels (L1, L2, L3). Pure logic over a [`TableMemory`], so it is tested on the host.
//!
//! Every table below the root (levels 2 and 3) has a second page after it, [`TAGS_OFFSET`]
//! bytes on: 512 words the MMU never reads, one per entry, where the kernel writes the
//! tag of the mapping that installed a leaf entry ([`TranslationTable::map_tagged`]) and
//! which [`TranslationTable::unmap_tagged`] checks before it removes one.

use thiserror::Error;

/// Size of a page and of a translation table.
pub const PAGE_SIZE: u64 = 4096;
/// Size of an L2 block.
pub const BLOCK_2M: u64 = 2 * 1024 * 1024;
/// Number of virtual-address bits translated (T0SZ = T1SZ = 64 - 39).
pub const VA_BITS: u32 = 39;
/// Entries in one table.
pub const ENTRIES: usize = 512;
/// Offset from a table to its entry tags (the next page).
pub const TAGS_OFFSET: u64 = PAGE_SIZE;
/// Bytes a table below the root takes with its tags.
pub const TABLE_WITH_TAGS_BYTES: u64 = PAGE_SIZE + TAGS_OFFSET;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_SHIFT: u64 = 2;
const AP_EL0: u64 = 1 << 6;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const NOT_GLOBAL: u64 = 1 << 11;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;

/// `MAIR_EL1` index of Device-nGnRE memory.
pub const MAIR_INDEX_DEVICE: u64 = 0;
/// `MAIR_EL1` index of Normal write-back cacheable memory.
pub const MAIR_INDEX_NORMAL: u64 = 1;
/// `MAIR_EL1` index of Normal non-cacheable memory.
pub const MAIR_INDEX_NORMAL_UNCACHED: u64 = 2;
/// The `MAIR_EL1` value matching the indices above.
pub const MAIR_VALUE: u64 = 0x04 | (0xff << 8) | (0x44 << 16);

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Normal write-back cacheable memory (RAM).
    Normal,
    /// Normal non-cacheable memory.
    NormalUncached,
    /// Device-nGnRE memory (MMIO registers).
    Device,
}

/// Permissions and attributes of one mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageAttrs {
    /// Memory type.
    pub kind: MemoryKind,
    /// Writable.
    pub write: bool,
    /// Executable (by the privilege level that owns the mapping).
    pub execute: bool,
    /// Accessible from EL0; user mappings are also never executable at EL1 and ASID-tagged.
    pub user: bool,
}

impl PageAttrs {
    /// Kernel read-write data.
    pub const KERNEL_DATA: Self = Self {
        kind: MemoryKind::Normal,
        write: true,
        execute: false,
        user: false,
    };
    /// Kernel read-only data.
    pub const KERNEL_RODATA: Self = Self {
        kind: MemoryKind::Normal,
        write: false,
        execute: false,
        user: false,
    };
    /// Kernel code.
    pub const KERNEL_TEXT: Self = Self {
        kind: MemoryKind::Normal,
        write: false,
        execute: true,
        user: false,
    };
    /// Kernel device registers.
    pub const KERNEL_DEVICE: Self = Self {
        kind: MemoryKind::Device,
        write: true,
        execute: false,
        user: false,
    };

    /// User mapping with the given rights on normal memory.
    pub const fn user(write: bool, execute: bool) -> Self {
        Self {
            kind: MemoryKind::Normal,
            write,
            execute,
            user: true,
        }
    }

    /// Encodes the attributes into the bits of a block or page descriptor.
    pub fn descriptor_bits(self) -> Result<u64, MapError> {
        if self.write && self.execute {
            return Err(MapError::WriteAndExecute);
        }
        let attr_index = match self.kind {
            MemoryKind::Normal => MAIR_INDEX_NORMAL,
            MemoryKind::NormalUncached => MAIR_INDEX_NORMAL_UNCACHED,
            MemoryKind::Device => MAIR_INDEX_DEVICE,
        };
        let mut bits = AF | SH_INNER | (attr_index << ATTR_SHIFT);
        if !self.write {
            bits |= AP_READ_ONLY;
        }
        if self.user {
            bits |= AP_EL0 | NOT_GLOBAL | PXN;
            if !self.execute {
                bits |= UXN;
            }
        } else {
            bits |= UXN;
            if !self.execute {
                bits |= PXN;
            }
        }
        Ok(bits)
    }

    /// Decodes attributes from a block or page descriptor.
    pub fn from_descriptor(descriptor: u64) -> Self {
        let user = descriptor & AP_EL0 != 0;
        let kind = match (descriptor >> ATTR_SHIFT) & 0b111 {
            MAIR_INDEX_DEVICE => MemoryKind::Device,
            MAIR_INDEX_NORMAL_UNCACHED => MemoryKind::NormalUncached,
            _ => MemoryKind::Normal,
        };
        let execute = if user {
            descriptor & UXN == 0
        } else {
            descriptor & PXN == 0
        };
        Self {
            kind,
            write: descriptor & AP_READ_ONLY == 0,
            execute,
            user,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MapError {
    /// W^X: a mapping may not be both writable and executable.
    #[error("mapping would be writable and executable")]
    WriteAndExecute,
    /// The address is not aligned to the mapping size.
    #[error("address {address:#x} is not aligned to {alignment:#x}")]
    Misaligned {
        /// The offending address.
        address: u64,
        /// The required alignment.
        alignment: u64,
    },
    /// The virtual address is outside the 39-bit range of this table.
    #[error("virtual address {0:#x} is outside the translated range")]
    OutOfRange(u64),
    /// Something is already mapped there.
    #[error("virtual address {0:#x} is already mapped")]
    AlreadyMapped(u64),
    /// No memory for a translation table.
    #[error("out of memory for translation tables")]
    OutOfMemory,
    /// A translation table the mapping needs is not there (user-managed tables).
    #[error("no translation table at level {0} for this address")]
    MissingTable(u32),
}

/// Access to physical memory holding translation tables.
pub trait TableMemory {
    /// Allocates a zeroed table with its tags ([`TABLE_WITH_TAGS_BYTES`], the table
    /// first) and returns its physical address.
    fn allocate_table(&mut self) -> Option<u64>;
    /// The table stored in the frame at `physical`.
    fn table(&mut self, physical: u64) -> &mut [u64; ENTRIES];
    /// The entry tags of the table at `physical` (a table below the root, which has
    /// them: see the module documentation).
    fn tags(&mut self, physical: u64) -> &mut [u64; ENTRIES];
}

/// A three-level translation table tree rooted at an L1 table.
#[derive(Debug)]
pub struct TranslationTable {
    root: u64,
}

fn index(virtual_address: u64, level: u32) -> usize {
    let shift = 39 - 9 * level;
    ((virtual_address >> shift) & 0x1ff) as usize
}

impl TranslationTable {
    /// Allocates an empty root table.
    pub fn new(memory: &mut impl TableMemory) -> Result<Self, MapError> {
        let root = memory.allocate_table().ok_or(MapError::OutOfMemory)?;
        Ok(Self { root })
    }

    /// The tree whose root table is at `root` (which must be a translation table).
    pub const fn at(root: u64) -> Self {
        Self { root }
    }

    /// Physical address of the root table (for `TTBRn_EL1`).
    pub fn root(&self) -> u64 {
        self.root
    }

    fn check(virtual_address: u64, physical: u64, alignment: u64) -> Result<u64, MapError> {
        // Addresses in either half: only the low VA_BITS bits index the tables.
        let offset = virtual_address & ((1u64 << VA_BITS) - 1);
        let high = virtual_address >> VA_BITS;
        if high != 0 && high != (u64::MAX >> VA_BITS) {
            return Err(MapError::OutOfRange(virtual_address));
        }
        for address in [virtual_address, physical] {
            if address % alignment != 0 {
                return Err(MapError::Misaligned { address, alignment });
            }
        }
        Ok(offset)
    }

    /// Walks to the table at `level` (2 or 3) for `va`, creating tables on the way.
    fn walk_create(
        &self,
        memory: &mut impl TableMemory,
        va: u64,
        level: u32,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        for current in 1..level {
            let slot = index(va, current);
            let entry = memory.table(table)[slot];
            table = if entry & VALID == 0 {
                let next = memory.allocate_table().ok_or(MapError::OutOfMemory)?;
                memory.table(table)[slot] = next | VALID | TABLE_OR_PAGE;
                next
            } else if entry & TABLE_OR_PAGE == 0 {
                return Err(MapError::AlreadyMapped(va));
            } else {
                entry & ADDRESS_MASK
            };
        }
        Ok(table)
    }

    /// Installs one leaf entry: a 4 KiB page (`block` false, at level 3) or a 2 MiB
    /// block (level 2), creating missing tables from `memory` if `create`, else failing
    /// with [`MapError::MissingTable`].
    fn map_leaf(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        attrs: PageAttrs,
        block: bool,
        create: bool,
    ) -> Result<(), MapError> {
        let bits = attrs.descriptor_bits()?;
        let (size, level, kind) = if block {
            (BLOCK_2M, 2, 0)
        } else {
            (PAGE_SIZE, 3, TABLE_OR_PAGE)
        };
        let va = Self::check(virtual_address, physical, size)?;
        let table = if create {
            self.walk_create(memory, va, level)?
        } else {
            self.walk_existing(memory, va, level)?
        };
        let slot = &mut memory.table(table)[index(va, level)];
        if *slot & VALID != 0 {
            return Err(MapError::AlreadyMapped(virtual_address));
        }
        *slot = physical | bits | VALID | kind;
        Ok(())
    }

    /// Maps one 4 KiB page, creating tables as needed.
    pub fn map_page(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        attrs: PageAttrs,
    ) -> Result<(), MapError> {
        self.map_leaf(memory, virtual_address, physical, attrs, false, true)
    }

    /// Maps one 2 MiB block, creating tables as needed.
    pub fn map_block(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        attrs: PageAttrs,
    ) -> Result<(), MapError> {
        self.map_leaf(memory, virtual_address, physical, attrs, true, true)
    }

    /// Maps `[physical, physical + size)` at `virtual_address`, with 2 MiB blocks where
    /// both addresses allow and 4 KiB pages elsewhere. Addresses must be page aligned.
    pub fn map_range(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        size_bytes: u64,
        attrs: PageAttrs,
    ) -> Result<(), MapError> {
        let mut done = 0;
        while done < size_bytes {
            let (va, pa, left) = (virtual_address + done, physical + done, size_bytes - done);
            if va % BLOCK_2M == 0 && pa % BLOCK_2M == 0 && left >= BLOCK_2M {
                self.map_block(memory, va, pa, attrs)?;
                done += BLOCK_2M;
            } else {
                // Pages up to the next 2 MiB boundary of `va` (where a block may fit
                // again) or the end.
                let pages = ((BLOCK_2M - va % BLOCK_2M).min(left) / PAGE_SIZE).max(1);
                self.map_pages(memory, va, pages, attrs, |page| pa + (page - va))?;
                done += pages * PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Maps `count` 4 KiB pages from `virtual_address` on, the page at `va` to the frame
    /// `frame(va)` (called in order, once per page), creating tables as needed: as
    /// [`TranslationTable::map_page`] page after page, with one table walk per level-3
    /// table instead of one per page. On an error the pages before the failing one stay
    /// mapped.
    pub fn map_pages(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        count: u64,
        attrs: PageAttrs,
        mut frame: impl FnMut(u64) -> u64,
    ) -> Result<(), MapError> {
        let bits = attrs.descriptor_bits()? | VALID | TABLE_OR_PAGE;
        let mut va = virtual_address;
        let mut left = count;
        while left > 0 {
            let offset = Self::check(va, 0, PAGE_SIZE)?;
            let table = self.walk_create(memory, offset, 3)?;
            for entry in &mut memory.table(table)[index(offset, 3)..] {
                if *entry & VALID != 0 {
                    return Err(MapError::AlreadyMapped(va));
                }
                let physical = frame(va);
                if !physical.is_multiple_of(PAGE_SIZE) {
                    return Err(MapError::Misaligned {
                        address: physical,
                        alignment: PAGE_SIZE,
                    });
                }
                *entry = physical | bits;
                left -= 1;
                if left == 0 {
                    return Ok(());
                }
                va = va.checked_add(PAGE_SIZE).ok_or(MapError::OutOfRange(va))?;
            }
        }
        Ok(())
    }

    /// Walks existing tables to the table at `level` for `va` (no allocation).
    fn walk_existing(
        &self,
        memory: &mut impl TableMemory,
        va: u64,
        level: u32,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        for current in 1..level {
            let entry = memory.table(table)[index(va, current)];
            if entry & VALID == 0 {
                return Err(MapError::MissingTable(current + 1));
            }
            if entry & TABLE_OR_PAGE == 0 {
                return Err(MapError::AlreadyMapped(va));
            }
            table = entry & ADDRESS_MASK;
        }
        Ok(table)
    }

    /// Maps a 4 KiB page (`block` false) or a 2 MiB block through tables that must
    /// already exist: for address spaces whose tables user space supplies.
    pub fn map_existing(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        attrs: PageAttrs,
        block: bool,
    ) -> Result<(), MapError> {
        self.map_leaf(memory, virtual_address, physical, attrs, block, false)
    }

    /// Links the (zeroed) table at `table` in as the first missing level on the way to
    /// `virtual_address`, and returns that level (2 or 3).
    pub fn install_table(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        table: u64,
    ) -> Result<u32, MapError> {
        let va = Self::check(virtual_address & !(PAGE_SIZE - 1), table, PAGE_SIZE)?;
        let mut parent = self.root;
        for level in 1..3 {
            let slot = index(va, level);
            let entry = memory.table(parent)[slot];
            if entry & VALID == 0 {
                memory.table(parent)[slot] = table | VALID | TABLE_OR_PAGE;
                return Ok(level + 1);
            }
            if entry & TABLE_OR_PAGE == 0 {
                return Err(MapError::AlreadyMapped(virtual_address));
            }
            parent = entry & ADDRESS_MASK;
        }
        Err(MapError::AlreadyMapped(virtual_address))
    }

    /// Removes the page (`block` false) or block at `virtual_address` if it maps
    /// `physical`; returns whether it did. It does not look at the entry's tag: mappings
    /// user capabilities made are removed with [`TranslationTable::unmap_tagged`].
    pub fn unmap(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        block: bool,
    ) -> bool {
        let level = if block { 2 } else { 3 };
        let Ok(va) = Self::check(virtual_address, physical, PAGE_SIZE) else {
            return false;
        };
        let Ok(table) = self.walk_existing(memory, va, level) else {
            return false;
        };
        let slot = &mut memory.table(table)[index(va, level)];
        let kind = if block { 0 } else { TABLE_OR_PAGE };
        if *slot & VALID != 0 && *slot & TABLE_OR_PAGE == kind && *slot & ADDRESS_MASK == physical {
            *slot = 0;
            return true;
        }
        false
    }

    /// Maps a 4 KiB page (`block` false) or a 2 MiB block through tables that must
    /// already exist, like [`TranslationTable::map_existing`], and writes `tag` beside the
    /// new entry (in the tags of the level-2 or level-3 table that holds it).
    pub fn map_tagged(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        attrs: PageAttrs,
        block: bool,
        tag: u64,
    ) -> Result<(), MapError> {
        self.map_leaf(memory, virtual_address, physical, attrs, block, false)?;
        let (table, slot) = self
            .leaf(memory, virtual_address, block)
            .ok_or(MapError::MissingTable(if block { 2 } else { 3 }))?;
        memory.tags(table)[slot] = tag;
        Ok(())
    }

    /// Removes the page (`block` false) or block at `virtual_address` if it maps
    /// `physical` and its tag is `tag`, that is if the mapping tagged `tag` installed
    /// it; returns whether it did. A stale record (its table unlinked and another one
    /// linked in its place, its address space gone and the ASID reused) never matches:
    /// tags are never reused, and a new table's tags are zero.
    pub fn unmap_tagged(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        physical: u64,
        block: bool,
        tag: u64,
    ) -> bool {
        let Some((table, slot)) = self.leaf(memory, virtual_address, block) else {
            return false;
        };
        let entry = memory.table(table)[slot];
        let kind = if block { 0 } else { TABLE_OR_PAGE };
        if entry & VALID == 0
            || entry & TABLE_OR_PAGE != kind
            || entry & ADDRESS_MASK != physical
            || memory.tags(table)[slot] != tag
        {
            return false;
        }
        memory.table(table)[slot] = 0;
        memory.tags(table)[slot] = 0;
        true
    }

    /// The table (level 3 for a page, 2 for a block) and index of the leaf entry for
    /// `virtual_address`, if the tables on the way exist.
    fn leaf(
        &self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        block: bool,
    ) -> Option<(u64, usize)> {
        let level = if block { 2 } else { 3 };
        let va = Self::check(virtual_address, 0, PAGE_SIZE).ok()?;
        let table = self.walk_existing(memory, va, level).ok()?;
        Some((table, index(va, level)))
    }

    /// Unlinks the table at `table` that was installed at `level` for `virtual_address`;
    /// returns whether it was there.
    pub fn unlink_table(
        &mut self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
        level: u32,
        table: u64,
    ) -> bool {
        if !(2..=3).contains(&level) {
            return false;
        }
        let Ok(va) = Self::check(virtual_address & !(PAGE_SIZE - 1), table, PAGE_SIZE) else {
            return false;
        };
        let Ok(parent) = self.walk_existing(memory, va, level - 1) else {
            return false;
        };
        let slot = &mut memory.table(parent)[index(va, level - 1)];
        if *slot & VALID != 0 && *slot & TABLE_OR_PAGE != 0 && *slot & ADDRESS_MASK == table {
            *slot = 0;
            return true;
        }
        false
    }

    /// Translates `virtual_address`: the physical address and the mapping's attributes.
    pub fn translate(
        &self,
        memory: &mut impl TableMemory,
        virtual_address: u64,
    ) -> Option<(u64, PageAttrs)> {
        let va = Self::check(virtual_address & !(PAGE_SIZE - 1), 0, PAGE_SIZE).ok()?;
        let mut table = self.root;
        for level in 1..=3 {
            let entry = memory.table(table)[index(va, level)];
            if entry & VALID == 0 {
                return None;
            }
            let is_table = entry & TABLE_OR_PAGE != 0;
            if level == 3 || !is_table {
                if level == 1 && !is_table {
                    // 1 GiB blocks are never created by this module.
                    let offset = virtual_address & ((1 << 30) - 1);
                    return Some((
                        (entry & ADDRESS_MASK) + offset,
                        PageAttrs::from_descriptor(entry),
                    ));
                }
                let size = if level == 3 { PAGE_SIZE } else { BLOCK_2M };
                let base = entry & ADDRESS_MASK & !(size - 1);
                return Some((
                    base + (virtual_address & (size - 1)),
                    PageAttrs::from_descriptor(entry),
                ));
            }
            table = entry & ADDRESS_MASK;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeMemory {
        tables: HashMap<u64, Box<[u64; ENTRIES]>>,
        tags: HashMap<u64, Box<[u64; ENTRIES]>>,
        next: u64,
        limit: usize,
    }

    impl TableMemory for FakeMemory {
        fn allocate_table(&mut self) -> Option<u64> {
            if self.limit != 0 && self.tables.len() >= self.limit {
                return None;
            }
            self.next += TABLE_WITH_TAGS_BYTES;
            let pa = 0x1000_0000 + self.next;
            self.tables.insert(pa, Box::new([0; ENTRIES]));
            Some(pa)
        }
        fn table(&mut self, physical: u64) -> &mut [u64; ENTRIES] {
            self.tables.get_mut(&physical).expect("table exists")
        }
        fn tags(&mut self, physical: u64) -> &mut [u64; ENTRIES] {
            assert!(self.tables.contains_key(&physical), "tags of a table");
            self.tags
                .entry(physical)
                .or_insert_with(|| Box::new([0; ENTRIES]))
        }
    }

    #[test]
    fn maps_and_translates_pages_and_blocks() {
        let mut memory = FakeMemory::default();
        let mut table = TranslationTable::new(&mut memory).unwrap();
        let rw = PageAttrs::user(true, false);
        table
            .map_page(&mut memory, 0x40_0000, 0x4123_4000, rw)
            .unwrap();
        assert_eq!(
            table.translate(&mut memory, 0x40_0123),
            Some((0x4123_4123, rw))
        );
        assert_eq!(table.translate(&mut memory, 0x40_1000), None);
        table
            .map_block(
                &mut memory,
                0xffff_ff80_4000_0000,
                0x4000_0000,
                PageAttrs::KERNEL_DATA,
            )
            .unwrap();
        assert_eq!(
            table.translate(&mut memory, 0xffff_ff80_4012_3456),
            Some((0x4012_3456, PageAttrs::KERNEL_DATA))
        );
    }

    #[test]
    fn enforces_w_xor_x_alignment_range_and_overlap() {
        let mut memory = FakeMemory::default();
        let mut table = TranslationTable::new(&mut memory).unwrap();
        assert_eq!(
            table.map_page(&mut memory, 0x1000, 0x2000, PageAttrs::user(true, true)),
            Err(MapError::WriteAndExecute)
        );
        assert_eq!(
            table.map_page(&mut memory, 0x1001, 0x2000, PageAttrs::KERNEL_DATA),
            Err(MapError::Misaligned {
                address: 0x1001,
                alignment: PAGE_SIZE
            })
        );
        assert_eq!(
            table.map_page(&mut memory, 1 << 40, 0x2000, PageAttrs::KERNEL_DATA),
            Err(MapError::OutOfRange(1 << 40))
        );
        table
            .map_page(&mut memory, 0x20_0000, 0x2000, PageAttrs::KERNEL_DATA)
            .unwrap();
        assert_eq!(
            table.map_page(&mut memory, 0x20_0000, 0x3000, PageAttrs::KERNEL_DATA),
            Err(MapError::AlreadyMapped(0x20_0000))
        );
        assert_eq!(
            table.map_block(&mut memory, 0x20_0000, 0x4000_0000, PageAttrs::KERNEL_DATA),
            Err(MapError::AlreadyMapped(0x20_0000))
        );
    }

    #[test]
    fn descriptor_bits_round_trip() {
        for kind in [
            MemoryKind::Normal,
            MemoryKind::NormalUncached,
            MemoryKind::Device,
        ] {
            for (write, execute) in [(false, false), (true, false), (false, true)] {
                for user in [false, true] {
                    let attrs = PageAttrs {
                        kind,
                        write,
                        execute,
                        user,
                    };
                    let bits = attrs.descriptor_bits().unwrap();
                    assert_eq!(PageAttrs::from_descriptor(bits), attrs);
                    // User pages are never executable by the kernel.
                    if user {
                        assert_ne!(bits & PXN, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn map_range_uses_blocks_where_aligned() {
        let mut memory = FakeMemory::default();
        let mut table = TranslationTable::new(&mut memory).unwrap();
        table
            .map_range(
                &mut memory,
                0x1f_f000,
                0x401f_f000,
                BLOCK_2M + 2 * PAGE_SIZE,
                PageAttrs::KERNEL_DATA,
            )
            .unwrap();
        // root + L2 + two L3 tables (block covers the middle)
        assert_eq!(memory.tables.len(), 4);
        assert_eq!(
            table.translate(&mut memory, 0x20_0000).unwrap().0,
            0x4020_0000
        );
    }

    #[test]
    fn map_pages_walks_once_per_table_and_matches_map_page() {
        let rw = PageAttrs::user(true, false);
        // 600 pages from 0x1f_0000: across two level-3 tables (and a 2 MiB boundary).
        let (start, count) = (0x1f_0000, 600);
        let frame = |va: u64| 0x8000_0000 + va * 2;
        let (mut one, mut by_page) = (FakeMemory::default(), FakeMemory::default());
        let mut batched = TranslationTable::new(&mut one).unwrap();
        let mut single = TranslationTable::new(&mut by_page).unwrap();
        let mut seen = Vec::new();
        batched
            .map_pages(&mut one, start, count, rw, |va| {
                seen.push(va);
                frame(va)
            })
            .unwrap();
        for page in 0..count {
            let va = start + page * PAGE_SIZE;
            single.map_page(&mut by_page, va, frame(va), rw).unwrap();
        }
        assert_eq!(
            seen,
            (0..count)
                .map(|p| start + p * PAGE_SIZE)
                .collect::<Vec<_>>()
        );
        assert_eq!(one.tables.len(), by_page.tables.len());
        for page in [0, 15, 16, 511, 512, 599] {
            let va = start + page * PAGE_SIZE;
            assert_eq!(batched.translate(&mut one, va), Some((frame(va), rw)));
        }
        assert_eq!(batched.translate(&mut one, start + count * PAGE_SIZE), None);
        // Over an existing page: the pages before it are mapped, it is refused.
        assert_eq!(
            batched.map_pages(&mut one, start - 2 * PAGE_SIZE, 3, rw, frame),
            Err(MapError::AlreadyMapped(start))
        );
        assert!(batched.translate(&mut one, start - PAGE_SIZE).is_some());
        assert_eq!(
            batched.map_pages(&mut one, 0x4000_0000, 1, rw, |_| 0x1234),
            Err(MapError::Misaligned {
                address: 0x1234,
                alignment: PAGE_SIZE
            })
        );
        assert_eq!(
            batched.map_pages(&mut one, 0x5000_0000, 1, PageAttrs::user(true, true), frame),
            Err(MapError::WriteAndExecute)
        );
    }

    #[test]
    fn user_managed_tables() {
        let mut memory = FakeMemory::default();
        let mut table = TranslationTable::new(&mut memory).unwrap();
        let rw = PageAttrs::user(true, false);
        assert_eq!(
            table.map_existing(&mut memory, 0x40_0000, 0x5000_0000, rw, false),
            Err(MapError::MissingTable(2))
        );
        let l2 = memory.allocate_table().unwrap();
        assert_eq!(table.install_table(&mut memory, 0x40_0000, l2), Ok(2));
        assert_eq!(
            table.map_existing(&mut memory, 0x40_0000, 0x5000_0000, rw, false),
            Err(MapError::MissingTable(3))
        );
        // A 2 MiB block needs only the L2 table.
        table
            .map_existing(&mut memory, 0x60_0000, 0x5020_0000, rw, true)
            .unwrap();
        assert_eq!(
            table.translate(&mut memory, 0x61_2345),
            Some((0x5021_2345, rw))
        );
        let l3 = memory.allocate_table().unwrap();
        assert_eq!(table.install_table(&mut memory, 0x40_0000, l3), Ok(3));
        assert_eq!(
            table.install_table(&mut memory, 0x40_0000, l3),
            Err(MapError::AlreadyMapped(0x40_0000))
        );
        assert_eq!(
            table.install_table(&mut memory, 0x60_0000, l3),
            Err(MapError::AlreadyMapped(0x60_0000))
        );
        table
            .map_existing(&mut memory, 0x40_0000, 0x5000_0000, rw, false)
            .unwrap();
        assert_eq!(
            table.map_existing(&mut memory, 0x40_0000, 0x5000_1000, rw, false),
            Err(MapError::AlreadyMapped(0x40_0000))
        );
        // Unmapping checks what is mapped.
        assert!(!table.unmap(&mut memory, 0x40_0000, 0x5000_1000, false));
        assert!(table.unmap(&mut memory, 0x40_0000, 0x5000_0000, false));
        assert_eq!(table.translate(&mut memory, 0x40_0000), None);
        assert!(table.unmap(&mut memory, 0x60_0000, 0x5020_0000, true));
        assert!(!table.unlink_table(&mut memory, 0x40_0000, 3, l2));
        assert!(table.unlink_table(&mut memory, 0x40_0000, 3, l3));
        assert!(table.unlink_table(&mut memory, 0x40_0000, 2, l2));
        assert_eq!(
            table.map_existing(&mut memory, 0x40_0000, 0x5000_0000, rw, false),
            Err(MapError::MissingTable(2))
        );
    }

    #[test]
    fn running_out_of_table_memory_is_an_error() {
        let mut memory = FakeMemory {
            limit: 1,
            ..Default::default()
        };
        let mut table = TranslationTable::new(&mut memory).unwrap();
        assert_eq!(
            table.map_page(&mut memory, 0x1000, 0x2000, PageAttrs::KERNEL_DATA),
            Err(MapError::OutOfMemory)
        );
    }

    #[test]
    fn tagged_unmap_removes_only_the_mapping_that_installed_the_entry() {
        let mut memory = FakeMemory::default();
        let mut table = TranslationTable::new(&mut memory).unwrap();
        let rw = PageAttrs::user(true, false);
        let l2 = memory.allocate_table().unwrap();
        let l3 = memory.allocate_table().unwrap();
        table.install_table(&mut memory, 0x40_0000, l2).unwrap();
        table.install_table(&mut memory, 0x40_0000, l3).unwrap();
        table
            .map_tagged(&mut memory, 0x40_0000, 0x5000_0000, rw, false, 1)
            .unwrap();
        assert_eq!(memory.tags(l3)[index(0x40_0000, 3)], 1);
        // The level-3 table is replaced: the same frame mapped there again, tag 2.
        assert!(table.unlink_table(&mut memory, 0x40_0000, 3, l3));
        let l3b = memory.allocate_table().unwrap();
        table.install_table(&mut memory, 0x40_0000, l3b).unwrap();
        table
            .map_tagged(&mut memory, 0x40_0000, 0x5000_0000, rw, false, 2)
            .unwrap();
        // The stale record (tag 1) leaves the new mapping alone.
        assert!(!table.unmap_tagged(&mut memory, 0x40_0000, 0x5000_0000, false, 1));
        assert_eq!(
            table.translate(&mut memory, 0x40_0000),
            Some((0x5000_0000, rw))
        );
        assert!(!table.unmap_tagged(&mut memory, 0x40_0000, 0x5000_1000, false, 2));
        assert!(table.unmap_tagged(&mut memory, 0x40_0000, 0x5000_0000, false, 2));
        assert_eq!(table.translate(&mut memory, 0x40_0000), None);
        assert_eq!(memory.tags(l3b)[index(0x40_0000, 3)], 0);
        // Blocks are tagged in their level-2 table.
        table
            .map_tagged(&mut memory, 0x60_0000, 0x5020_0000, rw, true, 3)
            .unwrap();
        assert_eq!(memory.tags(l2)[index(0x60_0000, 2)], 3);
        assert!(!table.unmap_tagged(&mut memory, 0x60_0000, 0x5020_0000, false, 3));
        assert!(table.unmap_tagged(&mut memory, 0x60_0000, 0x5020_0000, true, 3));
        // Missing tables: nothing to map into or remove.
        assert_eq!(
            table.map_tagged(&mut memory, 0x4000_0000, 0x5000_0000, rw, false, 4),
            Err(MapError::MissingTable(2))
        );
        assert!(!table.unmap_tagged(&mut memory, 0x4000_0000, 0x5000_0000, false, 4));
    }
}
