//! # kaal-user: the runtime for KaaL user tasks
//!
//! Entry point, stack (set up by the kernel), system-call wrappers, `print!`/`println!`
//! to the kernel console, a panic handler that reports and exits, a small heap, and
//! threads.
//!
//! A root task:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! #![forbid(unsafe_code)]
//! use kaal_user::{println, BootInfo};
//!
//! kaal_user::entry!(main);
//!
//! fn main(boot: &BootInfo<'_>) -> i32 {
//!     println!("RAM: {} MiB", boot.system().ram_bytes >> 20);
//!     0
//! }
//! ```
//!
//! Link with `-Tkaal-user.ld` (this crate's build script puts it on the linker's search
//! path) for the `aarch64-unknown-none` target. `main`'s return value ends the main thread
//! with that exit code; other threads go on.
//!
//! The system-call wrappers in [`sys`] compile on every target so that code using them can
//! be type-checked and documented on a host; they only work on a KaaL system.
#![no_std]

extern crate alloc;

pub mod broker;
pub mod cap;
pub mod ipc;
pub mod memory;
pub mod process;
pub mod slots;
pub mod startup;
pub mod sync;
pub mod sys;
pub mod thread;
pub mod time;

mod console;
#[cfg(target_os = "none")]
mod runtime;

pub use console::{_print, Console};
#[cfg(target_os = "none")]
pub use runtime::{boot_info, components, start_arguments, startup};

/// The boot info (off target there is none).
#[cfg(not(target_os = "none"))]
pub fn boot_info() -> Result<BootInfo<'static>, kaal_bootinfo::BootInfoError> {
    Err(kaal_bootinfo::BootInfoError::TooShort {
        needed: 8,
        available: 0,
    })
}

/// The component archive (off target there is none).
#[cfg(not(target_os = "none"))]
pub fn components()
-> Result<kaal_bootinfo::archive::Archive<'static>, kaal_bootinfo::archive::ArchiveError> {
    kaal_bootinfo::archive::Archive::parse(&[])
}

/// `x0` and `x1` as the task started (off target, zeros).
#[cfg(not(target_os = "none"))]
pub fn start_arguments() -> (usize, usize) {
    (0, 0)
}

/// The start-up record (off target there is none).
#[cfg(not(target_os = "none"))]
pub fn startup() -> Result<startup::Startup, kaal_bootinfo::startup::StartupError> {
    Err(kaal_bootinfo::startup::StartupError::BadMagic)
}

/// Hooks for the QEMU test suites; not part of the API (hidden from the documentation,
/// may change or go in any release).
#[doc(hidden)]
pub mod test_hooks {
    /// Runs `f` while holding the heap's lock: `f` must not allocate or free (a thread
    /// that does waits for `f` to end). For tests of threads that contend for it.
    pub fn with_heap_locked<R>(f: impl FnOnce() -> R) -> R {
        #[cfg(target_os = "none")]
        return crate::runtime::with_heap_locked(f);
        #[cfg(not(target_os = "none"))]
        f()
    }

    /// Runs `f` while holding the slot allocator's lock: `f` must not allocate or free
    /// slots. For tests of threads that contend for it.
    pub fn with_slots_locked<R>(f: impl FnOnce() -> R) -> R {
        crate::cap::with_slots_locked(f)
    }
}

/// Runs a component's `main` (used by [`component!`]): gives it the start argument
/// (from the start-up record for a component the broker started, else `x0`) and, for a
/// broker-started component, reports its exit code to the broker.
pub fn run_component(main: fn(u64) -> i32) -> i32 {
    match startup() {
        Ok(record) => {
            let code = main(record.argument());
            if let Ok(broker) = record.broker() {
                let _ = broker.exit(code);
            }
            code
        }
        Err(_) => main(start_arguments().0 as u64),
    }
}
pub use kaal_abi::{AbiVersion, Error, ThreadStatus};
pub use kaal_bootinfo::{self as bootinfo, BootInfo};

/// Size of the heap every task gets (in its `.bss`).
pub const HEAP_BYTES: usize = 1024 * 1024;

