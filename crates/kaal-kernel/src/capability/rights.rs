//! Access rights carried by a capability.

use core::fmt;

/// The rights a capability grants over its object: a small set of bits.
///
/// Deriving a capability intersects its rights with the source's
/// ([`Rights::intersection`]), so rights can only shrink along the derivation tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    /// No rights.
    pub const NONE: Self = Self(0);
    /// Read: receive on an endpoint, wait on a notification, map a frame readable.
    pub const READ: Self = Self(1 << 0);
    /// Write: send on an endpoint, signal a notification, map a frame writable.
    pub const WRITE: Self = Self(1 << 1);
    /// Grant: pass capabilities through an endpoint.
    pub const GRANT: Self = Self(1 << 2);
    /// Read and write.
    pub const READ_WRITE: Self = Self(Self::READ.0 | Self::WRITE.0);
    /// Every right.
    pub const ALL: Self = Self(Self::READ.0 | Self::WRITE.0 | Self::GRANT.0);

    /// The raw bits, as passed through the system-call ABI.
    pub const fn bits(self) -> u64 {
        self.0 as u64
    }

    /// The rights for `bits`, or `None` if a bit outside [`Rights::ALL`] is set.
    pub const fn from_bits(bits: u64) -> Option<Self> {
        if bits & !Self::ALL.bits() == 0 {
            Some(Self(bits as u8))
        } else {
            None
        }
    }

    /// The rights present in both `self` and `other`.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The rights present in either `self` or `other` (for building masks; deriving a
    /// capability never uses it).
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every right in `other` is also in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no right is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |r: Self, c: char| if self.contains(r) { c } else { '-' };
        write!(
            f,
            "Rights({}{}{})",
            flag(Self::READ, 'r'),
            flag(Self::WRITE, 'w'),
            flag(Self::GRANT, 'g')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_bits_rejects_unknown_bits() {
        assert_eq!(Rights::from_bits(0), Some(Rights::NONE));
        assert_eq!(Rights::from_bits(7), Some(Rights::ALL));
        assert_eq!(Rights::from_bits(2), Some(Rights::WRITE));
        assert_eq!(Rights::from_bits(8), None);
        assert_eq!(Rights::from_bits(u64::MAX), None);
        assert_eq!(Rights::from_bits(1 << 63 | 1), None);
    }

    #[test]
    fn set_operations() {
        for a in 0..8 {
            for b in 0..8 {
                let (ra, rb) = (Rights::from_bits(a).unwrap(), Rights::from_bits(b).unwrap());
                let i = ra.intersection(rb);
                assert!(ra.contains(i) && rb.contains(i));
                assert_eq!(i.bits(), a & b);
                assert_eq!(ra.union(rb).bits(), a | b);
                assert_eq!(ra.contains(rb), a & b == b);
            }
        }
        assert!(Rights::NONE.is_empty());
        assert!(Rights::ALL.contains(Rights::READ_WRITE));
        assert_eq!(format!("{:?}", Rights::READ_WRITE), "Rights(rw-)");
    }
}
