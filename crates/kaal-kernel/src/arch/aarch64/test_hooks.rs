//! Test hooks: ways for a QEMU test suite to set up hardware conditions that QEMU's
//! emulated machine never produces on its own, so that the kernel's real handling of
//! them can be tested.
//!
//! Built only with the `test-hooks` cargo feature and debug assertions (the QEMU test
//! kernel turns the feature on and its test profile keeps debug assertions; the
//! benchmark profile turns them off, so measured kernels carry no hook check; a shipped
//! kernel never has it), and active only when the boot arguments hold
//! `kaal.test.hooks=1`. A suite calls a hook with `svc #0x7e57` ([`HOOK_SVC_IMMEDIATE`];
//! system calls use `svc #0`) and the hook's number in `x0`; the result comes back in
//! `x0` (0: done, 1: not possible in this configuration, `u64::MAX`: no such hook).
//! Unarmed, such an `svc` is an ordinary system call.
//!
//! Each hook only sets up the hardware condition; the exception that follows is taken
//! through the normal vectors and handled by the normal kernel code:
//!
//! * [`PEND_SERROR`]: pends a virtual SError (`HCR_EL2.VSE`, with `HCR_EL2.AMO` so that
//!   it is delivered to EL1) through a minimal EL2 vector table that the boot stub
//!   installs when the kernel starts at EL2. The kernel runs with SErrors masked, so the
//!   SError is taken the moment the calling thread is back at EL0: the way an
//!   asynchronous abort from a driver's bad device write arrives. QEMU's TCG emulation
//!   raises no physical SErrors; without EL2 the hook returns 1.
//! * [`RAISE_FIQ`]: makes SGI 15 a group-0 interrupt and sends it to this CPU with FIQs
//!   enabled at the GIC (GICv3: group 0 signalled through `ICC_IGRPEN0_EL1`, which is
//!   FIQ; GICv2: `GICC_CTLR.FIQEn`), so that an FIQ is taken when the caller is back at
//!   EL0.
//! * [`OVERFLOW_KERNEL_STACK`]: recurses on the kernel stack until it runs into the
//!   guard page below it. Never returns.
//! * [`FORCE_PREEMPTION`]: the next `x1` looks for a pending interrupt at the kernel's
//!   preemption points (retype zeroing, revoke and teardown batches) answer "pending",
//!   so a suite can stop a long operation part way at a known place and test what the
//!   kernel does before it is finished.
//! * [`SET_FAST_PATHS`]: turns the IPC fast paths off (`x1` = 0) or on (`x1` = 1), so
//!   that a suite can run the same operations through the general paths and compare;
//!   returns how many switches the fast paths made since boot (not 0: done).
//! * [`FORCED_LEFT`]: returns how many of the answers [`FORCE_PREEMPTION`] asked for are
//!   still unused, so a suite can wait until another thread's call has reached its
//!   preemption point (its threads share the CPU with the timer's round robin).
//! * [`GENERAL_SYSCALLS`]: returns how many system calls the general entry has taken
//!   (hook calls not counted), so a suite can tell which path a call took.
//! * [`CURRENT_CPU`]: returns the number of the CPU the caller runs on (0 is the boot
//!   CPU), so a suite can tell where the kernel placed its threads.
//! * [`QUERY`]: returns a bit mask of the hooks possible here (bit `n`: hook `n`).

use super::context::UserContext;
use super::gic::{Frames, GICC_CTLR, GICD_SGIR, GicRegisters};
use aarch64_cpu::registers::MPIDR_EL1;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;

/// The `svc` immediate of a hook call.
pub const HOOK_SVC_IMMEDIATE: u64 = 0x7e57;
/// Hook 0: which hooks are possible (bit mask).
pub const QUERY: u64 = 0;
/// Hook 1: pend a virtual SError, taken on the return to EL0 (needs EL2).
pub const PEND_SERROR: u64 = 1;
/// Hook 2: raise an FIQ (a group-0 SGI), taken on the return to EL0.
pub const RAISE_FIQ: u64 = 2;
/// Hook 3: overflow the kernel stack.
pub const OVERFLOW_KERNEL_STACK: u64 = 3;
/// Hook 4: answer "an interrupt is pending" at the next `x1` preemption points.
pub const FORCE_PREEMPTION: u64 = 4;

/// Hook 5: turn the IPC fast paths off (`x1` = 0) or on.
pub const SET_FAST_PATHS: u64 = 5;

/// Hook 6: how many forced answers ([`FORCE_PREEMPTION`]) are left unused.
pub const FORCED_LEFT: u64 = 6;

/// Hook 7: how many system calls the general entry has taken.
pub const GENERAL_SYSCALLS: u64 = 7;

/// Hook 8: the caller's CPU.
pub const CURRENT_CPU: u64 = 8;

