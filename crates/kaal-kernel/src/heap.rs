//! The kernel heap, for boot-time structures and thread records only. Objects user space
//! creates at run time will come from untyped memory, never from here, so no task can
//! exhaust kernel memory.

use linked_list_allocator::LockedHeap;

/// Size of the kernel heap.
pub const HEAP_BYTES: usize = 1024 * 1024;

#[repr(C, align(4096))]
struct HeapMemory([u8; HEAP_BYTES]);

static mut HEAP_MEMORY: HeapMemory = HeapMemory([0; HEAP_BYTES]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands the heap its memory. Call once, before the first allocation.
pub fn init() {
    // SAFETY: called once on the boot path before any allocation; HEAP_MEMORY is used by
    // nothing else, so the allocator owns it exclusively from here on.
    unsafe {
        ALLOCATOR
            .lock()
            .init((&raw mut HEAP_MEMORY).cast::<u8>(), HEAP_BYTES)
    };
}
