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
}

impl Pl011 {
    /// # Safety
    /// `base` must be the kernel virtual address of a PL011's registers, mapped as device
    /// memory for as long as the value lives, and used by nothing else.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    /// Sends one byte, waiting while the transmit FIFO is full, but not forever: a UART
    /// shared with a user-space driver (`kaal.console=shared`) may have been switched off
    /// by it, and the kernel must not hang on its console; the byte is then dropped.
    pub fn write_byte(&mut self, byte: u8) {
        // SAFETY: `new`'s contract: `base` maps the PL011 registers; FR and DR are 32-bit
        // registers at these offsets.
        unsafe {
            let mut spins = 0u32;
            while read_volatile((self.base + FR) as *const u32) & FR_TXFF != 0 {
                spins += 1;
                if spins > TRANSMIT_SPIN_LIMIT {
                    return;
                }
                core::hint::spin_loop();
            }
            write_volatile((self.base + DR) as *mut u32, u32::from(byte));
        }
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
