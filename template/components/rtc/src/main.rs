//! The real-time clock driver: the PL031, written with the driver kit. Endpoint `rtc`
//! answers [`TIME`] with the seconds since 1970-01-01 00:00 UTC (QEMU starts the clock
//! at the host's time).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_abi::Error;
use kaal_dddk::tock_registers::interfaces::{Readable, Writeable};
use kaal_dddk::tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use kaal_dddk::{Driver, DriverError, IrqLine, Mmio, Request};

kaal_dddk::register_block! {
    /// PL031 registers (ARM DDI 0224).
    Registers {
        (0x000 => data: ReadOnly<u32>),
        (0x004 => _match_value),
        (0x008 => _load),
        (0x00c => control: ReadWrite<u32>),
        (0x010 => interrupt_mask: ReadWrite<u32>),
        (0x014 => _raw_status),
        (0x018 => _masked_status),
        (0x01c => interrupt_clear: WriteOnly<u32>),
        (0x020 => _reserved),
        (0xfe0 => peripheral_id0: ReadOnly<u32>),
        (0xfe4 => @END),
    }
}

/// Request `TIME` → `[seconds since the epoch, 0, 0, 0]`.
const TIME: u64 = 1;

#[derive(Driver)]
#[driver(name = "pl031")]
#[platform(compatible = "arm,pl031")]
struct Pl031 {
    #[mmio]
    registers: Mmio<Registers>,
    #[irq]
    _irq: IrqLine,
}

impl Driver for Pl031 {
    fn init(&mut self) -> Result<(), DriverError> {
        if self.registers.peripheral_id0.get() != 0x31 {
            return Err(DriverError::Device("not a PL031"));
        }
        // Counting, no alarm.
        self.registers.control.set(1);
        self.registers.interrupt_mask.set(0);
        self.registers.interrupt_clear.set(1);
        Ok(())
    }

    fn interrupt(&mut self) {
        self.registers.interrupt_clear.set(1);
    }

    fn request(&mut self, request: &Request) -> Result<[u64; 4], Error> {
        match request.label {
            TIME => Ok([u64::from(self.registers.data.get()), 0, 0, 0]),
            _ => Err(Error::InvalidArgument),
        }
    }
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    kaal_dddk::run::<Pl031>()
}
