//! Synchronous endpoints and notifications.
//!
//! Message transfer copies the sender's `MessageInfo`, four register message registers
//! and, where both threads have IPC buffers, further message registers from buffer to
//! buffer, then the badge of the sender's capability. A call leaves the receiver a
//! one-shot right to reply (`reply_to`). Threads wait in intrusive queues inside the
//! endpoint or notification object.

use crate::arch::mmu::phys_to_virt;
use crate::capability::{CSpace, Capability, ObjectType, Rights};
use crate::kernel::{Kernel, SyscallResult, TcbLinks, tcb};
use crate::objects::{KernelSlots, resolve};
use crate::scheduler::{Queue, ThreadRef};
use crate::thread::{CSPACE_SLOT, IPC_BUFFER_SLOT, ThreadState};
use kaal_abi::{Error, IpcBuffer, MESSAGE_REGISTERS, MessageInfo, REGISTER_MESSAGE_REGISTERS};

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

/// # Safety
/// `address` must name a live endpoint (from an endpoint capability or a thread's
/// `blocked_on` while it waits in that endpoint).
unsafe fn endpoint<'a>(address: u64) -> &'a mut EndpointObject {
    // SAFETY: per the caller; objects are RAM in the linear map.
    unsafe { &mut *(phys_to_virt(address) as *mut EndpointObject) }
}

/// # Safety
/// As for [`endpoint`], for a notification.
unsafe fn notification<'a>(address: u64) -> &'a mut NotificationObject {
    // SAFETY: per the caller.
    unsafe { &mut *(phys_to_virt(address) as *mut NotificationObject) }
}

/// The IPC buffer of `thread`, if it has one.
fn ipc_buffer_frame(thread: ThreadRef) -> Option<u64> {
    // SAFETY: callers pass live TCBs.
    let cap = unsafe { tcb(thread) }.slots[IPC_BUFFER_SLOT as usize].cap;
    (cap.object_type == ObjectType::Frame4K).then_some(cap.object)
}

/// The IPC buffer in the frame at `frame`.
///
/// # Safety
/// `frame` must come from [`ipc_buffer_frame`] (a writable RAM frame, checked at
/// configure time; the slot empties if the frame is deleted), and no other reference to
/// the same frame may be live.
unsafe fn ipc_buffer<'a>(frame: u64) -> &'a mut IpcBuffer {
    // SAFETY: per the caller; RAM frames are in the linear map, page-sized.
    unsafe { &mut *(phys_to_virt(frame) as *mut IpcBuffer) }
}

