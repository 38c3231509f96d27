//! Kernel objects in memory retyped from untyped RAM, and the capability system calls.
//!
//! Capability slots live in CNode objects, reached through the linear map; the
//! derivation-tree logic is the host-tested [`crate::capability`] core, over
//! [`KernelSlots`].

use crate::arch::mmu::phys_to_virt;
use crate::capability::{
    CSpace, CapError, Capability, DeleteOutcome, ObjectType, Rights, SLOT_SIZE_BITS, Slot, SlotRef,
    SlotStore, UntypedState, size_bits,
};
use kaal_abi::Error;

/// The CNode slots in RAM, through the linear map.
///
/// Every `SlotRef` that reaches this store is either checked against a CNode
/// capability's radix by [`resolve`], or a link the capability core stored, which it only
/// takes from checked references.
pub struct KernelSlots;

fn slot_address(at: SlotRef) -> *mut Slot {
    phys_to_virt(at.cnode + (u64::from(at.index) << SLOT_SIZE_BITS)) as *mut Slot
}

impl SlotStore for KernelSlots {
    fn slot(&self, at: SlotRef) -> Option<&Slot> {
        // SAFETY: `at` names a slot inside a live CNode (see the type's documentation);
        // CNodes are RAM in the linear map, aligned to their size, and only touched by
        // the kernel under its lock.
        Some(unsafe { &*slot_address(at) })
    }

    fn slot_mut(&mut self, at: SlotRef) -> Option<&mut Slot> {
        // SAFETY: as in `slot`; `&mut self` keeps this the only reference handed out.
        Some(unsafe { &mut *slot_address(at) })
    }
}

impl KernelSlots {
    /// The capability in `at`, mutably, for the kernel to record per-capability state
    /// (the ASID of an address space).
    pub fn slot_cap_mut(&mut self, at: SlotRef) -> &mut Capability {
        &mut self.slot_mut(at).expect("kernel slots always exist").cap
    }
}

/// Maps a capability-core error to the ABI's error code.
pub fn abi_error(error: CapError) -> Error {
    match error {
        CapError::InvalidSlot | CapError::EmptySlot => Error::InvalidCapability,
        CapError::SlotOccupied => Error::SlotOccupied,
        CapError::WrongType { .. } => Error::WrongObjectType,
        CapError::MissingRights => Error::MissingRights,
        CapError::AlreadyBadged | CapError::InvalidOperation | CapError::DeviceMemoryType => {
            Error::IllegalOperation
        }
        CapError::NotEnoughMemory { .. } => Error::NotEnoughMemory,
        CapError::InvalidSize => Error::InvalidArgument,
    }
}

/// Turns a capability pointer into a slot of the CSpace whose root CNode capability is
/// `cspace`: a pointer is a slot index, checked against the CNode's size. Slot 0 is never
/// valid (the ABI's null pointer): nothing can be looked up in it or put into it.
pub fn resolve(cspace: &Capability, pointer: u64) -> Result<SlotRef, Error> {
    let radix = cspace.extra;
    if cspace.object_type != ObjectType::CNode || pointer == 0 || pointer >= 1 << radix {
        return Err(Error::InvalidCapability);
    }
    Ok(SlotRef::new(cspace.object, pointer as u32))
}

/// Fills a CNode's memory with empty slots.
///
/// # Safety
/// `[address, address + (1 << (SLOT_SIZE_BITS + radix)))` must be RAM owned by this
/// CNode and used by nothing else.
pub unsafe fn initialise_cnode(address: u64, radix: u8) {
    for index in 0..1u32 << radix {
        // SAFETY: inside the CNode's memory, per the caller.
        unsafe { slot_address(SlotRef::new(address, index)).write(Slot::EMPTY) };
    }
}

/// The capability for a CNode of `radix` at `address`.
pub fn cnode_capability(address: u64, radix: u8) -> Capability {
    Capability::new(ObjectType::CNode, address, Rights::ALL).with_extra(u64::from(radix))
}

/// How much memory retype zeroes between two preemption points: 64 KiB, some 10,000 to
/// 20,000 instructions with interrupts masked.
const ZEROING_STEP_BYTES: u64 = 64 << 10;

