//! Physical memory as the running kernel sees it: the boot frame allocator behind a lock,
//! and translation tables reached through the linear map.

use crate::arch::mmu::phys_to_virt;
use crate::arch::page_table::{ENTRIES, TABLE_WITH_TAGS_BYTES, TAGS_OFFSET, TableMemory};
use crate::frame_allocator::{FRAME_SIZE, FrameAllocator, FrameError};
use spin::Mutex;

/// The boot frame allocator.
pub static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::new());

/// Allocates a zeroed frame.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub fn allocate_zeroed_frame() -> Result<u64, FrameError> {
    let frame = FRAMES.lock().allocate()?;
    // SAFETY: the frame is RAM (from the device tree's memory regions, minus reserved
    // ranges), mapped in the linear map, and just handed out, so nothing else uses it.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, FRAME_SIZE as usize) };
    Ok(frame)
}

/// Translation tables in RAM, reached through the linear map; new tables come from
/// [`FRAMES`]. Every table is allocated with its page of entry tags after it (see
/// [`crate::arch::page_table`]), so the tables the kernel builds at boot for the root
/// task have the layout of `PageTable` objects.
pub struct LinearTables;

impl TableMemory for LinearTables {
    fn allocate_table(&mut self) -> Option<u64> {
        let table = FRAMES
            .lock()
            .allocate_contiguous(TABLE_WITH_TAGS_BYTES, FRAME_SIZE)
            .ok()?;
        // SAFETY: the frames are RAM in the linear map, just handed out for this table.
        unsafe {
            core::ptr::write_bytes(
                phys_to_virt(table) as *mut u8,
                0,
                TABLE_WITH_TAGS_BYTES as usize,
            )
        };
        Some(table)
    }

    fn table(&mut self, physical: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `physical` is a table frame this kernel allocated (the TranslationTable
        // only follows addresses it stored); it is in the linear map, 4 KiB aligned, and
        // only accessed by the kernel with interrupts masked on one CPU.
        unsafe { &mut *(phys_to_virt(physical) as *mut [u64; ENTRIES]) }
    }

    fn tags(&mut self, physical: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `physical` is a table below the root, reached through a table entry:
        // a `PageTable` object (8 KiB, the tags in its second page) or a table allocated
        // above with its tags; in the linear map, only accessed as in `table`.
        unsafe { &mut *(phys_to_virt(physical + TAGS_OFFSET) as *mut [u64; ENTRIES]) }
    }
}

/// A view of RAM at a physical address as bytes, through the linear map.
///
/// # Safety
/// `[physical, physical + length)` must be RAM that nothing else accesses for the
/// lifetime of the returned slice.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub unsafe fn ram_bytes_mut<'a>(physical: u64, length: usize) -> &'a mut [u8] {
    // SAFETY: forwarded from the caller; the linear map covers all RAM.
    unsafe { core::slice::from_raw_parts_mut(phys_to_virt(physical) as *mut u8, length) }
}
