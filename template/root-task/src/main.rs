//! The root task of {{project-name}}: the first user program the KaaL kernel starts.
//!
//! It prints what the kernel reports in the boot info (RAM, CPUs, devices, untyped
//! memory), then becomes the broker: it reads the system description (`system.toml`,
//! which `cargo xtask build` checks and embeds in the image), builds every component it
//! describes as an isolated process holding exactly the memory, channels and endpoints
//! granted to it, and serves them (their faults, restarts and requests) until all of
//! them have ended. Then it reports how each ended and switches the machine off.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt;

use kaal_broker::{Broker, Event};
use kaal_user::broker::ComponentState;
use kaal_user::{BootInfo, println};

kaal_user::entry!(main);

const MIB: u64 = 1024 * 1024;

fn main(boot: &BootInfo<'_>) -> i32 {
    print_boot_info(boot);
    if run_system(boot) {
        println!("{{project-name}} is ready.");
    } else {
        println!("{{project-name}}: a component did not end well.");
    }
    // Only returns if the machine could not be switched off.
    let error = kaal_user::sys::power_off();
    println!("power off failed: {error:?}");
    1
}

/// Builds and serves the system of `system.toml` until every component has ended, and
/// prints how each ended. Returns whether all of them exited with code 0.
fn run_system(boot: &BootInfo<'_>) -> bool {
    // The broker takes over the root task's untyped memory, devices and IRQ lines.
    let mut broker = match Broker::new(boot) {
        Ok(broker) => broker,
        Err(error) => {
            println!("broker: {error}");
            return false;
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
        return false;
    }
    if !broker.components().is_empty() {
        // The components' faults (the broker restarts a component per its `restart`
        // policy), requests and exits arrive here, each reported as an `Event`
        // (`Exited`, `Restarted`, `Failed`, `Served`); stop once nothing runs any more.
        broker.serve_until(|broker, _event: &Event| all_ended(broker).then_some(()));
    }
    println!(
        "System {}: every component has ended",
        broker.description().name
    );
    let mut ok = true;
    for component in broker.components() {
        let name = component.name();
        match (component.state(), component.exit_code()) {
            (ComponentState::Exited, Some(code)) => {
                println!("  {name}: exited with code {code}");
                ok &= code == 0;
            }
            (state, _) => {
                println!(
                    "  {name}: {state:?} after {} restarts",
                    component.restarts()
                );
                ok = false;
            }
        }
    }
    ok
}

/// Whether every component has exited or failed for good.
fn all_ended(broker: &Broker) -> bool {
    broker
        .components()
        .iter()
        .all(|c| matches!(c.state(), ComponentState::Exited | ComponentState::Failed))
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
        "CPUs: {}, timer: {} Hz",
        sys.cpu_count, sys.timer_frequency_hz
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
