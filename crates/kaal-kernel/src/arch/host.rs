//! A simulated machine, for running the kernel's logic in host tests.
//!
//! Portable kernel code reaches the hardware only through the names every architecture
//! module defines (see [`crate::arch`]). This module defines them for a host build, so
//! that the whole kernel (system-call dispatch, IPC, scheduling, capability calls,
//! object teardown, mappings) builds and runs under plain `cargo test`, and under Miri:
//!
//! - RAM is host memory: a physical address is the host address of the bytes
//!   ([`mmu::phys_to_virt`] is the identity), so a test hands the kernel memory it
//!   allocated itself.
//! - The exception entry is the test: it writes a thread's registers, calls the kernel's
//!   entry point, and reads the registers back ([`exceptions::current_context`]).
//! - The interrupt controller, timer, UART, PSCI and semihosting record what the kernel
//!   asked of them in per-thread state ([`Machine`]), so parallel tests do not meet.
//!
//! The AArch64 formats that are pure data (translation tables, syndromes, saved
//! registers) are the real ones.

pub use super::aarch64::{context, esr, page_table};

use core::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::vec::Vec;

/// What the simulated hardware has seen and holds, for the calling test thread.
#[derive(Debug, Default)]
pub struct Machine {
    /// Bytes the kernel wrote to the UART.
    pub console: Vec<u8>,
    /// Interrupts raised and not yet acknowledged, oldest first.
    pub pending: VecDeque<u32>,
    /// Interrupts the kernel enabled at the GIC.
    pub enabled: BTreeSet<u32>,
    /// Interrupts the kernel acknowledged and ended, in order.
    pub ended: Vec<u32>,
    /// The saved registers the next return to user space restores.
    pub context: usize,
    /// The user translation table and ASID installed last.
    pub user_table: (u64, u16),
    /// TLB invalidations by ASID, in order.
    pub flushed_asids: Vec<u16>,
    /// Whether EL0 FP/SIMD accesses trap.
    pub fp_trapped: bool,
    /// Timer deadlines set, in counter ticks from "now".
    pub timer_armed: Vec<u64>,
    /// How many more looks for a pending interrupt answer "yes" (a test's way to stop a
    /// long operation at its preemption points).
    pub forced_preemptions: u32,
    /// CPUs the kernel interrupted (`smp::poke`), in order.
    pub pokes: Vec<usize>,
    /// Requests the kernel made of other CPUs (`smp::request`): the CPU and the bits.
    pub requests: Vec<(usize, u32)>,
    /// The CPUs online as the test plays them (bit `n`: CPU `n`); 0 means just CPU 0.
    pub online_cpus: u64,
    /// Per CPU: whether the entry it waits for the lock with is a system call
    /// (`smp::note_entry`).
    pub entered_with_syscall: [bool; crate::platform::MAX_CPUS],
}

std::thread_local! {
    static MACHINE: RefCell<Machine> = RefCell::new(Machine::default());
}

/// Runs `f` on this test thread's machine.
pub fn machine<R>(f: impl FnOnce(&mut Machine) -> R) -> R {
    MACHINE.with(|m| f(&mut m.borrow_mut()))
}

/// Raises interrupt `id` (taken at the next entry that looks for one).
pub fn raise_interrupt(id: u32) {
    machine(|m| m.pending.push_back(id));
}

/// Whether an interrupt is pending (the kernel's preemption point).
pub fn interrupt_pending() -> bool {
    machine(|m| {
        if m.forced_preemptions > 0 {
            m.forced_preemptions -= 1;
            return true;
        }
        !m.pending.is_empty()
    })
}

/// Waits for an interrupt: on the host nothing would ever arrive, so this panics (the
/// kernel halting with no thread to run).
pub fn wait_for_interrupt() {
    panic!("the kernel halted: no thread to run");
}

/// FP/SIMD registers: the host's are not the guest's, so switching them is a no-op.
pub fn save_fp(_state: &mut context::FpState) {}

/// As [`save_fp`].
pub fn restore_fp(_state: &context::FpState) {}

/// Records whether EL0 FP/SIMD accesses trap.
pub fn trap_user_fp(trap: bool) {
    machine(|m| m.fp_trapped = trap);
}

/// Address translation for the kernel: RAM is host memory, mapped one to one.
pub mod mmu {
    use super::machine;

    /// Kernel virtual address of RAM at `physical`: the same number on the host.
    pub const fn phys_to_virt(physical: u64) -> u64 {
        physical
    }

    /// Physical address of kernel virtual address `virtual_address`.
    pub const fn virt_to_phys(virtual_address: u64) -> u64 {
        virtual_address
    }

    /// ASID width: 16 bits, as on the CPUs QEMU's `max` models.
    pub fn asid_bits() -> u32 {
        16
    }

