//! The root task of {{project-name}}: the first user program the KaaL kernel starts.
//!
//! It prints what the kernel reports in the boot info (RAM, CPUs, devices, untyped memory),
//! says it is ready and switches the machine off. Start your system from here.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt;

use kaal_user::{BootInfo, println};

kaal_user::entry!(main);

const MIB: u64 = 1024 * 1024;

fn main(boot: &BootInfo<'_>) -> i32 {
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
    println!("{{project-name}} is ready.");
    // Only returns if the machine could not be switched off.
    let error = kaal_user::sys::power_off();
    println!("power off failed: {error:?}");
    1
}

/// A byte count printed with the largest binary unit that divides it: `4 KiB`, `128 MiB`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, unit) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= unit && self.0 % unit == 0 {
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
