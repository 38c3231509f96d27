//! MMU control: system-register values and switching translation tables.

use super::page_table::{MAIR_VALUE, VA_BITS};
use core::arch::asm;

/// Start of the kernel's linear map: kernel virtual address = physical + this.
pub const KERNEL_BASE: u64 = 0xffff_ff80_0000_0000;

/// `MAIR_EL1`: see [`super::page_table::MAIR_VALUE`].
pub const EARLY_MAIR: u64 = MAIR_VALUE;

const TNSZ: u64 = 64 - VA_BITS as u64;
/// `TCR_EL1` without IPS and AS (both filled in from `ID_AA64MMFR0_EL1` at boot: see
/// [`TCR_AS`]): 39-bit VAs in both halves, 4 KiB granules, inner-shareable write-back
/// table walks, ASIDs in TTBR0.
pub const EARLY_TCR: u64 = TNSZ
    | (0b01 << 8)
    | (0b01 << 10)
    | (0b11 << 12)
    | (TNSZ << 16)
    | (0b01 << 24)
    | (0b01 << 26)
    | (0b11 << 28)
    | (0b10 << 30);

/// `TCR_EL1.AS`: 16-bit ASIDs. The boot code sets it when `ID_AA64MMFR0_EL1.ASIDBits`
/// is `0b0010` (the CPU has 16-bit ASIDs), before the MMU is on and any TLB entry is
/// tagged.
pub const TCR_AS: u64 = 1 << 36;

/// Width of the ASIDs in use (8 or 16 bits), as the boot code set `TCR_EL1.AS`.
pub fn asid_bits() -> u32 {
    use aarch64_cpu::registers::{Readable, TCR_EL1};
    if TCR_EL1.is_set(TCR_EL1::AS) { 16 } else { 8 }
}

const SCTLR_RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);
/// `SCTLR_EL1` for the early map: MMU and caches on, stack alignment checks, EL0 may use
/// `WFI`/`WFE`, `DC ZVA`, `CTR_EL0` and (`UCI`, bit 26) data-cache maintenance by
/// address on its own mappings (`DC CVAC`, `DC CIVAC`, ...: a driver cleans and
/// invalidates DMA buffers for devices that do not snoop the caches; the instructions
/// check the access permissions of the address like a read). No WXN yet: the early map
/// is one RWX block.
pub const EARLY_SCTLR: u64 = SCTLR_RES1
    | (1 << 26)
    | (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 12)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18);
/// `SCTLR_EL1` once the final kernel map is live: as above plus WXN, so every writable
/// mapping is also execute-never at every level.
pub const FINAL_SCTLR: u64 = EARLY_SCTLR | (1 << 19);

/// Converts a physical address to its kernel virtual address in the linear map.
pub const fn phys_to_virt(physical: u64) -> u64 {
    physical + KERNEL_BASE
}

/// Converts a kernel virtual address in the linear map back to its physical address.
pub const fn virt_to_phys(virtual_address: u64) -> u64 {
    virtual_address - KERNEL_BASE
}

/// Switches the kernel half (TTBR1) to the table at `root` and turns on WXN.
///
/// # Safety
/// `root` must be a complete kernel map that maps, with the same virtual addresses, all
/// code, data and stacks in use, and every device the kernel touches afterwards.
pub unsafe fn install_kernel_table(root: u64) {
    // SAFETY: the caller guarantees the new table maps everything in use identically.
    unsafe {
        asm!(
            "dsb ishst",
            "msr ttbr1_el1, {root}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "msr sctlr_el1, {sctlr}",
            "isb",
            root = in(reg) root,
            sctlr = in(reg) FINAL_SCTLR,
            options(nostack),
        );
    }
}

/// Makes the user half (TTBR0) translate through `root` tagged with `asid`.
///
/// # Safety
/// `root` must be a valid translation table whose mappings are all user mappings (the
/// kernel must not depend on TTBR0 translations).
pub unsafe fn install_user_table(root: u64, asid: u16) {
    let value = root | (u64::from(asid) << 48);
    // SAFETY: the caller guarantees `root` is a valid table; ASID tagging keeps other
    // address spaces' TLB entries apart.
    unsafe {
        asm!("msr ttbr0_el1, {v}", "isb", v = in(reg) value, options(nostack));
    }
}