/// The exit code of a task whose runtime refused to run its `main`: the kernel's ABI
/// version is not one the task can run on ([`kaal_abi::is_compatible`] with the version
/// it was built for), or the task was started with a start-up record this runtime
/// cannot read. The runtime prints why (one `[runtime] ...` line naming both
/// versions), then ends QEMU with this code when the task may (`sys::debug_exit`: under
/// test, with the system-control capability) and otherwise its thread.
pub const EXIT_REFUSED: u32 = 3;

/// Used by [`entry!`] and [`component!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use kaal_abi::{ABI_VERSION, AbiVersion};

    /// Defines the symbol that tells the runtime which ABI version the task was built
    /// for (the runtime checks the kernel against it before `main`).
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __kaal_user_built_for_abi {
        ($version:expr) => {
            #[unsafe(no_mangle)]
            static __KAAL_USER_BUILT_FOR_ABI: $crate::__private::AbiVersion = $version;
        };
    }
}

/// Declares the root task's `main`: `fn(&BootInfo<'_>) -> i32`.
///
/// Before `main` runs, the runtime asks the kernel for its ABI version
/// ([`sys::abi_version`]) and checks it against the version the task was built for,
/// [`kaal_abi::ABI_VERSION`], by [`kaal_abi::is_compatible`] (same major version, a
/// kernel minor version no older). If it does not hold, `main` never runs: the runtime
/// prints one line naming both versions,
///
/// ```text
/// [runtime] built for KaaL ABI 2.0 but the kernel provides ABI 1.0: not starting
/// ```
///
/// and ends with [`EXIT_REFUSED`]. A boot info the runtime cannot read (another major
/// version, say) is reported as `[runtime] boot info rejected: ...` and ends `main`'s
/// thread with code 1.
///
/// # Claiming another ABI version (tests only)
///
/// `entry!(main, claimed_abi = (MAJOR, MINOR))` makes the runtime check the kernel
/// against ABI version `MAJOR.MINOR` instead, as if the task had been built for it: a
/// test of the refusal above (the QEMU suite `badabi` claims 9.0). This arm is not part
/// of the stable API and may change or go in any release.
///
/// ```ignore
/// kaal_user::entry!(main, claimed_abi = (9, 0)); // `main` never runs on an ABI 1.x kernel
/// ```
#[macro_export]
macro_rules! entry {
    (@main $main:path) => {
        #[unsafe(no_mangle)]
        fn __kaal_user_main() -> i32 {
            let main: fn(&$crate::BootInfo<'_>) -> i32 = $main;
            match $crate::boot_info() {
                Ok(boot) => main(&boot),
                Err(error) => {
                    $crate::println!("[runtime] boot info rejected: {error}");
                    1
                }
            }
        }
    };
    ($main:path) => {
        $crate::entry!(@main $main);
        $crate::__kaal_user_built_for_abi!($crate::__private::ABI_VERSION);
    };
    ($main:path, claimed_abi = ($major:expr, $minor:expr $(,)?) $(,)?) => {
        $crate::entry!(@main $main);
        $crate::__kaal_user_built_for_abi!($crate::__private::AbiVersion::new($major, $minor));
    };
}

/// Declares the `main` of a component started by another task: `fn(u64) -> i32`, given
/// the `x0` its starter chose.
///
/// As for [`entry!`], the runtime first checks the kernel's ABI version and refuses to
/// run `main` (printing both versions, exit code [`EXIT_REFUSED`]) unless the component
/// can run on it. A component the broker started with a start-up record this runtime
/// cannot read (another major version, say) is refused the same way, with
/// `[runtime] start-up record rejected: ...`, which names both versions.
/// `component!(main, claimed_abi = (MAJOR, MINOR))` claims another ABI version, for
/// tests only (see [`entry!`]).
#[macro_export]
macro_rules! component {
    (@main $main:path) => {
        #[unsafe(no_mangle)]
        fn __kaal_user_main() -> i32 {
            $crate::run_component($main)
        }
    };
    ($main:path) => {
        $crate::component!(@main $main);
        $crate::__kaal_user_built_for_abi!($crate::__private::ABI_VERSION);
    };
    ($main:path, claimed_abi = ($major:expr, $minor:expr $(,)?) $(,)?) => {
        $crate::component!(@main $main);
        $crate::__kaal_user_built_for_abi!($crate::__private::AbiVersion::new($major, $minor));
    };
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console. One line is written with one system call, so
/// lines from different threads do not mix.
#[macro_export]
macro_rules! println {
    () => { $crate::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
