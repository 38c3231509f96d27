//! Property tests: the boot-info parser never panics, whatever the input, and the
//! writer and parser agree on every input the writer accepts.

mod common;

use common::*;
use kaal_bootinfo::layout::HEADER_SIZE;
use kaal_bootinfo::*;
use proptest::prelude::*;

/// A valid-looking prefix (magic, major 1) so that random tails reach the deeper checks.
fn with_valid_prefix(mut tail: Vec<u8>) -> Vec<u8> {
    let mut bytes = MAGIC.to_le_bytes().to_vec();
    bytes.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    bytes.append(&mut tail);
    bytes
}

fn parse_and_touch(bytes: &[u8]) {
    if let Ok(info) = BootInfo::from_bytes(bytes) {
        touch_everything(&info);
        assert!(info.total_size() <= bytes.len());
    }
}

#[test]
fn every_truncation_errors() {
    let bytes = sample();
    for len in 0..bytes.len() {
        assert!(
            BootInfo::from_bytes(&bytes[..len]).is_err(),
            "length {len} accepted"
        );
    }
    assert!(BootInfo::from_bytes(&bytes).is_ok());
}

#[test]
fn every_single_byte_flip_is_safe() {
    let bytes = sample();
    for at in 0..bytes.len() {
        for value in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[at] ^= value;
            parse_and_touch(&b);
        }
    }
}

#[derive(Debug, Clone)]
struct OwnedDevice {
    base: u64,
    size_bytes: u64,
    irqs: Vec<u32>,
    compatible: String,
}

#[derive(Debug, Clone)]
struct OwnedInput {
    system: SystemFacts,
    kernel_version: String,
    bootargs: String,
    untyped: Vec<UntypedRegion>,
    devices: Vec<OwnedDevice>,
    caps: InitialCaps,
    archive: ArchiveInfo,
}

fn slot_range() -> impl Strategy<Value = SlotRange> {
    (any::<u32>(), any::<u32>()).prop_map(|(start, count)| SlotRange { start, count })
}

fn owned_input() -> impl Strategy<Value = OwnedInput> {
    let system = (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |(ram_base, ram_bytes, cpu_count, cpus_online, timer_frequency_hz)| SystemFacts {
                ram_base,
                ram_bytes,
                cpu_count,
                cpus_online,
                timer_frequency_hz,
            },
        );
    let region = (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(base, size, is_device)| {
        UntypedRegion {
            base,
            size_bytes: size.min(u64::MAX - base),
            is_device,
        }
    });
    let device = (
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u32>(), 0..8),
        "[a-z0-9,\\-]{0,20}(\\x00[a-z0-9,\\-]{1,20}){0,3}\\x00?",
    )
        .prop_map(|(base, size, irqs, compatible)| OwnedDevice {
            base,
            size_bytes: size.min(u64::MAX - base),
            irqs,
            compatible,
        });
    let caps = (slot_range(), slot_range(), any::<u32>()).prop_map(
        |(untyped, device_untyped, first_free)| InitialCaps {
            untyped,
            device_untyped,
            first_free,
        },
    );
    let archive = (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(phys_base, size_bytes, user_vaddr)| ArchiveInfo {
            phys_base,
            size_bytes,
            user_vaddr,
        },
    );
    (
        system,
        "\\PC{0,40}",
        "\\PC{0,100}",
        prop::collection::vec(region, 0..20),
        prop::collection::vec(device, 0..20),
        caps,
        archive,
    )
        .prop_map(
            |(system, kernel_version, bootargs, untyped, devices, caps, archive)| OwnedInput {
                system,
                kernel_version,
                bootargs,
                untyped,
                devices,
                caps,
                archive,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        parse_and_touch(&bytes);
    }

    #[test]
    fn random_bytes_after_valid_prefix_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        parse_and_touch(&with_valid_prefix(tail));
    }

    #[test]
    fn random_byte_flips_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        extra in 0usize..64,
    ) {
        let mut bytes = sample();
        let n = bytes.len();
        for (at, value) in flips {
            bytes[at.index(n)] = value;
        }
        bytes.resize(n + extra, 0);
        parse_and_touch(&bytes);
    }

    #[test]
    fn header_field_mutations_never_panic(
        at in 0usize..HEADER_SIZE / 4,
        value in prop_oneof![Just(0u32), Just(u32::MAX), Just(0x8000_0000), 0u32..1024, any::<u32>()],
    ) {
        let mut bytes = sample();
        bytes[at * 4..at * 4 + 4].copy_from_slice(&value.to_le_bytes());
        parse_and_touch(&bytes);
    }

    #[test]
    fn round_trip_any_input(owned in owned_input()) {
        let devices: Vec<DeviceDesc<'_>> = owned
            .devices
            .iter()
            .map(|d| DeviceDesc {
                base: d.base,
                size_bytes: d.size_bytes,
                irqs: &d.irqs,
                compatible: &d.compatible,
            })
            .collect();
        let input = BootInfoInput {
            system: owned.system,
            kernel_version: &owned.kernel_version,
            bootargs: &owned.bootargs,
            untyped: &owned.untyped,
            devices: &devices,
            caps: owned.caps,
            archive: owned.archive,
        };
        let bytes = write(&input);
        prop_assert_eq!(boot_info_size(&input), Ok(bytes.len()));
        let info = BootInfo::from_bytes(&bytes).unwrap();
        prop_assert_eq!(info.system(), input.system);
        prop_assert_eq!(info.kernel_version(), input.kernel_version);
        prop_assert_eq!(info.bootargs(), input.bootargs);
        prop_assert_eq!(info.untyped().collect::<Vec<_>>(), owned.untyped.clone());
        prop_assert_eq!(info.device_count(), devices.len());
        for (got, want) in info.devices().zip(&devices) {
            prop_assert_eq!(got.base, want.base);
            prop_assert_eq!(got.size_bytes, want.size_bytes);
            prop_assert_eq!(got.compatible, want.compatible);
            prop_assert_eq!(got.irqs().collect::<Vec<_>>(), want.irqs.to_vec());
            for c in got.compatible_list() {
                prop_assert!(info.find_device(c).is_some());
            }
        }
        prop_assert_eq!(info.caps(), input.caps);
        prop_assert_eq!(info.archive(), input.archive);
        // Every strict prefix is rejected.
        for len in [0, 7, 8, HEADER_SIZE - 1, HEADER_SIZE, bytes.len() - 1] {
            if len < bytes.len() {
                prop_assert!(BootInfo::from_bytes(&bytes[..len]).is_err());
            }
        }
    }
}
