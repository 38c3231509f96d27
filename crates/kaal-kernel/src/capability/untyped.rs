//! Untyped memory: the allocation state behind an untyped capability.

use super::{CapError, Capability, ObjectType, Rights, object};

/// Bits of [`Capability::extra`] holding an untyped's size (log2 bytes).
const SIZE_MASK: u64 = 0x3f;
/// Bit of [`Capability::extra`] set for device memory.
const DEVICE_BIT: u64 = 1 << 6;
/// Shift of the watermark (bytes used) in [`Capability::extra`].
const WATERMARK_SHIFT: u32 = 8;

/// The size field of an untyped capability's `extra`.
pub(crate) const fn extra_size_bits(extra: u64) -> u8 {
    (extra & SIZE_MASK) as u8
}

/// An untyped region and how much of it has been handed out.
///
/// Objects are carved from `base + watermark` upwards, each naturally aligned to its
/// size; memory is never returned one object at a time. When the untyped capability
/// has no children left (after a revoke), nothing allocated from it is alive and the
/// watermark goes back to 0 ([`UntypedState::reset`]).
///
/// Retyped objects must be zero, and zeroing a large region is long work, which the
/// kernel does with interrupts masked. So it zeroes ahead, in bounded steps
/// ([`UntypedState::zeroing_step`]), and remembers how far: `zeroed` marks the end of
/// the memory above the watermark that is known to be zero. Memory in
/// `watermark..zeroed` is zero and not handed out; when `zeroed <= watermark` nothing
/// above the watermark is known to be zero. A retype zeroes forward from
/// `max(watermark, zeroed)` to the end of its objects, records each step in the
/// capability, and may stop between steps; the objects are only made once all of their
/// memory is zero. Whatever arguments a later retype brings, the mark only ever covers
/// memory that is zero and free, so nothing is handed out twice or unzeroed. A reset
/// (every child gone) lowers the mark to 0 with the watermark: the memory below the
/// old watermark was used.
///
/// The state lives in the capability, like the rest of the capability: `extra` holds
/// `size_bits` in bits 0..6, the device flag in bit 6 and the watermark in bits 8..64
/// ([`UntypedState::from_cap`], [`UntypedState::to_extra`]); `badge` (which untyped
/// capabilities, never badged, do not use otherwise) holds `zeroed`
/// ([`UntypedState::store`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UntypedState {
    /// Physical address of the first byte.
    pub base: u64,
    /// Log2 of the size in bytes.
    pub size_bits: u8,
    /// Device memory (MMIO): may only become frames or smaller device untyped, and is
    /// never zeroed by the kernel.
    pub is_device: bool,
    /// Bytes from `base` already handed out.
    pub watermark: u64,
    /// Bytes from `base` up to which the memory above the watermark is known to be zero
    /// (meaningful only where it exceeds the watermark; 0 for device memory).
    pub zeroed: u64,
}

impl UntypedState {
    /// A fresh region of `1 << size_bits` bytes at `base`.
    ///
    /// Fails with [`CapError::InvalidSize`] if `size_bits` is outside
    /// [`UNTYPED_MIN_BITS`](object::UNTYPED_MIN_BITS)`..=`[`UNTYPED_MAX_BITS`](object::UNTYPED_MAX_BITS)
    /// or the region runs past the end of the address space.
    pub const fn new(base: u64, size_bits: u8, is_device: bool) -> Result<Self, CapError> {
        if size_bits < object::UNTYPED_MIN_BITS || size_bits > object::UNTYPED_MAX_BITS {
            return Err(CapError::InvalidSize);
        }
        if base.checked_add(1 << size_bits).is_none() {
            return Err(CapError::InvalidSize);
        }
        Ok(Self {
            base,
            size_bits,
            is_device,
            watermark: 0,
            zeroed: 0,
        })
    }

    /// The state stored in an untyped capability.
    ///
    /// Fails with [`CapError::WrongType`] for another type and
    /// [`CapError::InvalidSize`] if the fields are inconsistent.
    pub const fn from_cap(cap: &Capability) -> Result<Self, CapError> {
        if !matches!(cap.object_type, ObjectType::Untyped) {
            return Err(CapError::WrongType {
                expected: ObjectType::Untyped,
                found: cap.object_type,
            });
        }
        let mut state = match Self::new(
            cap.object,
            extra_size_bits(cap.extra),
            cap.extra & DEVICE_BIT != 0,
        ) {
            Ok(s) => s,
            Err(e) => return Err(e),
        };
        state.watermark = cap.extra >> WATERMARK_SHIFT;
        state.zeroed = cap.badge;
        if state.watermark > state.size() || state.zeroed > state.size() {
            return Err(CapError::InvalidSize);
        }
        Ok(state)
    }

