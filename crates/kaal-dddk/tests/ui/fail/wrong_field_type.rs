use kaal_dddk::{DmaBuffer, Driver, Mmio};

struct Registers;

#[derive(Driver)]
#[driver(name = "pl031")]
#[platform(compatible = "arm,pl031")]
struct Pl031 {
    #[mmio]
    registers: u32,
    #[irq]
    alarm: Mmio<Registers>,
    #[dma(bytes = 4096)]
    buffer: Vec<u8>,
    #[mmio(index = 1)]
    fine: Mmio<Registers>,
    #[dma(bytes = 4096)]
    also_fine: DmaBuffer,
}

fn main() {}
