//! The kernel console: a PL011 behind a lock, and the `kprintln!` macro.
//!
//! Tasks write to it with `console_write`; their lines that start like the kernel's own
//! are marked as theirs ([`crate::user_output`]).

use crate::arch::pl011::Pl011;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// The UART and where its output stands.
struct Console {
    uart: Pl011,
    /// The last byte sent ended a line (`\n` or `\r`), or none was sent yet.
    line_start: bool,
}

impl Console {
    /// Sends one byte, `\n` as `\r\n`.
    fn put(&mut self, byte: u8) {
        if byte == b'\n' {
            self.uart.write_byte(b'\r');
        }
        self.uart.write_byte(byte);
        self.line_start = byte == b'\n' || byte == b'\r';
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        text.bytes().for_each(|byte| self.put(byte));
        Ok(())
    }
}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);
static CONSOLE_BASE: AtomicUsize = AtomicUsize::new(0);

/// Starts the console on the PL011 whose registers are mapped at `base`.
///
/// # Safety
/// `base` must be the kernel virtual address of a PL011, mapped as device memory from now
/// on for the kernel's lifetime.
pub unsafe fn init(base: usize) {
    CONSOLE_BASE.store(base, Ordering::Relaxed);
    *CONSOLE.lock() = Some(Console {
        // SAFETY: forwarded from the caller.
        uart: unsafe { Pl011::new(base) },
        line_start: true,
    });
}

/// Writes formatted text to the console. Does nothing before [`init`].
pub fn print(arguments: core::fmt::Arguments<'_>) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        let _ = console.write_fmt(arguments);
    }
}

/// Writes bytes from a task to the console, unchanged but for `\n` -> `\r\n` and the
/// mark before a line that starts like a kernel message ([`crate::user_output::mark`]);
/// returns how many were consumed. It stops before a byte (other than the first) that
/// finds the UART's transmit FIFO full: a task's write never waits for the line to
/// drain with interrupts masked (at 115200 baud, 256 bytes take 22 ms), only for the
/// few bytes its first byte becomes. The task writes the rest in its next call.
pub fn write_user(bytes: &[u8]) -> usize {
    let mut guard = CONSOLE.lock();
    let Some(console) = guard.as_mut() else {
        return bytes.len();
    };
    let line_start = console.line_start;
    let uart = core::cell::RefCell::new(console);
    let (consumed, line_start) = crate::user_output::mark_while(
        bytes,
        line_start,
        |byte| uart.borrow_mut().put(byte),
        || !uart.borrow().uart.transmit_full(),
    );
    uart.borrow_mut().line_start = line_start;
    consumed
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
