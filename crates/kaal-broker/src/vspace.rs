//! Virtual address range allocator for one address space.

use alloc::collections::BTreeMap;

/// Size of a page in bytes: every range is a whole number of pages.
pub const PAGE_BYTES: u64 = 4096;

/// Why a [`VirtualRanges`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VirtualError {
    /// A range of zero bytes was asked for.
    #[error("empty virtual range")]
    ZeroSize,
    /// An address is not page aligned.
    #[error("virtual address {value:#x} is not page aligned")]
    Misaligned {
        /// The address.
        value: u64,
    },
    /// An alignment is not a power of two of at least a page.
    #[error("alignment {align:#x} is not a power of two of at least a page")]
    InvalidAlignment {
        /// The alignment asked for.
        align: u64,
    },
    /// No free range is large enough (with the alignment asked for).
    #[error("no free virtual range of {bytes:#x} bytes")]
    Exhausted {
        /// The size asked for.
        bytes: u64,
    },
    /// The range is not inside the address space's `[start, end)`.
    #[error("virtual range {base:#x}+{bytes:#x} is outside the address space")]
    OutOfRange {
        /// Start of the range.
        base: u64,
        /// Size of the range.
        bytes: u64,
    },
    /// The range overlaps an allocated or reserved one.
    #[error("virtual range {base:#x}+{bytes:#x} overlaps a range in use")]
    Overlap {
        /// Start of the range.
        base: u64,
        /// Size of the range.
        bytes: u64,
    },
    /// No range was allocated or reserved at `base`.
    #[error("no virtual range allocated at {base:#x}")]
    NotAllocated {
        /// The address.
        base: u64,
    },
    /// The range at `base` has another size.
    #[error("virtual range at {base:#x} is {allocated_bytes:#x} bytes, not {bytes:#x}")]
    WrongSize {
        /// Start of the range.
        base: u64,
        /// The size given.
        bytes: u64,
        /// The size allocated.
        allocated_bytes: u64,
    },
}

/// The free and used ranges of one address space `[start, end)`.
///
/// Sizes are rounded up to whole pages everywhere, so the size given to
/// [`free`](Self::free) may be the unrounded one given to
/// [`allocate`](Self::allocate).
///
/// ```
/// use kaal_broker::vspace::{VirtualError, VirtualRanges};
///
/// let mut space = VirtualRanges::new(0x1000, 0x10_0000);
/// space.reserve(0x1000, 0x2000)?;
/// let a = space.allocate(100, 0x1000)?;
/// assert_eq!(a, 0x3000);
/// let b = space.allocate(0x4000, 0x4000)?;
/// assert_eq!(b, 0x4000);
/// assert_eq!(space.free(a, 0x2000), Err(VirtualError::WrongSize {
///     base: a, bytes: 0x2000, allocated_bytes: 0x1000,
/// }));
/// space.free(a, 100)?;
/// assert_eq!(space.free_bytes(), 0xf_f000 - 0x2000 - 0x4000);
/// # Ok::<(), VirtualError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualRanges {
    start: u64,
    end: u64,
    /// Free extents, base to end; never adjacent (coalesced).
    free: BTreeMap<u64, u64>,
    /// Allocated and reserved ranges, base to bytes.
    used: BTreeMap<u64, u64>,
    free_bytes: u64,
}

