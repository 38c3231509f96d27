//! The exception vector table and the paths into and out of the kernel.
//!
//! Entries from EL0 save the thread's registers into the [`UserContext`] that
//! `TPIDR_EL1` points at, run the handler on the (per-CPU) kernel stack, and return to
//! whichever thread `TPIDR_EL1` names afterwards: switching threads is changing one
//! pointer. Exceptions taken at EL1 are kernel faults, except IRQs taken while idle.
//!
//! From EL0, besides system calls, faults and IRQs:
//!
//! * an SError (an asynchronous abort, e.g. a driver's write to a device address that
//!   answers with a bus error) is a fault of the thread that runs when it is taken: it
//!   goes to the thread's fault endpoint or is reported and stops the thread, like any
//!   other fault ([`crate::kernel::on_user_entry`]);
//! * an FIQ is a stray: the kernel uses no FIQs, so it turns FIQ signalling off at the
//!   GIC, reports it and returns to the thread ([`crate::kernel::on_user_fiq`]).
//!
//! Synchronous exceptions and SErrors taken at EL1 are fatal. Their vectors switch to the
//! dedicated exception stack before saving anything (see [`super::boot`]), so that a
//! kernel stack overflow, which faults on the guard page below the kernel stack, ends in
//! a clear report rather than in faults recursing on the exhausted stack.

use super::context::UserContext;
use super::esr::{ExceptionClass, fault_status};
use crate::kernel::{self, UserEntry};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ELR_EL1, ESR_EL1, FAR_EL1, Readable, TPIDR_EL1, VBAR_EL1, Writeable};
use core::sync::atomic::{AtomicU32, Ordering};

