//! Retype: turning untyped memory into objects.

use super::{CSpace, CapError, Capability, ObjectType, Rights, SlotRef, SlotStore, UntypedState};

impl<S: SlotStore + ?Sized> CSpace<'_, S> {
    /// Carves `count` objects of type `ty` from the untyped capability at `untyped`
    /// and puts a capability to each (all rights) into the empty slots `first.index ..
    /// first.index + count` of CNode `first.cnode`, as children of the untyped.
    /// Returns the address of the first object; object `i` is at
    /// `first_address + (i << size_bits(ty, user_size_bits))`. The objects' memory must
    /// be zero already unless the untyped is device memory or `ty` is untyped: the kernel
    /// zeroes it ahead ([`CSpace::retype_source`], [`UntypedState::zeroing_step`]), then
    /// initialises what needs more than zero.
    ///
    /// `user_size_bits` is the size for untyped and the radix for a CNode (see
    /// [`size_bits`](super::size_bits)). An untyped with no children starts again from
    /// its base; its watermark is updated in its capability.
    ///
    /// Errors, with nothing changed: [`CapError::InvalidSlot`] (including a range past
    /// the end of the index space), [`CapError::EmptySlot`], [`CapError::WrongType`]
    /// (not untyped), [`CapError::SlotOccupied`], [`CapError::InvalidSize`],
    /// [`CapError::InvalidOperation`] (`count == 0`, a type not made from memory, or an
    /// untyped child as large as its parent),
    /// [`CapError::DeviceMemoryType`], [`CapError::NotEnoughMemory`].
    pub fn retype(
        &mut self,
        untyped: SlotRef,
        ty: ObjectType,
        user_size_bits: u8,
        first: SlotRef,
        count: u32,
    ) -> Result<u64, CapError> {
        let mut state = self.retype_source(untyped, ty, user_size_bits, first, count)?;
        let (base, bits) = state.allocate_objects(ty, user_size_bits, u64::from(count))?;
        let end = first.index + count;
        for (i, index) in (first.index..end).enumerate() {
            let address = base + ((i as u64) << bits);
            let extra = match ty {
                ObjectType::Untyped => UntypedState {
                    base: address,
                    size_bits: bits,
                    is_device: state.is_device,
                    watermark: 0,
                    zeroed: 0,
                }
                .to_extra(),
                ObjectType::CNode => u64::from(user_size_bits),
                _ => 0,
            };
            let cap = Capability::new(ty, address, Rights::ALL).with_extra(extra);
            self.insert_child(untyped, SlotRef::new(first.cnode, index), cap)?;
        }
        state.store(&mut self.node_mut(untyped).cap);
        Ok(base)
    }

    /// Checks a [`CSpace::retype`] without changing anything, and returns the state
    /// the untyped at `untyped` would allocate from (reset if it has no children), for
    /// which the allocation is known to fit ([`UntypedState::allocation_end`] gives its
    /// end). The kernel uses it to zero the memory first, in bounded steps recorded with
    /// [`CSpace::set_untyped_state`]. Errors as [`CSpace::retype`].
    pub fn retype_source(
        &self,
        untyped: SlotRef,
        ty: ObjectType,
        user_size_bits: u8,
        first: SlotRef,
        count: u32,
    ) -> Result<UntypedState, CapError> {
        let slot = *self.occupied(untyped)?;
        let mut state = UntypedState::from_cap(&slot.cap)?;
        let end = first
            .index
            .checked_add(count)
            .ok_or(CapError::InvalidSlot)?;
        for index in first.index..end {
            self.vacant(SlotRef::new(first.cnode, index))?;
        }
        if slot.first_child.is_none() {
            state.reset();
        }
        let mut trial = state;
        let (_, bits) = trial.allocate_objects(ty, user_size_bits, u64::from(count))?;
        if ty == ObjectType::Untyped && bits == state.size_bits {
            // The child would be indistinguishable from its parent.
            return Err(CapError::InvalidOperation);
        }
        Ok(state)
    }

    /// Records `state` in the untyped capability at `untyped` (its watermark and zeroing
    /// mark). Only for a state read from that capability by [`CSpace::retype_source`]
    /// whose zeroing mark the caller has since made true: the memory it newly covers is
    /// zero.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`],
    /// [`CapError::WrongType`] (not untyped), [`CapError::InvalidOperation`] (another
    /// region).
    pub fn set_untyped_state(
        &mut self,
        untyped: SlotRef,
        state: &UntypedState,
    ) -> Result<(), CapError> {
        let current = self.untyped_state(untyped)?;
        if current.base != state.base || current.size_bits != state.size_bits {
            return Err(CapError::InvalidOperation);
        }
        state.store(&mut self.node_mut(untyped).cap);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{TestStore, check_invariants, fails_unchanged, s, with_untyped};
    use super::super::*;

    #[test]
    fn retype_places_objects_and_records_the_watermark() {
        let mut store = with_untyped(16);
        let mut cs = CSpace::new(&mut store);
        assert_eq!(
            cs.retype(s(0), ObjectType::Endpoint, 0, s(1), 2),
            Ok(0x4000_0000)
        );
        assert_eq!(cs.lookup(s(2)).unwrap().object, 0x4000_0020);
        assert_eq!(
            cs.retype(s(0), ObjectType::Tcb, 0, s(3), 1),
            Ok(0x4000_0800)
        );
        assert_eq!(
            cs.retype(s(0), ObjectType::CNode, 4, s(4), 1),
            Ok(0x4000_1000)
        );
        assert_eq!(cs.lookup(s(4)).unwrap().extra, 4);
        assert_eq!(cs.untyped_state(s(0)).unwrap().watermark, 0x1800);
        let child = cs.retype(s(0), ObjectType::Untyped, 16, s(5), 1).unwrap();
        assert_eq!(child, 0x4001_0000);
        let state = cs.untyped_state(s(5)).unwrap();
        assert_eq!(
            (state.base, state.size_bits, state.watermark),
            (child, 16, 0)
        );
        assert_eq!(
            cs.untyped_state(s(1)).unwrap_err(),
            CapError::WrongType {
                expected: ObjectType::Untyped,
                found: ObjectType::Endpoint
            }
        );
        check_invariants(&store);

        use CapError::*;
        let too_big = NotEnoughMemory {
            requested: 1 << 20,
            available: 0x8_0000,
        };
        let cases: [(ObjectType, u8, SlotRef, u32, CapError); 8] = [
            (ObjectType::Endpoint, 0, s(5), 1, SlotOccupied),
            (ObjectType::Endpoint, 0, s(14), 3, InvalidSlot),
            (
                ObjectType::Endpoint,
                0,
                SlotRef::new(0, u32::MAX),
                2,
                InvalidSlot,
            ),
            (ObjectType::Endpoint, 0, s(6), 0, InvalidOperation),
            (ObjectType::IrqHandler, 0, s(6), 1, InvalidOperation),
            (ObjectType::CNode, 13, s(6), 1, InvalidSize),
            (ObjectType::Untyped, 19, s(6), 2, too_big),
            (
                ObjectType::Frame2M,
                0,
                s(6),
                1,
                NotEnoughMemory {
                    requested: 1 << 21,
                    available: 0,
                },
            ),
        ];
        for (ty, bits, first, count, err) in cases {
            fails_unchanged(&mut store, err, |cs| {
                cs.retype(s(0), ty, bits, first, count)
            });
        }
        fails_unchanged(&mut store, EmptySlot, |cs| {
            cs.retype(s(9), ObjectType::Tcb, 0, s(6), 1)
        });
        // An untyped child as large as its parent would be the same object.
        fails_unchanged(&mut store, InvalidOperation, |cs| {
            cs.retype(s(5), ObjectType::Untyped, 16, s(6), 1)
        });
    }

    #[test]
    fn device_untyped_retypes_only_to_frames() {
        let mut store = TestStore::new(1, 4);
        let mut cs = CSpace::new(&mut store);
        let dev = UntypedState::new(0x0900_0000, 21, true).unwrap();
        cs.insert_root(s(0), dev.capability()).unwrap();
        fails_unchanged(&mut store, CapError::DeviceMemoryType, |cs| {
            cs.retype(s(0), ObjectType::Endpoint, 0, s(1), 1)
        });
        let mut cs = CSpace::new(&mut store);
        cs.retype(s(0), ObjectType::Untyped, 12, s(1), 1).unwrap();
        assert!(cs.untyped_state(s(1)).unwrap().is_device);
        cs.retype(s(1), ObjectType::Frame4K, 0, s(2), 1).unwrap();
    }
}
