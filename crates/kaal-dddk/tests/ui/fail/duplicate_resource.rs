use kaal_dddk::{Driver, IrqLine, Mmio};

struct Registers;

#[derive(Driver)]
#[driver(name = "gic-demo")]
#[platform(compatible = "arm,gic-400")]
struct Demo {
    #[mmio]
    distributor: Mmio<Registers>,
    #[mmio(index = 0)]
    cpu_interface: Mmio<Registers>,
    #[irq(index = 1)]
    first: IrqLine,
    #[irq(index = 1)]
    second: IrqLine,
}

fn main() {}
