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
use crate::ipc::{EndpointObject, NotificationObject};
use crate::scheduler::{Queue, QueueLinks, ThreadRef};
use crate::thread::Tcb;
use kaal_abi::{Error, IpcBuffer};

/// Kernel objects in RAM, through the linear map, by the physical address their
/// capabilities name: CNode slots (a TCB's three slots among them), TCBs, endpoints,
/// notifications and IPC buffers.
///
/// Every reference the store hands out borrows it, and the kernel owns the only store,
/// so safe code can never hold two mutable references to one object, nor a reference
/// to a TCB beside one to its slots: the compiler checks what an unbounded
/// `&'static mut` from an address could not. Two TCBs (or two IPC buffers) at once are
/// handed out only as a pair of distinct objects ([`KernelObjects::tcb_pair_mut`]).
///
/// What the type does not check is that an address names a live object of the type
/// asked for: the accessors are safe functions with that precondition, which the
/// kernel upholds (as [`crate::capability::SlotStore`]'s callers do for slot
/// references), not something the compiler proves. Every address that reaches the store
/// comes from a capability of that type (the capability core checks types), from a
/// slot reference checked against a CNode's radix by [`resolve`], or from a link the
/// kernel keeps (queues, `blocked_on`, `reply_to`, bindings), which it clears when the
/// object dies; the host tests check those links after every random call. Typed handles
/// minted only from checked capabilities would move the precondition into the types.
///
/// Translation tables (through [`crate::memory::LinearTables`]), the ASID table and
/// user memory (checked copies through the caller's address space) are reached through
/// their own accessors, not this store.
pub struct KernelObjects {
    _only_one: (),
}

fn slot_address(at: SlotRef) -> *mut Slot {
    phys_to_virt(at.cnode + (u64::from(at.index) << SLOT_SIZE_BITS)) as *mut Slot
}

impl KernelObjects {
    /// The store.
    ///
    /// # Safety
    /// No other store may reach the same memory: the kernel makes one at boot and moves
    /// it into [`crate::kernel::Kernel::new`]; a host test makes one per simulated RAM.
    /// Two over the same objects would let safe code alias one object.
    pub const unsafe fn new() -> Self {
        Self { _only_one: () }
    }

    fn object<T>(physical: u64) -> *mut T {
        let pointer = phys_to_virt(physical) as *mut T;
        debug_assert!(pointer.is_aligned(), "misaligned kernel object");
        pointer
    }

    /// The TCB at `thread`.
    pub fn tcb(&self, thread: ThreadRef) -> &Tcb {
        // SAFETY: `thread` names a live TCB (the type's invariant): RAM in the linear
        // map, aligned to its size; the shared borrow of the store keeps any mutable
        // reference out while this one lives.
        unsafe { &*Self::object::<Tcb>(thread) }
    }

    /// The TCB at `thread`, mutably.
    pub fn tcb_mut(&mut self, thread: ThreadRef) -> &mut Tcb {
        // SAFETY: as in `tcb`; the exclusive borrow of the store makes this the only
        // reference into kernel objects while it lives.
        unsafe { &mut *Self::object::<Tcb>(thread) }
    }

    /// Two distinct TCBs at once (a message transfer's sender and receiver).
    ///
    /// # Panics
    /// If `a == b`: one thread cannot be both.
    pub fn tcb_pair_mut(&mut self, a: ThreadRef, b: ThreadRef) -> (&mut Tcb, &mut Tcb) {
        assert_ne!(a, b, "one thread asked for twice");
        // SAFETY: as in `tcb_mut`; two live TCBs at different addresses do not overlap
        // (objects never do), so the two references are disjoint.
        unsafe { (&mut *Self::object::<Tcb>(a), &mut *Self::object::<Tcb>(b)) }
    }

    /// The endpoint at `address`.
    pub fn endpoint_mut(&mut self, address: u64) -> &mut EndpointObject {
        // SAFETY: as in `tcb_mut`, for a live endpoint.
        unsafe { &mut *Self::object::<EndpointObject>(address) }
    }

    /// The notification at `address`.
    pub fn notification(&self, address: u64) -> &NotificationObject {
        // SAFETY: as in `tcb`, for a live notification.
        unsafe { &*Self::object::<NotificationObject>(address) }
    }

    /// The first thread waiting at the endpoint or notification at `address` (0 if
    /// none): both keep their wait queue first.
    pub fn first_waiter(&self, address: u64) -> ThreadRef {
        // SAFETY: as in `tcb`, for a live endpoint or notification (a notification
        // starts with an endpoint's fields).
        unsafe { &*Self::object::<EndpointObject>(address) }
            .queue
            .head
    }

    /// The notification at `address`, mutably.
    pub fn notification_mut(&mut self, address: u64) -> &mut NotificationObject {
        // SAFETY: as in `tcb_mut`, for a live notification.
        unsafe { &mut *Self::object::<NotificationObject>(address) }
    }

