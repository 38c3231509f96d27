//! The boot stub: the first instructions QEMU runs.
//!
//! It runs at the image's physical address with the MMU off. It parks CPUs other than 0 (on a
//! boot without PSCI, where every CPU starts here; PSCI starts them later, at
//! `kaal_secondary_entry`),
//! drops from EL2 to EL1 when started at EL2, turns on the MMU with an early map of the
//! first 2 GiB of the physical address space (identity through TTBR0, high half through
//! TTBR1, both one L1 table of 1 GiB blocks), sets up the boot stack, clears `.bss`, and
//! jumps to [`crate::boot::kernel_start`] in the high half. The fine-grained kernel map
//! with W^X replaces the early map in [`super::mmu`].
//!
//! The stacks live in `.bss`, each above an unmapped guard page (the final kernel map
//! leaves [`stack_guard_pages`] out):
//!
//! ```text
//! guard page | kernel stack (KERNEL_STACK_BYTES) | guard page | exception stack
//! ```
//!
//! The kernel stack is the boot stack and the one every entry from EL0 runs on. The
//! exception stack is where the vectors for fatal exceptions taken at EL1 (synchronous
//! exceptions and SErrors) switch to before running any Rust code, so that a kernel
//! stack overflow (a store into the guard page) is reported instead of faulting again
//! on the exhausted stack.

use super::mmu::{EARLY_MAIR, EARLY_SCTLR, EARLY_TCR, TCR_AS};
use crate::platform::MAX_CPUS;

/// Size of the kernel stack (one per CPU; exceptions from EL0 start at its top).
pub const KERNEL_STACK_BYTES: usize = 64 * 1024;
/// Size of the exception stack, on which fatal EL1 exceptions are reported.
pub const EXCEPTION_STACK_BYTES: usize = 16 * 1024;
/// Size of each guard page.
pub(crate) const GUARD_BYTES: usize = 4096;

unsafe extern "C" {
    static __kernel_stack_guard: u8;
    static __exception_stack_guard: u8;
    static __secondary_stacks: u8;
    static kaal_secondary_entry_address: u64;
}

/// The kernel virtual addresses of the guard pages below each CPU's kernel stack and
/// below its exception stack, ascending; each is one 4 KiB page that the kernel map
/// leaves out.
pub fn stack_guard_pages() -> [u64; 2 * MAX_CPUS] {
    let mut pages = [0; 2 * MAX_CPUS];
    pages[0] = &raw const __kernel_stack_guard as u64;
    pages[1] = &raw const __exception_stack_guard as u64;
    let secondaries = &raw const __secondary_stacks as u64;
    for (cpu, pair) in pages[2..].chunks_exact_mut(2).enumerate() {
        let stride = secondaries + (cpu * SECONDARY_STRIDE) as u64;
        pair[0] = stride;
        pair[1] = stride + (GUARD_BYTES + KERNEL_STACK_BYTES) as u64;
    }
    pages
}

/// Each CPU's kernel stack with the guard page below it, `(guard, stack)`, by CPU
/// number (0: the boot CPU's).
pub fn kernel_stacks() -> impl Iterator<Item = (core::ops::Range<u64>, core::ops::Range<u64>)> {
    let secondaries = &raw const __secondary_stacks as u64;
    let boot = (kernel_stack_guard(), kernel_stack());
    core::iter::once(boot).chain((0..MAX_CPUS as u64 - 1).map(move |cpu| {
        let guard = secondaries + cpu * SECONDARY_STRIDE as u64;
        let stack = guard + GUARD_BYTES as u64;
        (guard..stack, stack..stack + KERNEL_STACK_BYTES as u64)
    }))
}

/// The physical address where a secondary CPU starts (`kaal_secondary_entry`, in the
/// boot stub: PSCI `CPU_ON` takes it).
pub fn secondary_entry() -> u64 {
    // SAFETY: an initialised read-only word of the image (the stub's address, put there
    // by the linker).
    unsafe { (&raw const kaal_secondary_entry_address).read() }
}

/// The guard page below the kernel stack: `start..end` (kernel virtual addresses).
pub fn kernel_stack_guard() -> core::ops::Range<u64> {
    let start = &raw const __kernel_stack_guard as u64;
    start..start + GUARD_BYTES as u64
}

/// The kernel stack, `bottom..top` (kernel virtual addresses).
pub fn kernel_stack() -> core::ops::Range<u64> {
    let bottom = kernel_stack_guard().end;
    bottom..bottom + KERNEL_STACK_BYTES as u64
}

