//! Slots, the slot store, and the operations that add capabilities to the tree.

use super::{CapError, Capability, ObjectType, Rights, UntypedState};

/// Names one capability slot: a CNode and an index into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotRef {
    /// Which CNode (the kernel's choice of key, e.g. the CNode's address).
    pub cnode: u64,
    /// Index of the slot within the CNode.
    pub index: u32,
}

impl SlotRef {
    /// Slot `index` of CNode `cnode`.
    pub const fn new(cnode: u64, index: u32) -> Self {
        Self { cnode, index }
    }
}

/// A capability slot: the capability and its place in the derivation tree.
///
/// An empty slot holds [`Capability::NULL`] and no links. Siblings form a doubly
/// linked list whose head is the parent's `first_child`; capabilities without a parent
/// may still have siblings (the children of a deleted root).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Slot {
    /// The capability held; [`Capability::NULL`] if empty.
    pub cap: Capability,
    /// The capability this one was derived from (or retyped from).
    pub parent: Option<SlotRef>,
    /// The first capability derived from this one.
    pub first_child: Option<SlotRef>,
    /// The next capability with the same parent.
    pub next_sibling: Option<SlotRef>,
    /// The previous capability with the same parent.
    pub prev_sibling: Option<SlotRef>,
}

impl Slot {
    /// An empty slot.
    pub const EMPTY: Self = Self {
        cap: Capability::NULL,
        parent: None,
        first_child: None,
        next_sibling: None,
        prev_sibling: None,
    };
}

/// Where slots live.
///
/// `None` means the slot does not exist (no such CNode, or an index outside it). A
/// slot that holds a capability, or that a link points to, must stay available until
/// its capability is deleted: the operations treat a link to a missing slot as a
/// kernel bug and panic.
pub trait SlotStore {
    /// The slot at `at`, if it exists.
    fn slot(&self, at: SlotRef) -> Option<&Slot>;
    /// The slot at `at`, mutably, if it exists.
    fn slot_mut(&mut self, at: SlotRef) -> Option<&mut Slot>;
}

/// What [`CSpace::delete`] removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The capability that was in the slot.
    pub cap: Capability,
    /// No other slot refers to the same object: the kernel should destroy it.
    pub last_reference: bool,
}

/// The capability operations over a [`SlotStore`].
///
/// Every operation checks its arguments before changing anything, so on error the
/// store is exactly as it was.
pub struct CSpace<'a, S: SlotStore + ?Sized> {
    store: &'a mut S,
}

impl<'a, S: SlotStore + ?Sized> CSpace<'a, S> {
    /// Operations over `store`.
    pub fn new(store: &'a mut S) -> Self {
        Self { store }
    }

    /// The underlying store, read-only.
    pub fn store(&self) -> &S {
        self.store
    }

    /// The capability at `at`: [`CapError::InvalidSlot`] if the slot does not exist,
    /// [`CapError::EmptySlot`] if it is empty.
    pub fn lookup(&self, at: SlotRef) -> Result<Capability, CapError> {
        Ok(self.occupied(at)?.cap)
    }

    /// Whether any capability was derived from (or retyped from) the one at `at`.
    pub fn has_children(&self, at: SlotRef) -> Result<bool, CapError> {
        Ok(self.occupied(at)?.first_child.is_some())
    }

    /// The state of the untyped capability at `at` ([`CapError::WrongType`] for
    /// another type).
    pub fn untyped_state(&self, at: SlotRef) -> Result<UntypedState, CapError> {
        UntypedState::from_cap(&self.occupied(at)?.cap)
    }

    /// Puts an original capability, with no parent, into the empty slot `at` (boot
    /// time). The caller guarantees no other capability refers to the same object.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::SlotOccupied`], and
    /// [`CapError::InvalidOperation`] for the null capability.
    pub fn insert_root(&mut self, at: SlotRef, cap: Capability) -> Result<(), CapError> {
        self.vacant(at)?;
        if cap.is_null() {
            return Err(CapError::InvalidOperation);
        }
        self.node_mut(at).cap = cap;
        Ok(())
    }

    /// Puts `cap`, a capability to a new object, into the empty slot `to` as a child
    /// of the capability at `parent`: a retype child of an untyped, or an IRQ handler
    /// issued by IRQ control. The caller guarantees no other capability refers to the
    /// object.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`] (parent),
    /// [`CapError::SlotOccupied`] (destination), and [`CapError::InvalidOperation`]
    /// unless the parent is an untyped and `cap` a memory object
    /// ([`ObjectType::is_memory`]), or the parent is IRQ control and `cap` an IRQ handler;
    /// also if `cap` refers to the parent's own object.
    pub fn insert_child(
        &mut self,
        parent: SlotRef,
        to: SlotRef,
        cap: Capability,
    ) -> Result<(), CapError> {
        let p = self.occupied(parent)?.cap;
        self.vacant(to)?;
        let pairs = match p.object_type {
            ObjectType::Untyped => cap.object_type.is_memory(),
            ObjectType::IrqControl => cap.object_type == ObjectType::IrqHandler,
            _ => false,
        };
        if !pairs || p.same_object(&cap) {
            return Err(CapError::InvalidOperation);
        }
        self.node_mut(to).cap = cap;
        self.link_first_child(parent, to);
        Ok(())
    }

