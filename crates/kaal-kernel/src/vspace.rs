//! The pure parts of user address spaces, tested on the host: ASID allocation and the
//! mapping records kept in frame and page-table capabilities.
//!
//! ## ASIDs
//!
//! Every live address space holds one ASID (address-space identifier, the tag of its
//! TLB entries) from its creation to its destruction; ASID 0 is kept for "no address
//! space". [`Asids`] hands out the lowest free ASID and takes it back when the space is
//! destroyed; the kernel invalidates the TLB entries tagged with it at that moment, so a
//! space that gets the ASID next starts with none of its predecessor's translations. So
//! any number of address spaces can exist over a system's life, and as many at once as
//! the CPU has ASIDs: 255 with 8-bit ASIDs, 65 535 with 16-bit ones
//! (`ID_AA64MMFR0_EL1.ASIDBits`, enabled with `TCR_EL1.AS`).
//!
//! ## Mapping records
//!
//! A mapped frame or page-table capability records where it is mapped in its `extra`
//! word ([`MappingRecord`]): [`MAPPED`] | level << 56 | ASID << 40 | virtual address. A
//! mapped frame capability also carries, in its `badge` word (frames have no badges),
//! the [tag](MappingRecord::tag) of its mapping: a number unique over the system's life
//! that the kernel also writes beside the translation-table entry (see
//! `crate::mapping`), so that an unmap removes the entry only if this very mapping made
//! it.

/// Set in `extra` of a mapped frame or page-table capability.
pub const MAPPED: u64 = 1 << 63;
/// Bits of `extra` holding the virtual address.
const ADDRESS_BITS: u64 = (1 << 40) - 1;
const ASID_SHIFT: u32 = 40;
const LEVEL_SHIFT: u32 = 56;

/// Where a frame or page table is mapped, as recorded in its capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingRecord {
    /// ASID of the address space it was mapped in.
    pub asid: u16,
    /// Virtual address: of the page or block, or the base of the range a table covers.
    pub vaddr: u64,
    /// Translation level: 2 or 3 for a table, 2 (block) or 3 (page) for a frame.
    pub level: u32,
    /// For a frame: the tag written beside its translation-table entry (never 0). For
    /// a page table: 0.
    pub tag: u64,
}

impl MappingRecord {
    /// The capability's `extra` word for this record (the tag goes in `badge`).
    pub fn extra(&self) -> u64 {
        MAPPED
            | (u64::from(self.level & 0x7f) << LEVEL_SHIFT)
            | (u64::from(self.asid) << ASID_SHIFT)
            | (self.vaddr & ADDRESS_BITS)
    }

    /// The record in a capability's `extra` and `badge` words, if it is mapped.
    pub fn decode(extra: u64, badge: u64) -> Option<Self> {
        (extra & MAPPED != 0).then_some(Self {
            asid: (extra >> ASID_SHIFT) as u16,
            vaddr: extra & ADDRESS_BITS,
            level: ((extra >> LEVEL_SHIFT) & 0x7f) as u32,
            tag: badge,
        })
    }
}

/// The ASIDs of the live address spaces: the root table of each (0 = free).
///
/// Allocation is first fit (the lowest free ASID), with a hint below which every ASID is
/// taken, so allocating is amortised O(1) while spaces come and go.
#[derive(Debug)]
pub struct Asids {
    roots: &'static mut [u64],
    /// Every ASID in `1..lowest_free` is in use.
    lowest_free: usize,
    live: usize,
}

impl Asids {
    /// The table over `roots`, one entry per ASID the CPU has (256 or 65 536), all zero.
    pub fn new(roots: &'static mut [u64]) -> Self {
        debug_assert!(roots.len() <= 1 << 16 && roots.iter().all(|&root| root == 0));
        Self {
            roots,
            lowest_free: 1,
            live: 0,
        }
    }

