//! Driver metadata records: round trips, the byte layout, every malformed-input error,
//! truncation and property tests (the parser never panics).
#![cfg(feature = "alloc")]

use kaal_bootinfo::driver::*;
use proptest::prelude::*;

fn sample_owned() -> DriverInfoOwned {
    DriverInfoOwned {
        name: "virtio-blk".into(),
        compatible: vec!["virtio,mmio".into(), "arm,primecell".into()],
        pci: vec![
            PciId {
                vendor: 0x1af4,
                device: 0x1001,
            },
            PciId {
                vendor: 0x1af4,
                device: 0x1042,
            },
        ],
        mmio: 2,
        irqs: 1,
        dma: vec![65536, 4096],
    }
}

fn sample() -> Vec<u8> {
    sample_owned().encode().unwrap()
}

fn err(bytes: &[u8]) -> DriverInfoError {
    DriverInfo::parse(bytes).expect_err("must be rejected")
}

/// A record with `body` after a correct header (its total size set to fit).
fn with_body(body: &[u8]) -> Vec<u8> {
    let mut bytes = DRIVER_MAGIC.to_vec();
    bytes.extend_from_slice(&DRIVER_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    let total = u32::try_from(DRIVER_HEADER_SIZE + body.len()).unwrap();
    bytes.extend_from_slice(&total.to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn set_total_size(bytes: &mut [u8], total: u32) {
    bytes[12..16].copy_from_slice(&total.to_le_bytes());
}

fn touch_everything(info: &DriverInfo<'_>) {
    assert!(!info.name().is_empty());
    assert_eq!(info.compatible().len(), info.compatible().count());
    assert_eq!(info.pci().len(), info.pci().count());
    assert_eq!(info.dma().len(), info.dma().count());
    assert!(info.dma().all(|size| size > 0));
    let _ = (info.mmio(), info.irqs(), format!("{info:?}"));
    // Whatever parses re-encodes to the same bytes (flags aside).
    let owned = info.into_owned();
    let again = owned.encode().expect("a parsed record re-encodes");
    assert_eq!(again.len(), info.total_size());
    assert_eq!(
        DriverInfoOwned::from(DriverInfo::parse(&again).unwrap()),
        owned
    );
}

#[test]
fn round_trip() {
    let bytes = sample();
    let info = DriverInfo::parse(&bytes).unwrap();
    assert_eq!(info.name(), "virtio-blk");
    assert_eq!(
        info.compatible().collect::<Vec<_>>(),
        ["virtio,mmio", "arm,primecell"]
    );
    assert_eq!(info.pci().collect::<Vec<_>>(), sample_owned().pci);
    assert_eq!(info.mmio(), 2);
    assert_eq!(info.irqs(), 1);
    assert_eq!(info.dma().collect::<Vec<_>>(), [65536, 4096]);
    assert_eq!(info.total_size(), bytes.len());
    assert_eq!(info.into_owned(), sample_owned());
    touch_everything(&info);
}

#[test]
fn byte_layout() {
    let bytes = encode(&DriverDesc {
        name: "pl031",
        compatible: &["arm,pl031"],
        pci: &[PciId {
            vendor: 0x1234,
            device: 0xabcd,
        }],
        mmio: 1,
        irqs: 2,
        dma: &[0x0102_0304_0506_0708],
    })
    .unwrap();
    let mut expected = b"KAALDRV1".to_vec();
    expected.extend_from_slice(&[1, 0, 0, 0, 49, 0, 0, 0]);
    expected.extend_from_slice(b"\x05pl031");
    expected.extend_from_slice(b"\x01\x09arm,pl031");
    expected.extend_from_slice(&[1, 0x34, 0x12, 0xcd, 0xab]);
    expected.extend_from_slice(&[1, 2]);
    expected.extend_from_slice(&[1, 8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(bytes, expected);
    assert_eq!(bytes.len(), 49);
}

#[test]
fn minimal_record() {
    let bytes = encode(&DriverDesc {
        name: "x",
        ..DriverDesc::default()
    })
    .unwrap();
    let info = DriverInfo::parse(&bytes).unwrap();
    assert_eq!(info.name(), "x");
    assert_eq!(info.compatible().next(), None);
    assert_eq!(info.pci().next(), None);
    assert_eq!(info.dma().next(), None);
    assert_eq!((info.mmio(), info.irqs()), (0, 0));
}

#[test]
fn longer_buffer_is_fine() {
    let mut bytes = sample();
    let len = bytes.len();
    bytes.extend_from_slice(&[0xAA; 64]);
    let info = DriverInfo::parse(&bytes).unwrap();
    assert_eq!(info.total_size(), len);
    assert_eq!(info.name(), "virtio-blk");
}

#[test]
fn flags_are_ignored() {
    let mut bytes = sample();
    bytes[10] = 0xff;
    bytes[11] = 0x7f;
    assert_eq!(
        DriverInfo::parse(&bytes).unwrap().into_owned(),
        sample_owned()
    );
}

#[test]
fn every_truncation_errors() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let error = err(&bytes[..len]);
        let needed = if len < DRIVER_HEADER_SIZE {
            DRIVER_HEADER_SIZE
        } else {
            bytes.len()
        };
        assert_eq!(
            error,
            DriverInfoError::Truncated {
                needed,
                available: len
            },
            "length {len}"
        );
    }
}

#[test]
fn every_shortened_total_size_errors() {
    // The buffer is whole, but the record claims to end early: a field runs past it.
    let bytes = sample();
    for total in DRIVER_HEADER_SIZE..bytes.len() {
        let mut b = bytes.clone();
        set_total_size(&mut b, u32::try_from(total).unwrap());
        match err(&b) {
            DriverInfoError::FieldOutOfBounds {
                end, total_size, ..
            } => {
                assert_eq!(total_size, total);
                assert!(end > total, "total {total}: end {end}");
            }
            other => panic!("total {total}: {other:?}"),
        }
    }
}

#[test]
fn header_errors() {
    let mut b = sample();
    b[0] = b'X';
    assert_eq!(
        err(&b),
        DriverInfoError::BadMagic {
            found: *b"XAALDRV1"
        }
    );

    let mut b = sample();
    b[8] = 2;
    assert_eq!(
        err(&b),
        DriverInfoError::UnsupportedVersion {
            found: 2,
            supported: DRIVER_VERSION
        }
    );

    let mut b = sample();
    set_total_size(&mut b, 15);
    assert_eq!(
        err(&b),
        DriverInfoError::TotalSizeTooSmall {
            total_size: 15,
            min: DRIVER_HEADER_SIZE
        }
    );

    let mut b = sample();
    set_total_size(&mut b, u32::MAX);
    assert_eq!(
        err(&b),
        DriverInfoError::Truncated {
            needed: u32::MAX as usize,
            available: b.len()
        }
    );

    let mut b = sample();
    let len = b.len();
    b.push(0);
    set_total_size(&mut b, u32::try_from(len + 1).unwrap());
    assert_eq!(
        err(&b),
        DriverInfoError::TrailingBytes {
            end: len,
            total_size: len + 1
        }
    );
}

#[test]
fn field_errors() {
    // name, compatible, pci, counts, dma: each body below breaks one rule.
    let cases: [(&[u8], DriverInfoError); 9] = [
        (
            b"\x00\x00\x00\x00\x00\x00",
            DriverInfoError::Empty {
                field: DriverField::Name,
            },
        ),
        (
            b"\x02\xff\xfe\x00\x00\x00\x00\x00",
            DriverInfoError::InvalidUtf8 {
                field: DriverField::Name,
            },
        ),
        (
            b"\x02a\x00\x00\x00\x00\x00\x00",
            DriverInfoError::Nul {
                field: DriverField::Name,
            },
        ),
        (
            b"\x01a\x01\x00\x00\x00\x00\x00",
            DriverInfoError::Empty {
                field: DriverField::Compatible { index: 0 },
            },
        ),
        (
            b"\x01a\x02\x01b\x02c\x00\x00\x00\x00\x00",
            DriverInfoError::Nul {
                field: DriverField::Compatible { index: 1 },
            },
        ),
        (
            b"\x01a\x21",
            DriverInfoError::TooMany {
                field: DriverField::CompatibleList,
                count: 33,
                max: MAX_COMPATIBLE,
            },
        ),
        (
            b"\x01a\x00\x41",
            DriverInfoError::TooMany {
                field: DriverField::PciIds,
                count: 65,
                max: MAX_PCI_IDS,
            },
        ),
        (
            b"\x01a\x00\x00\x00\x00\x11",
            DriverInfoError::TooMany {
                field: DriverField::DmaBuffers,
                count: 17,
                max: MAX_DMA_BUFFERS,
            },
        ),
        (
            b"\x01a\x00\x00\x00\x00\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            DriverInfoError::ZeroSize {
                field: DriverField::DmaBuffer { index: 1 },
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(err(&with_body(body)), expected, "body {body:02x?}");
    }
}

#[test]
fn too_long_strings() {
    let mut body = vec![65];
    body.extend_from_slice(&[b'a'; 65]);
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    assert_eq!(
        err(&with_body(&body)),
        DriverInfoError::TooLong {
            field: DriverField::Name,
            len: 65,
            max: MAX_NAME_BYTES
        }
    );

    let mut body = b"\x01a\x01\x81".to_vec();
    body.extend_from_slice(&[b'c'; 129]);
    body.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        err(&with_body(&body)),
        DriverInfoError::TooLong {
            field: DriverField::Compatible { index: 0 },
            len: 129,
            max: MAX_COMPATIBLE_BYTES
        }
    );
}

#[test]
fn encode_rejects_what_parse_rejects() {
    let long_name = "n".repeat(MAX_NAME_BYTES + 1);
    let long_compatible = "c".repeat(MAX_COMPATIBLE_BYTES + 1);
    let many_compatible = vec!["c"; MAX_COMPATIBLE + 1];
    let many_pci = vec![PciId::default(); MAX_PCI_IDS + 1];
    let many_dma = vec![1; MAX_DMA_BUFFERS + 1];
    let base = DriverDesc {
        name: "ok",
        ..DriverDesc::default()
    };
    let cases = [
        (
            DriverDesc { name: "", ..base },
            DriverInfoError::Empty {
                field: DriverField::Name,
            },
        ),
        (
            DriverDesc {
                name: &long_name,
                ..base
            },
            DriverInfoError::TooLong {
                field: DriverField::Name,
                len: MAX_NAME_BYTES + 1,
                max: MAX_NAME_BYTES,
            },
        ),
        (
            DriverDesc {
                name: "a\0b",
                ..base
            },
            DriverInfoError::Nul {
                field: DriverField::Name,
            },
        ),
        (
            DriverDesc {
                compatible: &["ok", ""],
                ..base
            },
            DriverInfoError::Empty {
                field: DriverField::Compatible { index: 1 },
            },
        ),
        (
            DriverDesc {
                compatible: &[&long_compatible],
                ..base
            },
            DriverInfoError::TooLong {
                field: DriverField::Compatible { index: 0 },
                len: MAX_COMPATIBLE_BYTES + 1,
                max: MAX_COMPATIBLE_BYTES,
            },
        ),
        (
            DriverDesc {
                compatible: &many_compatible,
                ..base
            },
            DriverInfoError::TooMany {
                field: DriverField::CompatibleList,
                count: MAX_COMPATIBLE + 1,
                max: MAX_COMPATIBLE,
            },
        ),
        (
            DriverDesc {
                pci: &many_pci,
                ..base
            },
            DriverInfoError::TooMany {
                field: DriverField::PciIds,
                count: MAX_PCI_IDS + 1,
                max: MAX_PCI_IDS,
            },
        ),
        (
            DriverDesc {
                dma: &many_dma,
                ..base
            },
            DriverInfoError::TooMany {
                field: DriverField::DmaBuffers,
                count: MAX_DMA_BUFFERS + 1,
                max: MAX_DMA_BUFFERS,
            },
        ),
        (
            DriverDesc {
                dma: &[4096, 0],
                ..base
            },
            DriverInfoError::ZeroSize {
                field: DriverField::DmaBuffer { index: 1 },
            },
        ),
    ];
    for (desc, expected) in cases {
        assert_eq!(encode(&desc), Err(expected), "{desc:?}");
    }
}

#[test]
fn largest_record_round_trips() {
    let name = "n".repeat(MAX_NAME_BYTES);
    let compatible_string = "c".repeat(MAX_COMPATIBLE_BYTES);
    let compatible = vec![compatible_string.as_str(); MAX_COMPATIBLE];
    let pci = vec![
        PciId {
            vendor: u16::MAX,
            device: u16::MAX
        };
        MAX_PCI_IDS
    ];
    let dma = vec![u64::MAX; MAX_DMA_BUFFERS];
    let desc = DriverDesc {
        name: &name,
        compatible: &compatible,
        pci: &pci,
        mmio: u8::MAX,
        irqs: u8::MAX,
        dma: &dma,
    };
    let bytes = encode(&desc).unwrap();
    let info = DriverInfo::parse(&bytes).unwrap();
    assert_eq!(info.name(), name);
    assert_eq!(info.compatible().collect::<Vec<_>>(), compatible);
    assert_eq!(info.pci().collect::<Vec<_>>(), pci);
    assert_eq!(info.dma().collect::<Vec<_>>(), dma);
    assert_eq!((info.mmio(), info.irqs()), (u8::MAX, u8::MAX));
}

#[test]
fn every_single_byte_flip_is_safe() {
    let bytes = sample();
    for at in 0..bytes.len() {
        for value in [0x01, 0x7F, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[at] ^= value;
            if let Ok(info) = DriverInfo::parse(&b) {
                touch_everything(&info);
            }
        }
    }
}

#[test]
fn errors_display() {
    let errors = [
        err(&[]),
        err(&with_body(b"\x01a\x01\x00\x00\x00\x00\x00")),
        DriverInfoError::FieldOutOfBounds {
            field: DriverField::Counts,
            end: 40,
            total_size: 39,
        },
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "driver metadata truncated: need 16 bytes, have 0",
            "compatible string 0 is empty",
            "resource counts ends at byte 40, past the record's total size 39",
        ]
    );
}

fn desc_strategy() -> impl Strategy<Value = DriverInfoOwned> {
    (
        "[a-z0-9_-]{1,64}",
        prop::collection::vec("[ -~]{1,128}", 0..=MAX_COMPATIBLE),
        prop::collection::vec(any::<(u16, u16)>(), 0..=MAX_PCI_IDS),
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(1..=u64::MAX, 0..=MAX_DMA_BUFFERS),
    )
        .prop_map(|(name, compatible, pci, mmio, irqs, dma)| DriverInfoOwned {
            name,
            compatible,
            pci: pci
                .into_iter()
                .map(|(vendor, device)| PciId { vendor, device })
                .collect(),
            mmio,
            irqs,
            dma,
        })
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(info) = DriverInfo::parse(&bytes) {
            touch_everything(&info);
        }
    }

    #[test]
    fn parse_never_panics_past_the_header(tail in prop::collection::vec(any::<u8>(), 0..256)) {
        // A valid header with a random body reaches the field checks.
        let bytes = with_body(&tail);
        if let Ok(info) = DriverInfo::parse(&bytes) {
            touch_everything(&info);
        }
    }

    #[test]
    fn encode_parse_round_trip(owned in desc_strategy()) {
        let bytes = owned.encode().unwrap();
        let info = DriverInfo::parse(&bytes).unwrap();
        prop_assert_eq!(info.total_size(), bytes.len());
        prop_assert_eq!(info.into_owned(), owned);
    }

    #[test]
    fn truncated_or_corrupted_sample_never_panics(
        cut in 0usize..200,
        at in 0usize..200,
        value in any::<u8>(),
    ) {
        let mut bytes = sample();
        let len = bytes.len();
        bytes[at % len] = value;
        bytes.truncate(cut.min(len));
        if let Ok(info) = DriverInfo::parse(&bytes) {
            touch_everything(&info);
        }
    }
}
