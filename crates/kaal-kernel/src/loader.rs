//! Checking the root task's ELF image before loading it.
//!
//! The rules live in [`kaal_bootinfo::loader`], shared with `kaal-user`'s process
//! builder; this module adds what the kernel maps into the root task beside its image
//! (the stack with its guard page, the boot info and the component archive) as reserved
//! windows. Pure logic, tested on the host.

use kaal_abi::layout;
use kaal_bootinfo::loader::{self, Rules, Window};
use kaal_bootinfo::{BOOT_INFO_MAX_BYTES, BOOT_INFO_VADDR};

pub use kaal_bootinfo::loader::{LoadError, LoadPlan, PAGE_SIZE, Segment};

/// The windows the kernel maps into the root task beside its image, for an archive of
/// `archive_bytes` bytes.
pub fn root_task_windows(archive_bytes: u64) -> [Window; 3] {
    let stack_bottom = layout::ROOT_STACK_TOP - layout::ROOT_STACK_BYTES;
    [
        // From the unmapped guard page under the stack to its top.
        Window::new("stack", stack_bottom - PAGE_SIZE, layout::ROOT_STACK_TOP),
        Window::new(
            "boot info",
            BOOT_INFO_VADDR,
            BOOT_INFO_VADDR + BOOT_INFO_MAX_BYTES as u64,
        ),
        Window::new(
            "archive",
            layout::ARCHIVE_VADDR,
            layout::ARCHIVE_VADDR.saturating_add(archive_bytes),
        ),
    ]
}

/// Checks the root task's image `elf` for loading beside an archive of `archive_bytes`
/// bytes, its segments taking at most `max_bytes` of memory.
pub fn plan_root_task(
    elf: &[u8],
    archive_bytes: u64,
    max_bytes: u64,
) -> Result<LoadPlan, LoadError> {
    loader::plan(
        elf,
        &Rules {
            user_start: layout::USER_START,
            user_end: layout::USER_END,
            reserved: &root_task_windows(archive_bytes),
            max_bytes,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaal_bootinfo::loader::SegmentProblem;

    /// A minimal little-endian ELF64 AArch64 executable with one read-execute segment of
    /// `memsz` bytes at `vaddr` (its entry).
    fn image(vaddr: u64, memsz: u64) -> Vec<u8> {
        let mut out = vec![0u8; 0x2000];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&vaddr.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = &mut out[64..120];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
        ph[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
        ph[32..40].copy_from_slice(&0x100u64.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        out
    }

    const ARCHIVE: u64 = 0x12_3456;
    const LIMIT: u64 = 64 << 20;

    fn reserved(vaddr: u64, memsz: u64) -> Option<&'static str> {
        match plan_root_task(&image(vaddr, memsz), ARCHIVE, LIMIT) {
            Err(LoadError::Segment {
                index: 0,
                problem: SegmentProblem::Reserved { window, .. },
            }) => Some(window),
            Ok(_) => None,
            Err(error) => panic!("unexpected {error}"),
        }
    }

    #[test]
    fn accepts_the_usual_layout() {
        let plan = plan_root_task(&image(0x40_0000, 0x100), ARCHIVE, LIMIT).unwrap();
        assert_eq!(plan.entry(), 0x40_0000);
        assert_eq!(plan.segments().len(), 1);
    }

    #[test]
    fn segments_stay_off_the_windows_the_kernel_maps() {
        assert_eq!(reserved(BOOT_INFO_VADDR + 0x3000, 0x100), Some("boot info"));
        assert_eq!(
            reserved(BOOT_INFO_VADDR - 0x1000, 0x1001),
            Some("boot info")
        );
        assert_eq!(
            reserved(BOOT_INFO_VADDR + BOOT_INFO_MAX_BYTES as u64, 0x100),
            None
        );
        assert_eq!(reserved(layout::ARCHIVE_VADDR, 0x100), Some("archive"));
        // The archive's last, partial page is reserved whole.
        assert_eq!(
            reserved(layout::ARCHIVE_VADDR + 0x12_3000, 0x100),
            Some("archive")
        );
        assert_eq!(reserved(layout::ARCHIVE_VADDR + 0x12_4000, 0x100), None);
        assert_eq!(
            reserved(layout::ROOT_STACK_TOP - 0x1000, 0x100),
            Some("stack")
        );
        // The guard page under the stack too.
        let guard = layout::ROOT_STACK_TOP - layout::ROOT_STACK_BYTES - PAGE_SIZE;
        assert_eq!(reserved(guard, 0x100), Some("stack"));
        assert_eq!(reserved(guard - 0x1000, 0x100), None);
    }

    #[test]
    fn a_huge_segment_is_refused_before_any_memory_is_used() {
        // A p_memsz of 2^39 (the old limit) is outside user space.
        assert!(matches!(
            plan_root_task(&image(0x40_0000, 1 << 39), ARCHIVE, LIMIT),
            Err(LoadError::Segment {
                index: 0,
                problem: SegmentProblem::OutsideUserSpace { .. }
            })
        ));
        // One that fits user space but not memory.
        assert_eq!(
            plan_root_task(&image(0x40_0000, 128 << 20), ARCHIVE, LIMIT),
            Err(LoadError::TooLarge {
                bytes: 128 << 20,
                limit: LIMIT
            })
        );
    }
}