    /// Copies (`badge` `None`) or mints (`badge` `Some`) the capability at `from` into
    /// the empty slot `to`, as a child of `from`, and returns the new capability.
    ///
    /// The new rights are `rights ∩` the source's. A copy keeps the source's badge; a
    /// mint sets a new one (0 meaning none), which only endpoints and notifications
    /// carry, and only an unbadged source may be minted. A frame copy is unmapped
    /// (`extra` and the mapping tag in `badge` 0).
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`] (source),
    /// [`CapError::SlotOccupied`] (destination), [`CapError::InvalidOperation`] for a
    /// type that cannot be derived ([`ObjectType::is_derivable`](super::ObjectType::is_derivable)) or a badge on a type
    /// without badges, [`CapError::AlreadyBadged`] to mint a badged capability.
    pub fn derive(
        &mut self,
        from: SlotRef,
        to: SlotRef,
        rights: Rights,
        badge: Option<u64>,
    ) -> Result<Capability, CapError> {
        let src = self.occupied(from)?.cap;
        self.vacant(to)?;
        if !src.object_type.is_derivable() {
            return Err(CapError::InvalidOperation);
        }
        let mut cap = src;
        cap.rights = src.rights.intersection(rights);
        if let Some(badge) = badge {
            if !src.object_type.is_badgeable() {
                return Err(CapError::InvalidOperation);
            }
            if src.badge != 0 {
                return Err(CapError::AlreadyBadged);
            }
            cap.badge = badge;
        }
        if src.object_type.is_frame() {
            // A copy is unmapped: no mapping record, no mapping tag.
            cap.extra = 0;
            cap.badge = 0;
        }
        self.node_mut(to).cap = cap;
        self.link_first_child(from, to);
        Ok(cap)
    }

    /// Moves the capability at `from` into the empty slot `to`, with its place in the
    /// tree: its parent, siblings and children now refer to `to`. `from` ends empty.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`] (source),
    /// [`CapError::SlotOccupied`] (destination, including `from == to`).
    pub fn move_cap(&mut self, from: SlotRef, to: SlotRef) -> Result<(), CapError> {
        let old = *self.occupied(from)?;
        self.vacant(to)?;
        *self.node_mut(to) = old;
        self.replace_in_list(&old, to, to);
        self.reparent_children(old.first_child, Some(to));
        *self.node_mut(from) = Slot::EMPTY;
        Ok(())
    }

    /// The slot at `at`, which must exist.
    pub(super) fn get(&self, at: SlotRef) -> Result<&Slot, CapError> {
        self.store.slot(at).ok_or(CapError::InvalidSlot)
    }

    /// The slot at `at`, which must exist and hold a capability.
    pub(super) fn occupied(&self, at: SlotRef) -> Result<&Slot, CapError> {
        let slot = self.get(at)?;
        if slot.cap.is_null() {
            return Err(CapError::EmptySlot);
        }
        Ok(slot)
    }

    /// Checks that the slot at `at` exists and is empty.
    pub(super) fn vacant(&self, at: SlotRef) -> Result<(), CapError> {
        if self.get(at)?.cap.is_null() {
            Ok(())
        } else {
            Err(CapError::SlotOccupied)
        }
    }

    /// A slot reached through a link or already validated.
    pub(super) fn node(&self, at: SlotRef) -> &Slot {
        self.store
            .slot(at)
            .expect("capability derivation tree links to a missing slot")
    }

    /// A slot reached through a link or already validated, mutably.
    pub(super) fn node_mut(&mut self, at: SlotRef) -> &mut Slot {
        self.store
            .slot_mut(at)
            .expect("capability derivation tree links to a missing slot")
    }

    /// Makes the unlinked slot `child` the first child of `parent`.
    fn link_first_child(&mut self, parent: SlotRef, child: SlotRef) {
        let old_first = self.node(parent).first_child;
        if let Some(f) = old_first {
            self.node_mut(f).prev_sibling = Some(child);
        }
        let c = self.node_mut(child);
        c.parent = Some(parent);
        c.prev_sibling = None;
        c.next_sibling = old_first;
        self.node_mut(parent).first_child = Some(child);
    }

    /// Points the neighbours of `old` (its parent and siblings) at the sibling chain
    /// `first..=last` instead, whose outer links are set to `old`'s.
    pub(super) fn replace_in_list(&mut self, old: &Slot, first: SlotRef, last: SlotRef) {
        self.node_mut(first).prev_sibling = old.prev_sibling;
        self.node_mut(last).next_sibling = old.next_sibling;
        match (old.prev_sibling, old.parent) {
            (Some(prev), _) => self.node_mut(prev).next_sibling = Some(first),
            (None, Some(parent)) => self.node_mut(parent).first_child = Some(first),
            (None, None) => {}
        }
        if let Some(next) = old.next_sibling {
            self.node_mut(next).prev_sibling = Some(last);
        }
    }

    /// Removes `old` from its sibling list (it has no children).
    pub(super) fn unlink(&mut self, old: &Slot) {
        match (old.prev_sibling, old.parent) {
            (Some(prev), _) => self.node_mut(prev).next_sibling = old.next_sibling,
            (None, Some(parent)) => self.node_mut(parent).first_child = old.next_sibling,
            (None, None) => {}
        }
        if let Some(next) = old.next_sibling {
            self.node_mut(next).prev_sibling = old.prev_sibling;
        }
    }

    /// Sets the parent of every slot in the sibling chain from `first`; returns the
    /// last slot of the chain.
    pub(super) fn reparent_children(
        &mut self,
        first: Option<SlotRef>,
        parent: Option<SlotRef>,
    ) -> Option<SlotRef> {
        let (mut at, mut last) = (first, None);
        while let Some(c) = at {
            let slot = self.node_mut(c);
            slot.parent = parent;
            last = Some(c);
            at = slot.next_sibling;
        }
        last
    }
}
