//! The PL031 real-time clock driver, written with the driver kit. Requests: `TIME` →
//! seconds since the epoch; `ALARM(seconds)` → an interrupt that many seconds from now;
//! `ALARMS` → how many alarms have fired; `LATENCY` → counter ticks from the last alarm's
//! due time to this driver running (QEMU schedules the alarm exactly whole seconds after
//! the match register is written; with `-rtc clock=vm` and `-icount` that is a count of
//! instructions).
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
        (0x004 => match_value: ReadWrite<u32>),
        (0x008 => load: ReadWrite<u32>),
        (0x00c => control: ReadWrite<u32>),
        (0x010 => interrupt_mask: ReadWrite<u32>),
        (0x014 => raw_status: ReadOnly<u32>),
        (0x018 => masked_status: ReadOnly<u32>),
        (0x01c => interrupt_clear: WriteOnly<u32>),
        (0x020 => _reserved),
        (0xfe0 => peripheral_id0: ReadOnly<u32>),
        (0xfe4 => @END),
    }
}

/// `TIME` request.
const TIME: u64 = 1;
/// `ALARM(seconds)` request.
const ALARM: u64 = 2;
/// `ALARMS` request.
const ALARMS: u64 = 3;
/// `LATENCY` request.
const LATENCY: u64 = 4;

#[derive(Driver)]
#[driver(name = "pl031")]
#[platform(compatible = "arm,pl031")]
struct Pl031 {
    #[mmio]
    registers: Mmio<Registers>,
    #[irq]
    irq: IrqLine,
    alarms: u64,
    /// Counter value at which the pending alarm is due.
    due: u64,
    /// Ticks from the last alarm's due time to its interrupt reaching this driver.
    latency: u64,
}

impl Driver for Pl031 {
    fn init(&mut self) -> Result<(), DriverError> {
        if self.registers.peripheral_id0.get() != 0x31 {
            return Err(DriverError::Device("not a PL031"));
        }
        self.registers.control.set(1);
        self.registers.interrupt_mask.set(0);
        self.registers.interrupt_clear.set(1);
        Ok(())
    }

    fn interrupt(&mut self) {
        let now = kaal_user::time::now_ticks();
        if self.registers.masked_status.get() & 1 != 0 {
            self.latency = now.wrapping_sub(self.due);
            self.alarms += 1;
            self.registers.interrupt_mask.set(0);
            self.registers.interrupt_clear.set(1);
        }
    }

    fn request(&mut self, request: &Request) -> Result<[u64; 4], Error> {
        match request.label {
            TIME => Ok([u64::from(self.registers.data.get()), 0, 0, 0]),
            ALARM => {
                let seconds =
                    u32::try_from(request.words[0]).map_err(|_| Error::InvalidArgument)?;
                let at = self.registers.data.get().wrapping_add(seconds);
                self.registers.interrupt_clear.set(1);
                let ticks = kaal_user::time::ticks_per_second() * u64::from(seconds);
                self.due = kaal_user::time::now_ticks() + ticks;
                self.registers.match_value.set(at);
                self.registers.interrupt_mask.set(1);
                Ok([u64::from(at), u64::from(self.irq.line()), 0, 0])
            }
            ALARMS => Ok([self.alarms, 0, 0, 0]),
            LATENCY => Ok([self.latency, 0, 0, 0]),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn shutdown(&mut self) {
        self.registers.interrupt_mask.set(0);
        kaal_user::println!("[pl031] shut down");
    }
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    kaal_dddk::run::<Pl031>()
}
