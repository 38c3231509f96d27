//! The power key: the PL061 GPIO driver, written with the driver kit, for QEMU `virt`'s
//! power button: the button is GPIO line 3; pressing it (QEMU monitor: `system_powerdown`)
//! asks the broker to shut the system down in order.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_dddk::tock_registers::interfaces::{Readable, Writeable};
use kaal_dddk::tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use kaal_dddk::{Driver, DriverError, IrqLine, Mmio};
use kaal_user::broker::BrokerClient;

kaal_dddk::register_block! {
    /// PL061 registers (ARM DDI 0190).
    Registers {
        (0x000 => _data),
        (0x400 => direction: ReadWrite<u32>),
        (0x404 => interrupt_sense: ReadWrite<u32>),
        (0x408 => interrupt_both_edges: ReadWrite<u32>),
        (0x40c => interrupt_event: ReadWrite<u32>),
        (0x410 => interrupt_mask: ReadWrite<u32>),
        (0x414 => raw_status: ReadOnly<u32>),
        (0x418 => masked_status: ReadOnly<u32>),
        (0x41c => interrupt_clear: WriteOnly<u32>),
        (0x420 => _reserved),
        (0xfe0 => peripheral_id0: ReadOnly<u32>),
        (0xfe4 => @END),
    }
}

/// The GPIO line QEMU `virt` wires its power button to.
const POWER_BUTTON: u32 = 1 << 3;

#[derive(Driver)]
#[driver(name = "pl061")]
#[platform(compatible = "arm,pl061")]
struct Pl061 {
    #[mmio]
    registers: Mmio<Registers>,
    #[irq]
    _irq: IrqLine,
    /// Filled in `init`: the broker client, to ask for the power off.
    broker: Option<BrokerClient>,
}

impl Driver for Pl061 {
    fn init(&mut self) -> Result<(), DriverError> {
        self.broker = kaal_user::startup().and_then(|s| s.broker()).ok();
        if self.registers.peripheral_id0.get() != 0x61 {
            return Err(DriverError::Device("not a PL061"));
        }
        let r = &self.registers;
        r.direction.set(r.direction.get() & !POWER_BUTTON);
        // Edge-sensitive, rising edge only.
        r.interrupt_sense
            .set(r.interrupt_sense.get() & !POWER_BUTTON);
        r.interrupt_both_edges
            .set(r.interrupt_both_edges.get() & !POWER_BUTTON);
        r.interrupt_event
            .set(r.interrupt_event.get() | POWER_BUTTON);
        r.interrupt_clear.set(POWER_BUTTON);
        r.interrupt_mask.set(r.interrupt_mask.get() | POWER_BUTTON);
        kaal_user::println!("[pl061] power button armed (GPIO line 3)");
        Ok(())
    }

    fn interrupt(&mut self) {
        let pending = self.registers.masked_status.get();
        self.registers.interrupt_clear.set(pending);
        if pending & POWER_BUTTON != 0 {
            kaal_user::println!("[pl061] power button pressed");
            if let Some(broker) = &self.broker
                && let Err(error) = broker.power_off()
            {
                kaal_user::println!("[pl061] the broker refused to power off: {error}");
            }
        }
    }
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    kaal_dddk::run::<Pl061>()
}
