//! The binary system description: round trips, versioning, every validation error and
//! robustness against truncated and corrupted input.
#![cfg(feature = "alloc")]

use kaal_bootinfo::system::*;
use proptest::prelude::*;

fn component(name: &str) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        image: name.into(),
        priority: 100,
        stack_bytes: 64 * 1024,
        heap_bytes: 1024 * 1024,
        memory_quota_bytes: 8 * 1024 * 1024,
        restart: RestartPolicy::Never,
        devices: vec![],
        irqs: vec![],
        services: 0,
        arguments: 0,
        core: 0,
    }
}

fn channel(name: &str, from: &str, to: &str) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        element: "u64".into(),
        element_bytes: 8,
        element_align: 8,
        capacity: 1024,
        producer: from.into(),
        consumer: to.into(),
    }
}

/// A description that uses every field.
fn sample() -> SystemDescription {
    let mut producer = component("producer");
    producer.restart = RestartPolicy::AtMost {
        restarts: 3,
        window_ms: 10_000,
    };
    producer.devices = vec!["rtc".into()];
    producer.irqs = vec![40, 41];
    producer.services = services::MEMORY | services::PROCESSES;
    producer.arguments = 0xdead_beef;
    let mut consumer = component("consumer");
    consumer.image = "consumer-image".into();
    consumer.restart = RestartPolicy::Always;
    consumer.priority = 254;
    consumer.services = services::SYSTEM_CONTROL;
    consumer.core = 3;
    let shell = component("shell");
    SystemDescription {
        name: "démo".into(),
        components: vec![producer, consumer, shell],
        devices: vec![
            DeviceSpec {
                name: "rtc".into(),
                compatible: "arm,pl031".into(),
                index: 0,
            },
            DeviceSpec {
                name: "uart1".into(),
                compatible: "arm,pl011".into(),
                index: 1,
            },
        ],
        channels: vec![ChannelSpec {
            element: "Sample".into(),
            element_bytes: 16,
            element_align: 8,
            ..channel("samples", "producer", "consumer")
        }],
        endpoints: vec![EndpointSpec {
            name: "echo".into(),
            server: "consumer".into(),
            clients: vec!["shell".into(), "producer".into()],
        }],
    }
}

fn decode_err(system: &SystemDescription) -> SystemError {
    SystemDescription::decode(&system.encode()).expect_err("decoded an invalid description")
}

#[test]
fn round_trip() {
    let system = sample();
    let bytes = system.encode();
    assert_eq!(&bytes[..8], b"KAALSYS1");
    assert_eq!(SystemDescription::decode(&bytes), Ok(system.clone()));
    let decoded = SystemDescription::decode(&bytes).unwrap();
    assert_eq!(
        decoded.component("consumer").unwrap().image,
        "consumer-image"
    );
    assert_eq!(decoded.device("uart1").unwrap().index, 1);
    assert!(decoded.component("nobody").is_none());
    assert!(decoded.device("nothing").is_none());
}

#[test]
fn empty_description_round_trips() {
    let system = SystemDescription::default();
    assert_eq!(SystemDescription::decode(&system.encode()), Ok(system));
}

#[test]
fn trailing_input_after_total_size_is_ignored() {
    let system = sample();
    let mut bytes = system.encode();
    bytes.extend_from_slice(&[0xAA; 13]);
    assert_eq!(SystemDescription::decode(&bytes), Ok(system));
}

#[test]
fn every_truncation_errors() {
    let bytes = sample().encode();
    for len in 0..bytes.len() {
        assert!(
            SystemDescription::decode(&bytes[..len]).is_err(),
            "length {len} accepted"
        );
    }
}

#[test]
fn every_single_byte_change_is_safe() {
    let bytes = sample().encode();
    for at in 0..bytes.len() {
        for value in [0x01, 0x7F, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[at] ^= value;
            let _ = SystemDescription::decode(&b);
        }
    }
}

// ----- header and versioning -----

fn set_u16(bytes: &mut [u8], at: usize, v: u16) {
    bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn bad_magic() {
    let mut bytes = sample().encode();
    bytes[0] = b'X';
    assert!(matches!(
        SystemDescription::decode(&bytes),
        Err(SystemError::BadMagic { found }) if &found == b"XAALSYS1"
    ));
}

#[test]
fn other_major_rejected() {
    let mut bytes = sample().encode();
    set_u16(&mut bytes, 8, 2);
    let err = SystemDescription::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        SystemError::UnsupportedMajor {
            found: 2,
            supported: 1
        }
    );
    assert!(err.to_string().contains("major version 2"));
}

