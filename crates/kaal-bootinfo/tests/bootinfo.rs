//! Round trips and every malformed-input error of the boot-info writer and parser.

mod common;

use common::*;
use kaal_bootinfo::layout::{DEVICE_ENTRY_SIZE, HEADER_SIZE, UNTYPED_ENTRY_SIZE};
use kaal_bootinfo::*;
use zerocopy::little_endian::{U16, U32};

fn parse(bytes: &[u8]) -> Result<BootInfo<'_>, BootInfoError> {
    BootInfo::from_bytes(bytes)
}

fn err(bytes: &[u8]) -> BootInfoError {
    parse(bytes).expect_err("must be rejected")
}

fn assert_matches_input(info: &BootInfo<'_>, input: &BootInfoInput<'_>) {
    assert_eq!(info.version(), (VERSION_MAJOR, VERSION_MINOR));
    assert_eq!(info.system(), input.system);
    assert_eq!(info.kernel_version(), input.kernel_version);
    assert_eq!(info.bootargs(), input.bootargs);
    assert_eq!(info.untyped_count(), input.untyped.len());
    assert_eq!(info.untyped().len(), input.untyped.len());
    assert!(info.untyped().eq(input.untyped.iter().copied()));
    assert_eq!(info.device_count(), input.devices.len());
    assert_eq!(info.devices().len(), input.devices.len());
    for (got, want) in info.devices().zip(input.devices) {
        assert_eq!(got.base, want.base);
        assert_eq!(got.size_bytes, want.size_bytes);
        assert_eq!(got.compatible, want.compatible);
        assert_eq!(got.irq_count(), want.irqs.len());
        assert!(got.irqs().eq(want.irqs.iter().copied()));
    }
    assert_eq!(info.caps(), input.caps);
    assert_eq!(info.archive(), input.archive);
}

#[test]
fn round_trip() {
    let input = sample_input();
    let bytes = sample();
    let info = parse(&bytes).unwrap();
    assert_eq!(info.total_size(), bytes.len());
    assert_eq!(info.header_size(), HEADER_SIZE);
    assert_eq!(info.as_bytes(), &bytes[..]);
    assert_eq!(bytes.len() % 8, 0);
    assert_eq!(boot_info_size(&input), Ok(bytes.len()));
    assert_matches_input(&info, &input);
    touch_everything(&info);
}

#[test]
fn round_trip_empty() {
    let input = BootInfoInput::default();
    let bytes = write(&input);
    assert_eq!(bytes.len(), HEADER_SIZE);
    let info = parse(&bytes).unwrap();
    assert_matches_input(&info, &input);
    assert_eq!(info.untyped().next(), None);
    assert!(info.devices().next().is_none());
    assert!(info.find_device("arm,pl011").is_none());
    assert_eq!(info.caps(), InitialCaps::default());
    assert!(!info.archive().is_mapped());
}

#[cfg(feature = "alloc")]
#[test]
fn to_vec_matches_writer() {
    assert_eq!(boot_info_to_vec(&sample_input()).unwrap(), sample());
}

#[test]
fn find_device_matches_any_compatible_entry() {
    let bytes = sample();
    let info = parse(&bytes).unwrap();
    let uart = info.find_device("arm,primecell").unwrap();
    assert_eq!(uart.base, 0x0900_0000);
    assert_eq!(uart.compatible, "arm,pl011\0arm,primecell\0");
    assert_eq!(
        uart.compatible_list().collect::<Vec<_>>(),
        ["arm,pl011", "arm,primecell"]
    );
    assert!(uart.is_compatible("arm,pl011"));
    assert!(!uart.is_compatible("arm,pl01"));
    assert!(!uart.is_compatible(""));
    assert_eq!(
        info.find_device("virtio,mmio")
            .unwrap()
            .irqs()
            .collect::<Vec<_>>(),
        [48, 49, 50]
    );
    assert_eq!(info.find_device("arm,gic-v3").unwrap().irq_count(), 0);
    assert!(info.find_device("arm").is_none());
    let debug = format!("{uart:?}");
    assert!(
        debug.contains("arm,primecell") && debug.contains("33"),
        "{debug}"
    );
}

#[test]
fn accepts_longer_buffer_and_any_alignment() {
    let bytes = sample();
    let mut page = vec![0xA5u8; BOOT_INFO_MAX_BYTES + 16];
    for shift in 0..8 {
        page[shift..shift + bytes.len()].copy_from_slice(&bytes);
        let info = parse(&page[shift..]).unwrap();
        assert_eq!(info.total_size(), bytes.len());
        assert_matches_input(&info, &sample_input());
    }
}

