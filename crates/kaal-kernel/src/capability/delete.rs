//! Removing capabilities: delete and revoke.

use super::{CSpace, CapError, Capability, DeleteOutcome, Slot, SlotRef, SlotStore};

impl<S: SlotStore + ?Sized> CSpace<'_, S> {
    /// Whether the capability at `at` is the only one referring to its object.
    ///
    /// The capabilities to one object are a run of adjacent siblings and the subtrees
    /// below them (see the module documentation), so it is enough to look at the
    /// parent, the first child and the two neighbouring siblings.
    pub fn is_last_reference(&self, at: SlotRef) -> Result<bool, CapError> {
        let slot = *self.occupied(at)?;
        Ok(self.last_reference(&slot))
    }

    fn last_reference(&self, slot: &Slot) -> bool {
        let same = |link: Option<SlotRef>| {
            link.is_some_and(|other| self.node(other).cap.same_object(&slot.cap))
        };
        !(same(slot.parent)
            || same(slot.first_child)
            || same(slot.prev_sibling)
            || same(slot.next_sibling))
    }

    /// Deletes the capability at `at` and says whether it was the last one to its
    /// object, in which case the kernel must destroy the object.
    ///
    /// Its children survive: they take its place among its parent's children (or
    /// become parentless siblings), in order. O(1) plus the number of children.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`].
    pub fn delete(&mut self, at: SlotRef) -> Result<DeleteOutcome, CapError> {
        let old = *self.occupied(at)?;
        let last_reference = self.last_reference(&old);
        match self.reparent_children(old.first_child, old.parent) {
            Some(last) => {
                // Only `Some` when there is a first child.
                let first = old.first_child.unwrap_or(last);
                self.replace_in_list(&old, first, last);
            }
            None => self.unlink(&old),
        }
        *self.node_mut(at) = Slot::EMPTY;
        Ok(DeleteOutcome {
            cap: old.cap,
            last_reference,
        })
    }

    /// Deletes every descendant of the capability at `at` (not `at` itself), calling
    /// `on_delete` once for each removed capability, leaves first. Afterwards `at` has
    /// no children; for an untyped, the next retype starts from its base again.
    /// Returns how many capabilities were deleted.
    ///
    /// Iterative: no recursion however deep the tree. `on_delete` cannot reach the
    /// store; a kernel that destroys a CNode there must queue it and empty its slots
    /// after the revoke, before its memory is reused (or revoke with
    /// [`CSpace::revoke_step`], which lets it do so after each deletion).
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`].
    pub fn revoke(
        &mut self,
        at: SlotRef,
        mut on_delete: impl FnMut(&DeleteOutcome),
    ) -> Result<usize, CapError> {
        let mut count = 0;
        self.revoke_some(at, usize::MAX, |outcome| {
            count += 1;
            on_delete(outcome);
        })?;
        Ok(count)
    }

    /// Like [`CSpace::revoke`], but deletes at most `max` descendants, so a long revoke
    /// can be preempted and restarted. Returns `true` when `at` has no children left.
    pub fn revoke_some(
        &mut self,
        at: SlotRef,
        max: usize,
        mut on_delete: impl FnMut(&DeleteOutcome),
    ) -> Result<bool, CapError> {
        self.occupied(at)?;
        let mut from = at;
        let mut deleted = 0;
        loop {
            if deleted == max {
                // Done if the walk would find no leaf below `at`.
                return Ok(self.node(at).first_child.is_none());
            }
            let Some((outcome, parent)) = self.revoke_step(at, from)? else {
                return Ok(true);
            };
            deleted += 1;
            on_delete(&outcome);
            from = parent;
        }
    }

    /// Walks at most `max` first-child links down from `from`; returns where it stopped
    /// (a leaf, unless it ran out of links to follow) and how many it followed. With
    /// [`CSpace::revoke_step`] from a leaf, a revoke can stop part way down a deep
    /// derivation chain and carry on from there.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`].
    pub fn descend(&self, from: SlotRef, max: usize) -> Result<(SlotRef, usize), CapError> {
        self.occupied(from)?;
        let mut at = from;
        let mut walked = 0;
        while walked < max {
            let Some(child) = self.node(at).first_child else {
                break;
            };
            at = child;
            walked += 1;
        }
        Ok((at, walked))
    }

    /// One step of a revoke of `at`: walks first-child links down from `from` (`at` or
    /// a descendant of it) to a leaf and deletes it. Returns the outcome and the leaf's
    /// parent, where the next step starts (the walk back up is one step, so a revoke
    /// walks every edge down once), or `None` when `at` has no children left.
    ///
    /// Between steps the caller may do anything that only deletes capabilities (destroy
    /// objects, empty CNodes), as long as the next step starts from a slot that is
    /// still occupied: deletion keeps every surviving descendant of `at` below `at`. If
    /// the returned parent was emptied meanwhile, start again from `at`.
    ///
    /// Errors: [`CapError::InvalidSlot`], [`CapError::EmptySlot`] (for `at` or `from`).
    pub fn revoke_step(
        &mut self,
        at: SlotRef,
        from: SlotRef,
    ) -> Result<Option<(DeleteOutcome, SlotRef)>, CapError> {
        self.occupied(at)?;
        let mut leaf = from;
        self.occupied(leaf)?;
        while let Some(child) = self.node(leaf).first_child {
            leaf = child;
        }
        if leaf == at {
            return Ok(None);
        }
        let parent = self.node(leaf).parent.unwrap_or(at);
        let outcome = self.delete(leaf)?;
        Ok(Some((outcome, parent)))
    }
}

