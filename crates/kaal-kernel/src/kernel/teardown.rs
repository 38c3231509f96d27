//! Object teardown: `cap_revoke`, the destruction of an object with its last
//! capability, and the emptying of destroyed CNodes, all preemptible.

use super::*;

/// Work done between two looks for a pending interrupt in `cap_revoke` and in tearing
/// down destroyed CNodes, in units: a deleted capability (with whatever its deletion
/// destroys, bar a CNode's slots) costs [`DELETION_UNITS`], a slot looked at in a
/// dying CNode or eight links walked down a derivation chain cost one. A batch is a few
/// thousand instructions (see docs/benchmarks.md).
pub(crate) const PREEMPTION_UNITS: u32 = 64;

/// What deleting one capability costs in [`PREEMPTION_UNITS`].
pub(crate) const DELETION_UNITS: u32 = 4;

/// How many first-child links a revoke walks down at most before it counts the work.
pub(crate) const WALK_LINKS: usize = 64;

/// The work left before the next look for a pending interrupt.
pub(crate) struct Budget(u32);

impl Budget {
    pub(crate) const fn new() -> Self {
        Self(PREEMPTION_UNITS)
    }

    /// Counts `units` of work done; says whether to stop for a pending interrupt, which
    /// is looked for each time the batch is used up.
    pub(crate) fn spend(&mut self, units: u32) -> bool {
        if self.0 > units {
            self.0 -= units;
            return false;
        }
        self.0 = PREEMPTION_UNITS;
        crate::objects::interrupt_pending()
    }
}

pub(crate) fn cap_radix(cap: &Capability) -> u8 {
    cap.extra as u8
}

impl Kernel {
    /// `cap_revoke`: deletes every descendant of the capability at `pointer`, one at a
    /// time, tearing down what each deletion destroys before the next, so a revoke of
    /// any size needs no kernel memory. Every [`PREEMPTION_UNITS`] of work it looks for
    /// a pending interrupt and, if there is one, stops and is restarted
    /// ([`Kernel::restart_syscall`]): the deleted capabilities are gone, so the
    /// re-issued call (with whatever arguments) carries on; `resume` is where the
    /// previous issue's walk had got to, if nothing but deletions happened since.
    /// Returns how many descendants the walk deleted in the issue that finished (not
    /// those that went with a CNode it destroyed).
    pub(crate) fn revoke(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        resume: Option<(ThreadRef, SlotRef, SlotRef)>,
    ) -> SyscallResult {
        let at = crate::objects::resolve(cspace, pointer)?;
        let occupied = |objects: &KernelObjects, slot| objects.cap(slot).is_ok();
        self.objects.cap(at).map_err(abi_error)?;
        // Deletion keeps every surviving descendant of `at` below `at` and refills no
        // slot, so an occupied slot the last issue reached is still below `at`.
        let mut from = match resume {
            Some((thread, revoked, reached))
                if Some(thread) == self.current
                    && revoked == at
                    && occupied(&self.objects, reached) =>
            {
                reached
            }
            _ => at,
        };
        let mut budget = Budget::new();
        let mut removed = 0u64;
        loop {
            let (leaf, walked) = CSpace::new(&mut self.objects)
                .descend(from, WALK_LINKS)
                .map_err(abi_error)?;
            let deeper = CSpace::new(&mut self.objects)
                .has_children(leaf)
                .map_err(abi_error)?;
            let stop = if deeper {
                // Part way down a long chain.
                from = leaf;
                budget.spend(walked.div_ceil(8) as u32)
            } else {
                let step = CSpace::new(&mut self.objects)
                    .revoke_step(at, leaf)
                    .map_err(abi_error)?;
                let Some((outcome, parent)) = step else {
                    return Ok((removed, 0));
                };
                removed += 1;
                self.retire(&outcome);
                let finished = self.finish_teardown(&mut budget);
                if !occupied(&self.objects, at) {
                    // What it destroyed held the revoked capability itself (an untyped
                    // inside a CNode made from it): nothing is left below it. The rest
                    // of the teardown, if any, waits for the next system call.
                    return Ok((removed, 0));
                }
                // Teardown only deletes, so a surviving slot is still below `at`; if
                // it emptied the next start, the walk begins again from the top.
                from = if occupied(&self.objects, parent) {
                    parent
                } else {
                    at
                };
                !finished || budget.spend(DELETION_UNITS + walked.div_ceil(8) as u32)
            };
            if stop {
                // (Unless the revoke destroyed the caller's own thread.)
                if let Some(thread) = self.current {
                    self.revoke_resume = Some((thread, at, from));
                    self.restart_syscall();
                }
                return Ok((0, 0));
            }
        }
    }