#[test]
fn writer_only_touches_what_it_reports() {
    let input = sample_input();
    let mut buf = vec![0xAAu8; 4096];
    let used = write_boot_info(&mut buf, &input).unwrap();
    assert!(buf[used..].iter().all(|&b| b == 0xAA));
    assert_eq!(
        &buf[..used],
        &sample()[..],
        "padding is zeroed, output deterministic"
    );
}

// ---- writer errors ----

#[test]
fn writer_buffer_too_small() {
    let needed = sample().len();
    let mut buf = vec![0u8; needed - 1];
    assert_eq!(
        write_boot_info(&mut buf, &sample_input()),
        Err(BuildError::BufferTooSmall {
            needed,
            available: needed - 1
        })
    );
}

#[test]
fn writer_strings_too_long() {
    let long = "x".repeat(MAX_BOOTARGS_BYTES + 1);
    let mut buf = vec![0u8; BOOT_INFO_MAX_BYTES];

    let input = BootInfoInput {
        bootargs: &long,
        ..sample_input()
    };
    assert_eq!(
        write_boot_info(&mut buf, &input),
        Err(BuildError::StringTooLong {
            field: Part::Bootargs,
            len: MAX_BOOTARGS_BYTES + 1,
            max: MAX_BOOTARGS_BYTES
        })
    );
    let exact = &long[..MAX_BOOTARGS_BYTES];
    let input = BootInfoInput {
        bootargs: exact,
        ..sample_input()
    };
    let used = write_boot_info(&mut buf, &input).unwrap();
    assert_eq!(parse(&buf[..used]).unwrap().bootargs(), exact);

    let input = BootInfoInput {
        kernel_version: &long[..MAX_KERNEL_VERSION_BYTES + 1],
        ..sample_input()
    };
    assert!(matches!(
        write_boot_info(&mut buf, &input),
        Err(BuildError::StringTooLong {
            field: Part::KernelVersion,
            ..
        })
    ));

    let devices = [DeviceDesc {
        compatible: &long[..MAX_COMPATIBLE_BYTES + 1],
        ..DEVICES[0]
    }];
    let input = BootInfoInput {
        devices: &devices,
        ..sample_input()
    };
    assert!(matches!(
        write_boot_info(&mut buf, &input),
        Err(BuildError::StringTooLong {
            field: Part::DeviceCompatible { index: 0 },
            ..
        })
    ));
}

#[test]
fn writer_too_many() {
    let mut buf = vec![0u8; BOOT_INFO_MAX_BYTES];
    let regions = vec![UNTYPED[0]; MAX_UNTYPED_REGIONS as usize + 1];
    let input = BootInfoInput {
        untyped: &regions,
        ..sample_input()
    };
    assert_eq!(
        write_boot_info(&mut buf, &input),
        Err(BuildError::TooMany {
            part: Part::Untyped,
            count: regions.len(),
            max: MAX_UNTYPED_REGIONS as usize
        })
    );
    // Exactly the limit fits.
    let input = BootInfoInput {
        untyped: &regions[1..],
        ..sample_input()
    };
    let used = write_boot_info(&mut buf, &input).unwrap();
    assert_eq!(
        parse(&buf[..used]).unwrap().untyped_count(),
        MAX_UNTYPED_REGIONS as usize
    );

    let devices = vec![DEVICES[1]; MAX_DEVICES as usize + 1];
    let input = BootInfoInput {
        devices: &devices,
        ..sample_input()
    };
    assert!(matches!(
        write_boot_info(&mut buf, &input),
        Err(BuildError::TooMany {
            part: Part::Devices,
            ..
        })
    ));

    let irqs = vec![7u32; MAX_IRQS_PER_DEVICE as usize + 1];
    let devices = [
        DEVICES[0],
        DeviceDesc {
            irqs: &irqs,
            ..DEVICES[0]
        },
    ];
    let input = BootInfoInput {
        devices: &devices,
        ..sample_input()
    };
    assert!(matches!(
        write_boot_info(&mut buf, &input),
        Err(BuildError::TooMany {
            part: Part::DeviceIrqs { index: 1 },
            ..
        })
    ));
}