/// Whether an interrupt is pending at this CPU (`ISR_EL1.I`), masked or not: the
/// kernel's preemption point. Reading it acknowledges nothing.
pub(crate) fn interrupt_pending() -> bool {
    const ISR_EL1_I: u64 = 1 << 7;
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    if crate::arch::test_hooks::take_forced_preemption() {
        return true;
    }
    crate::arch::read_sysreg!("isr_el1") & ISR_EL1_I != 0
}

/// Whether retyped objects of type `ty` need their memory zeroed first: all but untyped
/// (whose memory is zeroed when it becomes objects) and device memory (never touched).
fn needs_zeroing(ty: ObjectType, device: bool) -> bool {
    !device && ty != ObjectType::Untyped
}

/// Checks that a fresh CNode's zeroed memory reads as empty slots: retype relies on
/// zero being [`Slot::EMPTY`] (a host test pins the representation down), so a CNode
/// of any size is made without writing its slots.
fn check_cnode_is_empty(address: u64) {
    debug_assert!(
        CSpace::new(&mut KernelSlots)
            .lookup(SlotRef::new(address, 0))
            .is_err()
            && KernelSlots.slot(SlotRef::new(address, 0)) == Some(&Slot::EMPTY),
        "zeroed memory is not an empty slot"
    );
}

/// What a thread may ask of its CSpace.
pub struct CapabilityCalls<'a> {
    /// The caller's CSpace root.
    pub cspace: &'a Capability,
}

type CallResult = Result<(u64, u64), Error>;

