//! Scheduling: the run queues' use, thread state changes, the choice of the next
//! thread, lazy FP/SIMD switching, and the IPC fast paths' direct switches.

use super::*;

/// Turns the IPC fast paths on or off (the test hooks' `SET_FAST_PATHS`); returns how
/// many switches they made since boot.
#[cfg(all(target_os = "none", feature = "test-hooks", debug_assertions))]
pub(crate) fn set_fast_paths(on: bool) -> u64 {
    with_kernel(|kernel| {
        kernel.fast_paths = on;
        kernel.fast_path_switches
    })
}

/// What one pass of the scheduler did ([`Kernel::schedule_once`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheduled {
    /// A thread is installed to run.
    Running,
    /// No thread is ready: the CPU idles until an interrupt makes one ready.
    Idle,
    /// Every user thread has ended.
    AllEnded,
}

impl Kernel {
    /// Makes `thread` ready to run, preempting the current thread if it is of higher
    /// priority.
    pub(crate) fn make_ready(&mut self, thread: ThreadRef) {
        let t = self.objects.tcb_mut(thread);
        if !t.state.has_ended() && t.state != ThreadState::Running && !t.queued {
            if t.state == ThreadState::Inactive {
                self.live_threads += 1;
            }
            t.state = ThreadState::Ready;
            t.queued = true;
            let priority = t.priority;
            if self.enqueue(thread, false)
                && let Some(current) = self.current
                && priority > self.objects.tcb(current).priority
            {
                self.reschedule = true;
            }
        }
    }

    /// Takes `thread` out of the run queue if it is there.
    pub(crate) fn unready(&mut self, thread: ThreadRef) {
        let t = self.objects.tcb_mut(thread);
        if t.queued && t.state == ThreadState::Ready {
            t.queued = false;
            let (cpu, priority) = (t.affinity as usize, t.priority);
            self.queues[cpu].remove(&mut self.objects, thread, priority);
        }
    }

    /// Ends `thread` (exit, fault, suspension or destruction): out of every queue, and a
    /// reschedule if it was running.
    pub(crate) fn stop(&mut self, thread: ThreadRef, state: ThreadState) {
        let t = self.objects.tcb(thread);
        // A thread taken out of a blocking system call (not out of a fault, whose
        // registers are the faulting code's) is told so when it runs again: `Aborted`,
        // not its own first argument left in `x0`.
        let interrupted_call = !t.in_fault
            && matches!(
                t.state,
                ThreadState::BlockedOnSend
                    | ThreadState::BlockedOnReceive
                    | ThreadState::BlockedOnReply
                    | ThreadState::BlockedOnNotification
            );
        self.unready(thread);
        self.cancel_ipc(thread);
        if interrupted_call {
            self.objects.tcb_mut(thread).context.x[0] = Error::Aborted as u64;
        }
        self.abort_caller(thread);
        let t = self.objects.tcb_mut(thread);
        let was_live = !matches!(t.state, ThreadState::Inactive) && !t.state.has_ended();
        if was_live {
            self.live_threads -= 1;
        }
        t.state = state;
        t.in_fault = false;
        if self.current == Some(thread) {
            self.reschedule = true;
        } else {
            // Running on another CPU: out of user mode before this returns; a call it
            // made meanwhile is issued again if it is resumed.
            self.stall(thread, Some(VoidEntry::Restart));
        }
    }

