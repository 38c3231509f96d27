//! The thread control block: a kernel object in memory retyped from untyped RAM.
//!
//! It holds the thread's registers and FP state, three capability slots (its CSpace root,
//! its address space and its IPC buffer frame, as in seL4: copies in the derivation tree,
//! so deleting or revoking the originals empties these slots instead of leaving dangling
//! references), and its scheduling and IPC state. Plain data, so its layout is checked
//! on the host.

use crate::arch::context::UserContext;
use crate::capability::{ObjectType, SLOT_SIZE_BITS, Slot, TCB_SIZE_BITS};
use crate::scheduler::ThreadRef;

/// Index of the CSpace root slot in [`Tcb::slots`].
pub const CSPACE_SLOT: u32 = 0;
/// Index of the address-space slot.
pub const VSPACE_SLOT: u32 = 1;
/// Index of the IPC-buffer frame slot.
pub const IPC_BUFFER_SLOT: u32 = 2;

/// Life cycle and blocking state of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    /// Created or suspended: not scheduled until resumed.
    Inactive,
    /// In a run queue.
    Ready,
    /// On the CPU.
    Running,
    /// Waiting in an endpoint's queue to send.
    BlockedOnSend,
    /// Waiting in an endpoint's queue to receive.
    BlockedOnReceive,
    /// Waiting for the reply to a call.
    BlockedOnReply,
    /// Waiting on a notification.
    BlockedOnNotification,
    /// Ended by `thread_exit`.
    Exited,
    /// Stopped after a fault nobody handled.
    Faulted,
}

impl ThreadState {
    /// Whether the thread has ended (exited or faulted).
    pub fn has_ended(self) -> bool {
        matches!(self, Self::Exited | Self::Faulted)
    }
}

/// A thread control block.
#[repr(C)]
#[derive(Debug)]
pub struct Tcb {
    /// Saved user registers (while not running).
    pub context: UserContext,
    /// CSpace root, address space and IPC buffer: see the `*_SLOT` constants.
    pub slots: [Slot; 3],
    /// Scheduling and blocking state.
    pub state: ThreadState,
    /// Scheduling priority; higher runs first.
    pub priority: u8,
    /// Whether the thread is linked into a run queue or a wait queue.
    pub queued: bool,
    /// The CPU the thread runs on (0, the boot CPU, unless set): it waits in that CPU's
    /// run queue.
    pub affinity: u8,
    /// Previous thread in the queue the thread is in.
    pub previous: ThreadRef,
    /// Next thread in the queue the thread is in.
    pub next: ThreadRef,
    /// The number `thread_id` reports.
    pub number: u64,
    /// Exit code, once exited.
    pub exit_code: u64,
    /// Virtual address of the IPC buffer in the thread's address space.
    pub ipc_buffer_vaddr: u64,
    /// Capability pointer (in the thread's CSpace) of its fault endpoint; 0 for none.
    pub fault_endpoint: u64,
    /// The object the thread is blocked on (endpoint, notification, or the server it
    /// waits for a reply from); 0 when not blocked.
    pub blocked_on: u64,
    /// Badge of the capability the thread is sending through.
    pub ipc_badge: u64,
    /// Whether the blocked send is a call (the receiver gets to reply).
    pub ipc_is_call: bool,
    /// Whether the blocked send may transfer capabilities.
    pub ipc_can_grant: bool,
    /// The caller this thread may reply to (its one-shot reply right); 0 for none.
    pub reply_to: ThreadRef,
    /// A notification bound to this thread, 0 for none.
    pub bound_notification: u64,
    /// Set while the thread is in a fault call: its message is `fault_message`, not its
    /// registers, and the reply decides whether it resumes.
    pub in_fault: bool,
    /// The fault message: `MessageInfo` then four words.
    pub fault_message: [u64; 5],
}

const _: () = {
    assert!(core::mem::size_of::<Slot>() == 1 << SLOT_SIZE_BITS);
    assert!(core::mem::size_of::<Tcb>() <= 1 << TCB_SIZE_BITS);
    assert!(core::mem::offset_of!(Tcb, context) == 0);
};

