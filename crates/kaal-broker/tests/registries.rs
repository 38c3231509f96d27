//! Property tests: device registry, accounts and restart budgets against models.

use std::collections::BTreeMap;

use kaal_broker::accounts::{Accounts, QuotaError};
use kaal_broker::devices::{DeviceError, DeviceRecord, DeviceRegistry, Owner};
use kaal_broker::restart::{RestartBudget, RestartDecision, RestartPolicy};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// Devices.

/// The last one matches nothing: empty list entries are not compatible strings.
const COMPATIBLES: [&str; 5] = ["arm,pl011", "arm,primecell", "virtio,mmio", "ns16550a", ""];

fn device() -> impl Strategy<Value = DeviceRecord> {
    (
        prop::collection::vec(0usize..4, 1..4),
        any::<bool>(),
        prop::collection::vec(0u32..10, 0..3),
        0u64..16,
    )
        .prop_map(|(names, trailing_nul, irqs, page)| {
            let mut compatible = names
                .iter()
                .map(|&n| COMPATIBLES[n])
                .collect::<Vec<_>>()
                .join("\0");
            if trailing_nul {
                compatible.push('\0');
            }
            DeviceRecord {
                compatible,
                base: 0x0900_0000 + page * 0x1000,
                size_bytes: 0x1000,
                irqs,
            }
        })
}

#[derive(Clone, Debug)]
enum DeviceOp {
    ClaimDevice { name: usize, index: u32, owner: u16 },
    ClaimIrq { line: u32, owner: u16 },
    Release { owner: u16 },
}

fn device_op() -> impl Strategy<Value = DeviceOp> {
    prop_oneof![
        4 => (0usize..5, 0u32..3, 0u16..4)
            .prop_map(|(name, index, owner)| DeviceOp::ClaimDevice { name, index, owner }),
        3 => (0u32..12, 0u16..4).prop_map(|(line, owner)| DeviceOp::ClaimIrq { line, owner }),
        1 => (0u16..4).prop_map(|owner| DeviceOp::Release { owner }),
    ]
}

/// Who holds what, updated only by successful grants and releases.
#[derive(Default)]
struct DeviceModel {
    devices: Vec<Option<Owner>>,
    /// Line to holder and whether it came with a device.
    irqs: BTreeMap<u32, (Owner, bool)>,
}

fn matches(record: &DeviceRecord, name: &str) -> bool {
    !name.is_empty() && record.compatible.split('\0').any(|entry| entry == name)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn devices_never_granted_twice(
        records in prop::collection::vec(device(), 0..6),
        ops in prop::collection::vec(device_op(), 1..80),
    ) {
        let mut registry = DeviceRegistry::new();
        for record in &records {
            registry.add(record.clone());
        }
        let mut model = DeviceModel { devices: vec![None; records.len()], ..Default::default() };
        for op in ops {
            match op {
                DeviceOp::ClaimDevice { name, index, owner } => {
                    let compatible = COMPATIBLES[name];
                    let owner = Owner(owner);
                    let position = (0..records.len())
                        .filter(|&p| matches(&records[p], compatible))
                        .nth(index as usize);
                    let result = registry.claim_device(compatible, index, owner);
                    let Some(position) = position else {
                        prop_assert_eq!(
                            result,
                            Err(DeviceError::NotFound { compatible: compatible.into(), index })
                        );
                        continue;
                    };
                    let record = &records[position];
                    let held_line = record.irqs.iter().find_map(|line| model.irqs.get(line).map(|h| (*line, h.0)));
                    match (model.devices[position], held_line) {
                        (Some(holder), _) => prop_assert_eq!(
                            result,
                            Err(DeviceError::AlreadyGranted {
                                compatible: compatible.into(),
                                index,
                                owner: holder,
                            })
                        ),
                        (None, Some((line, holder))) => prop_assert_eq!(
                            result,
                            Err(DeviceError::IrqAlreadyGranted { line, owner: holder })
                        ),
                        (None, None) => {
                            prop_assert_eq!(result, Ok(record.clone()));
                            model.devices[position] = Some(owner);
                            for &line in &record.irqs {
                                model.irqs.insert(line, (owner, true));
                            }
                        }
                    }
                }
                DeviceOp::ClaimIrq { line, owner } => {
                    let owner = Owner(owner);
                    let result = registry.claim_irq(line, owner);
                    match model.irqs.get(&line) {
                        Some(&(holder, true)) if holder != owner => {
                            prop_assert_eq!(result, Err(DeviceError::IrqOwnedByDevice { line }));
                        }
                        Some(&(holder, _)) => prop_assert_eq!(
                            result,
                            Err(DeviceError::IrqAlreadyGranted { line, owner: holder })
                        ),
                        None => {
                            prop_assert_eq!(result, Ok(()));
                            model.irqs.insert(line, (owner, false));
                        }
                    }
                }
                DeviceOp::Release { owner } => {
                    let owner = Owner(owner);
                    registry.release_owner(owner);
                    for holder in &mut model.devices {
                        if *holder == Some(owner) {
                            *holder = None;
                        }
                    }
                    model.irqs.retain(|_, (holder, _)| *holder != owner);
                    prop_assert!(registry.devices().all(|(_, holder)| holder != Some(owner)));
                    prop_assert!((0..12).all(|line| registry.owner_of_irq(line) != Some(owner)));
                }
            }
            // The registry agrees with the model, and a claimed device's lines are its
            // holder's.
            let listed: Vec<_> = registry.devices().collect();
            prop_assert_eq!(listed.len(), records.len());
            for ((record, holder), (expected, model_holder)) in
                listed.iter().zip(records.iter().zip(&model.devices))
            {
                prop_assert_eq!(*record, expected);
                prop_assert_eq!(holder, model_holder);
                if let Some(holder) = holder {
                    for &line in &record.irqs {
                        prop_assert_eq!(registry.owner_of_irq(line), Some(*holder));
                    }
                }
            }
            for line in 0..12 {
                prop_assert_eq!(registry.owner_of_irq(line), model.irqs.get(&line).map(|h| h.0));
            }
        }
        // Releasing everyone returns everything.
        for owner in 0..4 {
            registry.release_owner(Owner(owner));
        }
        prop_assert!(registry.devices().all(|(_, holder)| holder.is_none()));
        prop_assert!((0..12).all(|line| registry.owner_of_irq(line).is_none()));
    }
}