#[test]
fn header_too_small() {
    let mut bytes = sample().encode();
    set_u32(&mut bytes, 12, 16);
    assert_eq!(
        SystemDescription::decode(&bytes),
        Err(SystemError::HeaderTooSmall { found: 16, min: 24 })
    );
}

#[test]
fn total_smaller_than_header() {
    let mut bytes = sample().encode();
    set_u32(&mut bytes, 16, 20);
    assert_eq!(
        SystemDescription::decode(&bytes),
        Err(SystemError::SizeMismatch {
            header_size: 24,
            total_size: 20
        })
    );
}

#[test]
fn total_larger_than_input() {
    let mut bytes = sample().encode();
    let len = bytes.len();
    set_u32(&mut bytes, 16, len as u32 + 1);
    assert_eq!(
        SystemDescription::decode(&bytes),
        Err(SystemError::Truncated {
            needed: len as u64 + 1,
            available: len
        })
    );
}

/// Inserts `extra` bytes at `at`, growing the total size (and whatever else `fix` grows).
fn insert(bytes: &[u8], at: usize, extra: &[u8]) -> Vec<u8> {
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(extra);
    out.extend_from_slice(&bytes[at..]);
    let total = get_u32(&out, 16) + extra.len() as u32;
    set_u32(&mut out, 16, total);
    out
}

/// A minor version newer than this decoder's.
const NEWER: u16 = SYSTEM_VERSION_MINOR + 1;

#[test]
fn newer_minor_may_grow_header_record_and_body() {
    let system = sample();
    let bytes = system.encode();

    // A larger header.
    let mut grown = insert(&bytes, 24, &[0xEE; 8]);
    set_u32(&mut grown, 12, 32);
    set_u16(&mut grown, 10, NEWER);
    assert_eq!(SystemDescription::decode(&grown), Ok(system.clone()));
    set_u16(&mut grown, 10, SYSTEM_VERSION_MINOR);
    assert!(matches!(
        SystemDescription::decode(&grown),
        Err(SystemError::TrailingBytes {
            part: SystemPart::Header,
            offset: 24,
            extra: 8
        })
    ));

    // A longer system record (length at 24, name length at 28, name from 32).
    let name_len = get_u32(&bytes, 28) as usize;
    let mut grown = insert(&bytes, 32 + name_len, &[0xEE; 4]);
    let record_len = get_u32(&grown, 24);
    set_u32(&mut grown, 24, record_len + 4);
    set_u16(&mut grown, 10, 7);
    assert_eq!(SystemDescription::decode(&grown), Ok(system.clone()));
    set_u16(&mut grown, 10, SYSTEM_VERSION_MINOR);
    assert!(matches!(
        SystemDescription::decode(&grown),
        Err(SystemError::TrailingBytes {
            part: SystemPart::System,
            extra: 4,
            ..
        })
    ));

    // Bytes after the last section.
    let mut grown = insert(&bytes, bytes.len(), &[0xEE; 5]);
    set_u16(&mut grown, 10, NEWER);
    assert_eq!(SystemDescription::decode(&grown), Ok(system.clone()));
    set_u16(&mut grown, 10, SYSTEM_VERSION_MINOR);
    let err = SystemDescription::decode(&grown).unwrap_err();
    assert_eq!(
        err,
        SystemError::TrailingBytes {
            part: SystemPart::Endpoints,
            offset: bytes.len() as u64,
            extra: 5
        }
    );
    assert!(err.to_string().contains("5 unexpected bytes"));
}

#[test]
fn unknown_services_only_from_newer_minor() {
    let mut system = sample();
    system.components[2].services = 0x100 | services::MEMORY;
    let mut bytes = system.encode();
    let err = SystemDescription::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        SystemError::UnknownServices {
            component: "shell".into(),
            bits: 0x100
        }
    );
    assert!(err.to_string().contains("`shell`"));
    set_u16(&mut bytes, 10, NEWER);
    assert_eq!(SystemDescription::decode(&bytes), Ok(system));
}

#[test]
fn unknown_restart_kind() {
    let system = SystemDescription {
        components: vec![component("a")],
        ..SystemDescription::default()
    };
    let mut bytes = system.encode();
    // header 24, system record 4 + 4 + 0, count 4, record length 4, name 4 + 1,
    // image 4 + 1, priority 1: the restart kind is at 24 + 8 + 4 + 4 + 5 + 5 + 1.
    let at = 24 + 8 + 4 + 4 + 5 + 5 + 1;
    assert_eq!(bytes[at], 0);
    bytes[at] = 9;
    assert_eq!(
        SystemDescription::decode(&bytes),
        Err(SystemError::UnknownRestartPolicy {
            component: "a".into(),
            kind: 9
        })
    );
}