    /// Detaches kernel state from a deleted capability and, if it was the last one to
    /// its object, destroys the object, with everything that cascades from it (a TCB's
    /// slots, a CNode's slots, and so on through any nesting).
    ///
    /// Uses no kernel memory: destroyed CNodes wait to be emptied on a [`DyingCNodes`]
    /// stack linked through their own slot 0. Recursion is one level deep at most (a
    /// TCB's slots hold no TCB). The teardown stops for a pending interrupt and is
    /// then finished by the next system call, before it does anything else.
    pub(crate) fn release(&mut self, outcome: DeleteOutcome) {
        self.retire(&outcome);
        self.finish_teardown(&mut Budget::new());
    }

    /// Whether destroyed CNodes wait to be emptied.
    pub(crate) fn teardown_pending(&self) -> bool {
        self.emptying.is_some() || !self.dying.is_empty()
    }

    /// Empties the destroyed CNodes, one slot at a time, destroying in turn what that
    /// deletes; returns `false` if it stopped for a pending interrupt with work left.
    ///
    /// The progress lives in the kernel (the stack of dying CNodes and the slot reached
    /// in the one being emptied), so however big a teardown is, and whichever system
    /// call finishes it, no slot is looked at twice.
    pub(crate) fn finish_teardown(&mut self, budget: &mut Budget) -> bool {
        loop {
            let (cnode, index) = match self.emptying {
                Some(emptying) => emptying,
                // Slot 0 holds no capability (and `pop` emptied it).
                None => match self.dying.pop(&mut CSpace::new(&mut self.objects)) {
                    Some(cnode) => (cnode, 1),
                    None => return true,
                },
            };
            if index >= 1u32 << cap_radix(&cnode) {
                self.emptying = None;
                continue;
            }
            self.emptying = Some((cnode, index + 1));
            let slot = SlotRef::new(cnode.object, index);
            let units = match CSpace::new(&mut self.objects).delete(slot) {
                Ok(outcome) => {
                    self.retire(&outcome);
                    DELETION_UNITS
                }
                Err(_) => 1,
            };
            if budget.spend(units) && self.teardown_pending() {
                return false;
            }
        }
    }

    /// Handles one deletion: unmaps a frame capability's mapping and destroys the
    /// object if the capability was its last; a destroyed CNode goes onto `dying`.
    pub(crate) fn retire(&mut self, outcome: &DeleteOutcome) {
        // Every frame capability carries its own mapping.
        if outcome.cap.object_type.is_frame() {
            self.unmap_frame(&outcome.cap);
        }
        if outcome.last_reference {
            self.destroy_object(&outcome.cap);
        }
    }

    pub(crate) fn destroy_object(&mut self, cap: &Capability) {
        match cap.object_type {
            ObjectType::Tcb => {
                let thread = cap.object;
                // Out of user mode on whichever CPU runs it, before its memory can be
                // reused (that CPU's entry wrote its registers into the TCB).
                self.stall(thread, Some(VoidEntry::Drop));
                self.stop(thread, ThreadState::Inactive);
                if self.current == Some(thread) {
                    self.current = None;
                }
                if self.fp_owner == Some(thread) {
                    self.fp_owner = None;
                }
                self.forget_thread(thread);
                self.unbind_notification(thread);
                for index in [CSPACE_SLOT, VSPACE_SLOT, IPC_BUFFER_SLOT] {
                    if let Ok(outcome) =
                        CSpace::new(&mut self.objects).delete(tcb_slot(thread, index))
                    {
                        // A CNode, an address space or a frame (`tcb_configure` checks
                        // the types), never a TCB: this recursion stops here.
                        debug_assert_ne!(outcome.cap.object_type, ObjectType::Tcb);
                        self.retire(&outcome);
                    }
                }
            }
            ObjectType::AddressSpace => {
                // Off the CPU first, so no walk refills the TLB from the dying tables.
                if self.active_space == Some(cap.object) {
                    // SAFETY: the empty table maps nothing.
                    unsafe { install_user_table(self.services.empty_user_table, 0) };
                    self.active_space = None;
                }
                self.drop_space_elsewhere(cap.object);
                // The ASID goes back to the pool without a single translation tagged
                // with it, so the next space that gets it starts clean.
                let asid = cap.extra as u16;
                if self.asids.release(asid, cap.object) {
                    flush_asid(asid);
                }
            }
            ObjectType::CNode => self.dying.push(&mut CSpace::new(&mut self.objects), *cap),
            ObjectType::PageTable => self.unmap_page_table(cap),
            ObjectType::Endpoint => self.cancel_all_waiters(cap.object),
            ObjectType::Notification => {
                self.cancel_all_waiters(cap.object);
                self.unbind_notification_object(cap.object);
                self.unbind_interrupts_of(cap.object);
            }
            ObjectType::IrqHandler => self.release_interrupt(cap.object),
            _ => {}
        }
    }
}
