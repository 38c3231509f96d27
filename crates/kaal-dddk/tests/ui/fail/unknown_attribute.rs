use kaal_dddk::{Driver, IrqLine, Mmio};

struct Registers;

#[derive(Driver)]
#[driver(nam = "pl031")]
#[platform(compatible = "arm,pl031")]
struct Pl031 {
    #[mmio(indx = 1)]
    registers: Mmio<Registers>,
    #[irq(line = 0)]
    alarm: IrqLine,
}

fn main() {}