/// CNodes whose last capability was deleted and whose slots are still to be emptied:
/// a stack linked through slot 0 of each, so tearing down any number of CNodes needs no
/// memory beyond the CNodes themselves.
///
/// Slot 0 of a CNode never holds a capability (the kernel refuses it as a capability
/// pointer, so nothing can be put there), and nothing links to it; while the CNode is
/// on this stack, it holds the capability of the CNode below it ([`Capability::NULL`]
/// at the bottom). [`DyingCNodes::pop`] empties it again. Each CNode is pushed at most
/// once: only the deletion of its last capability pushes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DyingCNodes {
    /// The capability of the CNode on top; [`Capability::NULL`] if there is none.
    top: Capability,
}

impl Default for DyingCNodes {
    fn default() -> Self {
        Self::new()
    }
}

impl DyingCNodes {
    /// An empty stack.
    pub const fn new() -> Self {
        Self {
            top: Capability::NULL,
        }
    }

    /// Whether no CNode waits to be emptied.
    pub fn is_empty(&self) -> bool {
        self.top.is_null()
    }

    /// Puts the CNode named by `cnode` (a CNode capability whose object is the slot
    /// store's key for that CNode) on the stack, writing the link into its slot 0.
    ///
    /// The CNode's slot 0 must be empty; its memory must stay the CNode's until it is
    /// popped and emptied.
    pub fn push<S: SlotStore + ?Sized>(&mut self, cspace: &mut CSpace<'_, S>, cnode: Capability) {
        debug_assert!(!cnode.is_null());
        let link = cspace.node_mut(SlotRef::new(cnode.object, 0));
        debug_assert_eq!(*link, Slot::EMPTY, "slot 0 of a CNode is never used");
        link.cap = self.top;
        self.top = cnode;
    }

    /// Takes the CNode on top off the stack and empties its slot 0 again; its other
    /// slots are the caller's to empty.
    pub fn pop<S: SlotStore + ?Sized>(&mut self, cspace: &mut CSpace<'_, S>) -> Option<Capability> {
        if self.top.is_null() {
            return None;
        }
        let cnode = self.top;
        let link = cspace.node_mut(SlotRef::new(cnode.object, 0));
        self.top = link.cap;
        *link = Slot::EMPTY;
        Some(cnode)
    }
}
