//! Console output through the `console_write` system call, with this task's console
//! capability ([`crate::sys::console`]). A task without one prints nothing: its output is
//! dropped, never a panic.

use crate::sys;
use core::fmt::{self, Write};

const LINE_BYTES: usize = 512;

/// A buffered writer to the kernel console; flushes when full and when dropped.
pub struct Console {
    buffer: [u8; LINE_BYTES],
    length: usize,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buffer: [0; LINE_BYTES],
            length: 0,
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.length > 0 {
            // Nothing useful can be done if the console refuses: drop the text.
            let _ = sys::console_write(&self.buffer[..self.length]);
            self.length = 0;
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.length == LINE_BYTES {
                self.flush();
            }
            self.buffer[self.length] = byte;
            self.length += 1;
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(arguments: fmt::Arguments<'_>) {
    let mut console = Console::new();
    let _ = console.write_fmt(arguments);
}