// ---------------------------------------------------------------------------------
// Accounts.

#[derive(Clone, Debug)]
enum AccountOp {
    SetQuota(u16, u64),
    Charge(u16, u64),
    Release(u16, u64),
    Remove(u16),
}

fn account_op() -> impl Strategy<Value = AccountOp> {
    let bytes = prop_oneof![10 => 0u64..6000, 1 => Just(u64::MAX)];
    prop_oneof![
        1 => (0u16..4, 0u64..10_000).prop_map(|(o, q)| AccountOp::SetQuota(o, q)),
        4 => (0u16..4, bytes.clone()).prop_map(|(o, b)| AccountOp::Charge(o, b)),
        2 => (0u16..4, bytes).prop_map(|(o, b)| AccountOp::Release(o, b)),
        1 => (0u16..4).prop_map(AccountOp::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn accounts_respect_quotas(ops in prop::collection::vec(account_op(), 1..100)) {
        let mut accounts = Accounts::new();
        let mut model: BTreeMap<u16, (u64, u64)> = BTreeMap::new(); // quota, used
        for op in ops {
            match op {
                AccountOp::SetQuota(o, quota) => {
                    accounts.set_quota(Owner(o), quota);
                    model.entry(o).or_insert((quota, 0)).0 = quota;
                }
                AccountOp::Charge(o, bytes) => {
                    let owner = Owner(o);
                    let result = accounts.charge(owner, bytes);
                    match model.get_mut(&o) {
                        None => prop_assert_eq!(result, Err(QuotaError::UnknownOwner { owner })),
                        Some((quota, used)) => {
                            if used.checked_add(bytes).is_some_and(|total| total <= *quota) {
                                prop_assert_eq!(result, Ok(()));
                                *used += bytes;
                                prop_assert!(accounts.used(owner) <= *quota);
                            } else {
                                prop_assert_eq!(result, Err(QuotaError::Exceeded {
                                    owner, used: *used, quota: *quota, requested: bytes,
                                }));
                            }
                        }
                    }
                }
                AccountOp::Release(o, bytes) => {
                    accounts.release(Owner(o), bytes);
                    if let Some((_, used)) = model.get_mut(&o) {
                        *used = used.saturating_sub(bytes);
                    }
                }
                AccountOp::Remove(o) => {
                    prop_assert_eq!(accounts.remove(Owner(o)), model.remove(&o).map(|(_, used)| used));
                }
            }
            for o in 0..4 {
                let owner = Owner(o);
                prop_assert_eq!(accounts.quota(owner), model.get(&o).map(|m| m.0));
                prop_assert_eq!(accounts.used(owner), model.get(&o).map_or(0, |m| m.1));
            }
            prop_assert_eq!(
                accounts.owners().collect::<Vec<_>>(),
                model.keys().map(|&o| Owner(o)).collect::<Vec<_>>()
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// Restart budgets.

fn policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        1 => Just(RestartPolicy::Never),
        1 => Just(RestartPolicy::Always),
        4 => (0u32..5, 0u64..300)
            .prop_map(|(restarts, window_ms)| RestartPolicy::AtMost { restarts, window_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn restart_window_matches_all_timestamps(
        policy in policy(),
        steps_ms in prop::collection::vec(prop_oneof![3 => 0u64..100, 1 => Just(0u64)], 1..60),
    ) {
        let mut budget = RestartBudget::new(policy);
        let mut all_restarts_ms: Vec<u64> = Vec::new();
        let mut now_ms = 0;
        for step in steps_ms {
            now_ms += step;
            let allowed = match policy {
                RestartPolicy::Never => false,
                RestartPolicy::Always => true,
                RestartPolicy::AtMost { restarts, window_ms } => {
                    let in_window = all_restarts_ms.iter().filter(|&&t| now_ms - t < window_ms).count();
                    in_window < restarts as usize
                }
            };
            if allowed {
                all_restarts_ms.push(now_ms);
            }
            let restarts = all_restarts_ms.len() as u32;
            let expected = if allowed {
                RestartDecision::Restart { restarts }
            } else {
                RestartDecision::GiveUp { restarts }
            };
            prop_assert_eq!(budget.on_fault(now_ms), expected);
            prop_assert_eq!(budget.restarts(), restarts);
            // No window of `window_ms` holds more than `restarts` restarts.
            if let RestartPolicy::AtMost { restarts, window_ms } = policy {
                for &from in &all_restarts_ms {
                    let in_window = all_restarts_ms
                        .iter()
                        .filter(|&&t| t >= from && t - from < window_ms)
                        .count();
                    prop_assert!(in_window <= restarts as usize);
                }
            }
        }
    }
}

#[test]
fn registry_from_boot_info() {
    use kaal_bootinfo::{
        BOOT_INFO_MAX_BYTES, BootInfo, BootInfoInput, DeviceDesc, write_boot_info,
    };

    let devices = [
        DeviceDesc {
            base: 0x0900_0000,
            size_bytes: 0x1000,
            irqs: &[33],
            compatible: "arm,pl011\0arm,primecell\0",
        },
        DeviceDesc {
            base: 0x0a00_0000,
            size_bytes: 0x200,
            irqs: &[48, 49],
            compatible: "virtio,mmio",
        },
        DeviceDesc {
            base: 0x0a00_0200,
            size_bytes: 0x200,
            irqs: &[],
            compatible: "virtio,mmio",
        },
    ];
    let input = BootInfoInput {
        devices: &devices,
        ..Default::default()
    };
    let mut page = vec![0u8; BOOT_INFO_MAX_BYTES];
    write_boot_info(&mut page, &input).expect("boot info written");
    let boot = BootInfo::from_bytes(&page).expect("boot info valid");

    let mut registry = DeviceRegistry::from_boot_info(&boot);
    let listed: Vec<_> = registry
        .devices()
        .map(|(record, _)| record.clone())
        .collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].compatible, "arm,pl011\0arm,primecell");
    assert_eq!(listed[1].irqs, [48, 49]);
    let (position, record) = registry.find("virtio,mmio", 1).expect("second virtio");
    assert_eq!((position, record.base), (2, 0x0a00_0200));
    assert_eq!(registry.find("virtio,mmio", 2), None);
    assert_eq!(registry.find("arm", 0), None);

    let uart = registry.claim_device("arm,primecell", 0, Owner(4)).unwrap();
    assert_eq!(uart.irqs, [33]);
    assert_eq!(registry.owner_of_device("arm,pl011", 0), Some(Owner(4)));
    assert_eq!(
        registry.claim_device("arm,pl011", 0, Owner(5)),
        Err(DeviceError::AlreadyGranted {
            compatible: "arm,pl011".into(),
            index: 0,
            owner: Owner(4),
        })
    );
    registry.claim_irq(48, Owner(5)).unwrap();
    assert_eq!(
        registry.claim_device("virtio,mmio", 0, Owner(6)),
        Err(DeviceError::IrqAlreadyGranted {
            line: 48,
            owner: Owner(5)
        })
    );
    assert_eq!(registry.owner_of_device("virtio,mmio", 0), None);
    assert_eq!(
        registry.owner_of_irq(49),
        None,
        "no side effects on a refused claim"
    );
}

#[test]
fn releasing_one_device_keeps_the_owners_other_claims() {
    use kaal_broker::devices::{DeviceRecord, DeviceRegistry, Owner};
    let mut registry = DeviceRegistry::new();
    for (base, irq) in [(0x900_0000u64, 33u32), (0x901_0000, 34)] {
        registry.add(DeviceRecord {
            compatible: "arm,primecell".into(),
            base,
            size_bytes: 0x1000,
            irqs: vec![irq],
        });
    }
    registry.claim_device("arm,primecell", 0, Owner(1)).unwrap();
    registry.claim_device("arm,primecell", 1, Owner(1)).unwrap();
    assert!(registry.release_device("arm,primecell", 1, Owner(1)));
    assert!(!registry.release_device("arm,primecell", 1, Owner(1)));
    assert!(!registry.release_device("arm,primecell", 0, Owner(2)));
    assert_eq!(registry.owner_of_device("arm,primecell", 0), Some(Owner(1)));
    assert_eq!(registry.owner_of_irq(33), Some(Owner(1)));
    assert_eq!(registry.owner_of_device("arm,primecell", 1), None);
    assert_eq!(registry.owner_of_irq(34), None);
}