#[test]
fn writer_too_large() {
    let irqs = vec![7u32; MAX_IRQS_PER_DEVICE as usize];
    let compatible = "c".repeat(MAX_COMPATIBLE_BYTES);
    let device = DeviceDesc {
        base: 0,
        size_bytes: 0,
        irqs: &irqs,
        compatible: &compatible,
    };
    let devices = vec![device; MAX_DEVICES as usize];
    let input = BootInfoInput {
        devices: &devices,
        ..sample_input()
    };
    let mut buf = vec![0u8; 1 << 20];
    let result = write_boot_info(&mut buf, &input);
    assert!(
        matches!(result, Err(BuildError::TooLarge { needed, max: BOOT_INFO_MAX_BYTES }) if needed > BOOT_INFO_MAX_BYTES),
        "{result:?}"
    );
    assert_eq!(boot_info_size(&input), result);
}

#[test]
fn writer_address_overflow() {
    let regions = [
        UNTYPED[0],
        UntypedRegion {
            base: u64::MAX,
            size_bytes: 2,
            is_device: false,
        },
    ];
    let input = BootInfoInput {
        untyped: &regions,
        ..sample_input()
    };
    assert_eq!(
        boot_info_size(&input),
        Err(BuildError::AddressOverflow {
            section: Part::Untyped,
            index: 1,
            base: u64::MAX,
            size: 2
        })
    );
    let devices = [DeviceDesc {
        base: u64::MAX - 1,
        size_bytes: 0x1000,
        ..DEVICES[0]
    }];
    let input = BootInfoInput {
        devices: &devices,
        ..sample_input()
    };
    assert!(matches!(
        boot_info_size(&input),
        Err(BuildError::AddressOverflow {
            section: Part::Devices,
            index: 0,
            ..
        })
    ));
}

#[test]
fn errors_display() {
    let e = BuildError::StringTooLong {
        field: Part::DeviceCompatible { index: 3 },
        len: 600,
        max: 512,
    };
    assert_eq!(
        e.to_string(),
        "compatible string of device 3 is 600 bytes long, more than the limit 512"
    );
    let e = BootInfoError::BadMagic { found: 0x1234 };
    assert!(e.to_string().contains("0x0000000000001234"));
    let e = BootInfoError::SectionOutOfBounds {
        section: Part::Devices,
        offset: 8,
        len: 64,
    };
    assert_eq!(
        e.to_string(),
        "device section at offset 8, length 64 is out of bounds"
    );
}

// ---- parser errors ----

#[test]
fn bad_magic() {
    let mut bytes = sample();
    bytes[0] = b'X';
    assert_eq!(
        err(&bytes),
        BootInfoError::BadMagic {
            found: u64::from_le_bytes(*b"XAALBOOT")
        }
    );
    assert_eq!(err(&[0u8; 200]), BootInfoError::BadMagic { found: 0 });
}

#[test]
fn wrong_major() {
    for major in [0u16, 2, u16::MAX] {
        let mut bytes = sample();
        patch(&mut bytes, |h| h.version_major = U16::new(major));
        assert_eq!(
            err(&bytes),
            BootInfoError::UnsupportedMajor {
                found: major,
                supported: 1
            }
        );
    }
}

#[test]
fn newer_minor_same_header_accepted() {
    let mut bytes = sample();
    patch(&mut bytes, |h| h.version_minor = U16::new(7));
    let info = parse(&bytes).unwrap();
    assert_eq!(info.version(), (1, 7));
    assert_eq!(info.bootargs(), sample_input().bootargs);
}

/// Rebuilds `bytes` as a newer minor version would: `extra_header` bytes appended to
/// the header and `extra_entry` bytes appended to every untyped and device entry, all
/// filled with junk that the parser must ignore.
fn grow(bytes: &[u8], extra_header: usize, extra_entry: usize) -> Vec<u8> {
    let h = header(bytes);
    let section = |d: &kaal_bootinfo::layout::SectionDesc, size: usize| {
        let off = d.offset.get() as usize;
        bytes[off..off + d.count.get() as usize * size]
            .chunks(size)
            .collect::<Vec<_>>()
    };
    let untyped = section(&h.untyped, UNTYPED_ENTRY_SIZE);
    let devices = section(&h.devices, DEVICE_ENTRY_SIZE);
    let s_off = h.strings.offset.get() as usize;
    let strings = &bytes[s_off..s_off + h.strings.count.get() as usize];

    let mut out = bytes[..HEADER_SIZE].to_vec();
    out.resize(HEADER_SIZE + extra_header, 0xEE);
    let mut new = h;
    new.version_minor = U16::new(VERSION_MINOR + 1);
    new.header_size = U32::new((HEADER_SIZE + extra_header) as u32);
    let push =
        |entries: &[&[u8]], desc: &mut kaal_bootinfo::layout::SectionDesc, out: &mut Vec<u8>| {
            desc.offset = U32::new(out.len() as u32);
            desc.entry_size = U32::new(desc.entry_size.get() + extra_entry as u32);
            for e in entries {
                out.extend_from_slice(e);
                out.extend(std::iter::repeat_n(0xEE, extra_entry));
            }
        };
    push(&untyped, &mut new.untyped, &mut out);
    push(&devices, &mut new.devices, &mut out);
    new.strings.offset = U32::new(out.len() as u32);
    out.extend_from_slice(strings);
    out.resize(out.len().next_multiple_of(8), 0);
    new.total_size = U32::new(out.len() as u32);
    set_header(&mut out, &new);
    out
}

