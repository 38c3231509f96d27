//! Retype: turning untyped memory into objects.

use super::{CSpace, CapError, Capability, ObjectType, Rights, SlotRef, SlotStore, UntypedState};

impl<S: SlotStore + ?Sized> CSpace<'_, S> {
    /// Carves `count` objects of type `ty` from the untyped capability at `untyped`
    /// and puts a capability to each (all rights) into the empty slots `first.index ..
    /// first.index + count` of CNode `first.cnode`, as children of the untyped.
    /// Returns the address of the first object; object `i` is at
    /// `first_address + (i << size_bits(ty, user_size_bits))`. The kernel must then
    /// initialise the objects (zero them unless the untyped is device memory).
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
        let (base, bits) = state.allocate_objects(ty, user_size_bits, u64::from(count))?;
        if ty == ObjectType::Untyped && bits == state.size_bits {
            // The child would be indistinguishable from its parent.
            return Err(CapError::InvalidOperation);
        }
        for (i, index) in (first.index..end).enumerate() {
            let address = base + ((i as u64) << bits);
            let extra = match ty {
                ObjectType::Untyped => UntypedState {
                    base: address,
                    size_bits: bits,
                    is_device: state.is_device,
                    watermark: 0,
                }
                .to_extra(),
                ObjectType::CNode => u64::from(user_size_bits),
                _ => 0,
            };
            let cap = Capability::new(ty, address, Rights::ALL).with_extra(extra);
            self.insert_child(untyped, SlotRef::new(first.cnode, index), cap)?;
        }
        self.node_mut(untyped).cap.extra = state.to_extra();
        Ok(base)
    }
}
