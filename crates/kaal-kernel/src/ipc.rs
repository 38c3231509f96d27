//! Synchronous endpoints and notifications.
//!
//! Message transfer copies the sender's `MessageInfo`, four register message registers
//! and, where both threads have IPC buffers, further message registers from buffer to
//! buffer, then the badge of the sender's capability. A call leaves the receiver a
//! one-shot right to reply (`reply_to`). Threads wait in intrusive queues inside the
//! endpoint or notification object.

use crate::capability::{CSpace, Capability, ObjectType, Rights};
use crate::kernel::{Kernel, SyscallResult};
use crate::objects::resolve;
use crate::scheduler::{Queue, ThreadRef};
use crate::thread::{CSPACE_SLOT, IPC_BUFFER_SLOT, ThreadState};
use kaal_abi::{Error, MESSAGE_REGISTERS, MessageInfo, REGISTER_MESSAGE_REGISTERS};

/// An endpoint object (32 bytes in untyped memory; all-zero is an idle endpoint).
#[repr(C)]
pub struct EndpointObject {
    /// Threads waiting to send, or threads waiting to receive (never both).
    pub queue: Queue,
}

/// A notification object (32 bytes; all-zero is a clear notification).
#[repr(C)]
pub struct NotificationObject {
    /// Threads waiting for a signal.
    pub queue: Queue,
    /// The notification word.
    pub word: u64,
    /// The thread bound to this notification, 0 for none.
    pub bound: ThreadRef,
}

const _: () = assert!(core::mem::size_of::<NotificationObject>() <= 32);
// Both keep their wait queue first: `KernelObjects::first_waiter` and `wait_queue_mut`
// read it through the endpoint's layout for either.
const _: () = assert!(core::mem::offset_of!(EndpointObject, queue) == 0);
const _: () = assert!(core::mem::offset_of!(NotificationObject, queue) == 0);

impl Kernel {
    /// The IPC buffer frame of `thread`, if it has one (a writable RAM frame, checked
    /// at configure time; the slot empties if the frame is deleted).
    fn ipc_buffer_frame(&self, thread: ThreadRef) -> Option<u64> {
        let cap = self.objects.tcb(thread).slots[IPC_BUFFER_SLOT as usize].cap;
        (cap.object_type == ObjectType::Frame4K).then_some(cap.object)
    }

    fn endpoint_cap(
        &self,
        cspace: &Capability,
        pointer: u64,
        right: Rights,
    ) -> Result<Capability, Error> {
        let cap = self.lookup(cspace, pointer, ObjectType::Endpoint)?;
        if !cap.rights.contains(right) {
            return Err(Error::MissingRights);
        }
        Ok(cap)
    }

    /// Copies a message from `sender` to `receiver` and sets the receiver's result
    /// registers. `info` and the register words come from the sender's saved context.
    fn transfer(&mut self, sender: ThreadRef, receiver: ThreadRef, badge: u64, can_grant: bool) {
        let (s, r) = self.objects.tcb_pair_mut(sender, receiver);
        // A faulting thread sends the kernel's fault message, not its registers.
        let source: &[u64] = if s.in_fault {
            &s.fault_message
        } else {
            &s.context.x[1..6]
        };
        let mut info = MessageInfo::from_raw(source[0]);
        let words: [u64; REGISTER_MESSAGE_REGISTERS] = core::array::from_fn(|i| source[1 + i]);
        r.context.x[2..6].copy_from_slice(&words);
        if info.length as usize > REGISTER_MESSAGE_REGISTERS {
            match (
                self.ipc_buffer_frame(sender),
                self.ipc_buffer_frame(receiver),
            ) {
                // Two threads sharing one IPC buffer: the words are already in place.
                (Some(from), Some(to)) if from == to => {}
                (Some(from), Some(to)) => {
                    let (from, to) = self.objects.ipc_buffer_pair_mut(from, to);
                    let range =
                        REGISTER_MESSAGE_REGISTERS..(info.length as usize).min(MESSAGE_REGISTERS);
                    to.mr[range.clone()].copy_from_slice(&from.mr[range]);
                }
                _ => info.length = REGISTER_MESSAGE_REGISTERS as u8,
            }
        }
        let sent_cap = info.caps > 0 && can_grant && self.transfer_cap(sender, receiver);
        info.caps = u8::from(sent_cap);
        info.notification = false;
        let r = self.objects.tcb_mut(receiver);
        r.context.x[0] = 0;
        r.context.x[1] = info.to_raw();
        r.context.x[6] = badge;
    }

