use kaal_dddk::{Driver, Mmio};

struct Registers;

#[derive(Driver)]
#[platform(compatible = "arm,pl031")]
struct Pl031 {
    #[mmio]
    registers: Mmio<Registers>,
}

fn main() {}
