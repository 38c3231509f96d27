//! The fast paths, after seL4's: a `call` to a receiver that is waiting, and a
//! `reply_recv` whose receive will block, both with a message in registers only, go
//! straight from the caller to the thread they unblock, without the general dispatch, the
//! generic message transfer or a pass through the scheduler; a `yield` to a thread of
//! the same priority switches to it at once; `signal` and `wait` skip the general
//! dispatch.
//!
//! (`thread_id` has a faster path still, in the exception vector: see
//! `arch/aarch64/exceptions.rs`.)
//!
//! A fast path does exactly what the general path does in its case, no more and no
//! less: it only runs when every condition the general path would test comes out the
//! way it checks here, and otherwise leaves everything untouched for the general path.
//! The QEMU suite `exceptions` (`fast_paths_change_nothing_but_speed`) and the host test
//! `fast_paths_change_nothing_but_speed` run the same random IPC with the fast paths on
//! and off and compare every result.

use super::*;
use kaal_abi::{MessageInfo, REGISTER_MESSAGE_REGISTERS};

/// What a fast path did with a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fast {
    /// Nothing: the general path handles the call.
    No,
    /// The call is complete; the scheduler's usual check after a call applies.
    Done,
    /// The call is complete and switched to the thread the scheduler would choose: it
    /// runs now, with no further check.
    Switched,
    /// The call is complete and the caller waits: the scheduler chooses who runs.
    Blocked,
}

impl Kernel {
    /// Runs the current thread's system call on a fast path if one applies.
    #[inline]
    pub(crate) fn fast_syscall(&mut self) -> Fast {
        let Some(me) = self.current else {
            return Fast::No;
        };
        const CALL: u64 = Syscall::Call as u64;
        const REPLY_RECV: u64 = Syscall::ReplyRecv as u64;
        const SIGNAL: u64 = Syscall::Signal as u64;
        const YIELD: u64 = Syscall::Yield as u64;
        const WAIT: u64 = Syscall::Wait as u64;
        let t = self.objects.tcb(me);
        let number = t.context.x[8];
        // (A thread moved to another CPU while it runs goes through the scheduler.)
        if !matches!(number, CALL | REPLY_RECV | SIGNAL | YIELD | WAIT)
            || t.affinity as usize != self.cpu
            || !self.fast_paths
            || self.teardown_pending()
            || self.revoke_resume.is_some()
        {
            // The general path finishes the teardown, or drops the revoke's resume
            // point, first.
            return Fast::No;
        }
        let switched = |done: bool| if done { Fast::Switched } else { Fast::No };
        match number {
            CALL => switched(self.fast_call(me)),
            REPLY_RECV => switched(self.fast_reply_recv(me)),
            SIGNAL => self.fast_signal(me),
            WAIT => self.fast_wait(me),
            _ => switched(self.fast_yield(me)),
        }
    }

    /// `yield` when a thread of the caller's priority is ready and none above it: the
    /// caller goes to the back of its queue and the first one runs, as the scheduler's
    /// pass would do, without leaving and re-entering the kernel's lock.
    fn fast_yield(&mut self, me: ThreadRef) -> bool {
        let t = self.objects.tcb(me);
        let priority = t.priority;
        if !t.has_address_space() || self.queues[self.cpu].highest_priority() != Some(priority) {
            return false;
        }
        let next = self.queues[self.cpu].first(priority);
        if !self.objects.tcb(next).has_address_space() {
            // The scheduler stops a thread whose address space went: the general path.
            return false;
        }
        // `requeue_after_call` and `pop_highest` in one queue operation: `next` leaves
        // the front of the caller's priority and the caller joins its back, so the
        // priority's queue never empties and the bitmap needs no update.
        debug_assert_eq!(self.objects.tcb(me).affinity as usize, self.cpu);
        let Some(popped) = self.queues[self.cpu].rotate(&mut self.objects, me, priority) else {
            return false;
        };
        debug_assert_eq!(popped, next);
        let t = self.objects.tcb_mut(me);
        t.set_result(Ok((0, 0)));
        t.state = ThreadState::Ready;
        t.queued = true;
        self.objects.tcb_mut(popped).queued = false;
        self.fast_switch(popped);
        true
    }

    /// `wait`: the general path's work ([`Kernel::wait`]) without the general dispatch,
    /// with its result write-back; a caller that blocks goes straight to the scheduler.
    fn fast_wait(&mut self, me: ThreadRef) -> Fast {
        let t = self.objects.tcb(me);
        let (cspace, pointer) = (t.slots[CSPACE_SLOT as usize].cap, t.context.x[0]);
        self.result_written = false;
        let result = self.wait(&cspace, pointer, true);
        let t = self.objects.tcb_mut(me);
        if t.state != ThreadState::Running {
            return Fast::Blocked;
        }
        if !self.result_written || result.is_err() {
            t.set_result(result);
        }
        Fast::Done
    }

    /// `signal` through a notification capability with the write right: the general
    /// path's work ([`Kernel::signal_waking`], whose own fast path may switch to a
    /// higher-priority waiter) without the general dispatch. Its own look-up, not
    /// [`Kernel::signal`]'s: that one's error mapping and the general write-back cost the
    /// signal path some 25 instructions; a call that would fail takes the general path.
    fn fast_signal(&mut self, me: ThreadRef) -> Fast {
        let t = self.objects.tcb(me);
        let cspace = t.slots[CSPACE_SLOT as usize].cap;
        let Ok(slot) = crate::objects::resolve(&cspace, t.context.x[0]) else {
            return Fast::No;
        };
        let Ok(cap) = self.objects.cap(slot) else {
            return Fast::No;
        };
        if cap.object_type != ObjectType::Notification || !cap.rights.contains(Rights::WRITE) {
            return Fast::No;
        }
        self.result_written = false;
        self.signal_waking(cap.object, if cap.badge == 0 { 1 } else { cap.badge }, true);
        if !self.result_written {
            self.objects.tcb_mut(me).set_result(Ok((0, 0)));
        }
        Fast::Done
    }