impl Tcb {
    /// Whether the thread has an address space: a thread without one cannot run (the
    /// scheduler stops it).
    pub fn has_address_space(&self) -> bool {
        self.slots[VSPACE_SLOT as usize].cap.object_type == ObjectType::AddressSpace
    }

    /// Writes a system call's result into the thread's registers: `x0 = 0` and the two
    /// values in `x1` and `x2` on success; the error code in `x0` alone otherwise.
    pub fn set_result(&mut self, result: Result<(u64, u64), kaal_abi::Error>) {
        let x = &mut self.context.x;
        match result {
            Ok((value, extra)) => {
                x[0] = 0;
                x[1] = value;
                x[2] = extra;
            }
            Err(error) => x[0] = error as u64,
        }
    }

    /// A fresh, inactive thread with no capabilities.
    pub fn new(number: u64) -> Self {
        Self {
            context: UserContext::default(),
            slots: [Slot::EMPTY; 3],
            state: ThreadState::Inactive,
            priority: 0,
            queued: false,
            affinity: 0,
            previous: 0,
            next: 0,
            number,
            exit_code: 0,
            ipc_buffer_vaddr: 0,
            fault_endpoint: 0,
            blocked_on: 0,
            ipc_badge: 0,
            ipc_is_call: false,
            ipc_can_grant: false,
            reply_to: 0,
            bound_notification: 0,
            in_fault: false,
            fault_message: [0; 5],
        }
    }

    /// Makes the zeroed memory at `tcb` the thread [`Tcb::new`]`(number)` makes, writing
    /// only its number: every other field of a fresh thread is zero (its state
    /// [`ThreadState::Inactive`], its slots empty, its registers zero; a host test
    /// checks that the two agree). Retype zeroes objects' memory already, so creating a
    /// TCB costs a few instructions, not a kilobyte's copy, and a retype of many keeps
    /// interrupts waiting for less.
    ///
    /// # Safety
    /// `tcb` must point to `size_of::<Tcb>()` zeroed bytes, aligned for a `Tcb`, that
    /// nothing else uses.
    pub unsafe fn initialise_zeroed(tcb: *mut Tcb, number: u64) {
        const { assert!(ThreadState::Inactive as u8 == 0) };
        // SAFETY: per the caller, `tcb` is valid for writes; the field is a plain u64.
        unsafe { core::ptr::addr_of_mut!((*tcb).number).write(number) };
    }

    /// Key of this TCB's slots for the capability store (`cnode` of its `SlotRef`s).
    pub fn slots_key(tcb: ThreadRef) -> u64 {
        tcb + core::mem::offset_of!(Tcb, slots) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_its_object_size_with_slots_on_the_slot_stride() {
        assert!(core::mem::size_of::<Tcb>() <= 2048);
        assert_eq!(core::mem::offset_of!(Tcb, slots) % 8, 0);
        assert_eq!(
            Tcb::slots_key(0x1000),
            0x1000 + core::mem::offset_of!(Tcb, slots) as u64
        );
        let tcb = Tcb::new(7);
        assert_eq!(tcb.state, ThreadState::Inactive);
        assert!(tcb.slots.iter().all(|s| s.cap.is_null()));
        assert!(ThreadState::Faulted.has_ended() && !ThreadState::BlockedOnReply.has_ended());
    }

    #[test]
    fn zeroed_memory_with_a_number_is_a_fresh_thread() {
        let mut memory = Box::<Tcb>::new_zeroed();
        // SAFETY: a zeroed, aligned allocation of a `Tcb`, used by nothing else.
        unsafe { Tcb::initialise_zeroed(memory.as_mut_ptr(), 7) };
        // SAFETY: every field's all-zero bytes are a valid value (the assertion above
        // and this test's comparison show that they are those of a fresh thread).
        let tcb = unsafe { memory.assume_init() };
        assert_eq!(format!("{tcb:?}"), format!("{:?}", Tcb::new(7)));
    }
}
