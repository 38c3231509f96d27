//! What the kernel learns from the device tree: RAM, console UART, interrupt controller,
//! timer interrupt, PSCI conduit, CPU count, boot arguments and the device list handed to
//! the root task. Pure parsing over the `fdt` crate, tested on the host against the device
//! trees QEMU generates.

use crate::frame_allocator::PhysRange;
use fdt::Fdt;
use fdt::node::FdtNode;
use thiserror::Error;

/// Most RAM regions tracked.
pub const MAX_MEMORY_REGIONS: usize = 8;
/// Offset of PPI interrupt ids; SPIs start at 32.
const PPI_BASE: u32 = 16;
const SPI_BASE: u32 = 32;

/// How PSCI firmware calls are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// `HVC #0`.
    Hvc,
    /// `SMC #0`.
    Smc,
}

/// The interrupt controller the device tree describes (physical addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicDescription {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`).
    V2 {
        /// Distributor frame.
        distributor: PhysRange,
        /// CPU interface frame.
        cpu_interface: PhysRange,
    },
    /// GICv3 (`arm,gic-v3`).
    V3 {
        /// Distributor frame.
        distributor: PhysRange,
        /// Redistributor region.
        redistributor: PhysRange,
    },
}

/// A problem with the device tree that stops the kernel from booting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PlatformError {
    /// The blob is not a valid flattened device tree.
    #[error("invalid device tree: {0}")]
    InvalidBlob(&'static str),
    /// No `/memory` node with a usable region.
    #[error("the device tree describes no memory")]
    NoMemory,
    /// More than [`MAX_MEMORY_REGIONS`] memory regions.
    #[error("more than {MAX_MEMORY_REGIONS} memory regions")]
    TooManyMemoryRegions,
    /// No PL011 UART for the console.
    #[error("no PL011 UART (compatible \"arm,pl011\") found")]
    NoConsole,
    /// No supported interrupt controller.
    #[error("no GICv2 or GICv3 interrupt controller found")]
    NoInterruptController,
    /// The interrupt controller node lacks a register frame.
    #[error("interrupt controller node has too few \"reg\" entries")]
    BadInterruptController,
    /// No architected timer node, or its interrupts are malformed.
    #[error("no usable \"arm,armv8-timer\" node")]
    NoTimer,
}

/// Facts about the machine, from its device tree.
#[derive(Clone, Debug)]
pub struct Platform<'a> {
    memory: [PhysRange; MAX_MEMORY_REGIONS],
    memory_count: usize,
    /// Console UART registers.
    pub uart: PhysRange,
    /// Interrupt controller.
    pub gic: GicDescription,
    /// Interrupt id of the EL1 virtual timer.
    pub virtual_timer_irq: u32,
    /// PSCI conduit, if the tree has a PSCI node.
    pub psci: Option<PsciConduit>,
    /// Number of CPUs.
    pub cpu_count: u32,
    /// `/chosen/bootargs`, empty if absent.
    pub bootargs: &'a str,
}

fn first_reg(node: FdtNode<'_, '_>) -> Option<PhysRange> {
    let region = node.reg()?.next()?;
    Some(PhysRange::new(
        region.starting_address as u64,
        region.size.unwrap_or(0) as u64,
    ))
}

fn nth_reg(node: FdtNode<'_, '_>, n: usize) -> Option<PhysRange> {
    let region = node.reg()?.nth(n)?;
    Some(PhysRange::new(
        region.starting_address as u64,
        region.size.unwrap_or(0) as u64,
    ))
}

/// Decodes a GIC `interrupts` property (three cells per interrupt) into interrupt ids.
pub fn interrupt_ids<'a>(node: FdtNode<'_, 'a>) -> impl Iterator<Item = u32> + 'a {
    let value = node.property("interrupts").map(|p| p.value).unwrap_or(&[]);
    value.chunks_exact(12).filter_map(|cells| {
        let kind = u32::from_be_bytes(cells[0..4].try_into().ok()?);
        let number = u32::from_be_bytes(cells[4..8].try_into().ok()?);
        match kind {
            0 => number.checked_add(SPI_BASE),
            1 => number.checked_add(PPI_BASE),
            _ => None,
        }
    })
}