#[test]
fn newer_minor_larger_header_and_entries_accepted() {
    let input = sample_input();
    for (extra_header, extra_entry) in [(0, 0), (8, 0), (64, 0), (0, 8), (16, 24)] {
        let bytes = grow(&sample(), extra_header, extra_entry);
        let info = parse(&bytes).unwrap_or_else(|e| panic!("{extra_header}/{extra_entry}: {e}"));
        assert_eq!(info.version(), (VERSION_MAJOR, VERSION_MINOR + 1));
        assert_eq!(info.header_size(), HEADER_SIZE + extra_header);
        assert_eq!(info.system(), input.system);
        assert_eq!(info.kernel_version(), input.kernel_version);
        assert_eq!(info.bootargs(), input.bootargs);
        assert!(info.untyped().eq(input.untyped.iter().copied()));
        assert_eq!(info.device_count(), input.devices.len());
        for (got, want) in info.devices().zip(input.devices) {
            assert_eq!(
                (got.base, got.size_bytes, got.compatible),
                (want.base, want.size_bytes, want.compatible)
            );
            assert!(got.irqs().eq(want.irqs.iter().copied()));
        }
        assert_eq!(info.caps(), input.caps);
        assert_eq!(info.archive(), input.archive);
    }
}

#[test]
fn header_too_small_or_misaligned() {
    let mut bytes = sample();
    patch(&mut bytes, |h| h.header_size = U32::new(160));
    assert_eq!(
        err(&bytes),
        BootInfoError::HeaderTooSmall {
            found: 160,
            min: 168
        }
    );
    patch(&mut bytes, |h| h.header_size = U32::new(172));
    assert_eq!(
        err(&bytes),
        BootInfoError::Misaligned {
            part: Part::Header,
            offset: 172,
            align: 8
        }
    );
}

#[test]
fn truncated_buffer() {
    let bytes = sample();
    assert_eq!(
        err(&[]),
        BootInfoError::TooShort {
            needed: 8,
            available: 0
        }
    );
    assert_eq!(
        err(&bytes[..9]),
        BootInfoError::TooShort {
            needed: 10,
            available: 9
        }
    );
    assert_eq!(
        err(&bytes[..100]),
        BootInfoError::TooShort {
            needed: HEADER_SIZE,
            available: 100
        }
    );
    let n = bytes.len();
    assert_eq!(
        err(&bytes[..n - 1]),
        BootInfoError::TotalSizeTooLarge {
            total_size: n as u32,
            available: n - 1
        }
    );
}

#[test]
fn total_size_larger_than_buffer() {
    let mut bytes = sample();
    let n = bytes.len();
    patch(&mut bytes, |h| h.total_size = U32::new(u32::MAX));
    assert_eq!(
        err(&bytes),
        BootInfoError::TotalSizeTooLarge {
            total_size: u32::MAX,
            available: n
        }
    );
}

#[test]
fn total_size_smaller_than_header() {
    let mut bytes = sample();
    patch(&mut bytes, |h| h.total_size = U32::new(100));
    assert_eq!(
        err(&bytes),
        BootInfoError::SizeMismatch {
            header_size: 168,
            total_size: 100
        }
    );
}

#[test]
fn section_offset_past_end() {
    let mut bytes = sample();
    let n = bytes.len() as u64;
    patch(&mut bytes, |h| h.untyped.offset = U32::new(n as u32));
    assert_eq!(
        err(&bytes),
        BootInfoError::SectionOutOfBounds {
            section: Part::Untyped,
            offset: n,
            len: 3 * 24
        }
    );
    let mut bytes = sample();
    patch(&mut bytes, |h| h.strings.offset = U32::new(0xFFFF_FFF8));
    assert!(matches!(
        err(&bytes),
        BootInfoError::SectionOutOfBounds {
            section: Part::Strings,
            ..
        }
    ));
}

