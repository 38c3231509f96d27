//! A user thread's saved register state and the entry/exit path that fills and drains it.

/// Registers of a user thread while it is not running (or while the kernel handles one of
/// its exceptions). The layout is shared with the exception entry assembly.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct UserContext {
    /// `x0` to `x30`.
    pub x: [u64; 31],
    /// `SP_EL0`.
    pub sp: u64,
    /// Return address (`ELR_EL1`).
    pub pc: u64,
    /// Saved program status (`SPSR_EL1`).
    pub pstate: u64,
    /// FP/SIMD registers `q0..q31`, saved only when threads switch.
    pub fp: FpState,
}

/// FP/SIMD state: `q0..q31`, `FPCR`, `FPSR`.
#[repr(C, align(16))]
#[derive(Clone, Debug, Default)]
pub struct FpState {
    /// `q0..q31`.
    pub q: [u128; 32],
    /// `FPCR`.
    pub fpcr: u64,
    /// `FPSR`.
    pub fpsr: u64,
}

const _: () = {
    assert!(core::mem::offset_of!(UserContext, sp) == 31 * 8);
    assert!(core::mem::offset_of!(UserContext, pc) == 32 * 8);
    assert!(core::mem::offset_of!(UserContext, pstate) == 33 * 8);
    assert!(core::mem::offset_of!(UserContext, fp) == 34 * 8);
};

/// `SPSR_EL1` for a thread that starts at EL0 with interrupts enabled.
pub const PSTATE_EL0: u64 = 0;

impl UserContext {
    /// A fresh context that enters EL0 at `pc` with stack `sp` and `x0 = arg0`, `x1 = arg1`.
    pub fn new(pc: u64, sp: u64, arg0: u64, arg1: u64) -> Self {
        let mut context = Self {
            pc,
            sp,
            pstate: PSTATE_EL0,
            ..Self::default()
        };
        context.x[0] = arg0;
        context.x[1] = arg1;
        context
    }
}

#[cfg(target_os = "none")]
mod hardware {
    use super::FpState;

    core::arch::global_asm!(
        r#"
.arch_extension fp
.arch_extension simd
.section .text.kaal_fp, "ax"
.global kaal_fp_save
kaal_fp_save:
    stp q0, q1, [x0, #0]
    stp q2, q3, [x0, #32]
    stp q4, q5, [x0, #64]
    stp q6, q7, [x0, #96]
    stp q8, q9, [x0, #128]
    stp q10, q11, [x0, #160]
    stp q12, q13, [x0, #192]
    stp q14, q15, [x0, #224]
    stp q16, q17, [x0, #256]
    stp q18, q19, [x0, #288]
    stp q20, q21, [x0, #320]
    stp q22, q23, [x0, #352]
    stp q24, q25, [x0, #384]
    stp q26, q27, [x0, #416]
    stp q28, q29, [x0, #448]
    stp q30, q31, [x0, #480]
    mrs x1, fpcr
    mrs x2, fpsr
    str x1, [x0, #512]
    str x2, [x0, #520]
    ret
.global kaal_fp_restore
kaal_fp_restore:
    ldp q0, q1, [x0, #0]
    ldp q2, q3, [x0, #32]
    ldp q4, q5, [x0, #64]
    ldp q6, q7, [x0, #96]
    ldp q8, q9, [x0, #128]
    ldp q10, q11, [x0, #160]
    ldp q12, q13, [x0, #192]
    ldp q14, q15, [x0, #224]
    ldp q16, q17, [x0, #256]
    ldp q18, q19, [x0, #288]
    ldp q20, q21, [x0, #320]
    ldp q22, q23, [x0, #352]
    ldp q24, q25, [x0, #384]
    ldp q26, q27, [x0, #416]
    ldp q28, q29, [x0, #448]
    ldp q30, q31, [x0, #480]
    ldr x1, [x0, #512]
    ldr x2, [x0, #520]
    msr fpcr, x1
    msr fpsr, x2
    ret
"#
    );

    unsafe extern "C" {
        fn kaal_fp_save(state: *mut FpState);
        fn kaal_fp_restore(state: *const FpState);
    }

    /// Saves the live FP/SIMD registers into `state`.
    pub fn save_fp(state: &mut FpState) {
        // SAFETY: `state` is a valid, exclusively borrowed, 16-byte aligned FpState, which
        // is exactly what the assembly writes (528 bytes).
        unsafe { kaal_fp_save(state) }
    }

    /// Loads the FP/SIMD registers from `state`.
    pub fn restore_fp(state: &FpState) {
        // SAFETY: `state` is a valid FpState; the assembly only reads it. The kernel is
        // built without FP, so clobbering the FP registers cannot disturb kernel code.
        unsafe { kaal_fp_restore(state) }
    }
}

#[cfg(target_os = "none")]
pub use hardware::{restore_fp, save_fp};

/// Makes EL0's FP/SIMD accesses trap to the kernel (`true`) or run freely (`false`),
/// through `CPACR_EL1.FPEN`. EL1 keeps access either way, to save and restore.
#[cfg(target_os = "none")]
pub fn trap_user_fp(trap: bool) {
    use aarch64_cpu::registers::{CPACR_EL1, Writeable};
    // CPACR_EL1.FPEN only controls FP/SIMD trapping (the other fields are written 0:
    // SVE and SME stay trapped); the exception return that follows synchronises the
    // change before EL0 runs.
    CPACR_EL1.write(if trap {
        CPACR_EL1::FPEN::TrapEl0
    } else {
        CPACR_EL1::FPEN::TrapNothing
    });
}
