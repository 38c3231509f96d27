//! The root task of {{project-name}}: the first user program the KaaL kernel starts.
//!
//! It prints what the kernel reports in the boot info (RAM, CPUs, devices, untyped
//! memory), then becomes the broker: it reads the system description (`system.toml`,
//! which `cargo xtask build` checks and embeds in the image), builds every component it
//! describes as an isolated process holding exactly the memory, devices, channels and
//! endpoints granted to it, and serves them: their requests, their faults (a component
//! that faults is restarted per its `restart` policy) and their exits. The system runs
//! until a component with the `system-control` service asks for the power off (the
//! shell's `poweroff`, the power key); the broker then stops the components in reverse
//! order and switches the machine off.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt;

use kaal_broker::Broker;
use kaal_user::{BootInfo, println};

kaal_user::entry!(main);

const MIB: u64 = 1024 * 1024;

fn main(boot: &BootInfo<'_>) -> i32 {
    print_boot_info(boot);
    // The broker takes over the root task's untyped memory, devices and IRQ lines.
    let mut broker = match Broker::new(boot) {
        Ok(broker) => broker,
        Err(error) => {
            println!("broker: {error}");
            return 1;
        }
    };
    let system = broker.description();
    println!(
        "System {}: starting {}",
        system.name,
        List(system.components.iter().map(|c| c.name.as_str()))
    );
    if let Err(error) = broker.start_system() {
        println!("broker: {error}");
        return 1;
    }
    println!("{{project-name}} is ready.");
    // Requests, faults and exits of the components, until one asks for the power off.
    broker.serve()
}

/// Prints the boot info: RAM, CPUs, devices and untyped memory.
fn print_boot_info(boot: &BootInfo<'_>) {
    let sys = boot.system();
    println!(
        "{{project-name}}: root task on KaaL {}",
        boot.kernel_version()
    );
    println!("RAM: {} MiB at {:#x}", sys.ram_bytes / MIB, sys.ram_base);
    println!(
        "CPUs: {} ({} online), timer: {} Hz",
        sys.cpu_count, sys.cpus_online, sys.timer_frequency_hz
    );
    println!("Devices: {}", boot.device_count());
    for dev in boot.devices() {
        let compatible = dev.compatible_list().next().unwrap_or("?");
        println!(
            "  {:#012x} {} {} irqs [{}]",
            dev.base,
            Size(dev.size_bytes),
            compatible,
            List(dev.irqs())
        );
    }
    println!("Untyped regions: {}", boot.untyped_count());
    for region in boot.untyped() {
        let kind = if region.is_device { "device" } else { "memory" };
        println!(
            "  {:#012x} {} {}",
            region.base,
            Size(region.size_bytes),
            kind
        );
    }
}

/// A byte count printed with the largest binary unit that divides it: `4 KiB`, `128 MiB`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, unit) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{} {name}", self.0 / unit);
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// The items of an iterator, comma-separated.
struct List<I>(I);

impl<I> fmt::Display for List<I>
where
    I: Iterator + Clone,
    I::Item: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.clone().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}