    /// Records the user table and ASID.
    ///
    /// # Safety
    /// None on the host; `unsafe` to match the hardware's signature.
    pub unsafe fn install_user_table(root: u64, asid: u16) {
        machine(|m| m.user_table = (root, asid));
    }

    /// Nothing is cached on the host.
    pub fn flush_tlb() {}

    /// Nothing is cached on the host.
    pub fn flush_page(_asid: u16, _virtual_address: u64) {}

    /// Records the invalidation.
    pub fn flush_asid(asid: u16) {
        machine(|m| m.flushed_asids.push(asid));
    }
}

/// The interrupt controller: interrupts a test raised, acknowledged in order.
pub mod gic {
    use super::machine;

    /// First interrupt id that means "none pending".
    pub const SPURIOUS_START: u32 = 1020;

    /// The SGI one CPU sends another, as on the hardware.
    pub const IPI_SGI: u32 = 1;

    /// The simulated GIC (its state is the test thread's [`super::Machine`]).
    #[derive(Debug, Default)]
    pub struct Gic;

    impl Gic {
        /// The GIC version the simulation claims.
        pub fn version(&self) -> u32 {
            3
        }

        /// Enables delivery of `id`.
        pub fn enable(&mut self, id: u32) {
            machine(|m| m.enabled.insert(id));
        }

        /// Disables delivery of `id`.
        pub fn disable(&mut self, id: u32) {
            machine(|m| m.enabled.remove(&id));
        }

        /// The oldest pending interrupt, or a spurious id.
        pub fn acknowledge(&mut self) -> u32 {
            machine(|m| m.pending.pop_front()).unwrap_or(SPURIOUS_START + 3)
        }

        /// No FIQs are simulated.
        pub fn quiesce_fiq(&mut self) -> Option<u32> {
            None
        }

        /// Records the end of `id`.
        pub fn end_of_interrupt(&mut self, id: u32) {
            machine(|m| m.ended.push(id));
        }
    }
}

/// Exception entry and return: the test plays the CPU.
pub mod exceptions {
    use super::context::UserContext;
    use super::machine;

    /// Makes `context` the one the next return to user space restores.
    ///
    /// # Safety
    /// `context` must stay valid until another is installed (as on hardware).
    pub unsafe fn set_current_context(context: *mut UserContext) {
        machine(|m| m.context = context as usize);
    }

    /// The context installed last (null before any).
    pub fn current_context() -> *mut UserContext {
        machine(|m| m.context as *mut UserContext)
    }

    /// Idling: on the host the kernel must never wait (a test that leaves no thread
    /// ready has gone wrong), so this panics.
    pub fn wait_with_interrupts_enabled() {
        panic!("the kernel idled: no thread is ready");
    }
}

/// Power control.
pub mod psci {
    use crate::platform::PsciConduit;

    /// Switching off ends the test with a panic (a kernel that powers off in a host
    /// test has run out of threads, which the test did not expect).
    pub fn system_off(_conduit: PsciConduit) {
        panic!("the kernel powered the machine off");
    }

    /// The simulated machine has one CPU: there is none to start (PSCI's
    /// `INVALID_PARAMETERS`).
    pub fn cpu_on(
        _conduit: PsciConduit,
        _function: u32,
        _target: u64,
        _entry: u64,
        _context: u64,
    ) -> Result<(), i64> {
        Err(-2)
    }
}

/// Semihosting.
pub mod semihosting {
    /// Ends the test with a panic naming `status`.
    ///
    /// # Safety
    /// None on the host.
    pub unsafe fn exit(status: u32) -> ! {
        panic!("semihosting exit {status}");
    }
}

/// The generic timer.
pub mod timer {
    use super::machine;

    /// A 62.5 MHz counter, as QEMU's.
    pub fn frequency_hz() -> u64 {
        62_500_000
    }

    /// The counter: the number of deadlines armed so far (time moves only when asked).
    pub fn counter() -> u64 {
        machine(|m| m.timer_armed.len() as u64)
    }

    /// Records a deadline `ticks` from now.
    pub fn arm(ticks: u64) {
        machine(|m| m.timer_armed.push(ticks));
    }
}

/// The console UART.
pub mod pl011 {
    use super::machine;

    /// The simulated PL011: what it sends lands in [`super::Machine::console`].
    #[derive(Debug)]
    pub struct Pl011;

    impl Pl011 {
        /// A UART "at" `base` (ignored).
        ///
        /// # Safety
        /// None on the host.
        pub const unsafe fn new(_base: usize) -> Self {
            Self
        }

        /// The simulated FIFO never fills.
        pub fn transmit_full(&self) -> bool {
            false
        }

        /// Sends one byte.
        pub fn write_byte(&mut self, byte: u8) {
            machine(|m| m.console.push(byte));
        }
    }

    impl core::fmt::Write for Pl011 {
        fn write_str(&mut self, text: &str) -> core::fmt::Result {
            text.bytes().for_each(|byte| self.write_byte(byte));
            Ok(())
        }
    }
}
