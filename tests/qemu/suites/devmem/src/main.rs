//! Device memory never over RAM, on a real boot: the harness boots this suite with a
//! device tree whose PL061 GPIO (`pl061@9030000`) claims the first page of RAM
//! (`dtb_set` in `suite.txt`). The root task checks that the kernel described that tree,
//! that no device untyped it received touches RAM, and that the other devices still have
//! their device memory. QEMU, loading that tree, overwrites its `/memory` and `/psci`
//! nodes with `FDT_NOP` tokens and adds its own: the boot also shows that the kernel
//! reads a tree with NOPs.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kaal_test_harness::{Suite, check};
use kaal_user::{BootInfo, println};

kaal_user::entry!(main);

/// Where the patched tree puts the PL061's registers: the first page of RAM.
const MOVED_PL061: u64 = 0x4000_0000;

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("devmem");
    let system = boot.system();
    let ram = system.ram_base..system.ram_base + system.ram_bytes;
    let device_untyped = || boot.untyped().filter(|region| region.is_device);
    suite.run("booted_with_the_patched_device_tree", || {
        let gpio = boot
            .find_device("arm,pl061")
            .ok_or("no arm,pl061 device described")?;
        check!(
            gpio.base == MOVED_PL061,
            "the PL061 is at {:#x}, not {MOVED_PL061:#x}: QEMU booted its own device tree",
            gpio.base
        );
        check!(
            ram.contains(&gpio.base),
            "RAM {:#x}..{:#x} does not hold {:#x}",
            ram.start,
            ram.end,
            gpio.base
        );
        Ok(())
    });
    suite.run("no_device_untyped_over_ram", || {
        check!(
            boot.caps().device_untyped.count > 0,
            "no device untyped at all"
        );
        for region in device_untyped() {
            let end = region.base + region.size_bytes;
            check!(
                end <= ram.start || region.base >= ram.end,
                "device untyped {:#x}..{end:#x} overlaps RAM {:#x}..{:#x}",
                region.base,
                ram.start,
                ram.end
            );
            for other in boot.untyped().filter(|r| !r.is_device) {
                check!(
                    end <= other.base || region.base >= other.base + other.size_bytes,
                    "device untyped {:#x}..{end:#x} overlaps RAM untyped at {:#x}",
                    region.base,
                    other.base
                );
            }
        }
        Ok(())
    });
    suite.run("the_gic_msi_frames_stay_with_the_kernel", || {
        // A GICv3 ITS writes memory by DMA and a GICv2m frame raises any SPI: neither
        // may reach user space. QEMU virt describes one or the other with its GIC.
        let mut seen = 0;
        for compatible in ["arm,gic-v3-its", "arm,gic-v2m-frame"] {
            let Some(frame) = boot.find_device(compatible) else {
                continue;
            };
            seen += 1;
            check!(
                !device_untyped().any(|r| r.base < frame.base + frame.size_bytes
                    && frame.base < r.base + r.size_bytes),
                "a device untyped covers the {compatible} at {:#x}",
                frame.base
            );
        }
        println!("{seen} GIC MSI frame(s) described, none handed out");
        Ok(())
    });
    suite.run("other_devices_keep_their_device_memory", || {
        for compatible in ["arm,pl031", "virtio,mmio"] {
            let device = boot
                .find_device(compatible)
                .ok_or_else(|| alloc::format!("no {compatible} device described"))?;
            check!(
                device_untyped().any(|r| r.base <= device.base
                    && device.base + device.size_bytes <= r.base + r.size_bytes),
                "no device untyped covers the {compatible} at {:#x}",
                device.base
            );
        }
        Ok(())
    });
    suite.finish()
}