/// Bytes one `DC ZVA` zeroes on this CPU, or `None` if the instruction is prohibited
/// (`DCZID_EL0`).
fn zero_block_bytes() -> Option<usize> {
    // (`aarch64-cpu` has no accessor for `DCZID_EL0`.)
    let dczid = crate::arch::read_sysreg!("dczid_el0");
    (dczid & (1 << 4) == 0).then(|| 4 << (dczid & 0xf))
}

/// Zeroes `bytes` bytes of RAM at the kernel virtual address `start`: the whole cache
/// blocks inside with `DC ZVA` (64 bytes an instruction on a Cortex-A53, where the
/// compiler's `memset` stores 8 bytes in three), the rest with ordinary stores. Like a
/// store, `DC ZVA` is ordered before later accesses of this CPU; a table walk or
/// another observer needs the barriers an ordinary store would.
///
/// # Safety
/// `[start, start + bytes)` must be RAM mapped writable as normal cacheable memory (the
/// linear map: `DC ZVA` faults on device memory) that nothing else uses meanwhile.
pub unsafe fn zero_ram(start: *mut u8, bytes: usize) {
    let address = start as usize;
    let Some(block) = zero_block_bytes() else {
        // SAFETY: forwarded from the caller.
        unsafe { core::ptr::write_bytes(start, 0, bytes) };
        return;
    };
    let head = (address.next_multiple_of(block) - address).min(bytes);
    let blocks = (bytes - head) / block;
    let tail = bytes - head - blocks * block;
    if head > 0 {
        // SAFETY: forwarded from the caller; head, blocks and tail split the range.
        unsafe { core::ptr::write_bytes(start, 0, head) };
    }
    let mut at = address + head;
    let end = at + blocks * block;
    while end - at >= 4 * block {
        // SAFETY: four whole blocks of the caller's range; the asm has no `nomem`, so
        // the compiler orders it with the accesses around it.
        unsafe {
            asm!(
                "dc zva, {a}",
                "dc zva, {b}",
                "dc zva, {c}",
                "dc zva, {d}",
                a = in(reg) at,
                b = in(reg) at + block,
                c = in(reg) at + 2 * block,
                d = in(reg) at + 3 * block,
                options(nostack, preserves_flags),
            )
        };
        at += 4 * block;
    }
    while at < end {
        // SAFETY: one whole block of the caller's range, as above.
        unsafe { asm!("dc zva, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += block;
    }
    if tail > 0 {
        // SAFETY: forwarded from the caller; the tail ends the range.
        unsafe { core::ptr::write_bytes(start.add(bytes - tail), 0, tail) };
    }
}

/// Invalidates all EL1&0 TLB entries of this CPU, after table updates are visible.
pub fn flush_tlb() {
    // SAFETY: TLB invalidation only drops cached translations; it cannot break memory safety.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            options(nostack)
        );
    }
}

/// Invalidates the TLB entries for `virtual_address` tagged with `asid`, after a
/// translation-table entry was cleared, on every CPU of the inner-shareable domain (a
/// thread of the space may run on another CPU): the `dsb ish` waits until they all
/// have dropped it.
pub fn flush_page(asid: u16, virtual_address: u64) {
    let operand = (u64::from(asid) << 48) | ((virtual_address >> 12) & ((1 << 44) - 1));
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe {
        asm!("dsb ishst", "tlbi vae1is, {}", "dsb ish", "isb", in(reg) operand, options(nostack));
    }
}

/// Invalidates every TLB entry tagged with `asid`, cached table walks included: after a
/// table was unlinked, and when an address space is destroyed, so that the next space
/// given its ASID sees none of its translations. On every CPU, like [`flush_page`].
pub fn flush_asid(asid: u16) {
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe {
        asm!("dsb ishst", "tlbi aside1is, {}", "dsb ish", "isb", in(reg) u64::from(asid) << 48, options(nostack));
    }
}
