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
    if crate::arch::read_sysreg!("tcr_el1") & TCR_AS != 0 {
        16
    } else {
        8
    }
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
/// translation-table entry was cleared.
pub fn flush_page(asid: u16, virtual_address: u64) {
    let operand = (u64::from(asid) << 48) | ((virtual_address >> 12) & ((1 << 44) - 1));
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe {
        asm!("dsb ishst", "tlbi vae1, {}", "dsb nsh", "isb", in(reg) operand, options(nostack));
    }
}

/// Invalidates every TLB entry tagged with `asid`, cached table walks included: after a
/// table was unlinked, and when an address space is destroyed, so that the next space
/// given its ASID sees none of its translations.
pub fn flush_asid(asid: u16) {
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe {
        asm!("dsb ishst", "tlbi aside1, {}", "dsb nsh", "isb", in(reg) u64::from(asid) << 48, options(nostack));
    }
}