    /// Copies the capability the sender names in its IPC buffer into the receive slot
    /// the receiver names in its IPC buffer. Any problem means no capability moves.
    fn transfer_cap(&mut self, sender: ThreadRef, receiver: ThreadRef) -> bool {
        let (Some(from), Some(to)) = (
            self.ipc_buffer_frame(sender),
            self.ipc_buffer_frame(receiver),
        ) else {
            return false;
        };
        let send_cap = self.objects.ipc_buffer_mut(from).send_cap;
        let receive_slot = self.objects.ipc_buffer_mut(to).receive_slot;
        if receive_slot == 0 {
            return false;
        }
        let sender_space = self.objects.tcb(sender).slots[CSPACE_SLOT as usize].cap;
        let receiver_space = self.objects.tcb(receiver).slots[CSPACE_SLOT as usize].cap;
        let (Ok(source), Ok(target)) = (
            resolve(&sender_space, send_cap),
            resolve(&receiver_space, receive_slot),
        ) else {
            return false;
        };
        CSpace::new(&mut self.objects)
            .derive(source, target, Rights::ALL, None)
            .is_ok()
    }

    /// The system call's results are already in the caller's registers (or will be
    /// when it wakes): `handle` must not overwrite them.
    fn mark_result_written(&mut self) {
        self.result_written = true;
    }

    /// `send`, `nb_send` and `call`.
    pub(crate) fn send(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        blocking: bool,
        is_call: bool,
    ) -> SyscallResult {
        let cap = self.endpoint_cap(cspace, pointer, Rights::WRITE)?;
        let me = self.current.expect("current thread");
        self.send_from(me, &cap, blocking, is_call)
    }

    /// Sends from `me` (the current thread, or a thread that faulted) through `cap`.
    pub(crate) fn send_from(
        &mut self,
        me: ThreadRef,
        cap: &Capability,
        blocking: bool,
        is_call: bool,
    ) -> SyscallResult {
        let can_grant = cap.rights.contains(Rights::GRANT) && !self.objects.tcb(me).in_fault;
        let head = self.objects.first_waiter(cap.object);
        if head != 0 && self.objects.tcb(head).state == ThreadState::BlockedOnReceive {
            self.objects.unqueue(cap.object, head);
            let receiver = self.objects.tcb_mut(head);
            receiver.queued = false;
            receiver.blocked_on = 0;
            self.transfer(me, head, cap.badge, can_grant);
            if is_call {
                self.set_reply_to(head, me);
                self.block_on_reply(me, head);
                // Fast path: the caller blocked, the server runs at once.
                if self.current == Some(me) && self.hand_over(head) {
                    return Ok((0, 0));
                }
            }
            self.make_ready(head);
            return Ok((0, 0));
        }
        if !blocking {
            return Err(Error::WouldBlock);
        }
        let t = self.objects.tcb_mut(me);
        t.state = ThreadState::BlockedOnSend;
        t.blocked_on = cap.object;
        t.ipc_badge = cap.badge;
        t.ipc_is_call = is_call;
        t.ipc_can_grant = can_grant;
        t.queued = true;
        self.objects.enqueue(cap.object, me);
        self.reschedule = true;
        self.mark_result_written();
        Ok((0, 0))
    }

    fn block_on_reply(&mut self, caller: ThreadRef, server: ThreadRef) {
        let t = self.objects.tcb_mut(caller);
        t.state = ThreadState::BlockedOnReply;
        t.blocked_on = server;
        if self.current == Some(caller) {
            self.reschedule = true;
            self.mark_result_written();
        }
    }

