//! AArch64 support. Every architecture module exports the same names; portable code
//! uses them through `crate::arch` and never tests `target_arch` itself.
//!
//! `page_table`, `esr` and `context` are pure and compile on any host for unit tests;
//! the rest touches the hardware and is built only for the bare-metal target.

pub mod context;
pub mod esr;
pub mod page_table;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod exceptions;
#[cfg(target_os = "none")]
pub mod gic;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod pl011;
#[cfg(target_os = "none")]
pub mod psci;
#[cfg(target_os = "none")]
pub mod semihosting;
#[cfg(all(target_os = "none", feature = "test-hooks", debug_assertions))]
pub mod test_hooks;
#[cfg(target_os = "none")]
pub mod timer;

#[cfg(target_os = "none")]
pub use boot::{
    KERNEL_STACK_BYTES, kernel_stack, kernel_stack_guard, secondary_entry, stack_guard_pages,
};
#[cfg(target_os = "none")]
pub use context::{restore_fp, save_fp, trap_user_fp};

/// Whether an interrupt is pending at this CPU (`ISR_EL1.I`), masked or not: the
/// kernel's preemption point. Reading it acknowledges nothing.
#[cfg(target_os = "none")]
#[inline]
pub fn interrupt_pending() -> bool {
    use tock_registers::interfaces::Readable;
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    if test_hooks::take_forced_preemption() {
        return true;
    }
    isr::ISR_EL1.is_set(isr::ISR_EL1::I)
}

/// `ISR_EL1`, in the style of `aarch64-cpu`'s registers, which has no accessor for it.
#[cfg(target_os = "none")]
mod isr {
    use tock_registers::interfaces::Readable;
    use tock_registers::register_bitfields;

    register_bitfields! {u64,
        /// Interrupt status register: which interrupts are pending, masked or not.
        pub ISR_EL1 [
            /// An FIQ is pending.
            F OFFSET(6) NUMBITS(1) [],
            /// An IRQ is pending.
            I OFFSET(7) NUMBITS(1) [],
            /// An SError is pending.
            A OFFSET(8) NUMBITS(1) [],
        ],
    }

    /// The register's accessor.
    pub struct Reg;

    impl Readable for Reg {
        type T = u64;
        type R = ISR_EL1::Register;

        #[inline]
        fn get(&self) -> u64 {
            let value;
            // SAFETY: reading ISR_EL1 has no side effects and touches no memory.
            unsafe { core::arch::asm!("mrs {}, isr_el1", out(reg) value, options(nomem, nostack)) };
            value
        }
    }

    /// `ISR_EL1`: read-only.
    pub const ISR_EL1: Reg = Reg;
}

/// Waits for an interrupt (interrupts stay masked; an interrupt just ends the wait).
#[cfg(target_os = "none")]
pub fn wait_for_interrupt() {
    aarch64_cpu::asm::wfi();
}

/// Reads a general system register by name.
#[cfg(target_os = "none")]
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading an ID or status system register has no side effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
        value
    }};
}
#[cfg(target_os = "none")]
pub(crate) use read_sysreg;
