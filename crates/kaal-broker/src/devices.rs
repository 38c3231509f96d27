//! Registry of devices and IRQ lines: each is granted to at most one component.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A component, by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner(pub u16);

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "component {}", self.0)
    }
}

/// A device: its register window and interrupt lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device-tree `compatible` list: NUL-separated, most specific first.
    pub compatible: String,
    /// Physical base address of the register window.
    pub base: u64,
    /// Size of the register window in bytes.
    pub size_bytes: u64,
    /// Interrupt lines (GIC INTIDs).
    pub irqs: Vec<u32>,
}

impl DeviceRecord {
    /// The non-empty entries of the `compatible` list.
    pub fn compatible_list(&self) -> impl Iterator<Item = &str> + '_ {
        self.compatible
            .split('\0')
            .filter(|entry| !entry.is_empty())
    }

    /// Whether one entry of the `compatible` list equals `compatible`.
    pub fn is_compatible(&self, compatible: &str) -> bool {
        self.compatible_list().any(|entry| entry == compatible)
    }
}

/// Why a [`DeviceRegistry`] refused a claim.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// There are not `index + 1` devices compatible with `compatible`.
    #[error("no device {index} compatible with {compatible:?}")]
    NotFound {
        /// The compatible string asked for.
        compatible: String,
        /// Which of the compatible devices (0 = first).
        index: u32,
    },
    /// The device is granted already.
    #[error("device {index} compatible with {compatible:?} is granted to {owner} already")]
    AlreadyGranted {
        /// The compatible string asked for.
        compatible: String,
        /// Which of the compatible devices (0 = first).
        index: u32,
        /// Who holds it.
        owner: Owner,
    },
    /// The IRQ line is granted already.
    #[error("IRQ {line} is granted to {owner} already")]
    IrqAlreadyGranted {
        /// The line.
        line: u32,
        /// Who holds it.
        owner: Owner,
    },
    /// The IRQ line belongs to a device claimed by another component.
    #[error("IRQ {line} belongs to a device claimed by another component")]
    IrqOwnedByDevice {
        /// The line.
        line: u32,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    record: DeviceRecord,
    owner: Option<Owner>,
}

#[derive(Clone, Copy, Debug)]
struct IrqGrant {
    owner: Owner,
    /// Granted with a device rather than as a bare line.
    with_device: bool,
}

/// The devices of the machine and who holds each device and IRQ line.
///
/// A device or IRQ line is granted at most once until its owner is released.
///
/// ```
/// use kaal_broker::devices::{DeviceError, DeviceRecord, DeviceRegistry, Owner};
///
/// let mut registry = DeviceRegistry::new();
/// registry.add(DeviceRecord {
///     compatible: "arm,pl011\0arm,primecell".into(),
///     base: 0x0900_0000,
///     size_bytes: 0x1000,
///     irqs: vec![33],
/// });
/// let uart = registry.claim_device("arm,primecell", 0, Owner(1))?;
/// assert_eq!(uart.base, 0x0900_0000);
/// assert_eq!(registry.owner_of_irq(33), Some(Owner(1)));
/// assert_eq!(
///     registry.claim_irq(33, Owner(2)),
///     Err(DeviceError::IrqOwnedByDevice { line: 33 })
/// );
/// registry.release_owner(Owner(1));
/// assert_eq!(registry.owner_of_device("arm,pl011", 0), None);
/// registry.claim_irq(33, Owner(2))?;
/// # Ok::<(), DeviceError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct DeviceRegistry {
    entries: Vec<Entry>,
    irqs: BTreeMap<u32, IrqGrant>,
}

impl DeviceRegistry {
    /// A registry without devices.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an unclaimed device.
    pub fn add(&mut self, record: DeviceRecord) {
        self.entries.push(Entry {
            record,
            owner: None,
        });
    }

    /// The devices listed in the boot info, in device-tree order, all unclaimed.
    pub fn from_boot_info(boot: &kaal_bootinfo::BootInfo<'_>) -> Self {
        let mut registry = Self::new();
        for device in boot.devices() {
            let mut compatible = String::new();
            for (position, entry) in device.compatible_list().enumerate() {
                if position > 0 {
                    compatible.push('\0');
                }
                compatible.push_str(entry);
            }
            registry.add(DeviceRecord {
                compatible,
                base: device.base,
                size_bytes: device.size_bytes,
                irqs: device.irqs().collect(),
            });
        }
        registry
    }