    /// `recv` and `nb_recv`.
    pub(crate) fn receive(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        blocking: bool,
    ) -> SyscallResult {
        let cap = self.endpoint_cap(cspace, pointer, Rights::READ)?;
        let me = self.current.expect("current thread");
        // A pending signal on the bound notification comes first.
        let bound = self.objects.tcb(me).bound_notification;
        if bound != 0 {
            let n = self.objects.notification_mut(bound);
            if n.word != 0 {
                let word = core::mem::take(&mut n.word);
                self.deliver_signal(me, word);
                self.mark_result_written();
                return Ok((0, 0));
            }
        }
        let head = self.objects.first_waiter(cap.object);
        if head != 0 && self.objects.tcb(head).state == ThreadState::BlockedOnSend {
            self.objects.unqueue(cap.object, head);
            let sender = self.objects.tcb_mut(head);
            sender.queued = false;
            sender.blocked_on = 0;
            let (badge, is_call, can_grant) =
                (sender.ipc_badge, sender.ipc_is_call, sender.ipc_can_grant);
            self.transfer(head, me, badge, can_grant);
            if is_call {
                self.set_reply_to(me, head);
                self.block_on_reply(head, me);
            } else {
                self.objects.tcb_mut(head).context.x[0] = 0;
                self.make_ready(head);
            }
            self.mark_result_written();
            return Ok((0, 0));
        }
        if !blocking {
            return Err(Error::WouldBlock);
        }
        let t = self.objects.tcb_mut(me);
        t.state = ThreadState::BlockedOnReceive;
        t.blocked_on = cap.object;
        t.queued = true;
        self.objects.enqueue(cap.object, me);
        self.reschedule = true;
        self.mark_result_written();
        Ok((0, 0))
    }

    /// `reply`: answers the thread whose call this thread received last.
    pub(crate) fn reply(&mut self) -> Result<(), Error> {
        if let Some(caller) = self.reply_waking(false)? {
            self.make_ready(caller);
        }
        Ok(())
    }

    /// `reply`, returning the caller it unblocked instead of making it ready when
    /// `defer` is set (and the reply is a message, not a fault handler's answer).
    fn reply_waking(&mut self, defer: bool) -> Result<Option<ThreadRef>, Error> {
        let me = self.current.expect("current thread");
        let caller = core::mem::take(&mut self.objects.tcb_mut(me).reply_to);
        if caller == 0 {
            return Err(Error::InvalidCapability);
        }
        let c = self.objects.tcb_mut(caller);
        if c.state != ThreadState::BlockedOnReply || c.blocked_on != me {
            return Err(Error::InvalidCapability);
        }
        c.blocked_on = 0;
        if c.in_fault {
            // A fault handler's answer: resume at the faulting instruction, or stop.
            c.in_fault = false;
            let label = MessageInfo::from_raw(self.objects.tcb_mut(me).context.x[1]).label;
            if label == kaal_abi::fault::STOP {
                self.stop(caller, ThreadState::Faulted);
            } else {
                self.make_ready(caller);
            }
            return Ok(None);
        }
        self.transfer(me, caller, 0, false);
        if defer {
            return Ok(Some(caller));
        }
        self.make_ready(caller);
        Ok(None)
    }

    /// `reply_recv`.
    pub(crate) fn reply_receive(&mut self, cspace: &Capability, pointer: u64) -> SyscallResult {
        // Check the endpoint first so a bad one changes nothing.
        let cap = self.endpoint_cap(cspace, pointer, Rights::READ)?;
        // Fast path: when the receive will block (no sender waits, no signal is pending),
        // the caller can run at once instead of going through the run queue. Otherwise
        // the caller is made ready before the receive, as always.
        let will_block = self.receive_blocks(&cap);
        let deferred = self.reply_waking(will_block).ok().flatten();
        let result = self.receive(cspace, pointer, true);
        if let Some(caller) = deferred
            && !self.hand_over(caller)
        {
            self.make_ready(caller);
        }
        result
    }

    /// Whether a blocking receive on `cap` by the current thread would block: no sender
    /// waits at the endpoint and its bound notification holds no signal.
    pub(crate) fn receive_blocks(&self, cap: &Capability) -> bool {
        let Some(me) = self.current else {
            return false;
        };
        let bound = self.objects.tcb(me).bound_notification;
        if bound != 0 && self.objects.notification(bound).word != 0 {
            return false;
        }
        let head = self.objects.first_waiter(cap.object);
        head == 0 || self.objects.tcb(head).state != ThreadState::BlockedOnSend
    }