impl Kernel {
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
        // SAFETY: both are live TCBs; they are distinct threads.
        let (s, r) = unsafe { (tcb(sender), tcb(receiver)) };
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
            match (ipc_buffer_frame(sender), ipc_buffer_frame(receiver)) {
                // Two threads sharing one IPC buffer: the words are already in place.
                (Some(from), Some(to)) if from == to => {}
                (Some(from), Some(to)) => {
                    // SAFETY: two distinct IPC buffer frames, one reference each.
                    let (from, to) = unsafe { (ipc_buffer(from), ipc_buffer(to)) };
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
        r.context.x[0] = 0;
        r.context.x[1] = info.to_raw();
        r.context.x[6] = badge;
    }

    /// Copies the capability the sender names in its IPC buffer into the receive slot
    /// the receiver names in its IPC buffer. Any problem means no capability moves.
    fn transfer_cap(&mut self, sender: ThreadRef, receiver: ThreadRef) -> bool {
        let (Some(from), Some(to)) = (ipc_buffer_frame(sender), ipc_buffer_frame(receiver)) else {
            return false;
        };
        // SAFETY: one reference at a time, each to an IPC buffer frame.
        let send_cap = unsafe { ipc_buffer(from) }.send_cap;
        // SAFETY: as above.
        let receive_slot = unsafe { ipc_buffer(to) }.receive_slot;
        if receive_slot == 0 {
            return false;
        }
        // SAFETY: both are live TCBs.
        let (sender_space, receiver_space) = unsafe {
            (
                tcb(sender).slots[CSPACE_SLOT as usize].cap,
                tcb(receiver).slots[CSPACE_SLOT as usize].cap,
            )
        };
        let (Ok(source), Ok(target)) = (
            resolve(&sender_space, send_cap),
            resolve(&receiver_space, receive_slot),
        ) else {
            return false;
        };
        CSpace::new(&mut KernelSlots)
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
        // SAFETY: callers pass live TCBs.
        let can_grant = cap.rights.contains(Rights::GRANT) && !unsafe { tcb(me) }.in_fault;
        // SAFETY: an endpoint capability names a live endpoint.
        let object = unsafe { endpoint(cap.object) };
        let head = object.queue.head;
        // SAFETY: queued threads are live.
        if head != 0 && unsafe { tcb(head) }.state == ThreadState::BlockedOnReceive {
            object.queue.remove(&mut TcbLinks, head);
            // SAFETY: as above.
            let receiver = unsafe { tcb(head) };
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
        // SAFETY: the current thread is live.
        let t = unsafe { tcb(me) };
        t.state = ThreadState::BlockedOnSend;
        t.blocked_on = cap.object;
        t.ipc_badge = cap.badge;
        t.ipc_is_call = is_call;
        t.ipc_can_grant = can_grant;
        t.queued = true;
        object.queue.push_back(&mut TcbLinks, me);
        self.reschedule = true;
        self.mark_result_written();
        Ok((0, 0))
    }

    fn block_on_reply(&mut self, caller: ThreadRef, server: ThreadRef) {
        // SAFETY: the caller is live.
        let t = unsafe { tcb(caller) };
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
        // SAFETY: the current thread is live.
        let bound = unsafe { tcb(me) }.bound_notification;
        if bound != 0 {
            // SAFETY: a bound notification is live (destroying it unbinds).
            let n = unsafe { notification(bound) };
            if n.word != 0 {
                let word = core::mem::take(&mut n.word);
                self.deliver_signal(me, word);
                self.mark_result_written();
                return Ok((0, 0));
            }
        }
        // SAFETY: an endpoint capability names a live endpoint.
        let object = unsafe { endpoint(cap.object) };
        let head = object.queue.head;
        // SAFETY: queued threads are live.
        if head != 0 && unsafe { tcb(head) }.state == ThreadState::BlockedOnSend {
            object.queue.remove(&mut TcbLinks, head);
            // SAFETY: as above.
            let sender = unsafe { tcb(head) };
            sender.queued = false;
            sender.blocked_on = 0;
            let (badge, is_call, can_grant) =
                (sender.ipc_badge, sender.ipc_is_call, sender.ipc_can_grant);
            self.transfer(head, me, badge, can_grant);
            if is_call {
                self.set_reply_to(me, head);
                self.block_on_reply(head, me);
            } else {
                // SAFETY: live.
                unsafe { tcb(head) }.context.x[0] = 0;
                self.make_ready(head);
            }
            self.mark_result_written();
            return Ok((0, 0));
        }
        if !blocking {
            return Err(Error::WouldBlock);
        }
        // SAFETY: live.
        let t = unsafe { tcb(me) };
        t.state = ThreadState::BlockedOnReceive;
        t.blocked_on = cap.object;
        t.queued = true;
        object.queue.push_back(&mut TcbLinks, me);
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
        // SAFETY: live.
        let caller = core::mem::take(&mut unsafe { tcb(me) }.reply_to);
        if caller == 0 {
            return Err(Error::InvalidCapability);
        }
        // SAFETY: `reply_to` is cleared when the caller is destroyed or stops waiting.
        let c = unsafe { tcb(caller) };
        if c.state != ThreadState::BlockedOnReply || c.blocked_on != me {
            return Err(Error::InvalidCapability);
        }
        c.blocked_on = 0;
        if c.in_fault {
            // A fault handler's answer: resume at the faulting instruction, or stop.
            c.in_fault = false;
            // SAFETY: the replier (the current thread) is live.
            let label = MessageInfo::from_raw(unsafe { tcb(me) }.context.x[1]).label;
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
    fn receive_blocks(&self, cap: &Capability) -> bool {
        let Some(me) = self.current else {
            return false;
        };
        // SAFETY: the current thread is live; read only.
        let bound = unsafe { tcb(me) }.bound_notification;
        // SAFETY: a bound notification is live (destroying it unbinds); read only.
        if bound != 0 && unsafe { notification(bound) }.word != 0 {
            return false;
        }
        // SAFETY: an endpoint capability names a live endpoint; read only.
        let head = unsafe { endpoint(cap.object) }.queue.head;
        // SAFETY: queued threads are live; read only.
        head == 0 || unsafe { tcb(head) }.state != ThreadState::BlockedOnSend
    }

    fn deliver_signal(&mut self, thread: ThreadRef, word: u64) {
        // SAFETY: callers pass live TCBs.
        let t = unsafe { tcb(thread) };
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
    fn signal_waking(&mut self, address: u64, badge: u64, fast: bool) {
        // SAFETY: callers pass live notifications.
        let n = unsafe { notification(address) };
        if let Some(waiter) = n.queue.pop_front(&mut TcbLinks) {
            let word = core::mem::take(&mut n.word) | badge;
            // SAFETY: queued threads are live.
            let t = unsafe { tcb(waiter) };
            t.queued = false;
            t.blocked_on = 0;
            t.context.x[0] = 0;
            t.context.x[1] = word;
            if !(fast && self.preempt_to(waiter)) {
                self.make_ready(waiter);
            }
            return;
        }
        n.word |= badge;
        let bound = n.bound;
        // SAFETY: a bound thread is live (destroying it unbinds).
        if bound != 0 && unsafe { tcb(bound) }.state == ThreadState::BlockedOnReceive {
            self.cancel_ipc(bound);
            // SAFETY: as above.
            let word = core::mem::take(&mut unsafe { notification(address) }.word);
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
        // SAFETY: a notification capability names a live notification.
        let n = unsafe { notification(cap.object) };
        if n.word != 0 || !blocking {
            return Ok((core::mem::take(&mut n.word), 0));
        }
        let me = self.current.expect("current thread");
        // SAFETY: live.
        let t = unsafe { tcb(me) };
        t.state = ThreadState::BlockedOnNotification;
        t.blocked_on = cap.object;
        t.queued = true;
        n.queue.push_back(&mut TcbLinks, me);
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
        // SAFETY: capabilities name live objects.
        let (t, n) = unsafe { (tcb(thread), notification(cap.object)) };
        if t.bound_notification != 0 || n.bound != 0 {
            return Err(Error::IllegalOperation);
        }
        t.bound_notification = cap.object;
        n.bound = thread;
        Ok((0, 0))
    }

    /// Undoes a thread's notification binding (the thread is being destroyed).
    pub(crate) fn unbind_notification(&mut self, thread: ThreadRef) {
        // SAFETY: callers pass live TCBs.
        let bound = core::mem::take(&mut unsafe { tcb(thread) }.bound_notification);
        if bound != 0 {
            // SAFETY: a bound notification is live.
            unsafe { notification(bound) }.bound = 0;
        }
    }

    /// Undoes a notification's binding (the notification is being destroyed).
    pub(crate) fn unbind_notification_object(&mut self, address: u64) {
        // SAFETY: the notification's memory is intact until the system call ends.
        let bound = core::mem::take(&mut unsafe { notification(address) }.bound);
        if bound != 0 {
            // SAFETY: a bound thread is live.
            unsafe { tcb(bound) }.bound_notification = 0;
        }
    }

    /// Takes `thread` out of whatever IPC it waits in, and drops its links to other
    /// threads' IPC state.
    pub(crate) fn cancel_ipc(&mut self, thread: ThreadRef) {
        // SAFETY: callers pass live TCBs.
        let t = unsafe { tcb(thread) };
        match t.state {
            ThreadState::BlockedOnSend | ThreadState::BlockedOnReceive if t.blocked_on != 0 => {
                // SAFETY: a thread blocked on an endpoint is in its queue; the endpoint
                // is live (destroying it cancels every waiter first).
                unsafe { endpoint(t.blocked_on) }
                    .queue
                    .remove(&mut TcbLinks, thread);
            }
            ThreadState::BlockedOnNotification if t.blocked_on != 0 => {
                // SAFETY: as above, for a notification.
                unsafe { notification(t.blocked_on) }
                    .queue
                    .remove(&mut TcbLinks, thread);
            }
            ThreadState::BlockedOnReply if t.blocked_on != 0 => {
                // SAFETY: the server is live while it holds our reply right.
                let server = unsafe { tcb(t.blocked_on) };
                if server.reply_to == thread {
                    server.reply_to = 0;
                }
            }
            _ => {}
        }
        // SAFETY: as above.
        let t = unsafe { tcb(thread) };
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
        // SAFETY: callers pass live TCBs.
        unsafe { tcb(server) }.reply_to = caller;
    }

    /// `server` ends without replying: its caller gets `Aborted` instead of waiting
    /// forever (a caller blocked in a fault it can no longer have handled ends as
    /// faulted).
    pub(crate) fn abort_caller(&mut self, server: ThreadRef) {
        // SAFETY: callers pass live TCBs.
        let caller = core::mem::take(&mut unsafe { tcb(server) }.reply_to);
        if caller == 0 {
            return;
        }
        // SAFETY: a caller blocked on our reply is live (destroying it clears `reply_to`
        // through `cancel_ipc`).
        let c = unsafe { tcb(caller) };
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
        // SAFETY: callers pass live TCBs.
        let caller = core::mem::take(&mut unsafe { tcb(server) }.reply_to);
        if caller != 0 {
            // SAFETY: a caller blocked on our reply is live (destroying it clears
            // `reply_to` through `cancel_ipc`).
            let c = unsafe { tcb(caller) };
            if c.state == ThreadState::BlockedOnReply && c.blocked_on == server {
                c.blocked_on = 0;
            }
        }
    }

    /// Wakes every thread waiting on a destroyed endpoint or notification with an error.
    pub(crate) fn cancel_all_waiters(&mut self, address: u64) {
        // SAFETY: the object is being destroyed but its memory is intact until the
        // system call ends; endpoints and notifications share the queue at offset 0.
        let queue = unsafe { &mut endpoint(address).queue };
        while let Some(waiter) = queue.pop_front(&mut TcbLinks) {
            // SAFETY: queued threads are live.
            let t = unsafe { tcb(waiter) };
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
