//! The generic timer: EL1 virtual timer (`CNTV_*`) for the scheduler tick, through
//! `aarch64-cpu`'s typed system registers.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTKCTL_EL1, CNTV_CTL_EL0, CNTV_TVAL_EL0, CNTVCT_EL0, Readable, Writeable,
};

/// Counter frequency in Hz (`CNTFRQ_EL0`).
pub fn frequency_hz() -> u64 {
    CNTFRQ_EL0.get()
}

/// Current virtual count (`CNTVCT_EL0`), read after earlier instructions (an `isb`
/// first, so the read is not hoisted).
pub fn counter() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Arms the virtual timer to fire `ticks` counter ticks from now, interrupt unmasked.
pub fn arm(ticks: u64) {
    CNTV_TVAL_EL0.set(ticks);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    barrier::isb(barrier::SY);
}

/// Turns this CPU's virtual timer off (its enable bit is unknown after reset).
pub fn disable() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::SET);
    barrier::isb(barrier::SY);
}

/// Lets EL0 read the virtual counter (`CNTVCT_EL0`) and its frequency, as Linux does, so
/// user space can measure time without a system call.
pub fn allow_user_counter_access() {
    CNTKCTL_EL1.write(CNTKCTL_EL1::EL0VCTEN::SET);
    barrier::isb(barrier::SY);
}
