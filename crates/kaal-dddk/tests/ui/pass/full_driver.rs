//! A driver using every attribute, compiled and run on the host (the runtime only makes
//! system calls on the target, and this test makes none).
#![forbid(unsafe_code)]
#![deny(warnings)]

use kaal_dddk::tock_registers::interfaces::{Readable, Writeable};
use kaal_dddk::tock_registers::registers::{ReadOnly, ReadWrite};
use kaal_dddk::{DmaBuffer, Driver, DriverMetadata, IrqLine, Mmio, Probe, Request};

kaal_dddk::register_block! {
    Registers {
        (0x000 => data: ReadOnly<u32>),
        (0x004 => match_value: ReadWrite<u32>),
        (0x008 => @END),
    }
}

kaal_dddk::register_block! {
    Extra {
        (0x000 => control: ReadWrite<u32>),
        (0x004 => @END),
    }
}

/// A PL031 real-time clock with more than it needs, to use every attribute.
#[derive(Driver)]
#[driver(name = "pl031")]
#[platform(compatible = "arm,pl031")]
#[platform(compatible = "arm,primecell")]
#[pci(vendor = 0x1af4, device = 0x1001)]
pub struct Pl031 {
    #[mmio]
    registers: Mmio<Registers>,
    #[mmio(index = 2)]
    extra: kaal_dddk::Mmio<Extra>,
    #[irq]
    alarm: IrqLine,
    #[dma(bytes = 65536)]
    buffer: DmaBuffer,
    reads: u64,
}

impl Driver for Pl031 {
    fn interrupt(&mut self) {
        self.registers.match_value.set(0);
        self.extra.control.set(1);
    }

    fn request(&mut self, _: &Request) -> Result<[u64; 4], kaal_abi::Error> {
        self.reads += 1;
        let line = u64::from(self.alarm.line());
        let buffer = self.buffer.physical_address();
        Ok([
            u64::from(self.registers.data.get()),
            self.reads,
            line,
            buffer,
        ])
    }
}

/// A PCI-only driver without resources.
#[derive(Driver, Default)]
#[driver(name = "null-pci")]
#[pci(vendor = 0x1b36, device = 0x0001)]
pub struct NullPci {
    requests: u32,
}

impl Driver for NullPci {
    fn request(&mut self, _: &Request) -> Result<[u64; 4], kaal_abi::Error> {
        self.requests += 1;
        Ok([u64::from(self.requests), 0, 0, 0])
    }
}

const PL031: DriverMetadata = <Pl031 as Probe>::METADATA;

fn main() {
    assert_eq!(
        PL031,
        DriverMetadata {
            name: "pl031",
            compatible: &["arm,pl031", "arm,primecell"],
            pci: &[(0x1af4, 0x1001)],
            mmio: 3,
            irqs: 1,
            dma: &[65536],
        }
    );
    assert_eq!(<NullPci as Probe>::METADATA.name, "null-pci");
    assert_eq!(<NullPci as Probe>::METADATA.mmio, 0);
    // The event loop accepts both (not run: it makes system calls).
    let _: fn() -> i32 = kaal_dddk::run::<Pl031>;
    let _: fn() -> i32 = kaal_dddk::run::<NullPci>;
}