#[test]
fn section_overlapping_header() {
    let mut bytes = sample();
    patch(&mut bytes, |h| h.devices.offset = U32::new(0));
    assert_eq!(
        err(&bytes),
        BootInfoError::SectionOutOfBounds {
            section: Part::Devices,
            offset: 0,
            len: 3 * 32
        }
    );
}

#[test]
fn count_too_large_or_overflowing() {
    let mut bytes = sample();
    patch(&mut bytes, |h| h.untyped.count = U32::new(u32::MAX));
    assert_eq!(
        err(&bytes),
        BootInfoError::CountTooLarge {
            part: Part::Untyped,
            count: u32::MAX,
            max: MAX_UNTYPED_REGIONS
        }
    );
    let mut bytes = sample();
    patch(&mut bytes, |h| h.devices.count = U32::new(MAX_DEVICES + 1));
    assert!(matches!(
        err(&bytes),
        BootInfoError::CountTooLarge {
            part: Part::Devices,
            ..
        }
    ));
    // Within the limit but past the end of the area.
    let mut bytes = sample();
    patch(&mut bytes, |h| h.devices.count = U32::new(MAX_DEVICES));
    assert!(matches!(
        err(&bytes),
        BootInfoError::SectionOutOfBounds {
            section: Part::Devices,
            ..
        }
    ));
    // count * entry_size would overflow 32 bits.
    let mut bytes = sample();
    patch(&mut bytes, |h| {
        h.strings.count = U32::new(u32::MAX);
    });
    assert!(matches!(
        err(&bytes),
        BootInfoError::SectionOutOfBounds {
            section: Part::Strings,
            ..
        }
    ));
    let mut bytes = sample();
    patch(&mut bytes, |h| {
        h.untyped.entry_size = U32::new(0xFFFF_FFF8);
    });
    assert_eq!(
        err(&bytes),
        BootInfoError::SectionOutOfBounds {
            section: Part::Untyped,
            offset: 168,
            len: 3 * 0xFFFF_FFF8u64
        }
    );
}

#[test]
fn bad_entry_size() {
    let mut bytes = sample();
    patch(&mut bytes, |h| h.untyped.entry_size = U32::new(16));
    assert_eq!(
        err(&bytes),
        BootInfoError::BadEntrySize {
            section: Part::Untyped,
            found: 16,
            expected: 24
        }
    );
    let mut bytes = sample();
    patch(&mut bytes, |h| h.devices.entry_size = U32::new(36));
    assert_eq!(
        err(&bytes),
        BootInfoError::BadEntrySize {
            section: Part::Devices,
            found: 36,
            expected: 32
        }
    );
    let mut bytes = sample();
    patch(&mut bytes, |h| h.devices.entry_size = U32::new(0));
    assert!(matches!(
        err(&bytes),
        BootInfoError::BadEntrySize {
            section: Part::Devices,
            found: 0,
            ..
        }
    ));
    let mut bytes = sample();
    patch(&mut bytes, |h| h.strings.entry_size = U32::new(2));
    assert_eq!(
        err(&bytes),
        BootInfoError::BadEntrySize {
            section: Part::Strings,
            found: 2,
            expected: 1
        }
    );
}

#[test]
fn misaligned_section() {
    let mut bytes = sample();
    let off = header(&bytes).devices.offset.get();
    patch(&mut bytes, |h| h.devices.offset = U32::new(off + 4));
    assert_eq!(
        err(&bytes),
        BootInfoError::Misaligned {
            part: Part::Devices,
            offset: u64::from(off + 4),
            align: 8
        }
    );
}

#[test]
fn string_out_of_bounds() {
    let mut bytes = sample();
    let strings_len = header(&bytes).strings.count.get();
    patch(&mut bytes, |h| {
        h.kernel_version.len = U32::new(strings_len + 1)
    });
    assert_eq!(
        err(&bytes),
        BootInfoError::FieldOutOfBounds {
            field: Part::KernelVersion,
            offset: 0,
            len: u64::from(strings_len) + 1
        }
    );
    let mut bytes = sample();
    patch(&mut bytes, |h| {
        h.bootargs.offset = U32::new(u32::MAX);
        h.bootargs.len = U32::new(u32::MAX);
    });
    assert!(matches!(
        err(&bytes),
        BootInfoError::FieldOutOfBounds {
            field: Part::Bootargs,
            ..
        }
    ));
}

