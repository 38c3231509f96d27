use kaal_dddk::Driver;

#[derive(Driver)]
#[driver(name = "pl031")]
#[pci(vendor = 0x1af4, device = 0x1001)]
enum Pl031 {
    Running,
}

#[derive(Driver)]
#[driver(name = "pl032")]
#[pci(vendor = 0x1af4, device = 0x1002)]
struct Tuple(u32);

fn main() {}
