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
pub use boot::{KERNEL_STACK_BYTES, kernel_stack, kernel_stack_guard, stack_guard_pages};
#[cfg(target_os = "none")]
pub use context::{restore_fp, save_fp, trap_user_fp};

/// Whether an interrupt is pending at this CPU (`ISR_EL1.I`), masked or not: the
/// kernel's preemption point. Reading it acknowledges nothing.
#[cfg(target_os = "none")]
pub fn interrupt_pending() -> bool {
    const ISR_EL1_I: u64 = 1 << 7;
    #[cfg(all(feature = "test-hooks", debug_assertions))]
    if test_hooks::take_forced_preemption() {
        return true;
    }
    read_sysreg!("isr_el1") & ISR_EL1_I != 0
}

/// Waits for an interrupt (interrupts stay masked; an interrupt just ends the wait).
#[cfg(target_os = "none")]
pub fn wait_for_interrupt() {
    // SAFETY: WFI only pauses the CPU.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
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