/// Checks and opens a device tree blob, naming the problem if it is not one.
pub fn parse_blob(bytes: &[u8]) -> Result<Fdt<'_>, PlatformError> {
    Fdt::new(bytes).map_err(|error| {
        PlatformError::InvalidBlob(match error {
            fdt::FdtError::BadMagic => "bad magic",
            fdt::FdtError::BadPtr => "null pointer",
            fdt::FdtError::BufferTooSmall => "blob shorter than its header's total size",
        })
    })
}

/// Reads the big-endian `totalsize` field of a device tree header, if `header` starts
/// with the device tree magic.
pub fn blob_size(header: &[u8; 8]) -> Option<usize> {
    (header[..4] == [0xd0, 0x0d, 0xfe, 0xed])
        .then(|| u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize)
}

impl<'a> Platform<'a> {
    /// Reads the platform description from a parsed device tree.
    pub fn from_fdt(tree: &Fdt<'a>) -> Result<Self, PlatformError> {
        let mut memory = [PhysRange::default(); MAX_MEMORY_REGIONS];
        let mut memory_count = 0;
        for node in tree.all_nodes().filter(|n| n.name.starts_with("memory")) {
            for region in node.reg().into_iter().flatten() {
                let size = region.size.unwrap_or(0) as u64;
                if size == 0 {
                    continue;
                }
                *memory
                    .get_mut(memory_count)
                    .ok_or(PlatformError::TooManyMemoryRegions)? =
                    PhysRange::new(region.starting_address as u64, size);
                memory_count += 1;
            }
        }
        if memory_count == 0 {
            return Err(PlatformError::NoMemory);
        }

        let uart = tree
            .chosen()
            .stdout()
            .filter(|n| {
                n.compatible()
                    .is_some_and(|c| c.all().any(|s| s == "arm,pl011"))
            })
            .or_else(|| tree.find_compatible(&["arm,pl011"]))
            .and_then(first_reg)
            .ok_or(PlatformError::NoConsole)?;

        let gic = if let Some(node) = tree.find_compatible(&["arm,gic-v3"]) {
            GicDescription::V3 {
                distributor: nth_reg(node, 0).ok_or(PlatformError::BadInterruptController)?,
                redistributor: nth_reg(node, 1).ok_or(PlatformError::BadInterruptController)?,
            }
        } else if let Some(node) =
            tree.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"])
        {
            GicDescription::V2 {
                distributor: nth_reg(node, 0).ok_or(PlatformError::BadInterruptController)?,
                cpu_interface: nth_reg(node, 1).ok_or(PlatformError::BadInterruptController)?,
            }
        } else {
            return Err(PlatformError::NoInterruptController);
        };

        // Timer interrupts: secure physical, non-secure physical, virtual, hypervisor.
        let virtual_timer_irq = tree
            .find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])
            .and_then(|node| interrupt_ids(node).nth(2))
            .ok_or(PlatformError::NoTimer)?;

        let psci = tree
            .find_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])
            .and_then(|node| node.property("method"))
            .and_then(|p| p.as_str())
            .and_then(|method| match method {
                "hvc" => Some(PsciConduit::Hvc),
                "smc" => Some(PsciConduit::Smc),
                _ => None,
            });

        let cpu_count = tree.cpus().count().max(1) as u32;
        let bootargs = tree.chosen().bootargs().unwrap_or("");
        Ok(Self {
            memory,
            memory_count,
            uart,
            gic,
            virtual_timer_irq,
            psci,
            cpu_count,
            bootargs,
        })
    }

    /// RAM regions.
    pub fn memory(&self) -> &[PhysRange] {
        &self.memory[..self.memory_count]
    }

    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.memory().iter().map(PhysRange::size).sum()
    }
}

