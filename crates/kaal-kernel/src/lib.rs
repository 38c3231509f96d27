//! # kaal-kernel: the KaaL microkernel for AArch64, as a library
//!
//! A kernel binary is a few lines over this crate:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! static COMPONENTS: &[u8] = include_bytes!(env!("KAAL_COMPONENTS"));
//! kaal_kernel::entry!(kaal_kernel::Config::qemu_virt(COMPONENTS));
//! ```
//!
//! linked with `-Tkaal-kernel.ld` (this crate's build script puts the script on the
//! linker's search path) for the `aarch64-unknown-none-softfloat` target. The kernel
//! itself never touches FP/SIMD registers, so a user thread's FP/SIMD state moves only
//! when it uses FP/SIMD after another thread did (lazy switching through a trap).
//!
//! ## What it does
//!
//! Boots on QEMU `virt` at EL2 (dropping to EL1) or EL1; reads memory, the PL011, the GIC
//! (v2 or v3), the timer interrupt and the PSCI conduit from the device tree; turns on the
//! MMU with the kernel in the high half over a linear map of RAM, W^X and nGnRE devices;
//! runs a preemptive priority round-robin scheduler on the generic timer; loads the root
//! task from the component archive into its own address space (TTBR0, with an ASID), maps
//! the boot info read-only at [`kaal_bootinfo::BOOT_INFO_VADDR`] and starts it at EL0.
//! Everything user space creates at run time comes from untyped memory it holds
//! capabilities to (seL4's model): threads, endpoints, notifications, CNodes, frames, page
//! tables and address spaces. System calls are listed in `kaal-abi` and `docs/abi.md`. A
//! user fault goes to the thread's fault endpoint, or is reported and stops the thread; the
//! kernel goes on.
//!
//! ## Layout
//!
//! Portable logic (frame allocator, run queues, device-tree reading, ELF checks) is in
//! modules that build and are tested on the host; everything that touches the hardware is
//! under [`arch`].
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod arch;
pub mod capability;
pub mod frame_allocator;
pub mod loader;
pub mod platform;
pub mod scheduler;
pub mod smp;
pub mod thread;
pub mod user_output;
pub mod vspace;

#[cfg(target_os = "none")]
mod boot;
pub mod console;
#[cfg(target_os = "none")]
mod heap;
mod interrupts;
mod ipc;
pub mod kernel;
mod mapping;
mod memory;
mod objects;

use core::sync::atomic::{AtomicBool, Ordering};

/// This kernel's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a kernel binary configures the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The component archive (see `kaal_bootinfo::archive`), usually `include_bytes!`.
    pub components: &'static [u8],
    /// Name of the archive entry to start as the root task.
    pub root_task: &'static str,
    /// Priority of the root task's first thread.
    pub root_priority: u8,
    /// Scheduler tick rate; one tick is one time slice.
    pub tick_hz: u32,
    /// Physical address of a PL011 usable before the device tree is read.
    pub early_uart_phys: u64,
    /// Whether Arm semihosting is available (QEMU with `-semihosting-config enable=on`):
    /// enables the `debug_exit` system call and lets a kernel panic end the emulator.
    pub semihosting: bool,
}

impl Config {
    /// Defaults for QEMU `virt`: root task `root-task` at priority 128, 100 Hz tick,
    /// early console on the PL011 at `0x0900_0000`, semihosting on.
    pub const fn qemu_virt(components: &'static [u8]) -> Self {
        Self {
            components,
            root_task: "root-task",
            root_priority: 128,
            tick_hz: 100,
            early_uart_phys: 0x0900_0000,
            semihosting: true,
        }
    }
}

static SEMIHOSTING: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "none")]
fn set_semihosting(enabled: bool) {
    SEMIHOSTING.store(enabled, Ordering::Relaxed);
}

/// Whether the running kernel was configured with semihosting.
pub fn semihosting_enabled() -> bool {
    SEMIHOSTING.load(Ordering::Relaxed)
}

/// Defines the kernel binary's configuration. Use exactly once, in the kernel binary.
#[macro_export]
macro_rules! entry {
    ($config:expr) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __kaal_kernel_config() -> &'static $crate::Config {
            static CONFIG: $crate::Config = $config;
            &CONFIG
        }
    };
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::print_emergency(format_args!("\n[kaal] KERNEL PANIC: {info}\n"));
    if semihosting_enabled() {
        // SAFETY: semihosting was configured as available.
        unsafe { arch::semihosting::exit(101) }
    }
    loop {
        arch::wait_for_interrupt();
    }
}