impl VirtualRanges {
    /// An address space with `[start, end)` free. `start` is rounded up and `end`
    /// down to a page; empty if nothing remains.
    pub fn new(start: u64, end: u64) -> Self {
        let start = start
            .checked_next_multiple_of(PAGE_BYTES)
            .unwrap_or(u64::MAX - (PAGE_BYTES - 1));
        let end = (end - end % PAGE_BYTES).max(start);
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end);
        }
        Self {
            start,
            end,
            free,
            used: BTreeMap::new(),
            free_bytes: end - start,
        }
    }

    /// Start of the address space (page aligned).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// End of the address space (page aligned, exclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Allocates `bytes` (rounded up to pages) at the lowest address aligned to
    /// `align`; returns the base.
    ///
    /// # Errors
    ///
    /// [`VirtualError::ZeroSize`], [`VirtualError::InvalidAlignment`] or
    /// [`VirtualError::Exhausted`].
    pub fn allocate(&mut self, bytes: u64, align: u64) -> Result<u64, VirtualError> {
        let size = Self::pages(bytes)?;
        if !align.is_power_of_two() || align < PAGE_BYTES {
            return Err(VirtualError::InvalidAlignment { align });
        }
        let base = self
            .free
            .iter()
            .find_map(|(&free_base, &free_end)| {
                let base = free_base.checked_next_multiple_of(align)?;
                (base.checked_add(size)? <= free_end).then_some(base)
            })
            .ok_or(VirtualError::Exhausted { bytes })?;
        self.take(base, size);
        Ok(base)
    }

    /// Claims the fixed range of `bytes` (rounded up to pages) at `base`.
    ///
    /// # Errors
    ///
    /// [`VirtualError::ZeroSize`], [`VirtualError::Misaligned`],
    /// [`VirtualError::OutOfRange`], or [`VirtualError::Overlap`] if any of it is in
    /// use.
    pub fn reserve(&mut self, base: u64, bytes: u64) -> Result<(), VirtualError> {
        let size = Self::pages(bytes)?;
        if !base.is_multiple_of(PAGE_BYTES) {
            return Err(VirtualError::Misaligned { value: base });
        }
        let end = base.checked_add(size);
        if base < self.start || end.is_none_or(|end| end > self.end) {
            return Err(VirtualError::OutOfRange { base, bytes });
        }
        let inside_free = self
            .free
            .range(..=base)
            .next_back()
            .is_some_and(|(_, &free_end)| end.is_some_and(|end| end <= free_end));
        if !inside_free {
            return Err(VirtualError::Overlap { base, bytes });
        }
        self.take(base, size);
        Ok(())
    }

    /// Frees the range allocated or reserved at `base` with `bytes` (rounded up to
    /// pages), merging it with free neighbours.
    ///
    /// # Errors
    ///
    /// [`VirtualError::NotAllocated`] if no range starts at `base`,
    /// [`VirtualError::WrongSize`] if it has another size, [`VirtualError::ZeroSize`].
    pub fn free(&mut self, base: u64, bytes: u64) -> Result<(), VirtualError> {
        let size = Self::pages(bytes)?;
        let &allocated_bytes = self
            .used
            .get(&base)
            .ok_or(VirtualError::NotAllocated { base })?;
        if allocated_bytes != size {
            return Err(VirtualError::WrongSize {
                base,
                bytes,
                allocated_bytes,
            });
        }
        self.used.remove(&base);
        let (mut free_base, mut free_end) = (base, base + size);
        if let Some((&before, &before_end)) = self.free.range(..base).next_back()
            && before_end == base
        {
            free_base = before;
        }
        if let Some(after_end) = self.free.remove(&free_end) {
            free_end = after_end;
        }
        self.free.insert(free_base, free_end);
        self.free_bytes += size;
        Ok(())
    }

    /// `bytes` rounded up to whole pages.
    fn pages(bytes: u64) -> Result<u64, VirtualError> {
        match bytes.checked_next_multiple_of(PAGE_BYTES) {
            Some(0) => Err(VirtualError::ZeroSize),
            Some(size) => Ok(size),
            None => Err(VirtualError::Exhausted { bytes }),
        }
    }

    /// Marks `[base, base + size)`, inside one free extent, used.
    fn take(&mut self, base: u64, size: u64) {
        let (&free_base, &free_end) = self
            .free
            .range(..=base)
            .next_back()
            .expect("range inside a free extent");
        self.free.remove(&free_base);
        if free_base < base {
            self.free.insert(free_base, base);
        }
        if base + size < free_end {
            self.free.insert(base + size, free_end);
        }
        self.used.insert(base, size);
        self.free_bytes -= size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_rounded_to_pages() {
        let space = VirtualRanges::new(0x1001, 0x5fff);
        assert_eq!((space.start(), space.end()), (0x2000, 0x5000));
        assert_eq!(space.free_bytes(), 0x3000);
        let empty = VirtualRanges::new(0x5000, 0x1000);
        assert_eq!(empty.free_bytes(), 0);
        let top = VirtualRanges::new(u64::MAX - 10, u64::MAX);
        assert_eq!(top.free_bytes(), 0);
    }

    #[test]
    fn neighbours_coalesce() {
        let mut space = VirtualRanges::new(0, 0x10_000);
        let a = space.allocate(0x4000, PAGE_BYTES).unwrap();
        let b = space.allocate(0x4000, PAGE_BYTES).unwrap();
        let c = space.allocate(0x4000, PAGE_BYTES).unwrap();
        space.free(a, 0x4000).unwrap();
        space.free(c, 0x4000).unwrap();
        assert_eq!(space.free.len(), 2);
        space.free(b, 0x4000).unwrap();
        assert_eq!(space.free.len(), 1);
        assert_eq!(space.allocate(0x10_000, 0x10_000), Ok(0));
        assert_eq!(
            space.free(0x1000, 0x1000),
            Err(VirtualError::NotAllocated { base: 0x1000 })
        );
        assert_eq!(
            space.reserve(!0xfff_u64, 0x2000),
            Err(VirtualError::OutOfRange {
                base: !0xfff_u64,
                bytes: 0x2000
            })
        );
        assert_eq!(
            space.allocate(u64::MAX, PAGE_BYTES),
            Err(VirtualError::Exhausted { bytes: u64::MAX })
        );
    }
}
