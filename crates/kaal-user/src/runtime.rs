//! Process start, heap and panic handling.

use crate::{BootInfo, HEAP_BYTES, sys};
use core::fmt::Write;
use linked_list_allocator::LockedHeap;

core::arch::global_asm!(
    r#"
.section .text._start, "ax"
.global _start
_start:
    mov     x29, #0
    mov     x30, #0
    bl      kaal_user_start
1:  b       1b
"#
);

#[repr(C, align(16))]
struct HeapMemory([u8; HEAP_BYTES]);
static mut HEAP_MEMORY: HeapMemory = HeapMemory([0; HEAP_BYTES]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

unsafe extern "Rust" {
    fn __kaal_user_main(boot: &BootInfo<'_>) -> i32;
}

/// Called by `_start` with the kernel's arguments: the boot info's address and size.
#[unsafe(no_mangle)]
extern "C" fn kaal_user_start(boot_info: usize, boot_info_bytes: usize) -> ! {
    // SAFETY: runs once, first thing, before any allocation; nothing else uses HEAP_MEMORY.
    unsafe {
        ALLOCATOR
            .lock()
            .init((&raw mut HEAP_MEMORY).cast::<u8>(), HEAP_BYTES)
    };
    // SAFETY: the kernel maps `boot_info_bytes` bytes of boot info read-only at
    // `boot_info` for the task's lifetime and never changes them.
    let bytes = unsafe { core::slice::from_raw_parts(boot_info as *const u8, boot_info_bytes) };
    let boot = match BootInfo::from_bytes(bytes) {
        Ok(boot) => boot,
        Err(error) => {
            crate::println!("[runtime] boot info rejected: {error}");
            sys::thread_exit(1)
        }
    };
    // SAFETY: `entry!` defines `__kaal_user_main` with this signature.
    let code = unsafe { __kaal_user_main(&boot) };
    sys::thread_exit(code as u64)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut console = crate::Console::new();
    let _ = writeln!(
        console,
        "[runtime] thread {} panicked: {info}",
        sys::thread_id().0
    );
    console.flush();
    // Under test, a panic ends the run with a failure; elsewhere only this thread ends.
    let _ = sys::debug_exit(101);
    sys::thread_exit(101)
}
