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
/// The state lives in the capability's `extra` word, like the rest of the
/// capability: `size_bits` in bits 0..6, the device flag in bit 6, the watermark in
/// bits 8..64 ([`UntypedState::from_cap`], [`UntypedState::to_extra`]).
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
        if state.watermark > state.size() {
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
        Capability::new(ObjectType::Untyped, self.base, Rights::ALL).with_extra(self.to_extra())
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
    pub fn reset(&mut self) {
        self.watermark = 0;
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
