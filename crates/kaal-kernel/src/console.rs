//! The kernel console: a PL011 behind a lock, and the `kprintln!` macro.

use crate::arch::pl011::Pl011;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);
static CONSOLE_BASE: AtomicUsize = AtomicUsize::new(0);

/// Starts the console on the PL011 whose registers are mapped at `base`.
///
/// # Safety
/// `base` must be the kernel virtual address of a PL011, mapped as device memory from now
/// on for the kernel's lifetime.
pub unsafe fn init(base: usize) {
    CONSOLE_BASE.store(base, Ordering::Relaxed);
    // SAFETY: forwarded from the caller.
    *CONSOLE.lock() = Some(unsafe { Pl011::new(base) });
}

/// Writes formatted text to the console. Does nothing before [`init`].
pub fn print(arguments: core::fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(arguments);
    }
}

/// Writes raw bytes (from user space) to the console, unchanged but for `\n` -> `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        for &byte in bytes {
            if byte == b'\n' {
                uart.write_byte(b'\r');
            }
            uart.write_byte(byte);
        }
    }
}

/// Writes to the console even if the lock is held (for panic reports): the interrupted
/// writer's output may interleave, but the report gets out.
pub fn print_emergency(arguments: core::fmt::Arguments<'_>) {
    let base = CONSOLE_BASE.load(Ordering::Relaxed);
    if base != 0 {
        // SAFETY: `base` was given to `init`, whose contract keeps it mapped; a PL011
        // tolerates two writers (bytes may interleave, nothing worse).
        let mut uart = unsafe { Pl011::new(base) };
        let _ = uart.write_fmt(arguments);
    }
}

/// One register of a dump: `x0`..`x30`, or `sp` for index 31.
struct Register(usize, u64);

impl core::fmt::Display for Register {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            31 => write!(f, "sp  {:#018x}", self.1),
            i => write!(f, "x{i:<2} {:#018x}", self.1),
        }
    }
}

/// Prints `x0`..`x30` and `sp`, four to a line, through `print` (the normal or the
/// emergency console).
pub fn print_registers(x: &[u64; 31], sp: u64, mut print: impl FnMut(core::fmt::Arguments<'_>)) {
    let value = |i: usize| Register(i, if i == 31 { sp } else { x[i] });
    for row in 0..8 {
        let r = row * 4;
        print(format_args!(
            "[kaal]   {}  {}  {}  {}\n",
            value(r),
            value(r + 1),
            value(r + 2),
            value(r + 3)
        ));
    }
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
