use kaal_dddk::{Driver, Mmio};

#[derive(Driver)]
#[driver(name = "pl031")]
#[platform(compatible = "arm,pl031")]
struct Pl031<R> {
    #[mmio]
    registers: Mmio<R>,
}

fn main() {}