    /// Gives the table back (for its owner to free), leaving this one empty.
    pub fn take_roots(&mut self) -> &'static mut [u64] {
        self.live = 0;
        self.lowest_free = 1;
        core::mem::take(&mut self.roots)
    }

    /// How many address spaces can exist at once (ASID 0 is never handed out).
    pub fn capacity(&self) -> usize {
        self.roots.len().saturating_sub(1)
    }

    /// How many ASIDs are free.
    pub fn free(&self) -> usize {
        self.capacity() - self.live
    }

    /// Gives the lowest free ASID to the address space rooted at `root` (not 0).
    pub fn allocate(&mut self, root: u64) -> Option<u16> {
        let offset = self
            .roots
            .get(self.lowest_free..)?
            .iter()
            .position(|&r| r == 0)?;
        let asid = self.lowest_free + offset;
        self.roots[asid] = root;
        self.lowest_free = asid + 1;
        self.live += 1;
        Some(asid as u16)
    }

    /// Records that `asid` (free, not 0) names the space rooted at `root`: for the
    /// address spaces the kernel builds at boot.
    pub fn claim(&mut self, asid: u16, root: u64) {
        let index = usize::from(asid);
        assert!(
            index != 0 && index < self.roots.len() && self.roots[index] == 0,
            "ASID {asid} is not free"
        );
        self.roots[index] = root;
        self.live += 1;
    }

    /// Frees `asid` if it names the space rooted at `root`; returns whether it did (the
    /// caller then invalidates the TLB entries tagged with it).
    pub fn release(&mut self, asid: u16, root: u64) -> bool {
        let index = usize::from(asid);
        if index == 0 || root == 0 || self.roots.get(index) != Some(&root) {
            return false;
        }
        self.roots[index] = 0;
        self.live -= 1;
        self.lowest_free = self.lowest_free.min(index);
        true
    }

    /// The root table of the live space with `asid`, or 0 if none has it.
    pub fn root(&self, asid: u16) -> u64 {
        self.roots.get(usize::from(asid)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ASID table whose memory goes back to the heap when the test ends.
    struct Table(Asids);

    impl core::ops::Deref for Table {
        type Target = Asids;
        fn deref(&self) -> &Asids {
            &self.0
        }
    }

    impl core::ops::DerefMut for Table {
        fn deref_mut(&mut self) -> &mut Asids {
            &mut self.0
        }
    }

    impl Drop for Table {
        fn drop(&mut self) {
            let roots: *mut [u64] = self.0.take_roots();
            // SAFETY: from `Box::leak` in `table`, taken back once.
            drop(unsafe { Box::from_raw(roots) });
        }
    }

    fn table(asids: usize) -> Table {
        Table(Asids::new(Box::leak(vec![0; asids].into_boxed_slice())))
    }

    #[test]
    fn records_round_trip() {
        for (asid, vaddr, level, tag) in [
            (1, 0x40_0000, 3, 1),
            (255, 0x60_0000, 2, 7),
            (256, 0x7f_ffff_f000, 3, u64::MAX),
            (u16::MAX, 0, 2, 0),
        ] {
            let record = MappingRecord {
                asid,
                vaddr,
                level,
                tag,
            };
            let extra = record.extra();
            assert_ne!(extra & MAPPED, 0);
            assert_eq!(MappingRecord::decode(extra, tag), Some(record));
        }
        assert_eq!(MappingRecord::decode(0x40_0000, 3), None);
        // 16-bit ASIDs survive (an 8-bit mask once cut them down).
        let record = MappingRecord {
            asid: 0x1234,
            vaddr: 0x1000,
            level: 3,
            tag: 9,
        };
        assert_eq!(
            MappingRecord::decode(record.extra(), 9).unwrap().asid,
            0x1234
        );
    }

    #[test]
    fn allocates_lowest_free_and_recycles() {
        let mut asids = table(256);
        assert_eq!((asids.capacity(), asids.free()), (255, 255));
        asids.claim(1, 0x1000);
        assert_eq!(asids.allocate(0x2000), Some(2));
        assert_eq!(asids.allocate(0x3000), Some(3));
        assert_eq!(asids.root(2), 0x2000);
        assert_eq!(asids.free(), 252);
        // Only the space that holds an ASID can release it.
        assert!(!asids.release(2, 0x3000));
        assert!(!asids.release(0, 0));
        assert!(!asids.release(300, 0x2000));
        assert!(asids.release(2, 0x2000));
        assert!(!asids.release(2, 0x2000));
        assert_eq!(asids.root(2), 0);
        assert_eq!(asids.root(9999), 0);
        // The freed ASID is the next one handed out.
        assert_eq!(asids.allocate(0x4000), Some(2));
        assert_eq!(asids.allocate(0x5000), Some(4));
    }

    #[test]
    fn ten_thousand_spaces_over_a_life_with_8_bit_asids() {
        let mut asids = table(256);
        asids.claim(1, 0x1000);
        let mut live = std::collections::VecDeque::new();
        for round in 0..if cfg!(miri) { 600 } else { 10_000u64 } {
            let root = 0x10_0000 + round * 0x1000;
            let asid = asids.allocate(root).expect("an ASID is free");
            assert!(asid != 0 && asid != 1);
            live.push_back((asid, root));
            // Keep up to 200 alive at once, freed in creation order.
            if live.len() > 200 {
                let (asid, root) = live.pop_front().unwrap();
                assert!(asids.release(asid, root));
            }
        }
        assert_eq!(asids.free(), 255 - 1 - 200);
        // (Under Miri 600 rounds still reuse every ASID twice.)
    }

    #[test]
    fn exhaustion_and_16_bit_capacity() {
        let mut asids = table(256);
        for expected in 1..=255u16 {
            assert_eq!(asids.allocate(u64::from(expected) << 12), Some(expected));
        }
        assert_eq!(asids.allocate(0x1000), None);
        assert_eq!(asids.free(), 0);
        assert!(asids.release(77, 77 << 12));
        assert_eq!(asids.allocate(0x9000), Some(77));
        let mut wide = table(1 << 16);
        assert_eq!(wide.capacity(), 65_535);
        for _ in 0..300 {
            wide.allocate(0x1000).unwrap();
        }
        assert_eq!(wide.allocate(0x1000), Some(301));
    }
}