    /// The wait queue of the endpoint or notification at `address` (both keep it
    /// first).
    pub fn wait_queue_mut(&mut self, address: u64) -> &mut Queue {
        &mut self.endpoint_mut(address).queue
    }

    /// Appends `thread` to the wait queue of the endpoint or notification at `object`.
    pub fn enqueue(&mut self, object: u64, thread: ThreadRef) {
        let mut queue = *self.wait_queue_mut(object);
        queue.push_back(self, thread);
        *self.wait_queue_mut(object) = queue;
    }

    /// Takes the first thread off the wait queue of the object at `object`.
    pub fn dequeue(&mut self, object: u64) -> Option<ThreadRef> {
        let mut queue = *self.wait_queue_mut(object);
        let first = queue.pop_front(self);
        *self.wait_queue_mut(object) = queue;
        first
    }

    /// Takes `thread` (which is in it) out of the wait queue of the object at `object`.
    pub fn unqueue(&mut self, object: u64, thread: ThreadRef) {
        let mut queue = *self.wait_queue_mut(object);
        queue.remove(self, thread);
        *self.wait_queue_mut(object) = queue;
    }

    /// The IPC buffer in the frame at `frame`: a thread's IPC-buffer frame (a writable
    /// 4 KiB RAM frame, checked when the thread was configured; the thread's slot
    /// empties if the frame is deleted).
    pub fn ipc_buffer_mut(&mut self, frame: u64) -> &mut IpcBuffer {
        // SAFETY: as in `tcb_mut`, for a frame of RAM (page-sized and aligned) that the
        // kernel only touches through this store. The task may write it concurrently
        // from another CPU only on SMP; today the kernel runs with the only CPU.
        unsafe { &mut *Self::object::<IpcBuffer>(frame) }
    }

    /// Two distinct IPC buffers at once.
    ///
    /// # Panics
    /// If `a == b`.
    pub fn ipc_buffer_pair_mut(&mut self, a: u64, b: u64) -> (&IpcBuffer, &mut IpcBuffer) {
        assert_ne!(a, b, "one IPC buffer asked for twice");
        // SAFETY: as in `ipc_buffer_mut`; distinct frames do not overlap.
        unsafe {
            (
                &*Self::object::<IpcBuffer>(a),
                &mut *Self::object::<IpcBuffer>(b),
            )
        }
    }

    /// The capability in `at` ([`CapError::EmptySlot`] if there is none), read-only.
    pub fn cap(&self, at: SlotRef) -> Result<Capability, CapError> {
        let slot = self.slot(at).ok_or(CapError::InvalidSlot)?;
        if slot.cap.is_null() {
            return Err(CapError::EmptySlot);
        }
        Ok(slot.cap)
    }

    /// The capability in `at`, mutably, for the kernel to record per-capability state
    /// (the ASID of an address space).
    pub fn slot_cap_mut(&mut self, at: SlotRef) -> &mut Capability {
        &mut self.slot_mut(at).expect("kernel slots always exist").cap
    }
}

impl SlotStore for KernelObjects {
    fn slot(&self, at: SlotRef) -> Option<&Slot> {
        // SAFETY: `at` names a slot inside a live CNode or TCB (see the type's
        // documentation); slots are RAM in the linear map, aligned; the shared borrow
        // keeps mutable references out.
        Some(unsafe { &*slot_address(at) })
    }

    fn slot_mut(&mut self, at: SlotRef) -> Option<&mut Slot> {
        // SAFETY: as in `slot`; `&mut self` keeps this the only reference handed out.
        Some(unsafe { &mut *slot_address(at) })
    }
}

