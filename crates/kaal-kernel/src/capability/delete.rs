//! Removing capabilities: delete and revoke.

use super::{CSpace, CapError, DeleteOutcome, Slot, SlotRef, SlotStore};

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
    /// after the revoke, before its memory is reused.
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
            // Walk first-child links down to a leaf; the walk back up is one step to
            // the deleted leaf's parent, so every edge is walked down once.
            let mut leaf = from;
            while let Some(child) = self.node(leaf).first_child {
                leaf = child;
            }
            if leaf == at {
                return Ok(true);
            }
            if deleted == max {
                return Ok(false);
            }
            let parent = self.node(leaf).parent.unwrap_or(at);
            let outcome = self.delete(leaf)?;
            deleted += 1;
            on_delete(&outcome);
            from = parent;
        }
    }
}