fn device_entry_at(bytes: &[u8], index: usize) -> usize {
    header(bytes).devices.offset.get() as usize + index * DEVICE_ENTRY_SIZE
}

#[test]
fn non_utf8_strings() {
    let mut bytes = sample();
    let h = header(&bytes);
    let at = (h.strings.offset.get() + h.bootargs.offset.get()) as usize;
    bytes[at] = 0xFF;
    assert_eq!(
        err(&bytes),
        BootInfoError::InvalidUtf8 {
            field: Part::Bootargs
        }
    );

    let mut bytes = sample();
    let h = header(&bytes);
    bytes[(h.strings.offset.get() + h.kernel_version.offset.get()) as usize + 1] = 0xC0;
    assert_eq!(
        err(&bytes),
        BootInfoError::InvalidUtf8 {
            field: Part::KernelVersion
        }
    );

    let mut bytes = sample();
    let h = header(&bytes);
    let entry = device_entry_at(&bytes, 2);
    let compat_off = u32::from_le_bytes(bytes[entry + 16..entry + 20].try_into().unwrap());
    bytes[(h.strings.offset.get() + compat_off) as usize] = 0x80;
    assert_eq!(
        err(&bytes),
        BootInfoError::InvalidUtf8 {
            field: Part::DeviceCompatible { index: 2 }
        }
    );
}

#[test]
fn bad_irq_lists() {
    let irq_field = |bytes: &mut Vec<u8>, index: usize, offset: Option<u32>, count: Option<u32>| {
        let at = device_entry_at(bytes, index) + 24;
        if let Some(o) = offset {
            bytes[at..at + 4].copy_from_slice(&o.to_le_bytes());
        }
        if let Some(c) = count {
            bytes[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
        }
    };
    let orig = sample();
    let at = device_entry_at(&orig, 2) + 24;
    let irq_off = u32::from_le_bytes(orig[at..at + 4].try_into().unwrap());

    let mut bytes = orig.clone();
    irq_field(&mut bytes, 2, Some(irq_off + 1), None);
    assert_eq!(
        err(&bytes),
        BootInfoError::Misaligned {
            part: Part::DeviceIrqs { index: 2 },
            offset: u64::from(irq_off + 1),
            align: 4
        }
    );
    let mut bytes = orig.clone();
    irq_field(&mut bytes, 2, None, Some(MAX_IRQS_PER_DEVICE + 1));
    assert_eq!(
        err(&bytes),
        BootInfoError::CountTooLarge {
            part: Part::DeviceIrqs { index: 2 },
            count: MAX_IRQS_PER_DEVICE + 1,
            max: MAX_IRQS_PER_DEVICE
        }
    );
    let mut bytes = orig.clone();
    irq_field(&mut bytes, 2, None, Some(MAX_IRQS_PER_DEVICE));
    assert_eq!(
        err(&bytes),
        BootInfoError::FieldOutOfBounds {
            field: Part::DeviceIrqs { index: 2 },
            offset: u64::from(irq_off),
            len: u64::from(MAX_IRQS_PER_DEVICE) * 4
        }
    );
}

#[test]
fn address_overflow() {
    let mut bytes = sample();
    let at = header(&bytes).untyped.offset.get() as usize + UNTYPED_ENTRY_SIZE;
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        err(&bytes),
        BootInfoError::AddressOverflow {
            section: Part::Untyped,
            index: 1,
            base: u64::MAX,
            size: 0x0800_0000
        }
    );
    let mut bytes = sample();
    let at = device_entry_at(&bytes, 0) + 8;
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        err(&bytes),
        BootInfoError::AddressOverflow {
            section: Part::Devices,
            index: 0,
            ..
        }
    ));
}

#[test]
fn reserved_fields_and_unknown_flags_ignored() {
    let mut bytes = sample();
    patch(&mut bytes, |h| {
        h.flags = U32::new(0xDEAD_BEEF);
        h.caps.reserved = U32::new(2);
        h.untyped.reserved = U32::new(3);
    });
    let at = header(&bytes).untyped.offset.get() as usize + 16;
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes()); // unknown bits, not device
    let info = parse(&bytes).unwrap();
    assert!(!info.untyped().next().unwrap().is_device);
    assert_eq!(info.system(), sample_input().system);
}