    /// Picks the thread to run next, or `None` if no thread is ready.
    pub(crate) fn choose(&mut self) -> Option<ThreadRef> {
        if let Some(current) = self.current {
            let t = self.objects.tcb_mut(current);
            if t.state == ThreadState::Running && !t.has_address_space() {
                // Its address space was deleted under it (perhaps by itself): it cannot
                // run on, and stops as if suspended, with nothing sent to its fault
                // endpoint.
                self.stop(current, ThreadState::Inactive);
            }
            let t = self.objects.tcb_mut(current);
            if t.state == ThreadState::Running {
                let priority = t.priority;
                let highest = self.queues[self.cpu].highest_priority();
                let higher_ready = highest.is_some_and(|p| p > priority);
                let same_ready = highest.is_some_and(|p| p >= priority);
                if t.affinity as usize != self.cpu {
                    // Moved to another CPU while it ran here: it goes to that CPU's
                    // queue, which is told.
                    t.state = ThreadState::Ready;
                    t.queued = true;
                    self.enqueue(current, false);
                } else if self.reschedule && same_ready {
                    t.state = ThreadState::Ready;
                    t.queued = true;
                    self.enqueue(current, false);
                } else if higher_ready {
                    t.state = ThreadState::Ready;
                    t.queued = true;
                    self.enqueue(current, true);
                } else {
                    self.reschedule = false;
                    return Some(current);
                }
            }
        }
        self.reschedule = false;
        loop {
            let (next, _) = self.queues[self.cpu].pop_highest(&mut self.objects)?;
            let t = self.objects.tcb_mut(next);
            t.queued = false;
            // A thread whose address space was deleted cannot run: it stops as above.
            if !t.has_address_space() {
                t.state = ThreadState::Ready;
                self.stop(next, ThreadState::Inactive);
                continue;
            }
            return Some(next);
        }
    }

    /// Gives the FP/SIMD registers to the current thread: saves the previous owner's
    /// state, loads the current thread's, and stops trapping. Switching is lazy: a
    /// thread that never touches FP/SIMD between switches costs nothing.
    pub(crate) fn take_fp(&mut self) {
        let current = self.current.expect("an FP trap has a current thread");
        if self.fp_owner != Some(current) {
            if let Some(owner) = self.fp_owner {
                save_fp(&mut self.objects.tcb_mut(owner).context.fp);
            }
            restore_fp(&self.objects.tcb_mut(current).context.fp);
            self.fp_owner = Some(current);
        }
        trap_user_fp(false);
    }

    /// The fast path of a call or reply-receive whose caller has just blocked: if
    /// `next` (a thread the call unblocked, in no queue yet) outranks every ready thread,
    /// it runs at once, exactly as the scheduler would choose it, but without the run
    /// queue's round trip or the scheduler's second pass. Returns `false`, having done
    /// nothing, when that does not hold; the caller then makes `next` ready as usual.
    pub(crate) fn hand_over(&mut self, next: ThreadRef) -> bool {
        let Some((current, _)) = self.fast_path_target(next) else {
            return false;
        };
        if self.objects.tcb_mut(current).state == ThreadState::Running {
            return false;
        }
        self.fast_switch(next);
        true
    }

    /// The fast path of a signal that wakes a thread of higher priority than the running
    /// one: the signaller goes back to its run queue (at the back, as the scheduler puts
    /// a thread that a higher one preempts in a system call) and `next` runs at once.
    /// Returns `false`, having done nothing, unless `next` outranks the signaller and
    /// every ready thread. Only for `signal`: it writes the signaller's (successful)
    /// result itself.
    pub(crate) fn preempt_to(&mut self, next: ThreadRef) -> bool {
        let Some((current, theirs)) = self.fast_path_target(next) else {
            return false;
        };
        let me = self.objects.tcb(current);
        let ok = me.state == ThreadState::Running && me.has_address_space();
        let mine = me.priority;
        if !ok || theirs <= mine {
            return false;
        }
        // The signal's result (success) goes to the signaller now: when the call returns
        // the current thread is `next`, whose registers hold what it woke with.
        self.requeue_after_call(current, mine);
        self.result_written = true;
        self.fast_switch(next);
        true
    }

    /// Puts the running thread `thread`, whose system call succeeded (its result is
    /// written now), at the back of its run queue: what the scheduler does with a thread
    /// that yields or that a higher one preempts in a system call.
    pub(crate) fn requeue_after_call(&mut self, thread: ThreadRef, priority: u8) {
        let t = self.objects.tcb_mut(thread);
        t.set_result(Ok((0, 0)));
        t.state = ThreadState::Ready;
        t.queued = true;
        debug_assert_eq!(t.affinity as usize, self.cpu);
        debug_assert_eq!(t.priority, priority);
        self.enqueue(thread, false);
    }