#[test]
fn out_of_bounds_names_the_record() {
    let system = SystemDescription {
        components: vec![component("a")],
        ..SystemDescription::default()
    };
    let mut bytes = system.encode();
    // The name length of component 0 (see `unknown_restart_kind`) made huge.
    set_u32(&mut bytes, 24 + 8 + 4 + 4, 1000);
    let err = SystemDescription::decode(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            SystemError::OutOfBounds {
                part: SystemPart::Component(0),
                field: "name",
                len: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("component record 0: name"));

    // A section count larger than the records that follow.
    let mut bytes = system.encode();
    set_u32(&mut bytes, 24 + 8, 2);
    assert!(matches!(
        SystemDescription::decode(&bytes),
        Err(SystemError::OutOfBounds {
            part: SystemPart::Component(1),
            ..
        })
    ));
}

#[test]
fn invalid_utf8() {
    let system = SystemDescription {
        name: "ab".into(),
        ..SystemDescription::default()
    };
    let mut bytes = system.encode();
    bytes[32] = 0xFF;
    let err = SystemDescription::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        SystemError::InvalidUtf8 {
            part: SystemPart::System,
            field: "name"
        }
    );
    assert_eq!(err.to_string(), "system record: name is not valid UTF-8");
}

// ----- semantic validation -----

#[test]
fn empty_names() {
    let mut s = sample();
    s.components[1].name.clear();
    assert_eq!(
        decode_err(&s),
        SystemError::EmptyName {
            kind: "component",
            index: 1
        }
    );
    let mut s = sample();
    s.devices[0].name.clear();
    assert!(matches!(
        decode_err(&s),
        SystemError::EmptyName {
            kind: "device",
            index: 0
        }
    ));
    let mut s = sample();
    s.channels[0].name.clear();
    assert!(matches!(
        decode_err(&s),
        SystemError::EmptyName {
            kind: "channel",
            ..
        }
    ));
    let mut s = sample();
    s.endpoints[0].name.clear();
    assert!(matches!(
        decode_err(&s),
        SystemError::EmptyName {
            kind: "endpoint",
            ..
        }
    ));
    let mut s = sample();
    s.components[0].image.clear();
    assert_eq!(
        decode_err(&s),
        SystemError::EmptyImage {
            component: "producer".into()
        }
    );
}

#[test]
fn duplicate_component() {
    let mut s = sample();
    s.components.push(component("consumer"));
    let err = decode_err(&s);
    assert_eq!(
        err,
        SystemError::DuplicateName {
            kind: "component",
            name: "consumer".into()
        }
    );
    assert_eq!(err.to_string(), "duplicate component name `consumer`");
}

#[test]
fn duplicate_device() {
    let mut s = sample();
    s.devices.push(DeviceSpec {
        name: "rtc".into(),
        compatible: "x".into(),
        index: 3,
    });
    assert_eq!(
        decode_err(&s),
        SystemError::DuplicateName {
            kind: "device",
            name: "rtc".into()
        }
    );
}

#[test]
fn duplicate_channel_or_endpoint() {
    let mut s = sample();
    s.channels.push(channel("samples", "consumer", "producer"));
    assert_eq!(
        decode_err(&s),
        SystemError::DuplicateName {
            kind: "channel",
            name: "samples".into()
        }
    );
    let mut s = sample();
    s.endpoints[0].name = "samples".into();
    assert_eq!(
        decode_err(&s),
        SystemError::DuplicateName {
            kind: "channel or endpoint",
            name: "samples".into()
        }
    );
}

