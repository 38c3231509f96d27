//! The PL011 UART driver, written with the driver kit, interrupt-driven both ways: every
//! byte typed on the serial line goes into ring channel `serial`; `WRITE` requests on
//! endpoint `console` queue bytes that the transmit interrupt feeds to the FIFO. The kernel keeps writing its own messages to
//! the same UART (boot argument `kaal.console=shared`); this driver only switches the
//! receiver on and adds receive interrupts, and never changes the line's settings.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_abi::Error;
use kaal_dddk::tock_registers::interfaces::{Readable, Writeable};
use kaal_dddk::tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use kaal_dddk::{Driver, DriverError, IrqLine, Mmio, Request};
use kaal_user::startup::ChannelProducer;

kaal_dddk::register_block! {
    /// PL011 registers (ARM DDI 0183).
    Registers {
        (0x000 => data: ReadWrite<u32>),
        (0x004 => _receive_status),
        (0x018 => flags: ReadOnly<u32>),
        (0x01c => _reserved0),
        (0x030 => control: ReadWrite<u32>),
        (0x034 => _fifo_level_select),
        (0x038 => interrupt_mask: ReadWrite<u32>),
        (0x03c => raw_status: ReadOnly<u32>),
        (0x040 => masked_status: ReadOnly<u32>),
        (0x044 => interrupt_clear: WriteOnly<u32>),
        (0x048 => _reserved1),
        (0xfe0 => peripheral_id0: ReadOnly<u32>),
        (0xfe4 => @END),
    }
}

const RECEIVE_FIFO_EMPTY: u32 = 1 << 4;
/// `UARTCR.UARTEN` and `UARTCR.RXE`: the UART and its receiver are on (the kernel's
/// console only transmits and may leave both off).
const RECEIVE_ENABLE: u32 = 1 | (1 << 9);
const TRANSMIT_FIFO_FULL: u32 = 1 << 5;
/// Receive and receive-timeout interrupts.
const RECEIVE_INTERRUPTS: u32 = (1 << 4) | (1 << 6);
/// Transmit interrupt.
const TRANSMIT_INTERRUPT: u32 = 1 << 5;
/// `WRITE(length, bytes...)`: up to 24 bytes in words 1 to 3; `WouldBlock` while the
/// transmit queue has no room for them.
const WRITE: u64 = 1;

/// Bytes waiting for the transmit FIFO.
struct TransmitQueue {
    bytes: [u8; 1024],
    head: usize,
    len: usize,
}

impl Default for TransmitQueue {
    fn default() -> Self {
        Self {
            bytes: [0; 1024],
            head: 0,
            len: 0,
        }
    }
}

impl TransmitQueue {
    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.len + bytes.len() > self.bytes.len() {
            return false;
        }
        for &byte in bytes {
            let at = (self.head + self.len) % self.bytes.len();
            self.bytes[at] = byte;
            self.len += 1;
        }
        true
    }

    fn pop(&mut self) -> Option<u8> {
        (self.len > 0).then(|| {
            let byte = self.bytes[self.head];
            self.head = (self.head + 1) % self.bytes.len();
            self.len -= 1;
            byte
        })
    }
}

#[derive(Driver)]
#[driver(name = "pl011")]
#[platform(compatible = "arm,pl011")]
struct Pl011 {
    #[mmio]
    registers: Mmio<Registers>,
    #[irq]
    _irq: IrqLine,
    /// Where received bytes go (taken in `init`).
    input: Option<ChannelProducer<u8, 4096>>,
    /// Bytes to send.
    output: TransmitQueue,
}

impl Pl011 {
    /// Fills the transmit FIFO from the queue; the transmit interrupt is on while bytes
    /// wait.
    fn transmit(&mut self) {
        while self.registers.flags.get() & TRANSMIT_FIFO_FULL == 0 {
            let Some(byte) = self.output.pop() else {
                break;
            };
            self.registers.data.set(u32::from(byte));
        }
        let mask = self.registers.interrupt_mask.get();
        if self.output.len > 0 {
            self.registers.interrupt_mask.set(mask | TRANSMIT_INTERRUPT);
        } else {
            self.registers
                .interrupt_mask
                .set(mask & !TRANSMIT_INTERRUPT);
        }
    }
}

impl Driver for Pl011 {
    fn init(&mut self) -> Result<(), DriverError> {
        if self.registers.peripheral_id0.get() != 0x11 {
            return Err(DriverError::Device("not a PL011"));
        }
        let startup = kaal_user::startup().map_err(DriverError::NoStartup)?;
        self.input = startup.producer::<u8, 4096>("serial").ok();
        let control = self.registers.control.get();
        self.registers.control.set(control | RECEIVE_ENABLE);
        let mask = self.registers.interrupt_mask.get();
        self.registers.interrupt_mask.set(mask | RECEIVE_INTERRUPTS);
        Ok(())
    }

    fn interrupt(&mut self) {
        // Clear first, then drain: a byte that arrives after the clear raises the
        // interrupt again, so none is left in the FIFO unannounced.
        self.registers
            .interrupt_clear
            .set(RECEIVE_INTERRUPTS | TRANSMIT_INTERRUPT);
        self.transmit();
        while self.registers.flags.get() & RECEIVE_FIFO_EMPTY == 0 {
            let byte = self.registers.data.get() as u8;
            if let Some(input) = &mut self.input {
                // Blocks while the reader is behind: the FIFO then fills and QEMU stops
                // sending, so nothing is lost.
                let _ = input.push(byte);
            }
        }
    }

    fn request(&mut self, request: &Request) -> Result<[u64; 4], Error> {
        if request.label != WRITE {
            return Err(Error::InvalidArgument);
        }
        let length = usize::try_from(request.words[0]).map_err(|_| Error::InvalidArgument)?;
        if length > 24 {
            return Err(Error::InvalidArgument);
        }
        let mut bytes = [0u8; 24];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(&request.words[1..]) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        if !self.output.push(&bytes[..length]) {
            return Err(Error::WouldBlock);
        }
        self.transmit();
        Ok([length as u64, 0, 0, 0])
    }
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    kaal_dddk::run::<Pl011>()
}
