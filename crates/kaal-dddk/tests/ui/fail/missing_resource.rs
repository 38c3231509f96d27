use kaal_dddk::{Driver, IrqLine};

#[derive(Driver)]
#[driver(name = "pl031")]
#[platform(compatible = "arm,pl031")]
struct Pl031 {
    #[irq]
    alarm: IrqLine,
}

fn main() {}
