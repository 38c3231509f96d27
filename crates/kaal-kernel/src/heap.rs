//! The kernel heap, for boot-time structures only. Everything a system call needs comes
//! from untyped memory user space supplies or from fixed storage inside kernel objects
//! (a destroyed CNode's own slot 0 links it into the list of CNodes still to empty), so
//! no task can exhaust kernel memory and no system call can fail for lack of heap.
//!
//! The boot path seals the heap ([`seal`]) just before the first thread runs. In builds
//! with debug assertions (the QEMU test kernels, debug builds) a sealed heap refuses
//! every allocation: it returns null, and the allocation-failure handler panics the
//! kernel with the size asked for, so any system-call path that uses the heap fails
//! every QEMU suite that reaches it (the system-call fuzzer included). A shipped kernel
//! keeps serving the rare late allocation rather than turning a latent bug into a
//! panic.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};
use linked_list_allocator::LockedHeap;

/// Size of the kernel heap.
pub const HEAP_BYTES: usize = 1024 * 1024;

/// Whether a sealed heap refuses allocations (test and debug builds).
const REFUSE_WHEN_SEALED: bool = cfg!(debug_assertions);

#[repr(C, align(4096))]
struct HeapMemory([u8; HEAP_BYTES]);

static mut HEAP_MEMORY: HeapMemory = HeapMemory([0; HEAP_BYTES]);

/// The boot heap, which can be sealed once boot is over.
struct BootHeap {
    heap: LockedHeap,
    sealed: AtomicBool,
}

// SAFETY: every call is forwarded to `LockedHeap`, a correct allocator, except
// allocations refused once sealed, which return null as `GlobalAlloc` allows.
unsafe impl GlobalAlloc for BootHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if REFUSE_WHEN_SEALED && self.sealed.load(Ordering::Relaxed) {
            return core::ptr::null_mut();
        }
        // SAFETY: per the caller's contract for `GlobalAlloc::alloc`.
        unsafe { self.heap.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: per the caller's contract: `ptr` came from `alloc` with `layout`.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: BootHeap = BootHeap {
    heap: LockedHeap::empty(),
    sealed: AtomicBool::new(false),
};

/// Hands the heap its memory. Call once, before the first allocation.
pub fn init() {
    // SAFETY: called once on the boot path before any allocation; HEAP_MEMORY is used by
    // nothing else, so the allocator owns it exclusively from here on.
    unsafe {
        ALLOCATOR
            .heap
            .lock()
            .init((&raw mut HEAP_MEMORY).cast::<u8>(), HEAP_BYTES)
    };
}

/// Ends boot's use of the heap: from here on, test and debug builds refuse every
/// allocation (see the module documentation).
pub fn seal() {
    ALLOCATOR.sealed.store(true, Ordering::Relaxed);
}