#[test]
fn unknown_components() {
    let mut s = sample();
    s.channels[0].producer = "ghost".into();
    let err = decode_err(&s);
    assert_eq!(
        err,
        SystemError::UnknownComponent {
            kind: "channel",
            owner: "samples".into(),
            role: "producer",
            name: "ghost".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "channel `samples`: producer `ghost` is not a component"
    );
    let mut s = sample();
    s.channels[0].consumer = "ghost".into();
    assert!(matches!(
        decode_err(&s),
        SystemError::UnknownComponent {
            role: "consumer",
            ..
        }
    ));
    let mut s = sample();
    s.endpoints[0].server = "ghost".into();
    assert!(matches!(
        decode_err(&s),
        SystemError::UnknownComponent { role: "server", .. }
    ));
    let mut s = sample();
    s.endpoints[0].clients.push("ghost".into());
    assert!(matches!(
        decode_err(&s),
        SystemError::UnknownComponent { role: "client", .. }
    ));
}

#[test]
fn unknown_device() {
    let mut s = sample();
    s.components[1].devices.push("gpu".into());
    assert_eq!(
        decode_err(&s),
        SystemError::UnknownDevice {
            component: "consumer".into(),
            device: "gpu".into()
        }
    );
}

#[test]
fn device_granted_twice() {
    let mut s = sample();
    s.components[1].devices.push("rtc".into());
    let err = decode_err(&s);
    assert_eq!(
        err,
        SystemError::DeviceGrantedTwice {
            device: "rtc".into(),
            first: "producer".into(),
            second: "consumer".into()
        }
    );
    assert!(err.to_string().contains("device `rtc`"));
    let mut s = sample();
    s.components[0].devices.push("rtc".into());
    assert!(matches!(
        decode_err(&s),
        SystemError::DeviceGrantedTwice { first, second, .. } if first == second
    ));
}

#[test]
fn irq_granted_twice() {
    let mut s = sample();
    s.components[2].irqs.push(41);
    assert_eq!(
        decode_err(&s),
        SystemError::IrqGrantedTwice {
            irq: 41,
            first: "producer".into(),
            second: "shell".into()
        }
    );
    let mut s = sample();
    s.components[0].irqs.push(40);
    assert!(matches!(
        decode_err(&s),
        SystemError::IrqGrantedTwice { irq: 40, first, second } if first == second
    ));
}

#[test]
fn duplicate_client() {
    let mut s = sample();
    s.endpoints[0].clients.push("shell".into());
    assert_eq!(
        decode_err(&s),
        SystemError::DuplicateClient {
            endpoint: "echo".into(),
            client: "shell".into()
        }
    );
}

#[test]
fn channel_with_same_ends() {
    let mut s = sample();
    s.channels[0].consumer = "producer".into();
    assert_eq!(
        decode_err(&s),
        SystemError::SameEnds {
            channel: "samples".into(),
            component: "producer".into()
        }
    );
}

#[test]
fn bad_capacities() {
    for capacity in [0, 3, 1000, (1 << 31), u32::MAX] {
        let mut s = sample();
        s.channels[0].capacity = capacity;
        assert_eq!(
            decode_err(&s),
            SystemError::BadCapacity {
                channel: "samples".into(),
                capacity
            }
        );
    }
    for capacity in [1, 2, 1 << 30] {
        let mut s = sample();
        s.channels[0].capacity = capacity;
        assert!(SystemDescription::decode(&s.encode()).is_ok());
    }
}

#[test]
fn zero_element_size() {
    let mut s = sample();
    s.channels[0].element_bytes = 0;
    assert_eq!(
        decode_err(&s),
        SystemError::ZeroElementSize {
            channel: "samples".into()
        }
    );
}

#[test]
fn bad_element_align() {
    for align in [0, 3, 24] {
        let mut s = sample();
        s.channels[0].element_align = align;
        assert_eq!(
            decode_err(&s),
            SystemError::BadElementAlign {
                channel: "samples".into(),
                align
            }
        );
    }
}

// ----- properties -----

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,10}"
}

fn restart() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Never),
        Just(RestartPolicy::Always),
        (any::<u32>(), any::<u64>()).prop_map(|(restarts, window_ms)| RestartPolicy::AtMost {
            restarts,
            window_ms
        }),
    ]
}

type RawComponent = (String, u8, (u64, u64, u64), RestartPolicy, u32, u64);

fn raw_component() -> impl Strategy<Value = RawComponent> {
    (
        "\\PC{1,12}",
        any::<u8>(),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        restart(),
        0u32..8,
        any::<u64>(),
    )
}

type RawChannel = (String, u32, u32, u32, usize, usize);

fn raw_channel() -> impl Strategy<Value = RawChannel> {
    (
        "\\PC{1,12}",
        1u32..=u32::MAX,
        0u32..32,
        0u32..=30,
        any::<usize>(),
        any::<usize>(),
    )
}