    /// What both IPC fast paths need of the caller (once [`Kernel::fast_syscall`] has
    /// found nothing pending from an earlier call): not in a fault, a message of at most
    /// the register words, and the endpoint capability its `x0` names with `right`.
    /// Returns the capability and the message's info.
    #[inline(always)]
    fn fast_ipc_caller(&self, me: ThreadRef, right: Rights) -> Option<(Capability, MessageInfo)> {
        debug_assert!(!self.teardown_pending() && self.revoke_resume.is_none());
        let t = self.objects.tcb(me);
        let info = MessageInfo::from_raw(t.context.x[1]);
        if t.in_fault || usize::from(info.length) > REGISTER_MESSAGE_REGISTERS {
            return None;
        }
        let cspace = t.slots[CSPACE_SLOT as usize].cap;
        let slot = crate::objects::resolve(&cspace, t.context.x[0]).ok()?;
        let cap = self.objects.cap(slot).ok()?;
        (cap.object_type == ObjectType::Endpoint && cap.rights.contains(right))
            .then_some((cap, info))
    }

    /// Copies a register message from `from` to `to` as the general transfer does for
    /// one that fits in registers: info (no capability, not a notification), the words,
    /// the badge, success.
    #[inline(always)]
    fn fast_transfer(&mut self, from: ThreadRef, to: ThreadRef, mut info: MessageInfo, badge: u64) {
        info.caps = 0;
        info.notification = false;
        let (s, r) = self.objects.tcb_pair_mut(from, to);
        r.context.x[2..6].copy_from_slice(&s.context.x[2..6]);
        r.context.x[0] = 0;
        r.context.x[1] = info.to_raw();
        r.context.x[6] = badge;
    }

    /// `call` to an endpoint whose first waiter is a receiver that outranks every ready
    /// thread: the message goes over, the caller waits for the reply, the receiver runs.
    fn fast_call(&mut self, me: ThreadRef) -> bool {
        let Some((cap, info)) = self.fast_ipc_caller(me, Rights::WRITE) else {
            return false;
        };
        // A capability to send would need the general transfer.
        if info.caps != 0 {
            return false;
        }
        let receiver = self.objects.first_waiter(cap.object);
        if receiver == 0 || self.objects.tcb(receiver).state != ThreadState::BlockedOnReceive {
            return false;
        }
        // Out of the endpoint's queue, it must be what the scheduler would run next.
        if !self.fast_target_after_dequeue(receiver) {
            return false;
        }
        self.objects.unqueue(cap.object, receiver);
        let r = self.objects.tcb_mut(receiver);
        r.queued = false;
        r.blocked_on = 0;
        self.fast_transfer(me, receiver, info, cap.badge);
        self.set_reply_to(receiver, me);
        let t = self.objects.tcb_mut(me);
        t.state = ThreadState::BlockedOnReply;
        t.blocked_on = receiver;
        self.result_written = true;
        self.fast_switch(receiver);
        true
    }

    /// `reply_recv` by a server that holds a reply right to a caller waiting for it, and
    /// whose receive will block (no sender waits, no signal is pending), when that caller
    /// outranks every ready thread: the reply goes over, the server waits, the caller
    /// runs.
    fn fast_reply_recv(&mut self, me: ThreadRef) -> bool {
        let Some((cap, info)) = self.fast_ipc_caller(me, Rights::READ) else {
            return false;
        };
        if !self.receive_blocks(&cap) {
            return false;
        }
        let t = self.objects.tcb(me);
        let caller = t.reply_to;
        if caller == 0 {
            return false;
        }
        let c = self.objects.tcb(caller);
        // A fault handler's answer resumes or stops the faulting thread instead.
        if c.state != ThreadState::BlockedOnReply || c.blocked_on != me || c.in_fault {
            return false;
        }
        if !self.fast_target_after_dequeue(caller) {
            return false;
        }
        self.objects.tcb_mut(me).reply_to = 0;
        self.objects.tcb_mut(caller).blocked_on = 0;
        self.fast_transfer(me, caller, info, 0);
        let t = self.objects.tcb_mut(me);
        t.state = ThreadState::BlockedOnReceive;
        t.blocked_on = cap.object;
        t.queued = true;
        self.objects.enqueue(cap.object, me);
        self.result_written = true;
        self.fast_switch(caller);
        true
    }

    /// Whether `next`, a thread the fast path is about to unblock (still marked as
    /// queued if it waits in an endpoint), is what the scheduler would choose once the
    /// caller blocks: it has an address space and outranks every ready thread. The
    /// condition of [`Kernel::hand_over`], checked before anything changes.
    #[inline(always)]
    fn fast_target_after_dequeue(&self, next: ThreadRef) -> bool {
        let t = self.objects.tcb(next);
        t.has_address_space()
            && t.affinity as usize == self.cpu
            && self.queues[self.cpu]
                .highest_priority()
                .is_none_or(|p| p < t.priority)
    }
}
