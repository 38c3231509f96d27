//! The generic timer: EL1 virtual timer (`CNTV_*`) for the scheduler tick.

use core::arch::asm;

/// Counter frequency in Hz (`CNTFRQ_EL0`).
pub fn frequency_hz() -> u64 {
    let value: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// Current virtual count (`CNTVCT_EL0`).
pub fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// Arms the virtual timer to fire `ticks` counter ticks from now, interrupt unmasked.
pub fn arm(ticks: u64) {
    // SAFETY: programming the EL1 virtual timer affects only its interrupt line.
    unsafe {
        asm!(
            "msr cntv_tval_el0, {t}",
            "msr cntv_ctl_el0, {on}",
            "isb",
            t = in(reg) ticks,
            on = in(reg) 1u64,
            options(nomem, nostack),
        );
    }
}

/// Lets EL0 read the virtual counter (`CNTVCT_EL0`) and its frequency, as Linux does, so
/// user space can measure time without a system call.
pub fn allow_user_counter_access() {
    // SAFETY: CNTKCTL_EL1.EL0VCTEN only grants EL0 read access to the virtual counter.
    unsafe { asm!("msr cntkctl_el1, {}", "isb", in(reg) 1u64 << 1, options(nomem, nostack)) };
}