core::arch::global_asm!(
    r#"
.section .text.kaal_vectors, "ax"
.balign 2048
.global kaal_vectors
kaal_vectors:
    // Current EL with SP_EL0: never used by KaaL.
    .balign 128
    mov x0, #0
    b kaal_unexpected_entry
    .balign 128
    mov x0, #1
    b kaal_unexpected_entry
    .balign 128
    mov x0, #2
    b kaal_unexpected_entry
    .balign 128
    mov x0, #3
    b kaal_unexpected_entry
    // Current EL with SP_ELx: the kernel itself.
    .balign 128
    b kaal_kernel_sync_entry
    .balign 128
    b kaal_kernel_irq_entry
    .balign 128
    mov x0, #6
    b kaal_unexpected_entry
    .balign 128
    b kaal_kernel_serror_entry
    // Lower EL, AArch64: user threads.
    .balign 128
    b kaal_user_sync_entry
    .balign 128
    b kaal_user_irq_entry
    .balign 128
    b kaal_user_fiq_entry
    .balign 128
    b kaal_user_serror_entry
    // Lower EL, AArch32: never used by KaaL.
    .balign 128
    mov x0, #12
    b kaal_unexpected_entry
    .balign 128
    mov x0, #13
    b kaal_unexpected_entry
    .balign 128
    mov x0, #14
    b kaal_unexpected_entry
    .balign 128
    mov x0, #15
    b kaal_unexpected_entry

.macro SAVE_USER
    stp     x0, x1, [sp, #-16]!
    mrs     x0, tpidr_el1
    stp     x2, x3, [x0, #16]
    stp     x4, x5, [x0, #32]
    stp     x6, x7, [x0, #48]
    stp     x8, x9, [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    stp     x18, x19, [x0, #144]
    stp     x20, x21, [x0, #160]
    stp     x22, x23, [x0, #176]
    stp     x24, x25, [x0, #192]
    stp     x26, x27, [x0, #208]
    stp     x28, x29, [x0, #224]
    str     x30, [x0, #240]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x0, #0]
    mrs     x1, sp_el0
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    str     x1, [x0, #248]
    stp     x2, x3, [x0, #256]
.endm

kaal_user_sync_entry:
    cmp     x8, #{thread_id}
    b.eq    kaal_thread_id_entry
kaal_user_sync_save:
    SAVE_USER
    bl      kaal_user_sync
    b       kaal_return_to_user

// `thread_id` (`svc #0`, `x8` = 8) is answered here, before anything is saved: its answer
// is the thread's number, which never changes while the thread exists, so it takes no
// lock and changes nothing; the result registers `x0..x2` are the only ones written,
// everything else the thread sees is untouched. (`x0`/`x1` are parked on the kernel stack
// while ESR is checked: a fault or another `svc` immediate with `x8` = 8 goes on to the
// general entry with every register as it was.) Unlike every other call it does not first
// finish a teardown that a preempted call left pending: it touches no object but the
// caller's own TCB, which a teardown frees only after it has stopped the thread. With
// threads on several CPUs the same holds only if destroying a thread that runs on
// another CPU interrupts that CPU and waits until it left EL0 before the TCB is reused
// (as `SAVE_USER` needs too): a design that instead checks a "dying" flag on kernel
// entry would be bypassed here.
kaal_thread_id_entry:
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el1
    movz    x1, #0x5600, lsl #16        // EC 0x15 (SVC from AArch64), IL = 1, immediate 0
    cmp     x0, x1
    b.ne    1f
    mrs     x0, tpidr_el1               // the running thread's context, first in its TCB
    ldr     x1, [x0, #{tcb_number}]
    add     sp, sp, #16
    mov     x0, #0
    mov     x2, #0
    eret
    dsb     nsh                         // (never reached: no speculation past the eret)
    isb
1:  ldp     x0, x1, [sp], #16
    b       kaal_user_sync_save

kaal_user_irq_entry:
    SAVE_USER
    bl      kaal_user_irq
    b       kaal_return_to_user

kaal_user_fiq_entry:
    SAVE_USER
    bl      kaal_user_fiq
    b       kaal_return_to_user

kaal_user_serror_entry:
    SAVE_USER
    bl      kaal_user_serror
    b       kaal_return_to_user

// x0 = the top of this CPU's exception stack (x1 clobbered). CONTEXTIDR_EL1 holds the
// CPU's number (set where each CPU starts): the boot CPU's exception stack is
// `__exception_stack_top`, CPU n's the top of its stride in `__secondary_stacks`. Each
// CPU's kernel stack ends a guard page below its exception stack (`exception_part`
// below its top: `__boot_stack_top` for the boot CPU).
.macro EXCEPTION_STACK_TOP
    mrs     x1, contextidr_el1
    cbz     x1, 1f
    ldr     x0, ={secondary_stride}
    mul     x1, x1, x0
    ldr     x0, =__secondary_stacks
    add     x0, x0, x1
    b       2f
1:  ldr     x0, =__exception_stack_top
2:
.endm

// Resets this CPU's kernel stack and returns to the thread.
.global kaal_enter_user
kaal_enter_user:
    EXCEPTION_STACK_TOP
    sub     x0, x0, #{exception_part}
    mov     sp, x0
.global kaal_return_to_user
kaal_return_to_user:
    mrs     x0, tpidr_el1
    ldr     x1, [x0, #248]
    msr     sp_el0, x1
    ldp     x2, x3, [x0, #256]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0, #0]
    eret
    dsb     nsh                         // (never reached: no speculation past the eret)
    isb

// A fatal exception at EL1: switch to this CPU's exception stack first (the kernel stack
// may be the problem: an overflow faults on its guard page), save a `KernelFrame` there
// and report. SP_EL0 and TPIDRRO_EL0 are the scratch registers: the kernel does not use
// SP_EL0 (the user's stack pointer is saved in the thread's context on entry and reloaded
// on return), nothing returns from here, and EL0's view of TPIDRRO_EL0 no longer
// matters. SP and x0 are swapped by arithmetic once x0 holds the exception stack's top.
.macro KERNEL_FATAL kind
    msr     sp_el0, x0
    msr     tpidrro_el0, x1
    EXCEPTION_STACK_TOP
    mrs     x1, tpidrro_el0
    add     sp, sp, x0
    sub     x0, sp, x0                  // x0 = the SP at the exception
    sub     sp, sp, x0                  // sp = the exception stack's top
    sub     sp, sp, #(36 * 8)
    str     x0, [sp, #248]
    mrs     x0, sp_el0
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    mrs     x1, esr_el1
    mrs     x2, far_el1
    stp     x1, x2, [sp, #272]
    mov     x0, sp
    mov     x1, #\kind
    bl      kaal_kernel_fatal
    b       .
.endm

kaal_kernel_sync_entry:
    KERNEL_FATAL 0

kaal_kernel_serror_entry:
    KERNEL_FATAL 1

kaal_kernel_irq_entry:
    sub     sp, sp, #(24 * 8)
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x30, x0, [sp, #160]
    str     x1, [sp, #176]
    bl      kaal_kernel_irq
    ldp     x30, x0, [sp, #160]
    ldr     x1, [sp, #176]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    add     sp, sp, #(24 * 8)
    eret
    dsb     nsh                         // (never reached: no speculation past the eret)
    isb

kaal_unexpected_entry:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      kaal_unexpected
    b       .
.ltorg
"#,
    thread_id = const kaal_abi::Syscall::ThreadId as u64,
    secondary_stride = const super::boot::SECONDARY_STRIDE,
    exception_part = const super::boot::GUARD_BYTES + super::boot::EXCEPTION_STACK_BYTES,
    tcb_number = const TCB_NUMBER_OFFSET,
);

/// Where a TCB's `number` lies from its saved context (which `TPIDR_EL1` points at):
/// the context comes first in the TCB.
const TCB_NUMBER_OFFSET: usize = {
    assert!(core::mem::offset_of!(crate::thread::Tcb, context) == 0);
    core::mem::offset_of!(crate::thread::Tcb, number)
};

/// Registers saved when the kernel itself takes a synchronous exception.
#[repr(C)]
#[derive(Debug)]
pub struct KernelFrame {
    /// `x0..x30`.
    pub x: [u64; 31],
    /// The stack pointer at the time of the exception.
    pub sp: u64,
    /// `ELR_EL1`.
    pub elr: u64,
    /// `SPSR_EL1`.
    pub spsr: u64,
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
}

#[unsafe(no_mangle)]
extern "C" fn kaal_user_sync(context: *mut UserContext) {
    let esr = ESR_EL1.get();
    let entry = match ExceptionClass::from_esr(esr) {
        ExceptionClass::SupervisorCall => {
            // SAFETY: `context` is the current thread's saved context (`SAVE_USER`).
            #[cfg(all(feature = "test-hooks", debug_assertions))]
            if unsafe { super::test_hooks::handle(context, esr) } {
                // A hook that took the kernel lock may have served another CPU's request
                // to take this thread over: back to user mode through the scheduler.
                kernel::on_user_entry(UserEntry::Interrupt);
                return;
            }
            #[cfg(all(feature = "test-hooks", debug_assertions))]
            super::test_hooks::count_general_syscall();
            UserEntry::Syscall
        }
        ExceptionClass::TrappedFpSimd => UserEntry::FpAccess,
        _ => UserEntry::Fault {
            esr,
            far: FAR_EL1.get(),
            pc: ELR_EL1.get(),
        },
    };
    #[cfg(not(all(feature = "test-hooks", debug_assertions)))]
    let _ = context;
    kernel::on_user_entry(entry);
}

#[unsafe(no_mangle)]
extern "C" fn kaal_user_irq(_context: *mut UserContext) {
    kernel::on_user_entry(UserEntry::Interrupt);
}

/// An FIQ from EL0: a stray, since the kernel uses none.
#[unsafe(no_mangle)]
extern "C" fn kaal_user_fiq(_context: *mut UserContext) {
    kernel::on_user_fiq();
}

/// An SError taken from EL0: a fault of the current thread. `ESR_EL1` says SError (EC
/// 0x2f); `FAR_EL1` means nothing for it, so the address is 0; the pc is where the
/// thread was when the SError was taken, not necessarily the access that caused it.
#[unsafe(no_mangle)]
extern "C" fn kaal_user_serror(_context: *mut UserContext) {
    kernel::on_user_entry(UserEntry::Fault {
        esr: ESR_EL1.get(),
        far: 0,
        pc: ELR_EL1.get(),
    });
}

#[unsafe(no_mangle)]
extern "C" fn kaal_kernel_irq() {
    kernel::on_idle_interrupt();
}

/// Fatal exceptions at EL1 reported so far: a second one means the report itself
/// faulted.
static FATAL_ENTRIES: AtomicU32 = AtomicU32::new(0);

/// A synchronous exception (`kind` 0) or an SError (`kind` 1) taken at EL1, on the
/// exception stack: reports it and panics.
#[unsafe(no_mangle)]
extern "C" fn kaal_kernel_fatal(frame: &KernelFrame, kind: u64) -> ! {
    match FATAL_ENTRIES.fetch_add(1, Ordering::Relaxed) {
        0 => {}
        1 => {
            crate::console::print_emergency(format_args!(
                "\n[kaal] KERNEL FAULT while reporting a kernel fault: ESR {:#x} at pc {:#x}, address {:#x}\n",
                frame.esr, frame.elr, frame.far
            ));
            panic!("nested kernel fault");
        }
        _ => loop {
            super::wait_for_interrupt();
        },
    }
    if kind == 1 {
        crate::console::print_emergency(format_args!(
            "\n[kaal] KERNEL FAULT: SError (asynchronous abort) taken at EL1: pc {:#x}, ESR {:#x}, SPSR {:#x}, sp {:#x}; the kernel cannot go on\n",
            frame.elr, frame.esr, frame.spsr, frame.sp,
        ));
        crate::console::print_registers(&frame.x, frame.sp, crate::console::print_emergency);
        panic!("SError at EL1 (ESR {:#x})", frame.esr);
    }
    let class = ExceptionClass::from_esr(frame.esr);
    // Any CPU's kernel stack: the one whose guard page the access or the SP is in.
    let overflowed = super::boot::kernel_stacks()
        .enumerate()
        .find(|(_, (guard, _))| {
            (class.is_abort() && guard.contains(&frame.far)) || guard.contains(&frame.sp)
        });
    if let Some((cpu, (guard, stack))) = overflowed {
        crate::console::print_emergency(format_args!(
            "\n[kaal] KERNEL FAULT: kernel stack overflow at pc {:#x}: {} at address {:#x}, in the guard page {:#x}..{:#x} below the kernel stack ({:#x}..{:#x}) of CPU {cpu}; sp {:#x}, ESR {:#x}\n",
            frame.elr,
            class.name(),
            frame.far,
            guard.start,
            guard.end,
            stack.start,
            stack.end,
            frame.sp,
            frame.esr,
        ));
        crate::console::print_registers(&frame.x, frame.sp, crate::console::print_emergency);
        panic!("kernel stack overflow (address {:#x})", frame.far);
    }
    let (status, level) = if class.is_abort() {
        fault_status(frame.esr)
    } else {
        ("", None)
    };
    crate::console::print_emergency(format_args!(
        "\n[kaal] KERNEL FAULT: {} {status} (level {level:?}) at pc {:#x}, address {:#x}, ESR {:#x}, SPSR {:#x}, sp {:#x}\n",
        class.name(),
        frame.elr,
        frame.far,
        frame.esr,
        frame.spsr,
        frame.sp,
    ));
    crate::console::print_registers(&frame.x, frame.sp, crate::console::print_emergency);
    panic!("kernel fault: {}", class.name());
}

#[unsafe(no_mangle)]
extern "C" fn kaal_unexpected(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    panic!("unexpected exception vector {vector}: ESR {esr:#x}, ELR {elr:#x}, FAR {far:#x}");
}

unsafe extern "C" {
    static kaal_vectors: u8;
    fn kaal_enter_user() -> !;
}

/// Installs the vector table.
pub fn install_vectors() {
    // `kaal_vectors` is the 2 KiB-aligned table above, mapped executable for the
    // kernel's lifetime.
    VBAR_EL1.set(&raw const kaal_vectors as u64);
    barrier::isb(barrier::SY);
}

/// Makes `context` the one the next return to EL0 restores, and the one the next entry
/// from EL0 saves into.
///
/// # Safety
/// `context` must stay valid, and not be accessed through Rust references while the
/// thread runs, until another context is installed.
pub unsafe fn set_current_context(context: *mut UserContext) {
    // TPIDR_EL1 is a kernel-private register, read only by the exception entry and
    // return assembly; the caller keeps `context` valid.
    TPIDR_EL1.set(context as u64);
}

/// Leaves the boot path and runs the current user context. Resets the kernel stack.
///
/// # Safety
/// A valid context must have been installed with [`set_current_context`], and nothing
/// on the kernel stack may be needed again.
pub unsafe fn enter_user() -> ! {
    // SAFETY: the caller's contract.
    unsafe { kaal_enter_user() }
}

/// Waits for an interrupt, then takes it with interrupts unmasked for a moment and masks
/// them again: any interrupt is handled by the kernel IRQ vector before this returns.
/// `wfi` runs with interrupts masked (it still ends when one is pending), so one that
/// arrived just before (another CPU's wake-up SGI) ends the wait at once instead of
/// being taken before the `wfi`, which would then sleep until the next tick.
pub fn wait_with_interrupts_enabled() {
    // SAFETY: unmasking IRQs here is what idle is for; the kernel IRQ path saves and
    // restores every register the compiler may be using. One `asm!` block: the three
    // instructions must stay together, and `aarch64-cpu` has no `DAIFSet`/`DAIFClr`
    // accessors (its `DAIF` register is a read-modify-write of the whole mask).
    unsafe {
        core::arch::asm!(
            "wfi",
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            options(nostack)
        );
    }
}