// Without the test hooks there are no EL2 vectors: the symbol the boot stub loads is 0.
// (A weak reference would clash with the hooks' global definition once LTO puts both
// assembly blocks in one module.)
#[cfg(all(target_os = "none", not(all(feature = "test-hooks", debug_assertions))))]
core::arch::global_asm!(
    ".global kaal_el2_test_vectors",
    ".set kaal_el2_test_vectors, 0"
);

core::arch::global_asm!(
    r#"
// EL2 set-up before dropping to EL1 (boot CPU and secondaries alike): the test hooks'
// EL2 vectors where they exist, EL1 is AArch64
// and owns the counters, no FP/SIMD or system-register traps, no stage 2, and EL1 may
// use the GIC's system registers where the CPU has them; SCTLR_EL1 is made safe (MMU
// off) and the eret goes to `\target` at EL1h with DAIF masked.
.macro EL2_TO_EL1 target
    mov     x1, #(1 << 31)              // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x1
    ldr     x1, =kaal_el2_test_vectors  // 0 unless the test hooks define EL2 vectors
    cbz     x1, 6f
    msr     vbar_el2, x1
6:
    mrs     x1, cnthctl_el2
    orr     x1, x1, #3                  // EL1PCTEN | EL1PCEN: EL1 owns the counters
    msr     cnthctl_el2, x1
    msr     cntvoff_el2, xzr
    mov     x1, #0x33ff                 // CPTR_EL2: no FP/SIMD traps
    msr     cptr_el2, x1
    msr     hstr_el2, xzr
    msr     vttbr_el2, xzr
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #24, #4             // GIC system register interface present?
    cbz     x1, 1f
    mrs     x1, icc_sre_el2
    mov     x2, #0x9                    // SRE | Enable: EL1 may use ICC_* registers
    orr     x1, x1, x2
    msr     icc_sre_el2, x1
    isb
1:  ldr     x1, =0x30d00800             // SCTLR_EL1 RES1 bits, MMU off
    msr     sctlr_el1, x1
    mov     x1, #0x3c5                  // EL1h, DAIF masked
    msr     spsr_el2, x1
    adr     x1, \target
    msr     elr_el2, x1
    eret
.endm

// Turns the MMU on with the early map in `x1` for both halves (identity through TTBR0,
// the high half through TTBR1): MAIR, TCR (IPS from the CPU's physical address size,
// 16-bit ASIDs where the CPU has them), a local TLB flush, SCTLR. Clobbers x2..x4.
.macro EARLY_MMU_ON
    ldr     x2, ={mair}
    msr     mair_el1, x2
    ldr     x2, ={tcr}
    mrs     x3, id_aa64mmfr0_el1
    and     x3, x3, #0x7                // PARange -> TCR_EL1.IPS
    cmp     x3, #5
    mov     x4, #5
    csel    x3, x3, x4, ls
    bfi     x2, x3, #32, #3
    mrs     x3, id_aa64mmfr0_el1
    ubfx    x3, x3, #4, #4              // ASIDBits: 0b0010 = 16-bit ASIDs
    cmp     x3, #2
    b.ne    5f
    orr     x2, x2, #{tcr_as}           // TCR_EL1.AS: use them
5:  msr     tcr_el1, x2
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x2, ={sctlr}
    msr     sctlr_el1, x2
    isb
.endm

// Invalidates, to the point of coherency, the data-cache lines of the 4 KiB page at
// physical address `\page` (MMU off), line by line (`CTR_EL0.DminLine`), then waits for
// it (`dsb sy`). Clobbers x2..x4.
.macro INVALIDATE_PAGE page
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             // DminLine: log2 of the smallest line, in words
    mov     x4, #4
    lsl     x4, x4, x3                  // line size in bytes
    sub     x3, x4, #1
    bic     x2, \page, x3
    add     x3, \page, #4096
.Linvalidate_\@:
    dc      ivac, x2
    add     x2, x2, x4
    cmp     x2, x3
    b.lo    .Linvalidate_\@
    dsb     sy
.endm

.section .text.boot, "ax"
.global _start
_start:
    mov     x19, x0                     // device tree pointer (0 for a bare-metal ELF boot)
    mrs     x20, CurrentEL              // exception level we were started at
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbnz    x1, .Lpark                  // only CPU 0 boots
    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    cmp     x1, #3
    b.eq    .Lat_el3
    cmp     x1, #2
    b.ne    .Lat_el1

.Lat_el2:
    // ---- EL2: configure EL1 and drop to it ----
    EL2_TO_EL1 .Lat_el1

    // ---- EL3 (no firmware below us): drop to the normal world's EL2, or EL1 without
    // EL2. Only far enough for the kernel to print why it stops: the GIC's interrupts
    // still belong to the secure world (see `boot::refuse_el3`). ----
.Lat_el3:
    msr     cptr_el3, xzr               // no FP/SIMD or trace traps to EL3
    mrs     x1, id_aa64pfr0_el1
    ubfx    x2, x1, #24, #4             // GIC system register interface present?
    cbz     x2, 7f
    mov     x2, #0xf                    // ICC_SRE_EL3: SRE, DFB, DIB, Enable (lower ELs)
    msr     icc_sre_el3, x2
    isb
7:  ubfx    x2, x1, #8, #4              // EL2 implemented?
    cbz     x2, 8f
    mov     x1, #0x501                  // SCR_EL3: NS, HCE, RW (EL2 is AArch64)
    msr     scr_el3, x1
    mov     x1, #0x3c9                  // EL2h, DAIF masked
    msr     spsr_el3, x1
    adr     x1, .Lat_el2
    msr     elr_el3, x1
    eret
8:  mov     x1, #0x401                  // SCR_EL3: NS, RW (EL1 is AArch64)
    msr     scr_el3, x1
    ldr     x1, =0x30d00800             // SCTLR_EL1 RES1 bits, MMU off
    msr     sctlr_el1, x1
    mov     x1, #0x3c5                  // EL1h, DAIF masked
    msr     spsr_el3, x1
    adr     x1, .Lat_el1
    msr     elr_el3, x1
    eret

.Lat_el1:
    msr     contextidr_el1, xzr         // this CPU's number: 0 (see `KERNEL_FATAL`)
    mov     x1, #(3 << 20)              // CPACR_EL1.FPEN: no FP/SIMD traps (for EL0)
    msr     cpacr_el1, x1
    isb

    // ---- early page table: L1 blocks, shared by TTBR0 (identity) and TTBR1 (high half) ----
    // Written with the MMU off, so straight to memory, while the table walker reads it
    // through the data caches (write-back walks, see `EARLY_TCR`). A line of the table
    // left in a cache by whatever ran before the kernel (a boot loader with caches on)
    // would hide the new entries from the walker, or, dirty, be written back over them
    // later: the table's lines are invalidated before it is written and again after.
    adrp    x1, __boot_l1_table
    add     x1, x1, :lo12:__boot_l1_table
    INVALIDATE_PAGE x1
    mov     x2, x1
    add     x3, x1, #4096
2:  stp     xzr, xzr, [x2], #16
    cmp     x2, x3
    b.lo    2b
    ldr     x2, ={block_device}         // [0, 1 GiB): devices, Device-nGnRE, never executable
    str     x2, [x1, #0]
    ldr     x2, ={block_normal}         // [1 GiB, 2 GiB): RAM, Normal write-back
    str     x2, [x1, #8]
    ldr     x2, ={block_normal_2}       // [2 GiB, 3 GiB): RAM beyond the first GiB
    str     x2, [x1, #16]
    dsb     sy                          // the stores reach memory before the invalidation
    INVALIDATE_PAGE x1
    EARLY_MMU_ON

    // ---- now in virtual memory: stack, .bss, jump high ----
    // .bss (16-byte aligned at both ends; over a megabyte with the boot heap) is zeroed
    // a cache block per `DC ZVA` where DCZID_EL0 allows it (normal memory, caches on:
    // the early map's RAM block), with 16-byte stores up to the first block boundary
    // and after the last whole block.
    ldr     x1, =__boot_stack_top
    mov     sp, x1
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
    mrs     x3, dczid_el0
    tbnz    x3, #4, 3f                  // DZP: DC ZVA prohibited, stores only
    and     x3, x3, #0xf
    mov     x4, #4
    lsl     x4, x4, x3                  // block size: 4 << BS bytes
    sub     x5, x4, #1
10: tst     x1, x5                      // stores up to a block boundary
    b.eq    11f
    cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       10b
11: add     x6, x1, x4, lsl #2          // whole blocks, four at a time
    cmp     x6, x2
    b.hi    12f
    dc      zva, x1
    add     x1, x1, x4
    dc      zva, x1
    add     x1, x1, x4
    dc      zva, x1
    add     x1, x1, x4
    dc      zva, x1
    mov     x1, x6
    b       11b
12: add     x6, x1, x4                  // whole blocks, one at a time
    cmp     x6, x2
    b.hi    3f
    dc      zva, x1
    mov     x1, x6
    b       12b
3:  cmp     x1, x2                      // the rest
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:  mov     x0, x19
    lsr     x1, x20, #2
    ldr     x2, =kaal_kernel_start
    br      x2

.Lpark:
    wfe
    b       .Lpark

// A secondary CPU, started by PSCI `CPU_ON` (see `crate::boot`): at its physical
// address, MMU off, `x0` = the CPU's number (1..). It drops to EL1 as the boot CPU did,
// turns on the MMU with the boot CPU's early map (still intact: nothing reuses it), takes
// its own kernel stack and enters `kaal_secondary_start` in the high half, which moves it
// to the final kernel map.
.global kaal_secondary_entry
kaal_secondary_entry:
    mov     x19, x0
    msr     contextidr_el1, x0          // this CPU's number (see `KERNEL_FATAL`)
    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    cmp     x1, #2
    b.ne    .Lsecondary_el1
    EL2_TO_EL1 .Lsecondary_el1
.Lsecondary_el1:
    mov     x1, #(3 << 20)              // CPACR_EL1.FPEN: no FP/SIMD traps (for EL0)
    msr     cpacr_el1, x1
    isb
    adrp    x1, __boot_l1_table
    add     x1, x1, :lo12:__boot_l1_table
    EARLY_MMU_ON
    ldr     x1, =__secondary_stacks     // CPU n's kernel stack: in the n-th stride, below
    ldr     x2, ={secondary_stride}     // its exception stack's guard
    madd    x1, x19, x2, x1
    sub     x1, x1, #{exception_part}
    mov     sp, x1
    mov     x0, x19
    ldr     x2, =kaal_secondary_start
    br      x2
.ltorg

.section .rodata.kaal_secondary, "a"
.balign 8
.global kaal_secondary_entry_address
kaal_secondary_entry_address:
    .quad   kaal_secondary_entry

.section .bss.kaal_stack, "aw", @nobits
.balign 4096
.global __kernel_stack_guard
__kernel_stack_guard:
    .space {guard_bytes}
__boot_stack_bottom:
    .space {stack_bytes}
.global __boot_stack_top
__boot_stack_top:
.global __exception_stack_guard
__exception_stack_guard:
    .space {guard_bytes}
    .space {exception_stack_bytes}
.global __exception_stack_top
__exception_stack_top:
// Secondary CPUs 1..: each a guard page, its kernel stack, a guard page and its
// exception stack, as the boot CPU's above.
.balign 4096
.global __secondary_stacks
__secondary_stacks:
    .space {secondary_stride} * {secondaries}

.section .bss.boot, "aw", @nobits
.balign 4096
__boot_l1_table:
    .space 4096
"#,
    block_device = const (1u64 << 54) | (1 << 53) | (1 << 10) | 0b01,
    block_normal = const 0x4000_0000u64 | (1 << 10) | (0b11 << 8) | (1 << 2) | 0b01,
    block_normal_2 = const 0x8000_0000u64 | (1 << 10) | (0b11 << 8) | (1 << 2) | 0b01,
    mair = const EARLY_MAIR,
    tcr = const EARLY_TCR,
    tcr_as = const TCR_AS,
    sctlr = const EARLY_SCTLR,
    stack_bytes = const KERNEL_STACK_BYTES,
    exception_stack_bytes = const EXCEPTION_STACK_BYTES,
    guard_bytes = const GUARD_BYTES,
    secondary_stride = const SECONDARY_STRIDE,
    exception_part = const GUARD_BYTES + EXCEPTION_STACK_BYTES,
    secondaries = const MAX_CPUS - 1,
);

/// Bytes per secondary CPU in `__secondary_stacks`: a guard page, a kernel stack, a guard
/// page and an exception stack.
pub const SECONDARY_STRIDE: usize =
    GUARD_BYTES + KERNEL_STACK_BYTES + GUARD_BYTES + EXCEPTION_STACK_BYTES;

const _: () = assert!(
    KERNEL_STACK_BYTES.is_multiple_of(GUARD_BYTES) && EXCEPTION_STACK_BYTES.is_multiple_of(16)
);
