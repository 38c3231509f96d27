//! CSpace slot allocator with freeing.

use alloc::vec;
use alloc::vec::Vec;

/// Why a [`SlotAllocator`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// Not enough free slots (or no run of consecutive free slots long enough).
    #[error("out of capability slots")]
    OutOfSlots,
    /// The slot is not allocated: freed twice, never allocated, or out of range.
    #[error("capability slot {0} is not allocated")]
    NotAllocated(u64),
    /// A range of zero slots was asked for.
    #[error("cannot allocate a range of zero slots")]
    ZeroCount,
}

const WORD_BITS: u64 = u64::BITS as u64;

/// Allocates the slots `[first, end)` of a CSpace, lowest first.
///
/// One bit per slot.
///
/// ```
/// use kaal_user::slots::{SlotAllocator, SlotError};
///
/// let mut slots = SlotAllocator::new(18, 22);
/// assert_eq!(slots.allocate(), Ok(18));
/// assert_eq!(slots.allocate_range(3), Ok(19));
/// assert_eq!(slots.allocate(), Err(SlotError::OutOfSlots));
/// slots.free(20)?;
/// assert_eq!(slots.free(20), Err(SlotError::NotAllocated(20)));
/// assert_eq!(slots.free_count(), 1);
/// assert_eq!(slots.allocate(), Ok(20));
/// # Ok::<(), SlotError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotAllocator {
    first: u64,
    end: u64,
    /// Bit set: slot allocated. Bits past `end` in the last word are set.
    words: Vec<u64>,
    free_count: u64,
    /// No word below this one has a free bit.
    hint: usize,
}

impl SlotAllocator {
    /// All slots in `[first, end)` free; empty if `end <= first`.
    pub fn new(first: u64, end: u64) -> Self {
        let end = end.max(first);
        let count = end - first;
        let word_count = usize::try_from(count.div_ceil(WORD_BITS)).unwrap_or(usize::MAX);
        let mut words = vec![0u64; word_count];
        let tail = count % WORD_BITS;
        if let Some(last) = words.last_mut().filter(|_| tail != 0) {
            *last = !0u64 << tail;
        }
        Self {
            first,
            end,
            words,
            free_count: count,
            hint: 0,
        }
    }

    /// First slot managed.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// One past the last slot managed.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of free slots.
    pub fn free_count(&self) -> u64 {
        self.free_count
    }

    /// Whether `slot` is allocated; `false` outside `[first, end)`.
    pub fn is_allocated(&self, slot: u64) -> bool {
        if !(self.first..self.end).contains(&slot) {
            return false;
        }
        let (word, bit) = Self::position(slot - self.first);
        self.words[word] & bit != 0
    }

    /// Allocates the lowest free slot.
    ///
    /// # Errors
    ///
    /// [`SlotError::OutOfSlots`] if every slot is taken.
    pub fn allocate(&mut self) -> Result<u64, SlotError> {
        let start = self.hint;
        let (word_index, word) = self.words[start..]
            .iter_mut()
            .enumerate()
            .find(|(_, word)| **word != u64::MAX)
            .ok_or(SlotError::OutOfSlots)?;
        let word_index = start + word_index;
        let bit = word.trailing_ones();
        *word |= 1 << bit;
        self.hint = word_index;
        self.free_count -= 1;
        Ok(self.first + word_index as u64 * WORD_BITS + u64::from(bit))
    }

