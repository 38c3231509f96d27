//! The PL011 UART, used as the kernel console.

use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
/// Reads of a full transmit FIFO before a byte is dropped (well above the time a byte
/// takes at 115200 baud on any core the kernel runs on).
const TRANSMIT_SPIN_LIMIT: u32 = 1_000_000;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// A PL011 mapped into the kernel's address space.
pub struct Pl011 {
    base: usize,
    /// A byte was dropped because the transmit FIFO stayed full: until the FIFO takes a
    /// byte again, bytes are dropped at once instead of each waiting the whole limit.
    stalled: bool,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the kernel virtual address of a PL011's registers, mapped as device
    /// memory for as long as the value lives, and used by nothing else.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            base,
            stalled: false,
        }
    }

    /// Whether the transmit FIFO is full (the next byte would wait). A UART that has
    /// stopped taking bytes (see [`Pl011::write_byte`]) counts as not full: its bytes
    /// are dropped without waiting.
    pub fn transmit_full(&self) -> bool {
        // SAFETY: `new`'s contract: `base` maps the PL011 registers; FR is a 32-bit
        // register at this offset, and reading it has no side effect.
        !self.stalled && unsafe { read_volatile((self.base + FR) as *const u32) } & FR_TXFF != 0
    }

    /// Sends one byte, waiting while the transmit FIFO is full, but not forever: a UART
    /// shared with a user-space driver (`kaal.console=shared`) may have been switched off
    /// by it, and the kernel must not hang on its console; the byte is then dropped, and
    /// so is every later byte that finds the FIFO full, without waiting, until one gets
    /// through. So however many bytes are written, the kernel waits for a stuck UART at
    /// most once (`TRANSMIT_SPIN_LIMIT` reads), not once per byte.
    pub fn write_byte(&mut self, byte: u8) {
        let limit = if self.stalled { 0 } else { TRANSMIT_SPIN_LIMIT };
        // SAFETY: `new`'s contract: `base` maps the PL011 registers; FR and DR are 32-bit
        // registers at these offsets.
        unsafe {
            let mut spins = 0u32;
            while read_volatile((self.base + FR) as *const u32) & FR_TXFF != 0 {
                if spins >= limit {
                    self.stalled = true;
                    return;
                }
                spins += 1;
                core::hint::spin_loop();
            }
            write_volatile((self.base + DR) as *mut u32, u32::from(byte));
        }
        self.stalled = false;
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}
