//! The console driver: the PL011 UART, written with the driver kit. Every byte typed on
//! the serial line goes into ring channel `console-input`, read by the shell.
//!
//! The kernel keeps writing its own messages, and components' `println!` output, to the
//! same UART (boot argument `kaal.console=shared`); this driver only switches the
//! receiver on and takes the receive interrupts, and never changes the line's settings.
//! Input that arrives before it runs waits in the UART (and in QEMU behind it): nothing
//! typed, or piped in, is lost.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_dddk::tock_registers::interfaces::{Readable, Writeable};
use kaal_dddk::tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use kaal_dddk::{Driver, DriverError, IrqLine, Mmio};
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
        (0x03c => _raw_status),
        (0x040 => _masked_status),
        (0x044 => interrupt_clear: WriteOnly<u32>),
        (0x048 => _reserved1),
        (0xfe0 => peripheral_id0: ReadOnly<u32>),
        (0xfe4 => @END),
    }
}

/// `UARTFR.RXFE`: the receive FIFO is empty.
const RECEIVE_FIFO_EMPTY: u32 = 1 << 4;
/// `UARTCR.UARTEN` and `UARTCR.RXE`: the UART and its receiver are on (the kernel's
/// console only transmits and may leave the receiver off).
const RECEIVE_ENABLE: u32 = 1 | (1 << 9);
/// Receive and receive-timeout interrupts.
const RECEIVE_INTERRUPTS: u32 = (1 << 4) | (1 << 6);
/// Slots of channel `console-input` (its `capacity` in `system.toml`).
const INPUT_SLOTS: usize = 4096;

#[derive(Driver)]
#[driver(name = "pl011")]
#[platform(compatible = "arm,pl011")]
struct Pl011 {
    #[mmio]
    registers: Mmio<Registers>,
    #[irq]
    _irq: IrqLine,
    /// Where received bytes go (taken in `init`).
    input: Option<ChannelProducer<u8, INPUT_SLOTS>>,
}

impl Pl011 {
    /// Moves every byte waiting in the receive FIFO into the channel.
    fn receive(&mut self) {
        while self.registers.flags.get() & RECEIVE_FIFO_EMPTY == 0 {
            let byte = self.registers.data.get() as u8;
            if let Some(input) = &mut self.input {
                // Blocks while the shell is behind: the FIFO then fills and QEMU stops
                // sending, so nothing is lost.
                let _ = input.push(byte);
            }
        }
    }
}

impl Driver for Pl011 {
    fn init(&mut self) -> Result<(), DriverError> {
        if self.registers.peripheral_id0.get() != 0x11 {
            return Err(DriverError::Device("not a PL011"));
        }
        let startup = kaal_user::startup().map_err(DriverError::NoStartup)?;
        self.input = Some(
            startup
                .producer::<u8, INPUT_SLOTS>("console-input")
                .map_err(|_| DriverError::Device("no channel `console-input`"))?,
        );
        let control = self.registers.control.get();
        self.registers.control.set(control | RECEIVE_ENABLE);
        let mask = self.registers.interrupt_mask.get();
        self.registers.interrupt_mask.set(mask | RECEIVE_INTERRUPTS);
        // Bytes that arrived before the interrupt was on raise none: take them now.
        self.receive();
        Ok(())
    }

    fn interrupt(&mut self) {
        // Clear first, then drain: a byte that arrives after the clear raises the
        // interrupt again, so none is left in the FIFO unannounced.
        self.registers.interrupt_clear.set(RECEIVE_INTERRUPTS);
        self.receive();
    }
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    kaal_dddk::run::<Pl011>()
}