    /// The `index`-th device (0 = first) one of whose `compatible` entries equals
    /// `compatible`, with its position in [`devices`](Self::devices).
    pub fn find(&self, compatible: &str, index: u32) -> Option<(usize, &DeviceRecord)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.record.is_compatible(compatible))
            .nth(usize::try_from(index).ok()?)
            .map(|(position, entry)| (position, &entry.record))
    }

    /// Grants a device and all its IRQ lines to `owner`; returns the device.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NotFound`], [`DeviceError::AlreadyGranted`], or
    /// [`DeviceError::IrqAlreadyGranted`] if one of its lines is held (by anyone).
    /// Nothing changes on error.
    pub fn claim_device(
        &mut self,
        compatible: &str,
        index: u32,
        owner: Owner,
    ) -> Result<DeviceRecord, DeviceError> {
        let (position, record) =
            self.find(compatible, index)
                .ok_or_else(|| DeviceError::NotFound {
                    compatible: compatible.into(),
                    index,
                })?;
        if let Some(holder) = self.entries[position].owner {
            return Err(DeviceError::AlreadyGranted {
                compatible: compatible.into(),
                index,
                owner: holder,
            });
        }
        for &line in &record.irqs {
            if let Some(grant) = self.irqs.get(&line) {
                return Err(DeviceError::IrqAlreadyGranted {
                    line,
                    owner: grant.owner,
                });
            }
        }
        let entry = &mut self.entries[position];
        entry.owner = Some(owner);
        for &line in &entry.record.irqs {
            let with_device = true;
            self.irqs.insert(line, IrqGrant { owner, with_device });
        }
        Ok(entry.record.clone())
    }

    /// Grants a bare IRQ line to `owner`.
    ///
    /// # Errors
    ///
    /// [`DeviceError::IrqOwnedByDevice`] if the line came with a device claimed by
    /// another component, else [`DeviceError::IrqAlreadyGranted`] if it is held.
    pub fn claim_irq(&mut self, line: u32, owner: Owner) -> Result<(), DeviceError> {
        if let Some(grant) = self.irqs.get(&line) {
            return Err(if grant.with_device && grant.owner != owner {
                DeviceError::IrqOwnedByDevice { line }
            } else {
                DeviceError::IrqAlreadyGranted {
                    line,
                    owner: grant.owner,
                }
            });
        }
        let with_device = false;
        self.irqs.insert(line, IrqGrant { owner, with_device });
        Ok(())
    }

    /// Takes back every device and IRQ line `owner` holds.
    pub fn release_owner(&mut self, owner: Owner) {
        for entry in &mut self.entries {
            if entry.owner == Some(owner) {
                entry.owner = None;
            }
        }
        self.irqs.retain(|_, grant| grant.owner != owner);
    }

    /// Takes back one device (and the IRQ lines that came with it) from `owner`;
    /// `false` if `owner` did not hold it.
    pub fn release_device(&mut self, compatible: &str, index: u32, owner: Owner) -> bool {
        let Some((position, _)) = self.find(compatible, index) else {
            return false;
        };
        let entry = &mut self.entries[position];
        if entry.owner != Some(owner) {
            return false;
        }
        entry.owner = None;
        for line in &entry.record.irqs {
            if self
                .irqs
                .get(line)
                .is_some_and(|grant| grant.owner == owner && grant.with_device)
            {
                self.irqs.remove(line);
            }
        }
        true
    }

    /// Takes back a bare IRQ line from `owner`; `false` if `owner` did not hold it
    /// (a line that came with a device goes back with [`release_device`](Self::release_device)).
    pub fn release_irq(&mut self, line: u32, owner: Owner) -> bool {
        let held = self
            .irqs
            .get(&line)
            .is_some_and(|grant| grant.owner == owner && !grant.with_device);
        if held {
            self.irqs.remove(&line);
        }
        held
    }

    /// Who holds the device [`find`](Self::find) names.
    pub fn owner_of_device(&self, compatible: &str, index: u32) -> Option<Owner> {
        let (position, _) = self.find(compatible, index)?;
        self.entries[position].owner
    }

    /// Who holds an IRQ line.
    pub fn owner_of_irq(&self, line: u32) -> Option<Owner> {
        self.irqs.get(&line).map(|grant| grant.owner)
    }

    /// Every device, in order, with its holder.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceRecord, Option<Owner>)> {
        self.entries
            .iter()
            .map(|entry| (&entry.record, entry.owner))
    }
}