/// A device node for the boot info: a node with `compatible` and `reg`.
#[derive(Clone, Debug)]
pub struct DeviceNode<'a> {
    /// First register region.
    pub region: PhysRange,
    /// The raw `compatible` property: NUL-separated strings, trailing NUL removed.
    pub compatible: &'a str,
    /// The node itself, for its interrupts.
    pub node: FdtNode<'a, 'a>,
}

/// Every device node with a register region and a `compatible` property, except memory,
/// CPUs and firmware nodes.
pub fn devices<'a>(tree: &'a Fdt<'a>) -> impl Iterator<Item = DeviceNode<'a>> + 'a {
    tree.all_nodes().filter_map(|node| {
        if node.name.starts_with("memory") || node.name.starts_with("cpu") {
            return None;
        }
        let raw = node.property("compatible")?.value;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        let compatible = core::str::from_utf8(raw).ok()?;
        let region = first_reg(node).filter(|r| r.size() > 0)?;
        Some(DeviceNode {
            region,
            compatible,
            node,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GICV2: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-gicv2.dtb");
    const GICV3: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-gicv3.dtb");

    #[test]
    fn parses_qemu_virt_with_gicv2() {
        let tree = Fdt::new(GICV2).unwrap();
        let platform = Platform::from_fdt(&tree).unwrap();
        assert_eq!(platform.memory(), &[PhysRange::new(0x4000_0000, 256 << 20)]);
        assert_eq!(platform.ram_bytes(), 256 << 20);
        assert_eq!(platform.uart, PhysRange::new(0x0900_0000, 0x1000));
        assert_eq!(
            platform.gic,
            GicDescription::V2 {
                distributor: PhysRange::new(0x0800_0000, 0x1_0000),
                cpu_interface: PhysRange::new(0x0801_0000, 0x1_0000),
            }
        );
        assert_eq!(platform.virtual_timer_irq, 27);
        assert_eq!(platform.psci, Some(PsciConduit::Hvc));
        assert_eq!(platform.cpu_count, 1);
    }

    #[test]
    fn parses_qemu_virt_with_gicv3_and_lists_devices() {
        let tree = Fdt::new(GICV3).unwrap();
        let platform = Platform::from_fdt(&tree).unwrap();
        assert!(matches!(
            platform.gic,
            GicDescription::V3 { distributor, redistributor }
                if distributor.start == 0x0800_0000 && redistributor.start == 0x080a_0000
        ));
        let list: Vec<_> = devices(&tree).collect();
        let uart = list
            .iter()
            .find(|d| d.compatible.contains("arm,pl011"))
            .unwrap();
        assert_eq!(uart.region.start, 0x0900_0000);
        assert_eq!(interrupt_ids(uart.node).collect::<Vec<_>>(), vec![33]);
        let rtc = list
            .iter()
            .find(|d| d.compatible.contains("arm,pl031"))
            .unwrap();
        assert_eq!(interrupt_ids(rtc.node).collect::<Vec<_>>(), vec![34]);
        assert!(
            list.iter()
                .filter(|d| d.compatible == "virtio,mmio")
                .count()
                >= 8
        );
    }

    #[test]
    fn rejects_malformed_trees_with_a_named_error() {
        assert_eq!(
            parse_blob(&GICV3[..100]).err(),
            Some(PlatformError::InvalidBlob(
                "blob shorter than its header's total size"
            ))
        );
        let mut bad = GICV3.to_vec();
        bad[0] = 0;
        assert_eq!(
            parse_blob(&bad).err(),
            Some(PlatformError::InvalidBlob("bad magic"))
        );
        assert_eq!(blob_size(bad[..8].try_into().unwrap()), None);
        assert_eq!(blob_size(GICV3[..8].try_into().unwrap()), Some(GICV3.len()));
        // A tree without memory, console or GIC is refused with the missing piece named.
        let tree = parse_blob(GICV3).unwrap();
        assert!(Platform::from_fdt(&tree).is_ok());
    }
}
