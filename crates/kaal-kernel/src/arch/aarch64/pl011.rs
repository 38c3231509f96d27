//! The PL011 UART, used as the kernel console. Its registers are a `tock-registers`
//! block: the offsets and the flag bits are declared once, typed, instead of as raw
//! offsets and masks.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! {u32,
    /// Flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
    ],
    /// Data register: writing sends a byte.
    DR [
        DATA OFFSET(0) NUMBITS(8) [],
    ],
}

register_structs! {
    /// The PL011 registers the kernel console uses (PrimeCell UART, ARM DDI 0183).
    Registers {
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => @END),
    }
}

/// Reads of a full transmit FIFO before a byte is dropped (well above the time a byte
/// takes at 115200 baud on any core the kernel runs on).
const TRANSMIT_SPIN_LIMIT: u32 = 1_000_000;

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
    /// memory for as long as the value lives (the kernel maps its console for good), and
    /// written by nothing else but another `Pl011` over the same registers (bytes of two
    /// writers may interleave, nothing worse).
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            base,
            stalled: false,
        }
    }

    fn registers(&self) -> &Registers {
        // SAFETY: `new`'s contract: `base` maps the registers as device memory for as
        // long as `self` lives; `Registers` is a block of volatile cells, aligned like
        // them, that only ever reads and writes them.
        unsafe { &*(self.base as *const Registers) }
    }

    /// Whether the transmit FIFO is full (the next byte would wait). A UART that has
    /// stopped taking bytes (see [`Pl011::write_byte`]) counts as not full: its bytes
    /// are dropped without waiting.
    pub fn transmit_full(&self) -> bool {
        !self.stalled && self.registers().fr.is_set(FR::TXFF)
    }

    /// Sends one byte, waiting while the transmit FIFO is full, but not forever: a UART
    /// shared with a user-space driver (`kaal.console=shared`) may have been switched off
    /// by it, and the kernel must not hang on its console; the byte is then dropped, and
    /// so is every later byte that finds the FIFO full, without waiting, until one gets
    /// through. So however many bytes are written, the kernel waits for a stuck UART at
    /// most once (`TRANSMIT_SPIN_LIMIT` reads), not once per byte.
    pub fn write_byte(&mut self, byte: u8) {
        let limit = if self.stalled { 0 } else { TRANSMIT_SPIN_LIMIT };
        let mut spins = 0u32;
        while self.registers().fr.is_set(FR::TXFF) {
            if spins >= limit {
                self.stalled = true;
                return;
            }
            spins += 1;
            core::hint::spin_loop();
        }
        self.registers().dr.write(DR::DATA.val(u32::from(byte)));
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