    fn deliver_signal(&mut self, thread: ThreadRef, word: u64) {
        let t = self.objects.tcb_mut(thread);
        let mut info = MessageInfo::new(0, 0);
        info.notification = true;
        t.context.x[0] = 0;
        t.context.x[1] = info.to_raw();
        t.context.x[6] = word;
    }

    /// `signal`.
    pub(crate) fn signal(&mut self, cspace: &Capability, pointer: u64) -> SyscallResult {
        let cap = self.lookup(cspace, pointer, ObjectType::Notification)?;
        if !cap.rights.contains(Rights::WRITE) {
            return Err(Error::MissingRights);
        }
        // An unbadged capability signals bit 0, so a signal is never lost as a zero word.
        self.signal_waking(cap.object, if cap.badge == 0 { 1 } else { cap.badge }, true);
        Ok((0, 0))
    }

    /// ORs `badge` into a notification and wakes whoever waits for it.
    pub(crate) fn signal_object(&mut self, address: u64, badge: u64) {
        self.signal_waking(address, badge, false);
    }

    /// [`Kernel::signal_object`]; with `fast`, a waiter of higher priority than the
    /// signalling thread runs at once ([`Kernel::preempt_to`]).
    pub(crate) fn signal_waking(&mut self, address: u64, badge: u64, fast: bool) {
        if let Some(waiter) = self.objects.dequeue(address) {
            let word = core::mem::take(&mut self.objects.notification_mut(address).word) | badge;
            let t = self.objects.tcb_mut(waiter);
            t.queued = false;
            t.blocked_on = 0;
            t.context.x[0] = 0;
            t.context.x[1] = word;
            if !(fast && self.preempt_to(waiter)) {
                self.make_ready(waiter);
            }
            return;
        }
        let n = self.objects.notification_mut(address);
        n.word |= badge;
        let bound = n.bound;
        if bound != 0 && self.objects.tcb(bound).state == ThreadState::BlockedOnReceive {
            self.cancel_ipc(bound);
            let word = core::mem::take(&mut self.objects.notification_mut(address).word);
            self.deliver_signal(bound, word);
            self.make_ready(bound);
        }
    }

    /// `wait` and `poll`.
    pub(crate) fn wait(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        blocking: bool,
    ) -> SyscallResult {
        let cap = self.lookup(cspace, pointer, ObjectType::Notification)?;
        if !cap.rights.contains(Rights::READ) {
            return Err(Error::MissingRights);
        }
        let n = self.objects.notification_mut(cap.object);
        if n.word != 0 || !blocking {
            return Ok((core::mem::take(&mut n.word), 0));
        }
        let me = self.current.expect("current thread");
        let t = self.objects.tcb_mut(me);
        t.state = ThreadState::BlockedOnNotification;
        t.blocked_on = cap.object;
        t.queued = true;
        self.objects.enqueue(cap.object, me);
        self.reschedule = true;
        self.mark_result_written();
        Ok((0, 0))
    }

    /// `tcb_bind_notification`.
    pub(crate) fn bind_notification(
        &mut self,
        cspace: &Capability,
        tcb_pointer: u64,
        pointer: u64,
    ) -> SyscallResult {
        let thread = self
            .lookup_with(cspace, tcb_pointer, ObjectType::Tcb, Rights::WRITE)?
            .object;
        let cap = self.lookup(cspace, pointer, ObjectType::Notification)?;
        // A bound thread receives the notification's signals: that is reading it. A
        // copy that may only signal must not let its holder take the owner's signals.
        if !cap.rights.contains(Rights::READ) {
            return Err(Error::MissingRights);
        }
        if self.objects.tcb(thread).bound_notification != 0
            || self.objects.notification_mut(cap.object).bound != 0
        {
            return Err(Error::IllegalOperation);
        }
        self.objects.tcb_mut(thread).bound_notification = cap.object;
        self.objects.notification_mut(cap.object).bound = thread;
        Ok((0, 0))
    }