/// System calls through the general entry ([`GENERAL_SYSCALLS`]).
static GENERAL_SYSCALL_COUNT: AtomicU64 = AtomicU64::new(0);

/// Counts a system call the general entry takes.
pub fn count_general_syscall() {
    GENERAL_SYSCALL_COUNT.fetch_add(1, Ordering::Relaxed);
}

/// Preemption points left that answer "pending" ([`FORCE_PREEMPTION`]).
static FORCED_PREEMPTIONS: AtomicU64 = AtomicU64::new(0);

/// Whether a preemption point should act as if an interrupt were pending: uses up one
/// of the answers [`FORCE_PREEMPTION`] asked for.
pub fn take_forced_preemption() -> bool {
    FORCED_PREEMPTIONS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// The SGI the FIQ hook uses.
const FIQ_SGI: u32 = 15;

static ARMED: AtomicBool = AtomicBool::new(false);
static BOOT_EL: AtomicU64 = AtomicU64::new(0);
static GIC: spin::Once<GicRegisters> = spin::Once::new();

// The EL2 vector table of the test kernel. The boot stub installs it (the symbol is 0
// in a kernel without the hooks) before dropping to EL1. It runs at the physical
// address with the EL2 MMU off, so it lives in `.text.boot` and touches no memory. The
// only entry is a lower-EL `hvc #0x7e57`, which pends a virtual SError; anything else
// taken to EL2 parks the CPU.
core::arch::global_asm!(
    r#"
.section .text.boot, "ax"
.balign 2048
.global kaal_el2_test_vectors
kaal_el2_test_vectors:
.rept 8
    .balign 128
0:  wfe
    b       0b
.endr
    .balign 128                         // lower EL, AArch64, synchronous
    mrs     x0, esr_el2
    lsr     x1, x0, #26
    cmp     x1, #0x16                   // EC: HVC from AArch64
    b.ne    1f
    and     x0, x0, #0xffff
    mov     x1, #0x7e57
    cmp     x0, x1
    b.ne    1f
    mrs     x0, hcr_el2
    orr     x0, x0, #(1 << 5)           // AMO: SErrors go to EL2, virtual ones to EL1
    orr     x0, x0, #(1 << 8)           // VSE: a virtual SError is pending
    msr     hcr_el2, x0
    isb
    mov     x0, #0
    eret
1:  wfe
    b       1b
.rept 7
    .balign 128
0:  wfe
    b       0b
.endr
"#
);

/// Arms the hooks if `bootargs` hold `kaal.test.hooks=1`. `boot_el` is the exception
/// level the kernel was started at; `gic` the interrupt controller's registers.
pub fn arm(bootargs: &str, boot_el: u64, gic: GicRegisters) {
    if !bootargs
        .split_whitespace()
        .any(|argument| argument == "kaal.test.hooks=1")
    {
        return;
    }
    BOOT_EL.store(boot_el, Ordering::Relaxed);
    GIC.call_once(|| gic);
    ARMED.store(true, Ordering::Release);
    crate::kprintln!("  test hooks armed (kaal.test.hooks=1): not a production kernel");
}

/// Runs the hook an `svc` from EL0 asks for, if it is a hook call and the hooks are
/// armed; returns whether it was one (then `x0` of `context` holds the result and the
/// thread returns straight to EL0).
///
/// # Safety
/// `context` must be the current thread's saved context, as the EL0 entry path passes it.
pub unsafe fn handle(context: *mut UserContext, esr: u64) -> bool {
    if !ARMED.load(Ordering::Acquire) || esr & 0xffff != HOOK_SVC_IMMEDIATE {
        return false;
    }
    // A hook is not a system call for a CPU that takes this thread over meanwhile.
    crate::smp::note_entry(crate::smp::this_cpu(), false);
    // SAFETY: the caller passes the saved context of the thread that made the call; no
    // reference to it is alive during the entry path.
    let hook = unsafe { (*context).x[0] };
    let result = match hook {
        QUERY => {
            let mut possible = (1 << RAISE_FIQ)
                | (1 << OVERFLOW_KERNEL_STACK)
                | (1 << FORCE_PREEMPTION)
                | (1 << SET_FAST_PATHS)
                | (1 << FORCED_LEFT)
                | (1 << GENERAL_SYSCALLS)
                | (1 << CURRENT_CPU);
            if BOOT_EL.load(Ordering::Relaxed) == 2 {
                possible |= 1 << PEND_SERROR;
            }
            possible
        }
        PEND_SERROR => pend_serror(),
        RAISE_FIQ => raise_fiq(),
        FORCE_PREEMPTION => {
            // SAFETY: as above.
            let count = unsafe { (*context).x[1] };
            FORCED_PREEMPTIONS.store(count, Ordering::Relaxed);
            0
        }
        FORCED_LEFT => FORCED_PREEMPTIONS.load(Ordering::Relaxed),
        GENERAL_SYSCALLS => GENERAL_SYSCALL_COUNT.load(Ordering::Relaxed),
        CURRENT_CPU => crate::smp::this_cpu() as u64,
        SET_FAST_PATHS => {
            // SAFETY: as above.
            crate::kernel::set_fast_paths(unsafe { (*context).x[1] } != 0)
        }
        OVERFLOW_KERNEL_STACK => {
            crate::kprintln!("[kaal] test hook: overflowing the kernel stack");
            recurse(0)
        }
        _ => u64::MAX,
    };
    // SAFETY: as above.
    unsafe { (*context).x[0] = result };
    true
}

fn pend_serror() -> u64 {
    if BOOT_EL.load(Ordering::Relaxed) != 2 {
        return 1;
    }
    // SAFETY: the kernel was started at EL2 and the boot stub installed the test EL2
    // vectors, whose HVC handler only sets HCR_EL2.AMO and VSE and returns; it clobbers
    // x0 and x1. SErrors stay masked at EL1 (PSTATE.A), so the SError is taken at EL0.
    unsafe { asm!("hvc #0x7e57", inout("x0") 0u64 => _, out("x1") _, options(nostack)) };
    0
}

register_bitfields! {u64,
    /// `ICC_SGI0R_EL1`: generates a group-0 SGI (GICv3).
    ICC_SGI0R_EL1 [
        /// Affinity level 3 of the targets.
        Aff3 OFFSET(48) NUMBITS(8) [],
        /// Affinity level 2 of the targets.
        Aff2 OFFSET(32) NUMBITS(8) [],
        /// The SGI's interrupt id.
        INTID OFFSET(24) NUMBITS(4) [],
        /// Affinity level 1 of the targets.
        Aff1 OFFSET(16) NUMBITS(8) [],
        /// The targets' affinity level 0 values, one bit each (0..15).
        TargetList OFFSET(0) NUMBITS(16) [],
    ],
}

fn raise_fiq() -> u64 {
    let Some(&gic) = GIC.get() else { return 1 };
    let bit = 1u32 << FIQ_SGI;
    // SAFETY: the registers `arm` was given: the GIC frames the kernel mapped as device
    // memory at boot, for good.
    match unsafe { gic.frames() } {
        Frames::V2 {
            distributor,
            cpu_interface,
        } => {
            // SGI 15 is group 0 like every interrupt on the kernel's GICv2 (signalled as
            // IRQ while FIQEn is clear): enable FIQEn, then send the SGI to this CPU.
            distributor.isenabler[0].set(bit);
            cpu_interface.ctlr.modify(GICC_CTLR::FIQEn::SET);
            distributor
                .sgir
                .write(GICD_SGIR::TargetListFilter::ThisCpu + GICD_SGIR::SGIINTID.val(FIQ_SGI));
        }
        Frames::V3 { sgi, .. } => {
            sgi.igroupr0.set(sgi.igroupr0.get() & !bit); // group 0
            sgi.ipriorityr[FIQ_SGI as usize].set(0x80);
            sgi.isenabler0.set(bit);
            let mpidr = MPIDR_EL1.extract();
            let target = ICC_SGI0R_EL1::TargetList.val(1 << (mpidr.read(MPIDR_EL1::Aff0) & 0xf))
                + ICC_SGI0R_EL1::Aff1.val(mpidr.read(MPIDR_EL1::Aff1))
                + ICC_SGI0R_EL1::Aff2.val(mpidr.read(MPIDR_EL1::Aff2))
                + ICC_SGI0R_EL1::Aff3.val(mpidr.read(MPIDR_EL1::Aff3))
                + ICC_SGI0R_EL1::INTID.val(u64::from(FIQ_SGI));
            // SAFETY: enabling group 0 at this CPU interface and sending a group-0 SGI to
            // this CPU only make an FIQ pending; FIQs stay masked at EL1. `asm!`:
            // `aarch64-cpu` has no accessors for `ICC_IGRPEN0_EL1` and `ICC_SGI0R_EL1`.
            unsafe {
                asm!(
                    "msr icc_igrpen0_el1, {one}",
                    "isb",
                    "msr icc_sgi0r_el1, {target}",
                    "isb",
                    one = in(reg) 1u64,
                    target = in(reg) target.value,
                    options(nostack),
                );
            }
        }
    }
    0
}

/// Recurses until the kernel stack runs out: each level keeps a 512-byte buffer live
/// across the next call.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut buffer = [0u8; 512];
    buffer[(depth % 512) as usize] = depth as u8;
    core::hint::black_box(&mut buffer);
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(buffer[(depth % 7) as usize])
}
