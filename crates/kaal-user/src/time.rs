//! Reading the system counter from user space (the kernel allows EL0 to read
//! `CNTVCT_EL0` and `CNTFRQ_EL0`).

/// The virtual counter's current value, in ticks.
pub fn now_ticks() -> u64 {
    #[cfg(target_os = "none")]
    {
        let value: u64;
        // SAFETY: reading CNTVCT_EL0 has no side effects; the kernel enables EL0 access.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack))
        };
        value
    }
    #[cfg(not(target_os = "none"))]
    {
        0
    }
}

/// Counter ticks per second.
pub fn ticks_per_second() -> u64 {
    #[cfg(target_os = "none")]
    {
        let value: u64;
        // SAFETY: reading CNTFRQ_EL0 has no side effects.
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
        value
    }
    #[cfg(not(target_os = "none"))]
    {
        1
    }
}

/// Busy-waits (without yielding) for `micros` microseconds.
pub fn spin_for_micros(micros: u64) {
    let start = now_ticks();
    let ticks = micros * ticks_per_second() / 1_000_000;
    while now_ticks().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}