impl CapabilityCalls<'_> {
    fn slot(&self, pointer: u64) -> Result<SlotRef, Error> {
        resolve(self.cspace, pointer)
    }

    /// `cap_copy` and `cap_mint`.
    pub fn derive(
        &self,
        source: u64,
        destination: u64,
        rights: u64,
        badge: Option<u64>,
    ) -> CallResult {
        let rights = Rights::from_bits(rights).ok_or(Error::InvalidArgument)?;
        let (from, to) = (self.slot(source)?, self.slot(destination)?);
        CSpace::new(&mut KernelSlots)
            .derive(from, to, rights, badge)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// Slot `index` of the CNode named by capability `cnode` (which needs the write
    /// right).
    fn foreign_slot(&self, cnode: u64, index: u64) -> Result<SlotRef, Error> {
        let target = CSpace::new(&mut KernelSlots)
            .lookup(self.slot(cnode)?)
            .map_err(abi_error)?;
        if target.object_type != ObjectType::CNode {
            return Err(Error::WrongObjectType);
        }
        if !target.rights.contains(Rights::WRITE) {
            return Err(Error::MissingRights);
        }
        resolve(&target, index)
    }

    /// `cap_copy_to` and `cap_mint_to`.
    pub fn derive_to(
        &self,
        source: u64,
        cnode: u64,
        index: u64,
        rights: u64,
        badge: Option<u64>,
    ) -> CallResult {
        let rights = Rights::from_bits(rights).ok_or(Error::InvalidArgument)?;
        let (from, to) = (self.slot(source)?, self.foreign_slot(cnode, index)?);
        CSpace::new(&mut KernelSlots)
            .derive(from, to, rights, badge)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// `cap_move_to`.
    pub fn move_to(&self, source: u64, cnode: u64, index: u64) -> CallResult {
        let (from, to) = (self.slot(source)?, self.foreign_slot(cnode, index)?);
        CSpace::new(&mut KernelSlots)
            .move_cap(from, to)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// `cap_move`.
    pub fn move_cap(&self, source: u64, destination: u64) -> CallResult {
        let (from, to) = (self.slot(source)?, self.slot(destination)?);
        CSpace::new(&mut KernelSlots)
            .move_cap(from, to)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// `cap_delete`; `deleted` sees the outcome (whether it was the last capability).
    pub fn delete(&self, slot: u64, deleted: impl FnOnce(&DeleteOutcome)) -> CallResult {
        let at = self.slot(slot)?;
        let outcome = CSpace::new(&mut KernelSlots)
            .delete(at)
            .map_err(abi_error)?;
        deleted(&outcome);
        Ok((0, 0))
    }

    /// `cap_identify`: the object type and rights.
    pub fn identify(&self, slot: u64) -> CallResult {
        let cap = CSpace::new(&mut KernelSlots)
            .lookup(self.slot(slot)?)
            .map_err(abi_error)?;
        Ok((cap.object_type.raw(), cap.rights.bits()))
    }

    /// `untyped_retype`. Returns the address of the first object, or `None` when the
    /// call stopped at a preemption point with an interrupt pending: it has recorded
    /// its progress in the untyped capability and must be issued again (the kernel
    /// restarts it), with the same arguments or any others.
    ///
    /// The objects' memory is zeroed first, forward from the untyped's zeroing mark,
    /// [`ZEROING_STEP_BYTES`] at a time, with the mark recorded after each step and a
    /// preemption point between steps. Only when all of it is zero are the objects made,
    /// in one short step. So a stop loses no work, and a restart with different
    /// arguments (another type, count or destination, from another thread in between,
    /// or after a revoke) finds a mark that covers only zero memory not handed out.
    pub fn retype(
        &self,
        untyped: u64,
        ty: u64,
        user_size_bits: u64,
        destination: u64,
        count: u64,
    ) -> Result<Option<u64>, Error> {
        let ty = ObjectType::from_raw(ty).ok_or(Error::InvalidArgument)?;
        let user_size_bits = u8::try_from(user_size_bits).map_err(|_| Error::InvalidArgument)?;
        // Creating the objects is one step with interrupts masked: bounded.
        if count > kaal_abi::RETYPE_MAX_COUNT {
            return Err(Error::InvalidArgument);
        }
        let count = u32::try_from(count).map_err(|_| Error::InvalidArgument)?;
        let (source, first) = (self.slot(untyped)?, self.slot(destination)?);
        let mut slots = KernelSlots;
        let mut cspace = CSpace::new(&mut slots);
        // Retyping changes the untyped: a read-only copy may only be identified.
        if !cspace
            .lookup(source)
            .map_err(abi_error)?
            .rights
            .contains(Rights::WRITE)
        {
            return Err(Error::MissingRights);
        }
        let device = cspace.untyped_state(source).map_err(abi_error)?.is_device;
        // The whole destination range must lie inside this CNode.
        let last = destination
            .checked_add(u64::from(count).saturating_sub(1))
            .ok_or(Error::InvalidCapability)?;
        self.slot(last)?;
        // Every check first, so that a call that would fail zeroes nothing.
        let mut state = cspace
            .retype_source(source, ty, user_size_bits, first, count)
            .map_err(abi_error)?;
        if needs_zeroing(ty, device) {
            let end = state
                .allocation_end(ty, user_size_bits, u64::from(count))
                .map_err(abi_error)?;
            while let Some((start, length)) = state.zeroing_step(end, ZEROING_STEP_BYTES) {
                // SAFETY: `zeroing_step` names memory of this untyped RAM region (not
                // device memory) at or above its watermark, which no object owns; RAM is
                // in the linear map.
                unsafe {
                    core::ptr::write_bytes(phys_to_virt(start) as *mut u8, 0, length as usize)
                };
                // The memory up to the new mark is zero: record it before anything else.
                cspace
                    .set_untyped_state(source, &state)
                    .map_err(abi_error)?;
                if state.zeroed < end && interrupt_pending() {
                    return Ok(None);
                }
            }
        }
        let address = cspace
            .retype(source, ty, user_size_bits, first, count)
            .map_err(abi_error)?;
        if ty == ObjectType::CNode {
            let object_bits = size_bits(ty, user_size_bits).map_err(abi_error)?;
            for index in 0..u64::from(count) {
                check_cnode_is_empty(address + (index << object_bits));
            }
        }
        Ok(Some(address))
    }
}

/// The capability to untyped memory `[base, base + 2^bits)`.
pub fn untyped_capability(base: u64, bits: u8, device: bool) -> Result<Capability, CapError> {
    Ok(UntypedState::new(base, bits, device)?.capability())
}