/// Queue links inside TCBs.
impl QueueLinks for KernelObjects {
    fn next(&self, thread: ThreadRef) -> ThreadRef {
        self.tcb(thread).next
    }
    fn previous(&self, thread: ThreadRef) -> ThreadRef {
        self.tcb(thread).previous
    }
    fn set_links(&mut self, thread: ThreadRef, previous: ThreadRef, next: ThreadRef) {
        let t = self.tcb_mut(thread);
        t.previous = previous;
        t.next = next;
    }
    fn set_next(&mut self, thread: ThreadRef, next: ThreadRef) {
        self.tcb_mut(thread).next = next;
    }
    fn set_previous(&mut self, thread: ThreadRef, previous: ThreadRef) {
        self.tcb_mut(thread).previous = previous;
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
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // boot and host tests
pub unsafe fn initialise_cnode(address: u64, radix: u8) {
    for index in 0..1u32 << radix {
        // SAFETY: inside the CNode's memory, per the caller.
        unsafe { slot_address(SlotRef::new(address, index)).write(Slot::EMPTY) };
    }
}

/// The capability for a CNode of `radix` at `address`.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // boot and host tests
pub fn cnode_capability(address: u64, radix: u8) -> Capability {
    Capability::new(ObjectType::CNode, address, Rights::ALL).with_extra(u64::from(radix))
}

/// How much memory retype zeroes between two preemption points: 64 KiB, some 10,000 to
/// 20,000 instructions with interrupts masked.
const ZEROING_STEP_BYTES: u64 = 64 << 10;

/// Whether an interrupt is pending: the kernel's preemption point.
pub(crate) fn interrupt_pending() -> bool {
    crate::arch::interrupt_pending()
}

/// Whether retyped objects of type `ty` need their memory zeroed first: all but untyped
/// (whose memory is zeroed when it becomes objects) and device memory (never touched).
fn needs_zeroing(ty: ObjectType, device: bool) -> bool {
    !device && ty != ObjectType::Untyped
}

/// Checks that a fresh CNode's zeroed memory reads as empty slots: retype relies on
/// zero being [`Slot::EMPTY`] (a host test pins the representation down), so a CNode
/// of any size is made without writing its slots.
fn check_cnode_is_empty(objects: &mut KernelObjects, address: u64) {
    debug_assert!(
        CSpace::new(&mut *objects)
            .lookup(SlotRef::new(address, 0))
            .is_err()
            && objects.slot(SlotRef::new(address, 0)) == Some(&Slot::EMPTY),
        "zeroed memory is not an empty slot"
    );
}

/// What a thread may ask of its CSpace.
pub struct CapabilityCalls<'a> {
    /// The caller's CSpace root.
    pub cspace: &'a Capability,
    /// The kernel's objects.
    pub objects: &'a mut KernelObjects,
}

type CallResult = Result<(u64, u64), Error>;

impl CapabilityCalls<'_> {
    fn slot(&self, pointer: u64) -> Result<SlotRef, Error> {
        resolve(self.cspace, pointer)
    }

    /// `cap_copy` and `cap_mint`.
    pub fn derive(
        &mut self,
        source: u64,
        destination: u64,
        rights: u64,
        badge: Option<u64>,
    ) -> CallResult {
        let rights = Rights::from_bits(rights).ok_or(Error::InvalidArgument)?;
        let (from, to) = (self.slot(source)?, self.slot(destination)?);
        CSpace::new(&mut *self.objects)
            .derive(from, to, rights, badge)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// Slot `index` of the CNode named by capability `cnode` (which needs the write
    /// right).
    fn foreign_slot(&mut self, cnode: u64, index: u64) -> Result<SlotRef, Error> {
        let target = self.objects.cap(self.slot(cnode)?).map_err(abi_error)?;
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
        &mut self,
        source: u64,
        cnode: u64,
        index: u64,
        rights: u64,
        badge: Option<u64>,
    ) -> CallResult {
        let rights = Rights::from_bits(rights).ok_or(Error::InvalidArgument)?;
        let (from, to) = (self.slot(source)?, self.foreign_slot(cnode, index)?);
        CSpace::new(&mut *self.objects)
            .derive(from, to, rights, badge)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// `cap_move_to`.
    pub fn move_to(&mut self, source: u64, cnode: u64, index: u64) -> CallResult {
        let (from, to) = (self.slot(source)?, self.foreign_slot(cnode, index)?);
        CSpace::new(&mut *self.objects)
            .move_cap(from, to)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// `cap_move`.
    pub fn move_cap(&mut self, source: u64, destination: u64) -> CallResult {
        let (from, to) = (self.slot(source)?, self.slot(destination)?);
        CSpace::new(&mut *self.objects)
            .move_cap(from, to)
            .map_err(abi_error)?;
        Ok((0, 0))
    }

    /// `cap_delete`; `deleted` sees the outcome (whether it was the last capability).
    pub fn delete(&mut self, slot: u64, deleted: impl FnOnce(&DeleteOutcome)) -> CallResult {
        let at = self.slot(slot)?;
        let outcome = CSpace::new(&mut *self.objects)
            .delete(at)
            .map_err(abi_error)?;
        deleted(&outcome);
        Ok((0, 0))
    }

    /// `cap_identify`: the object type and rights.
    pub fn identify(&mut self, slot: u64) -> CallResult {
        let cap = self.objects.cap(self.slot(slot)?).map_err(abi_error)?;
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
        &mut self,
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
        let mut cspace = CSpace::new(&mut *self.objects);
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
        resolve(self.cspace, last)?;
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
                check_cnode_is_empty(self.objects, address + (index << object_bits));
            }
        }
        Ok(Some(address))
    }
}

/// The capability to untyped memory `[base, base + 2^bits)`.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // boot and host tests
pub fn untyped_capability(base: u64, bits: u8, device: bool) -> Result<Capability, CapError> {
    Ok(UntypedState::new(base, bits, device)?.capability())
}