    /// Undoes a thread's notification binding (the thread is being destroyed).
    pub(crate) fn unbind_notification(&mut self, thread: ThreadRef) {
        let bound = core::mem::take(&mut self.objects.tcb_mut(thread).bound_notification);
        if bound != 0 {
            self.objects.notification_mut(bound).bound = 0;
        }
    }

    /// Undoes a notification's binding (the notification is being destroyed).
    pub(crate) fn unbind_notification_object(&mut self, address: u64) {
        let bound = core::mem::take(&mut self.objects.notification_mut(address).bound);
        if bound != 0 {
            self.objects.tcb_mut(bound).bound_notification = 0;
        }
    }

    /// Takes `thread` out of whatever IPC it waits in, and drops its links to other
    /// threads' IPC state.
    pub(crate) fn cancel_ipc(&mut self, thread: ThreadRef) {
        let t = self.objects.tcb(thread);
        let (state, blocked_on) = (t.state, t.blocked_on);
        match state {
            ThreadState::BlockedOnSend
            | ThreadState::BlockedOnReceive
            | ThreadState::BlockedOnNotification
                if blocked_on != 0 =>
            {
                self.objects.unqueue(blocked_on, thread);
            }
            ThreadState::BlockedOnReply if blocked_on != 0 => {
                let server = self.objects.tcb_mut(blocked_on);
                if server.reply_to == thread {
                    server.reply_to = 0;
                }
            }
            _ => {}
        }
        let t = self.objects.tcb_mut(thread);
        if matches!(
            t.state,
            ThreadState::BlockedOnSend
                | ThreadState::BlockedOnReceive
                | ThreadState::BlockedOnNotification
                | ThreadState::BlockedOnReply
        ) {
            // The caller sets the next state; until then the thread is in no queue.
            t.queued = false;
            t.blocked_on = 0;
        }
    }

    /// Gives `server` the one-shot right to reply to `caller`. A reply right it still
    /// held is dropped (as in seL4): that caller stays blocked, no longer linked to this
    /// server, so nothing points at either thread once one of them is destroyed.
    pub(crate) fn set_reply_to(&mut self, server: ThreadRef, caller: ThreadRef) {
        self.drop_reply_right(server);
        self.objects.tcb_mut(server).reply_to = caller;
    }

    /// `server` ends without replying: its caller gets `Aborted` instead of waiting
    /// forever (a caller blocked in a fault it can no longer have handled ends as
    /// faulted).
    pub(crate) fn abort_caller(&mut self, server: ThreadRef) {
        let caller = core::mem::take(&mut self.objects.tcb_mut(server).reply_to);
        if caller == 0 {
            return;
        }
        let c = self.objects.tcb_mut(caller);
        if c.state != ThreadState::BlockedOnReply || c.blocked_on != server {
            return;
        }
        c.blocked_on = 0;
        if c.in_fault {
            self.stop(caller, ThreadState::Faulted);
            return;
        }
        c.context.x[0] = Error::Aborted as u64;
        self.make_ready(caller);
    }

    /// Drops `server`'s reply right, unlinking the caller that waits on it.
    pub(crate) fn drop_reply_right(&mut self, server: ThreadRef) {
        let caller = core::mem::take(&mut self.objects.tcb_mut(server).reply_to);
        if caller != 0 {
            let c = self.objects.tcb_mut(caller);
            if c.state == ThreadState::BlockedOnReply && c.blocked_on == server {
                c.blocked_on = 0;
            }
        }
    }

    /// Wakes every thread waiting on a destroyed endpoint or notification with an error.
    pub(crate) fn cancel_all_waiters(&mut self, address: u64) {
        // The object is being destroyed but its memory is intact until the system call
        // ends.
        while let Some(waiter) = self.objects.dequeue(address) {
            let t = self.objects.tcb_mut(waiter);
            t.queued = false;
            t.blocked_on = 0;
            if t.in_fault {
                // Its fault can no longer be handled: it ends as an unhandled fault.
                self.stop(waiter, ThreadState::Faulted);
                continue;
            }
            t.context.x[0] = Error::InvalidCapability as u64;
            self.make_ready(waiter);
        }
    }
}