/// Arbitrary valid descriptions: unique names, resolvable references, sound channels.
fn description() -> impl Strategy<Value = SystemDescription> {
    (
        "\\PC{0,16}",
        prop::collection::btree_set(name(), 2..6),
        prop::collection::vec(raw_component(), 6),
        prop::collection::btree_map(name(), ("\\PC{1,20}", any::<u32>(), any::<usize>()), 0..5),
        prop::collection::btree_map(any::<u32>(), any::<usize>(), 0..8),
        prop::collection::btree_map(name(), raw_channel(), 0..4),
        prop::collection::btree_map(
            name(),
            (
                any::<usize>(),
                prop::collection::btree_set(any::<usize>(), 0..4),
            ),
            0..4,
        ),
    )
        .prop_map(
            |(system_name, names, raw, devices, irqs, channels, endpoints)| {
                let names: Vec<String> = names.into_iter().collect();
                let n = names.len();
                let mut components: Vec<ComponentSpec> = names
                    .iter()
                    .zip(raw)
                    .map(
                        |(
                            name,
                            (image, priority, (stack, heap, quota), restart, services, args),
                        )| {
                            ComponentSpec {
                                name: name.clone(),
                                image,
                                priority,
                                stack_bytes: stack,
                                heap_bytes: heap,
                                memory_quota_bytes: quota,
                                restart,
                                devices: vec![],
                                irqs: vec![],
                                services,
                                arguments: args,
                                core: priority as u16 % 5,
                            }
                        },
                    )
                    .collect();
                let devices: Vec<DeviceSpec> = devices
                    .into_iter()
                    .map(|(name, (compatible, index, owner))| {
                        if owner % 3 != 0 {
                            components[owner % n].devices.push(name.clone());
                        }
                        DeviceSpec {
                            name,
                            compatible,
                            index,
                        }
                    })
                    .collect();
                for (irq, owner) in irqs {
                    components[owner % n].irqs.push(irq);
                }
                let channels: Vec<ChannelSpec> = channels
                    .into_iter()
                    .map(|(name, (element, bytes, align, capacity, from, offset))| {
                        let from = from % n;
                        let to = (from + 1 + offset % (n - 1)) % n;
                        ChannelSpec {
                            name,
                            element,
                            element_bytes: bytes,
                            element_align: 1 << align,
                            capacity: 1 << capacity,
                            producer: names[from].clone(),
                            consumer: names[to].clone(),
                        }
                    })
                    .collect();
                let endpoints = endpoints
                    .into_iter()
                    .filter(|(name, _)| !channels.iter().any(|c| &c.name == name))
                    .map(|(name, (server, clients))| {
                        let mut list: Vec<String> = vec![];
                        for c in clients {
                            let c = &names[c % n];
                            if !list.contains(c) {
                                list.push(c.clone());
                            }
                        }
                        EndpointSpec {
                            name,
                            server: names[server % n].clone(),
                            clients: list,
                        }
                    })
                    .collect();
                SystemDescription {
                    name: system_name,
                    components,
                    devices,
                    channels,
                    endpoints,
                }
            },
        )
}

/// A valid-looking header (magic, major 1, minor 0) so random tails reach deeper checks.
fn with_valid_header(tail: &[u8]) -> Vec<u8> {
    let total = 24 + tail.len() as u32;
    let mut bytes = b"KAALSYS1".to_vec();
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&24u32.to_le_bytes());
    bytes.extend_from_slice(&total.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(tail);
    bytes
}

proptest! {
    #[test]
    fn arbitrary_descriptions_round_trip(system in description()) {
        let bytes = system.encode();
        prop_assert_eq!(SystemDescription::decode(&bytes), Ok(system));
    }

    #[test]
    fn truncated_arbitrary_descriptions_error(system in description(), cut in any::<prop::sample::Index>()) {
        let bytes = system.encode();
        let len = cut.index(bytes.len());
        prop_assert!(SystemDescription::decode(&bytes[..len]).is_err());
    }

    #[test]
    fn corrupted_descriptions_never_panic(
        system in description(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = system.encode();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let decoded = SystemDescription::decode(&bytes);
        // Whatever decodes is valid and encodes to something that decodes the same
        // (unless a corrupted minor version let unknown service bits through).
        let known = services::MEMORY | services::PROCESSES | services::SYSTEM_CONTROL;
        if let Ok(decoded) = decoded
            && decoded.components.iter().all(|c| c.services & !known == 0)
        {
            prop_assert_eq!(SystemDescription::decode(&decoded.encode()), Ok(decoded));
        }
    }

    #[test]
    fn random_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = SystemDescription::decode(&tail);
        let _ = SystemDescription::decode(&with_valid_header(&tail));
    }
}
