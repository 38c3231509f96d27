//! The boot-time physical frame allocator.
//!
//! It starts from the RAM the device tree describes, minus reserved ranges (the device
//! tree blob, the kernel image), and hands out 4 KiB frames from the lowest free address
//! up. It serves only the boot path: page tables and pages of the root task. What is left
//! when the root task starts becomes untyped memory in the boot info, and the allocator is
//! sealed so the kernel never touches that memory again.

use thiserror::Error;

/// Frame size in bytes.
pub const FRAME_SIZE: u64 = 4096;
/// How many disjoint free ranges are tracked.
pub const MAX_RANGES: usize = 32;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, start + size)`, saturating at the top of the address space.
    pub const fn new(start: u64, size: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(size),
        }
    }

    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// Why the allocator refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// More disjoint ranges than [`MAX_RANGES`].
    #[error("too many disjoint memory ranges (at most {MAX_RANGES})")]
    TooManyRanges,
    /// No free frame left.
    #[error("out of physical memory")]
    OutOfMemory,
    /// The allocator was sealed: its memory now belongs to user space.
    #[error("the boot frame allocator is sealed")]
    Sealed,
}

/// Free physical memory as a sorted list of page-aligned ranges.
#[derive(Debug)]
pub struct FrameAllocator {
    ranges: [PhysRange; MAX_RANGES],
    count: usize,
    sealed: bool,
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAllocator {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Self {
            ranges: [PhysRange { start: 0, end: 0 }; MAX_RANGES],
            count: 0,
            sealed: false,
        }
    }

    /// Adds free memory; the range is shrunk inwards to whole frames.
    pub fn add(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let start = range.start.next_multiple_of(FRAME_SIZE);
        let end = range.end & !(FRAME_SIZE - 1);
        if start >= end {
            return Ok(());
        }
        if self.count == MAX_RANGES {
            return Err(FrameError::TooManyRanges);
        }
        let at = self.ranges[..self.count].partition_point(|r| r.start < start);
        self.ranges.copy_within(at..self.count, at + 1);
        self.ranges[at] = PhysRange { start, end };
        self.count += 1;
        Ok(())
    }

    /// Removes `reserved` (rounded outwards to whole frames) from the free memory.
    pub fn reserve(&mut self, reserved: PhysRange) -> Result<(), FrameError> {
        let cut_start = reserved.start & !(FRAME_SIZE - 1);
        let cut_end = reserved.end.next_multiple_of(FRAME_SIZE);
        let mut index = 0;
        while index < self.count {
            let range = self.ranges[index];
            if range.end <= cut_start || range.start >= cut_end {
                index += 1;
                continue;
            }
            let before = PhysRange {
                start: range.start,
                end: cut_start.max(range.start),
            };
            let after = PhysRange {
                start: cut_end.min(range.end),
                end: range.end,
            };
            self.ranges.copy_within(index + 1..self.count, index);
            self.count -= 1;
            for piece in [before, after] {
                if piece.start < piece.end {
                    self.add(piece)?;
                }
            }
            index = 0;
        }
        Ok(())
    }

    /// Allocates one frame and returns its physical address. The frame is not zeroed.
    pub fn allocate(&mut self) -> Result<u64, FrameError> {
        if self.sealed {
            return Err(FrameError::Sealed);
        }
        let range = self.ranges[..self.count]
            .first_mut()
            .ok_or(FrameError::OutOfMemory)?;
        let frame = range.start;
        range.start += FRAME_SIZE;
        if range.start == range.end {
            self.ranges.copy_within(1..self.count, 0);
            self.count -= 1;
        }
        Ok(frame)
    }

    /// Allocates `size` bytes (a multiple of [`FRAME_SIZE`]) of physically contiguous
    /// memory aligned to `align` (a power of two, at least [`FRAME_SIZE`]). The memory
    /// is not zeroed.
    pub fn allocate_contiguous(&mut self, size: u64, align: u64) -> Result<u64, FrameError> {
        if self.sealed {
            return Err(FrameError::Sealed);
        }
        for index in 0..self.count {
            let range = self.ranges[index];
            let Some(start) = range.start.checked_next_multiple_of(align) else {
                continue;
            };
            let Some(end) = start.checked_add(size) else {
                continue;
            };
            if end > range.end {
                continue;
            }
            let (before, after) = (
                PhysRange {
                    start: range.start,
                    end: start,
                },
                PhysRange {
                    start: end,
                    end: range.end,
                },
            );
            self.ranges.copy_within(index + 1..self.count, index);
            self.count -= 1;
            for piece in [before, after] {
                if piece.start < piece.end {
                    self.add(piece)?;
                }
            }
            return Ok(start);
        }
        Err(FrameError::OutOfMemory)
    }

    /// The free ranges, lowest first.
    pub fn free_ranges(&self) -> &[PhysRange] {
        &self.ranges[..self.count]
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free_ranges().iter().map(PhysRange::size).sum()
    }

    /// Stops all further allocation: the free memory is handed to user space.
    pub fn seal(&mut self) {
        self.sealed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_holes_and_allocates_lowest_first() {
        let mut frames = FrameAllocator::new();
        frames
            .add(PhysRange::new(0x4000_0000, 0x1000_0000))
            .unwrap();
        frames.reserve(PhysRange::new(0x4000_0000, 0x1800)).unwrap(); // DTB, rounded out
        frames
            .reserve(PhysRange {
                start: 0x4008_0000,
                end: 0x4020_0000,
            })
            .unwrap();
        assert_eq!(
            frames.free_ranges(),
            &[
                PhysRange {
                    start: 0x4000_2000,
                    end: 0x4008_0000
                },
                PhysRange {
                    start: 0x4020_0000,
                    end: 0x5000_0000
                },
            ]
        );
        assert_eq!(frames.allocate(), Ok(0x4000_2000));
        assert_eq!(frames.allocate(), Ok(0x4000_3000));
        assert_eq!(frames.free_bytes(), 0x7_c000 + 0xfe0_0000);
    }

    #[test]
    fn contiguous_allocations_are_aligned_and_split_ranges() {
        let mut frames = FrameAllocator::new();
        frames.add(PhysRange::new(0x1000, 0x10_0000)).unwrap();
        assert_eq!(frames.allocate_contiguous(0x4000, 0x1_0000), Ok(0x1_0000));
        assert_eq!(
            frames.free_ranges(),
            &[
                PhysRange {
                    start: 0x1000,
                    end: 0x1_0000
                },
                PhysRange {
                    start: 0x1_4000,
                    end: 0x10_1000
                }
            ]
        );
        assert_eq!(
            frames.allocate_contiguous(0x20_0000, 0x1000),
            Err(FrameError::OutOfMemory)
        );
        assert_eq!(frames.allocate(), Ok(0x1000));
    }

    #[test]
    fn runs_out_and_seals() {
        let mut frames = FrameAllocator::new();
        frames.add(PhysRange::new(0x1000, 0x2000)).unwrap();
        assert_eq!(frames.allocate(), Ok(0x1000));
        assert_eq!(frames.allocate(), Ok(0x2000));
        assert_eq!(frames.allocate(), Err(FrameError::OutOfMemory));
        frames.add(PhysRange::new(0x8000, 0x1000)).unwrap();
        frames.seal();
        assert_eq!(frames.allocate(), Err(FrameError::Sealed));
    }

    #[test]
    fn unaligned_ranges_shrink_inwards_and_tiny_ones_vanish() {
        let mut frames = FrameAllocator::new();
        frames
            .add(PhysRange {
                start: 0x1001,
                end: 0x3fff,
            })
            .unwrap();
        frames
            .add(PhysRange {
                start: 0x9000,
                end: 0x9fff,
            })
            .unwrap();
        assert_eq!(
            frames.free_ranges(),
            &[PhysRange {
                start: 0x2000,
                end: 0x3000
            }]
        );
    }

    #[test]
    fn too_many_ranges_is_an_error() {
        let mut frames = FrameAllocator::new();
        for i in 0..MAX_RANGES as u64 {
            frames.add(PhysRange::new(i * 0x10000, 0x1000)).unwrap();
        }
        assert_eq!(
            frames.add(PhysRange::new(0x100_0000, 0x1000)),
            Err(FrameError::TooManyRanges)
        );
    }
}