    /// What both fast paths require: they are on, a thread is current, and `next` (just
    /// unblocked, in no queue, with an address space) outranks every ready thread, so
    /// that the scheduler would choose it. Returns the current thread and `next`'s
    /// priority.
    pub(crate) fn fast_path_target(&self, next: ThreadRef) -> Option<(ThreadRef, u8)> {
        if !self.fast_paths {
            return None;
        }
        let current = self.current?;
        if self.objects.tcb(current).affinity as usize != self.cpu {
            // Moving to another CPU: the scheduler's pass moves it.
            return None;
        }
        let t = self.objects.tcb(next);
        let runnable = !t.queued
            && !t.state.has_ended()
            && !matches!(t.state, ThreadState::Inactive | ThreadState::Running)
            && t.has_address_space()
            && t.affinity as usize == self.cpu
            && self.queues[self.cpu]
                .highest_priority()
                .is_none_or(|p| p < t.priority);
        runnable.then_some((current, t.priority))
    }

    /// Runs `next` now, as the scheduler's choice would (see [`Kernel::hand_over`]).
    pub(crate) fn fast_switch(&mut self, next: ThreadRef) {
        self.switch_to(next);
        self.reschedule = false;
        self.fast_path_switches += 1;
    }

    /// Makes `next` the running thread: FP trapping, address space and context pointer.
    pub(crate) fn switch_to(&mut self, next: ThreadRef) {
        // The registers hold the FP state of `fp_owner`; anyone else traps on first use.
        trap_user_fp(self.fp_owner != Some(next));
        let t = self.objects.tcb_mut(next);
        let space = t.slots[VSPACE_SLOT as usize].cap;
        // `choose` only returns threads with an address space; stay safe regardless.
        debug_assert_eq!(space.object_type, ObjectType::AddressSpace);
        if space.object_type == ObjectType::AddressSpace && self.active_space != Some(space.object)
        {
            // SAFETY: an address-space capability names a live table holding only user
            // mappings; its ASID was assigned to it at retype.
            unsafe { install_user_table(space.object, space.extra as u16) };
            self.active_space = Some(space.object);
        }
        self.current = Some(next);
        t.state = ThreadState::Running;
        // SAFETY: the context lives in the TCB, which stays allocated while the thread
        // exists; Rust code only touches it under the kernel lock.
        unsafe { set_current_context(&mut t.context) };
    }

    /// Handles an entry from user space; returns whether the current thread runs on
    /// without a pass through the scheduler.
    pub(crate) fn enter(&mut self, entry: UserEntry) -> bool {
        if self.entry_taken && self.entry_taken(entry) {
            return false;
        }
        let fast = if matches!(entry, UserEntry::Syscall) {
            self.fast_syscall()
        } else {
            super::fastpath::Fast::No
        };
        match fast {
            super::fastpath::Fast::Switched => return true,
            super::fastpath::Fast::Blocked => return false,
            super::fastpath::Fast::Done => {}
            super::fastpath::Fast::No => self.handle(entry),
        }
        // Most system calls leave the caller running in its address space with nothing
        // more urgent ready: return to it without a second pass through the scheduler.
        // A thread whose address space went away (or changed) in the call goes through
        // the scheduler, which stops it (or installs its new space).
        self.current.is_some_and(|current| {
            let t = self.objects.tcb(current);
            let space = t.slots[VSPACE_SLOT as usize].cap;
            t.state == ThreadState::Running
                && space.object_type == ObjectType::AddressSpace
                && self.active_space == Some(space.object)
                && !self.reschedule
                && t.affinity as usize == self.cpu
                && self.queues[self.cpu]
                    .highest_priority()
                    .is_none_or(|p| p <= t.priority)
        })
    }

    /// Another CPU took this CPU's thread over while this CPU waited for the lock with
    /// `entry` from it ([`Kernel::stall`]; that CPU dealt with a system call it had
    /// entered): an interrupt is still taken, anything else is not this CPU's to carry
    /// out. Returns whether the entry is void.
    #[cold]
    fn entry_taken(&mut self, entry: UserEntry) -> bool {
        self.entry_taken = false;
        !matches!(entry, UserEntry::Interrupt)
    }

    /// Chooses the next thread and installs it, if one is ready.
    pub(crate) fn schedule_once(&mut self) -> Scheduled {
        match self.choose() {
            Some(next) => {
                self.switch_to(next);
                Scheduled::Running
            }
            None if self.live_threads == 0 => Scheduled::AllEnded,
            None => {
                self.current = None;
                Scheduled::Idle
            }
        }
    }
}
