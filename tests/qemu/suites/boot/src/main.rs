//! Boot info as the root task sees it, checked against what QEMU was given.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kaal_abi::layout;
use kaal_test_harness::{Suite, bootarg, check};
use kaal_user::{BootInfo, bootinfo, println};

kaal_user::entry!(main);

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("boot");
    let system = boot.system();
    println!(
        "RAM: {} MiB, {} CPU(s), {} online, kernel {}",
        system.ram_bytes >> 20,
        system.cpu_count,
        system.cpus_online,
        boot.kernel_version()
    );

    suite.run("boot_info_version", || {
        check!(
            boot.version() == (bootinfo::VERSION_MAJOR, bootinfo::VERSION_MINOR),
            "version {:?}",
            boot.version()
        );
        check!(!boot.kernel_version().is_empty(), "empty kernel version");
        Ok(())
    });
    suite.run("every_cpu_is_online", || {
        // QEMU starts the boot CPU only; the kernel starts the others through PSCI.
        let expected = bootarg(boot.bootargs(), "kaal.test.cpus")
            .and_then(|cpus| cpus.parse::<u32>().ok())
            .ok_or_else(|| {
                alloc::format!("no kaal.test.cpus in bootargs \"{}\"", boot.bootargs())
            })?;
        check!(
            system.cpu_count == expected && system.cpus_online == expected,
            "QEMU has {expected} CPU(s); the boot info says {} of {} online",
            system.cpus_online,
            system.cpu_count
        );
        Ok(())
    });
    suite.run("ram_size_matches_qemu", || {
        let expected = bootarg(boot.bootargs(), "kaal.test.ram_mib").ok_or_else(|| {
            alloc::format!("no kaal.test.ram_mib in bootargs \"{}\"", boot.bootargs())
        })?;
        let expected: u64 = expected
            .parse()
            .map_err(|_| alloc::format!("bad ram_mib {expected}"))?;
        check!(
            system.ram_bytes == expected << 20,
            "boot info says {} bytes, QEMU has {} MiB",
            system.ram_bytes,
            expected
        );
        check!(
            system.ram_base == 0x4000_0000,
            "RAM base {:#x}",
            system.ram_base
        );
        Ok(())
    });
    suite.run("untyped_regions_cover_free_ram_and_devices", || {
        let caps = boot.caps();
        check!(caps.untyped.count > 0, "no RAM untyped");
        check!(
            boot.untyped_count() == (caps.untyped.count + caps.device_untyped.count) as usize,
            "untyped list does not match the slot ranges"
        );
        let (start, end) = (system.ram_base, system.ram_base + system.ram_bytes);
        let mut total = 0;
        for (index, region) in boot.untyped().enumerate() {
            let in_ram = region.base >= start && region.base + region.size_bytes <= end;
            let device = index as u32 >= caps.untyped.count;
            check!(region.is_device == device, "region {index} device flag");
            check!(
                in_ram != device,
                "region {index} at {:#x} device={device} in_ram={in_ram}",
                region.base
            );
            check!(
                region.size_bytes.is_power_of_two() && region.base % region.size_bytes == 0,
                "region {index} not a naturally aligned power of two"
            );
            if !device {
                total += region.size_bytes;
            }
        }
        // The kernel image, its tables and the root task take a few MiB at most.
        check!(
            total > system.ram_bytes - (16 << 20),
            "only {} of {} bytes untyped",
            total,
            system.ram_bytes
        );
        check!(
            caps.first_free == caps.device_untyped.start + caps.device_untyped.count,
            "first free slot {}",
            caps.first_free
        );
        Ok(())
    });
    suite.run("devices_from_the_device_tree", || {
        let uart = boot
            .find_device("arm,pl011")
            .ok_or("no PL011 in the device list")?;
        check!(uart.base == 0x0900_0000, "PL011 at {:#x}", uart.base);
        check!(
            uart.irqs().collect::<alloc::vec::Vec<_>>() == [33],
            "PL011 irqs {:?}",
            uart.irqs().collect::<alloc::vec::Vec<_>>()
        );
        let rtc = boot
            .find_device("arm,pl031")
            .ok_or("no PL031 in the device list")?;
        check!(rtc.base == 0x0901_0000, "PL031 at {:#x}", rtc.base);
        check!(
            boot.devices()
                .filter(|d| d.is_compatible("virtio,mmio"))
                .count()
                >= 8,
            "fewer than 8 virtio-mmio slots"
        );
        Ok(())
    });
    suite.run("component_archive_is_mapped", || {
        let archive = boot.archive();
        check!(
            archive.user_vaddr == layout::ARCHIVE_VADDR,
            "archive at {:#x}",
            archive.user_vaddr
        );
        check!(archive.size_bytes > 0, "empty archive");
        Ok(())
    });
    suite.run("timer_frequency_is_known", || {
        check!(
            system.timer_frequency_hz >= 1_000_000,
            "timer at {} Hz",
            system.timer_frequency_hz
        );
        Ok(())
    });
    suite.finish()
}