    /// Allocates the lowest run of `count` consecutive free slots; returns the first.
    ///
    /// # Errors
    ///
    /// [`SlotError::ZeroCount`] if `count` is 0, [`SlotError::OutOfSlots`] if no run
    /// is long enough.
    pub fn allocate_range(&mut self, count: u64) -> Result<u64, SlotError> {
        if count == 0 {
            return Err(SlotError::ZeroCount);
        }
        if count > self.free_count {
            return Err(SlotError::OutOfSlots);
        }
        let len = self.end - self.first;
        let mut index = self.hint as u64 * WORD_BITS;
        let (mut run_start, mut run_len) = (index, 0u64);
        while index < len && run_len < count {
            let (word_index, bit) = Self::position(index);
            let word = self.words[word_index];
            if bit == 1 && (word == 0 || word == u64::MAX) {
                // A whole word at once.
                if word == 0 {
                    if run_len == 0 {
                        run_start = index;
                    }
                    run_len += WORD_BITS;
                } else {
                    run_len = 0;
                }
                index += WORD_BITS;
                continue;
            }
            if word & bit != 0 {
                run_len = 0;
            } else {
                if run_len == 0 {
                    run_start = index;
                }
                run_len += 1;
            }
            index += 1;
        }
        if run_len < count {
            return Err(SlotError::OutOfSlots);
        }
        for offset in run_start..run_start + count {
            let (word, bit) = Self::position(offset);
            self.words[word] |= bit;
        }
        self.free_count -= count;
        Ok(self.first + run_start)
    }

    /// Frees an allocated slot.
    ///
    /// # Errors
    ///
    /// [`SlotError::NotAllocated`] if it is free or out of range.
    pub fn free(&mut self, slot: u64) -> Result<(), SlotError> {
        self.free_range(slot, 1)
    }

    /// Frees the `count` slots from `first`; all of them or, on error, none.
    ///
    /// # Errors
    ///
    /// [`SlotError::NotAllocated`] naming the first slot of the range that is free or
    /// out of range.
    pub fn free_range(&mut self, first: u64, count: u64) -> Result<(), SlotError> {
        let stop = first
            .checked_add(count)
            .ok_or(SlotError::NotAllocated(u64::MAX))?;
        if let Some(slot) = (first..stop).find(|&slot| !self.is_allocated(slot)) {
            return Err(SlotError::NotAllocated(slot));
        }
        for slot in first..stop {
            let (word, bit) = Self::position(slot - self.first);
            self.words[word] &= !bit;
        }
        if count > 0 {
            let (word, _) = Self::position(first - self.first);
            self.hint = self.hint.min(word);
        }
        self.free_count += count;
        Ok(())
    }

    /// Word index and bit mask of the slot at `offset` from `first`.
    fn position(offset: u64) -> (usize, u64) {
        ((offset / WORD_BITS) as usize, 1 << (offset % WORD_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_word_boundaries() {
        let mut empty = SlotAllocator::new(10, 5);
        assert_eq!(
            (empty.first(), empty.end(), empty.free_count()),
            (10, 10, 0)
        );
        assert_eq!(empty.allocate(), Err(SlotError::OutOfSlots));
        assert_eq!(empty.free(10), Err(SlotError::NotAllocated(10)));

        let mut slots = SlotAllocator::new(1, 1 + 65);
        for expected in 1..=64 {
            assert_eq!(slots.allocate(), Ok(expected));
        }
        assert_eq!(slots.allocate_range(2), Err(SlotError::OutOfSlots));
        assert_eq!(slots.allocate(), Ok(65));
        assert_eq!(slots.allocate(), Err(SlotError::OutOfSlots));
        assert_eq!(slots.free_range(60, 6), Ok(()));
        assert_eq!(slots.allocate_range(6), Ok(60));
        assert_eq!(
            slots.free_range(u64::MAX, 2),
            Err(SlotError::NotAllocated(u64::MAX))
        );
        assert_eq!(slots.allocate_range(0), Err(SlotError::ZeroCount));
    }

    #[test]
    fn long_runs_span_words() {
        let mut slots = SlotAllocator::new(0, 1000);
        assert_eq!(slots.allocate(), Ok(0));
        assert_eq!(slots.allocate_range(300), Ok(1));
        assert_eq!(slots.allocate_range(699), Ok(301));
        assert_eq!(slots.free_count(), 0);
        slots.free_range(100, 200).unwrap();
        assert_eq!(slots.allocate_range(201), Err(SlotError::OutOfSlots));
        assert_eq!(slots.allocate_range(200), Ok(100));
    }
}
