//! Kernel object types, their sizes, and the capability value itself.

use super::{CapError, Rights, untyped};

/// The type of a kernel object: [`kaal_abi::ObjectType`], the one definition the kernel
/// and user space share (numbers, and which types may be copied, badged, made from
/// memory).
pub use kaal_abi::ObjectType;

/// Log2 of a CNode slot's size in bytes (128-byte slots: one [`Capability`] and four
/// derivation-tree links).
pub const SLOT_SIZE_BITS: u8 = 7;
/// Smallest untyped object that retype creates, as log2 bytes.
pub const UNTYPED_MIN_BITS: u8 = 12;
/// Largest untyped object, as log2 bytes.
pub const UNTYPED_MAX_BITS: u8 = 47;
/// Largest CNode radix (log2 of the slot count).
pub const CNODE_MAX_RADIX: u8 = 12;

/// Size of a thread control block, as a power of two (2 KiB: registers, FP state,
/// three capability slots and scheduling and IPC state).
pub const TCB_SIZE_BITS: u8 = 11;

/// Log2 of the size in bytes of an object of type `ty`, given the caller's size
/// argument (the size for untyped, the radix for a CNode, ignored otherwise).
///
/// Fails with [`CapError::InvalidSize`] for an untyped size outside
/// [`UNTYPED_MIN_BITS`]`..=`[`UNTYPED_MAX_BITS`] or a radix outside
/// `1..=`[`CNODE_MAX_RADIX`], and with [`CapError::InvalidOperation`] for types that
/// are not made from memory (null, IRQ control, IRQ handler).
pub const fn size_bits(ty: ObjectType, user_size_bits: u8) -> Result<u8, CapError> {
    match ty {
        ObjectType::Untyped => {
            if user_size_bits >= UNTYPED_MIN_BITS && user_size_bits <= UNTYPED_MAX_BITS {
                Ok(user_size_bits)
            } else {
                Err(CapError::InvalidSize)
            }
        }
        ObjectType::CNode => {
            if user_size_bits >= 1 && user_size_bits <= CNODE_MAX_RADIX {
                Ok(SLOT_SIZE_BITS + user_size_bits)
            } else {
                Err(CapError::InvalidSize)
            }
        }
        ObjectType::Tcb => Ok(TCB_SIZE_BITS),
        ObjectType::Endpoint | ObjectType::Notification => Ok(5),
        ObjectType::Frame4K | ObjectType::AddressSpace => Ok(12),
        // The translation table and, in the second page, the tags of its entries (the
        // mapping that installed each: see `crate::arch::page_table`).
        ObjectType::PageTable => Ok(13),
        ObjectType::Frame2M => Ok(21),
        ObjectType::Null
        | ObjectType::IrqControl
        | ObjectType::IrqHandler
        | ObjectType::SystemControl
        | ObjectType::Console => Err(CapError::InvalidOperation),
    }
}

/// A capability: a typed, rights-bearing reference to one kernel object.
///
/// Stored by value in CNode slots; 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capability {
    /// What the object is; [`ObjectType::Null`] for an empty slot.
    pub object_type: ObjectType,
    /// Which object: its physical address; the IRQ number for an IRQ handler; 0 for
    /// IRQ control.
    pub object: u64,
    /// What the holder may do with the object.
    pub rights: Rights,
    /// The badge delivered with messages sent through this capability; 0 for none. For
    /// a mapped frame, the tag of its mapping instead (frames carry no badges; see
    /// [`crate::vspace`]).
    pub badge: u64,
    /// Type-specific data: for untyped, the size, device flag and watermark (see
    /// [`UntypedState`](super::UntypedState)); for a CNode, its radix; for an address
    /// space, its ASID; for a frame or page table, where it is mapped
    /// ([`crate::vspace::MappingRecord`]), or 0.
    pub extra: u64,
}

impl Capability {
    /// The capability in an empty slot.
    pub const NULL: Self = Self {
        object_type: ObjectType::Null,
        object: 0,
        rights: Rights::NONE,
        badge: 0,
        extra: 0,
    };

    /// A capability to `object` of type `object_type`, unbadged, with `extra` 0.
    pub const fn new(object_type: ObjectType, object: u64, rights: Rights) -> Self {
        Self {
            object_type,
            object,
            rights,
            badge: 0,
            extra: 0,
        }
    }

    /// The same capability with `extra` set.
    #[must_use]
    pub const fn with_extra(self, extra: u64) -> Self {
        Self { extra, ..self }
    }

    /// Whether this is the null capability (an empty slot).
    pub const fn is_null(&self) -> bool {
        matches!(self.object_type, ObjectType::Null)
    }

    /// Whether both capabilities refer to the same object: same type and object, and
    /// for untyped also the same size (an untyped child can start at its parent's
    /// base). Null refers to nothing, so it is never the same object as anything.
    pub fn same_object(&self, other: &Self) -> bool {
        !self.is_null()
            && self.object_type == other.object_type
            && self.object == other.object
            && (self.object_type != ObjectType::Untyped
                || untyped::extra_size_bits(self.extra) == untyped::extra_size_bits(other.extra))
    }
}

impl Default for Capability {
    fn default() -> Self {
        Self::NULL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_is_32_bytes() {
        assert_eq!(core::mem::size_of::<Capability>(), 32);
    }

    #[test]
    fn object_sizes() {
        use ObjectType::*;
        assert_eq!(size_bits(Tcb, 0), Ok(TCB_SIZE_BITS));
        assert_eq!(size_bits(Endpoint, 40), Ok(5));
        assert_eq!(size_bits(Notification, 0), Ok(5));
        assert_eq!(size_bits(Frame4K, 0), Ok(12));
        assert_eq!(size_bits(Frame2M, 0), Ok(21));
        assert_eq!(size_bits(PageTable, 0), Ok(13));
        assert_eq!(size_bits(AddressSpace, 0), Ok(12));
        assert_eq!(size_bits(CNode, 1), Ok(SLOT_SIZE_BITS + 1));
        assert_eq!(size_bits(CNode, 12), Ok(SLOT_SIZE_BITS + 12));
        assert_eq!(size_bits(CNode, 0), Err(CapError::InvalidSize));
        assert_eq!(size_bits(CNode, 13), Err(CapError::InvalidSize));
        assert_eq!(size_bits(Untyped, 12), Ok(12));
        assert_eq!(size_bits(Untyped, 47), Ok(47));
        assert_eq!(size_bits(Untyped, 11), Err(CapError::InvalidSize));
        assert_eq!(size_bits(Untyped, 48), Err(CapError::InvalidSize));
        for ty in [Null, IrqControl, IrqHandler, SystemControl, Console] {
            assert_eq!(size_bits(ty, 12), Err(CapError::InvalidOperation));
        }
    }

    #[test]
    fn same_object() {
        let ep = Capability::new(ObjectType::Endpoint, 0x1000, Rights::ALL);
        let mut badged = ep;
        badged.badge = 5;
        badged.rights = Rights::READ;
        assert!(ep.same_object(&badged));
        assert!(!ep.same_object(&Capability::new(
            ObjectType::Notification,
            0x1000,
            Rights::ALL
        )));
        assert!(!Capability::NULL.same_object(&Capability::NULL));
        let big = Capability::new(ObjectType::Untyped, 0x10_0000, Rights::ALL).with_extra(20);
        let small = Capability::new(ObjectType::Untyped, 0x10_0000, Rights::ALL).with_extra(12);
        assert!(!big.same_object(&small));
        assert!(big.same_object(&big.with_extra(20 | 0x1000 << 8)));
    }
}
