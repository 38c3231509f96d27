//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use kaal_bootinfo::layout::Header;
use kaal_bootinfo::{
    ArchiveInfo, BOOT_INFO_MAX_BYTES, BootInfo, BootInfoInput, DeviceDesc, InitialCaps, SlotRange,
    SystemFacts, UntypedRegion, write_boot_info,
};
use zerocopy::{FromBytes, IntoBytes};

pub const UNTYPED: [UntypedRegion; 3] = [
    UntypedRegion {
        base: 0x4100_0000,
        size_bytes: 0x0700_0000,
        is_device: false,
    },
    UntypedRegion {
        base: 0x4800_0000,
        size_bytes: 0x0800_0000,
        is_device: false,
    },
    UntypedRegion {
        base: 0x0900_0000,
        size_bytes: 0x1000,
        is_device: true,
    },
];

pub const DEVICES: [DeviceDesc<'static>; 3] = [
    DeviceDesc {
        base: 0x0900_0000,
        size_bytes: 0x1000,
        irqs: &[33],
        compatible: "arm,pl011\0arm,primecell\0",
    },
    DeviceDesc {
        base: 0x0800_0000,
        size_bytes: 0x2_0000,
        irqs: &[],
        compatible: "arm,gic-v3",
    },
    DeviceDesc {
        base: 0x0a00_0000,
        size_bytes: 0x200,
        irqs: &[48, 49, 50],
        compatible: "virtio,mmio",
    },
];

pub fn sample_input() -> BootInfoInput<'static> {
    BootInfoInput {
        system: SystemFacts {
            ram_base: 0x4000_0000,
            ram_bytes: 0x1000_0000,
            cpu_count: 4,
            cpus_online: 3,
            timer_frequency_hz: 62_500_000,
        },
        kernel_version: "KaaL 0.1.0 (test)",
        bootargs: "console=pl011 loglevel=3",
        untyped: &UNTYPED,
        devices: &DEVICES,
        caps: InitialCaps {
            untyped: SlotRange {
                start: 16,
                count: 2,
            },
            device_untyped: SlotRange {
                start: 18,
                count: 1,
            },
            first_free: 19,
        },
        archive: ArchiveInfo {
            phys_base: 0x4780_0000,
            size_bytes: 0x8000,
            user_vaddr: 0x2000_0000,
        },
    }
}

/// Writes `input` and returns exactly the bytes used.
pub fn write(input: &BootInfoInput<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; BOOT_INFO_MAX_BYTES];
    let used = write_boot_info(&mut buf, input).expect("sample fits");
    buf.truncate(used);
    buf
}

pub fn sample() -> Vec<u8> {
    write(&sample_input())
}

pub fn header(bytes: &[u8]) -> Header {
    Header::read_from_prefix(bytes).expect("header present").0
}

pub fn set_header(bytes: &mut [u8], header: &Header) {
    bytes[..size_of::<Header>()].copy_from_slice(header.as_bytes());
}

/// Modifies the header of `bytes` in place.
pub fn patch(bytes: &mut [u8], f: impl FnOnce(&mut Header)) {
    let mut h = header(bytes);
    f(&mut h);
    set_header(bytes, &h);
}

/// Calls every accessor, so that a successful parse is fully exercised.
pub fn touch_everything(info: &BootInfo<'_>) {
    let _ = info.version();
    let _ = info.total_size();
    let _ = info.header_size();
    let _ = info.system();
    let _ = info.kernel_version().len();
    let _ = info.bootargs().len();
    assert_eq!(info.untyped().count(), info.untyped_count());
    assert_eq!(info.devices().count(), info.device_count());
    for d in info.devices() {
        assert_eq!(d.irqs().count(), d.irq_count());
        let _ = d.compatible_list().count();
        let _ = format!("{d:?}");
        if let Some(first) = d.compatible_list().next() {
            assert!(info.find_device(first).is_some());
        }
    }
    let _ = info.find_device("no,such-device");
    let _ = info.caps();
    let _ = info.archive();
    let _ = format!("{info:?}");
}