    /// The `extra` word of a capability to this region.
    pub const fn to_extra(&self) -> u64 {
        self.size_bits as u64
            | if self.is_device { DEVICE_BIT } else { 0 }
            | self.watermark << WATERMARK_SHIFT
    }

    /// A capability to this region with all rights.
    pub const fn capability(&self) -> Capability {
        let mut cap = Capability::new(ObjectType::Untyped, self.base, Rights::ALL)
            .with_extra(self.to_extra());
        cap.badge = self.zeroed;
        cap
    }

    /// Writes this state into `cap`, an untyped capability to this region: the
    /// watermark into `extra`, the zeroing mark into `badge`.
    pub const fn store(&self, cap: &mut Capability) {
        cap.extra = self.to_extra();
        cap.badge = self.zeroed;
    }

    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        1 << self.size_bits
    }

    /// Bytes not yet handed out (before any alignment padding).
    pub const fn available(&self) -> u64 {
        self.size() - self.watermark
    }

    /// Hands out `count` consecutive objects of `1 << object_size_bits` bytes, the
    /// first aligned to its size, and returns the address of the first.
    ///
    /// Fails without changing the state: [`CapError::InvalidSize`] for a size of 64
    /// bits or more, [`CapError::InvalidOperation`] for `count == 0`, and
    /// [`CapError::NotEnoughMemory`] (in bytes; `requested` saturates at `u64::MAX`)
    /// when the objects do not fit after the watermark.
    pub fn allocate(&mut self, object_size_bits: u8, count: u64) -> Result<u64, CapError> {
        let object_size = 1u64
            .checked_shl(u32::from(object_size_bits))
            .ok_or(CapError::InvalidSize)?;
        if count == 0 {
            return Err(CapError::InvalidOperation);
        }
        let limit = self.base + self.size();
        let start = (self.base + self.watermark).checked_next_multiple_of(object_size);
        let requested = object_size.checked_mul(count);
        let end = match (start, requested) {
            (Some(s), Some(r)) => s.checked_add(r).filter(|&e| e <= limit),
            _ => None,
        };
        match (start, end) {
            (Some(start), Some(end)) => {
                self.watermark = end - self.base;
                Ok(start)
            }
            _ => Err(CapError::NotEnoughMemory {
                requested: requested.unwrap_or(u64::MAX),
                available: start.map_or(0, |s| limit.saturating_sub(s)),
            }),
        }
    }

    /// Like [`UntypedState::allocate`], for `count` objects of type `ty` (see
    /// [`size_bits`](object::size_bits) for `user_size_bits`), and checks that device
    /// memory becomes only frames or device untyped ([`CapError::DeviceMemoryType`]).
    /// Returns the address of the first object and the size of each (log2 bytes).
    pub fn allocate_objects(
        &mut self,
        ty: ObjectType,
        user_size_bits: u8,
        count: u64,
    ) -> Result<(u64, u8), CapError> {
        let bits = object::size_bits(ty, user_size_bits)?;
        if self.is_device && !(ty.is_frame() || ty == ObjectType::Untyped) {
            return Err(CapError::DeviceMemoryType);
        }
        Ok((self.allocate(bits, count)?, bits))
    }

    /// Forgets every allocation. Only sound when nothing allocated from this region is
    /// alive, i.e. the untyped capability has no children.
    ///
    /// The memory below the old watermark was used, so the zeroing mark goes back to 0
    /// with it, unless nothing was handed out (then the zeroed memory is still zero and
    /// free, and a retype that was stopped part way keeps its progress).
    pub fn reset(&mut self) {
        if self.watermark != 0 {
            self.zeroed = 0;
        }
        self.watermark = 0;
    }

    /// The offset from `base` at which `count` objects of type `ty` would end if they
    /// were allocated now, without allocating them: the memory that must be zero first.
    /// Fails as [`UntypedState::allocate_objects`] would.
    pub fn allocation_end(
        &self,
        ty: ObjectType,
        user_size_bits: u8,
        count: u64,
    ) -> Result<u64, CapError> {
        let mut trial = *self;
        trial.allocate_objects(ty, user_size_bits, count)?;
        Ok(trial.watermark)
    }

    /// The next piece of zeroing before memory up to offset `end` can be handed out:
    /// returns the physical range `[start, start + length)` the caller must now zero, at
    /// most `max_bytes` long, and moves the mark past it (record the new state only
    /// once the range is zero), or `None` when `watermark..end` is already known to be
    /// zero (or this is device memory, which the kernel never zeroes).
    ///
    /// Zeroing starts at `max(watermark, zeroed)` and goes forward, so the padding before
    /// an aligned object is zeroed too: the mark never jumps over memory that is not
    /// zero, whatever a later call asks for.
    pub fn zeroing_step(&mut self, end: u64, max_bytes: u64) -> Option<(u64, u64)> {
        let end = end.min(self.size());
        let from = self.zeroed.max(self.watermark);
        if self.is_device || from >= end || max_bytes == 0 {
            return None;
        }
        let to = end.min(from.saturating_add(max_bytes));
        self.zeroed = to;
        Some((self.base + from, to - from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_validates_size() {
        assert_eq!(UntypedState::new(0, 11, false), Err(CapError::InvalidSize));
        assert_eq!(UntypedState::new(0, 48, false), Err(CapError::InvalidSize));
        assert_eq!(
            UntypedState::new(u64::MAX - 0xfff, 12, false),
            Err(CapError::InvalidSize)
        );
        assert_eq!(
            UntypedState::new(u64::MAX - 0xfff - 0x1000 + 1, 12, false)
                .unwrap()
                .size(),
            4096
        );
    }

    #[test]
    fn objects_are_naturally_aligned() {
        let mut u = UntypedState::new(0x4000_0000, 16, false).unwrap();
        assert_eq!(u.allocate(5, 1), Ok(0x4000_0000));
        assert_eq!(u.watermark, 32);
        assert_eq!(u.allocate(10, 2), Ok(0x4000_0400));
        assert_eq!(u.watermark, 0xc00);
        assert_eq!(u.allocate(12, 1), Ok(0x4000_1000));
        assert_eq!(u.allocate(5, 3), Ok(0x4000_2000));
        assert_eq!(u.watermark, 0x2060);
    }

    #[test]
    fn unaligned_base_still_gives_aligned_objects() {
        let mut u = UntypedState::new(0x4000_0800, 14, false).unwrap();
        assert_eq!(u.allocate(12, 1), Ok(0x4000_1000));
        assert_eq!(u.watermark, 0x1800);
        assert_eq!(u.allocate(13, 1), Ok(0x4000_2000));
        assert_eq!(
            u.allocate(12, 1),
            Err(CapError::NotEnoughMemory {
                requested: 0x1000,
                available: 0x800
            })
        );
    }

    #[test]
    fn exhaustion_leaves_state_unchanged() {
        let mut u = UntypedState::new(0x8000_0000, 13, false).unwrap();
        assert_eq!(u.allocate(12, 1), Ok(0x8000_0000));
        let before = u;
        assert_eq!(
            u.allocate(12, 2),
            Err(CapError::NotEnoughMemory {
                requested: 0x2000,
                available: 0x1000
            })
        );
        assert_eq!(u, before);
        assert_eq!(
            u.allocate(13, 1),
            Err(CapError::NotEnoughMemory {
                requested: 0x2000,
                available: 0
            })
        );
        assert_eq!(u, before);
        assert_eq!(u.allocate(12, 1), Ok(0x8000_1000));
        assert_eq!(u.available(), 0);
        assert!(matches!(
            u.allocate(5, 1),
            Err(CapError::NotEnoughMemory { .. })
        ));
        u.reset();
        assert_eq!(u.allocate(13, 1), Ok(0x8000_0000));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let mut u = UntypedState::new(0x1000, 12, false).unwrap();
        let before = u;
        assert_eq!(
            u.allocate(5, u64::MAX),
            Err(CapError::NotEnoughMemory {
                requested: u64::MAX,
                available: 0x1000
            })
        );
        assert!(u.allocate(40, 1 << 30).is_err());
        assert_eq!(u.allocate(64, 1), Err(CapError::InvalidSize));
        assert_eq!(u.allocate(255, 1), Err(CapError::InvalidSize));
        assert_eq!(u.allocate(5, 0), Err(CapError::InvalidOperation));
        assert_eq!(u, before);
        // Aligning the watermark up past the top of the address space.
        let mut top = UntypedState::new(u64::MAX - (1 << 12) + 1 - (1 << 12), 12, false).unwrap();
        assert!(matches!(
            top.allocate(63, 1),
            Err(CapError::NotEnoughMemory { .. })
        ));
    }

    #[test]
    fn device_memory_only_becomes_frames() {
        let mut d = UntypedState::new(0x0900_0000, 22, true).unwrap();
        let before = d;
        for ty in [
            ObjectType::Tcb,
            ObjectType::Endpoint,
            ObjectType::CNode,
            ObjectType::PageTable,
        ] {
            assert_eq!(
                d.allocate_objects(ty, 4, 1),
                Err(CapError::DeviceMemoryType)
            );
        }
        assert_eq!(d, before);
        assert_eq!(
            d.allocate_objects(ObjectType::Frame4K, 0, 2),
            Ok((0x0900_0000, 12))
        );
        assert_eq!(
            d.allocate_objects(ObjectType::Frame2M, 0, 1),
            Ok((0x0920_0000, 21))
        );
        let mut d = UntypedState::new(0x0900_0000, 22, true).unwrap();
        assert_eq!(
            d.allocate_objects(ObjectType::Untyped, 12, 1),
            Ok((0x0900_0000, 12))
        );
        assert_eq!(
            d.allocate_objects(ObjectType::IrqHandler, 0, 1),
            Err(CapError::InvalidOperation)
        );
    }

    #[test]
    fn zeroing_goes_forward_in_bounded_steps_and_round_trips() {
        let mut u = UntypedState::new(0x4000_0000, 20, false).unwrap();
        let end = u.allocation_end(ObjectType::Frame4K, 0, 40).unwrap();
        assert_eq!(end, 40 << 12);
        assert_eq!(u.watermark, 0, "allocation_end allocates nothing");
        let mut steps = Vec::new();
        while let Some(step) = u.zeroing_step(end, 0x10000) {
            steps.push(step);
            // The state, recorded in the capability after each step, reads back.
            assert_eq!(UntypedState::from_cap(&u.capability()), Ok(u));
        }
        assert_eq!(
            steps,
            [
                (0x4000_0000, 0x10000),
                (0x4001_0000, 0x10000),
                (0x4002_0000, 0x8000)
            ]
        );
        assert_eq!(u.zeroed, end);
        assert_eq!(u.zeroing_step(end, 0x10000), None, "already zero");
        assert_eq!(
            u.allocate_objects(ObjectType::Frame4K, 0, 40),
            Ok((0x4000_0000, 12))
        );
        // Zeroing for the next objects starts at the watermark, not at 0.
        let end = u.allocation_end(ObjectType::Frame4K, 0, 1).unwrap();
        assert_eq!(u.zeroing_step(end, 0x10000), Some((0x4002_8000, 0x1000)));
        // Device memory is never zeroed; a mark past the region is refused.
        let mut d = UntypedState::new(0x0900_0000, 16, true).unwrap();
        assert_eq!(d.zeroing_step(0x1000, 0x10000), None);
        let mut cap = u.capability();
        cap.badge = u.size() + 1;
        assert_eq!(UntypedState::from_cap(&cap), Err(CapError::InvalidSize));
    }

    #[test]
    fn zeroing_covers_the_padding_before_an_aligned_object() {
        let mut u = UntypedState::new(0x4000_0000, 22, false).unwrap();
        u.allocate(12, 1).unwrap();
        let end = u.allocation_end(ObjectType::Frame2M, 0, 1).unwrap();
        assert_eq!(end, 4 << 20);
        // From the watermark (0x1000), not from the 2 MiB boundary: the mark may only
        // cover zero memory, and a restarted call may ask for something smaller.
        assert_eq!(u.zeroing_step(end, 0x10000), Some((0x4000_1000, 0x10000)));
        assert_eq!(u.zeroed, 0x11000);
    }

    #[test]
    fn reset_lowers_the_mark_unless_nothing_was_handed_out() {
        let mut u = UntypedState::new(0x4000_0000, 20, false).unwrap();
        u.zeroing_step(0x8000, 0x4000).unwrap();
        u.reset();
        assert_eq!((u.watermark, u.zeroed), (0, 0x4000), "progress kept");
        u.zeroing_step(0x8000, 0x4000).unwrap();
        u.allocate(12, 2).unwrap();
        u.reset();
        assert_eq!((u.watermark, u.zeroed), (0, 0), "used memory is dirty");
    }

    /// A model of the kernel's retype over memory whose bytes are tracked as zero or
    /// not: random requests (type sizes, counts), each zeroed in random-sized steps and
    /// stopped at random, with other requests and resets in between. No object is ever
    /// handed out over memory that is not zero, or twice.
    #[test]
    fn stopped_zeroing_never_hands_out_dirty_or_shared_memory() {
        const PAGES: usize = 64;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let base = 0x4000_0000u64;
        let mut u = UntypedState::new(base, 18, false).unwrap();
        // Per 4 KiB page: whether it is zero, and whether an object owns it.
        let mut zero = [false; PAGES];
        let mut owned = [false; PAGES];
        for _ in 0..if cfg!(miri) { 300 } else { 20_000 } {
            match next(10) {
                0 => {
                    // Revoke every child: the objects were used (dirty), then reset.
                    for page in 0..PAGES {
                        if owned[page] {
                            zero[page] = false;
                            owned[page] = false;
                        }
                    }
                    u.reset();
                }
                _ => {
                    let bits = 12 + next(4) as u8;
                    let count = 1 + next(4);
                    let Ok(end) = u.allocation_end(ObjectType::Untyped, bits, count) else {
                        continue;
                    };
                    // Zero some steps, maybe stopping before the end (preempted).
                    let steps = next(6);
                    let mut done = true;
                    for _ in 0..=steps {
                        let step = (1 + next(3)) << 12;
                        match u.zeroing_step(end, step) {
                            Some((start, length)) => {
                                for page in (start - base) >> 12..(start - base + length) >> 12 {
                                    assert!(!owned[page as usize], "zeroing an owned page");
                                    zero[page as usize] = true;
                                }
                                done = u.zeroed >= end;
                            }
                            None => {
                                done = true;
                                break;
                            }
                        }
                    }
                    if !done {
                        continue;
                    }
                    let (first, _) = u
                        .allocate_objects(ObjectType::Untyped, bits, count)
                        .unwrap();
                    for page in (first - base) >> 12..u.watermark >> 12 {
                        assert!(zero[page as usize], "handed out a dirty page");
                        assert!(!owned[page as usize], "handed out a page twice");
                        owned[page as usize] = true;
                    }
                }
            }
            // The invariant: watermark..zeroed is zero and free.
            for page in u.watermark >> 12..u.zeroed.max(u.watermark) >> 12 {
                assert!(zero[page as usize] && !owned[page as usize]);
            }
        }
    }

    #[test]
    fn zeroed_memory_is_an_empty_slot() {
        // Retype makes CNodes from zeroed memory without writing their slots.
        // SAFETY: checking that zero bytes are a valid `Slot` and the empty one; every
        // field is an integer, a fieldless enum whose zero is `Null`, or an `Option`
        // whose zero tag is `None`.
        let zeroed: super::super::Slot = unsafe { core::mem::zeroed() };
        assert_eq!(zeroed, super::super::Slot::EMPTY);
    }

    #[test]
    fn state_round_trips_through_a_capability() {
        let mut u = UntypedState::new(0x4000_0000, 47, true).unwrap();
        u.watermark = 1 << 47;
        let cap = u.capability();
        assert_eq!(UntypedState::from_cap(&cap), Ok(u));
        let bad = cap.with_extra(cap.extra + (1 << WATERMARK_SHIFT));
        assert_eq!(UntypedState::from_cap(&bad), Err(CapError::InvalidSize));
        let ep = Capability::new(ObjectType::Endpoint, 0, Rights::ALL);
        assert_eq!(
            UntypedState::from_cap(&ep),
            Err(CapError::WrongType {
                expected: ObjectType::Untyped,
                found: ObjectType::Endpoint
            })
        );
    }
}

/// Splits `[start, end)` into the largest naturally aligned power-of-two blocks of at
/// least 4 KiB, calling `each(base, size_bits)`.
pub fn split_into_untyped(start: u64, end: u64, mut each: impl FnMut(u64, u8)) {
    let mut base = start;
    while base < end {
        let alignment_bits = base.trailing_zeros().min(63) as u8;
        let fit_bits = (63 - (end - base).leading_zeros()) as u8;
        let bits = alignment_bits.min(fit_bits).min(super::UNTYPED_MAX_BITS);
        if bits < super::UNTYPED_MIN_BITS {
            return;
        }
        each(base, bits);
        base += 1 << bits;
    }
}

#[cfg(test)]
mod split_tests {
    use super::split_into_untyped;

    #[test]
    fn splits_into_aligned_power_of_two_blocks() {
        let mut blocks = Vec::new();
        split_into_untyped(0x4010_3000, 0x5000_0000, |base, bits| {
            blocks.push((base, bits))
        });
        let mut at = 0x4010_3000;
        for &(base, bits) in &blocks {
            assert_eq!(base, at);
            assert_eq!(base % (1 << bits), 0);
            at += 1 << bits;
        }
        assert_eq!(at, 0x5000_0000);
        assert_eq!(blocks[0], (0x4010_3000, 12));
        assert!(blocks.iter().any(|&(_, bits)| bits == 27));
        let mut none = Vec::new();
        split_into_untyped(0x1000, 0x1800, |base, bits| none.push((base, bits)));
        assert!(none.is_empty());
    }
}
