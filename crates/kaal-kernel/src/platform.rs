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
///
/// Besides the header, the whole structure block is checked (see [`check_structure`]),
/// so that reading the tree afterwards cannot panic inside the `fdt` crate, whatever
/// the blob holds.
pub fn parse_blob(bytes: &[u8]) -> Result<Fdt<'_>, PlatformError> {
    let tree = Fdt::new(bytes).map_err(|error| {
        PlatformError::InvalidBlob(match error {
            fdt::FdtError::BadMagic => "bad magic",
            fdt::FdtError::BadPtr => "null pointer",
            fdt::FdtError::BufferTooSmall => "blob shorter than its header's total size",
        })
    })?;
    check_structure(bytes).map_err(PlatformError::InvalidBlob)?;
    Ok(tree)
}

/// Deepest node nesting [`check_structure`] accepts (the root node is at depth 1).
pub const MAX_TREE_DEPTH: usize = 32;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Size of the version-17 header fields [`check_structure`] reads.
const FDT_HEADER_BYTES: usize = 40;

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let (word, _) = bytes.get(at..)?.split_first_chunk::<4>()?;
    Some(u32::from_be_bytes(*word))
}

/// The block `[offset, offset + size)` of the first `total` bytes of `bytes`.
fn block(bytes: &[u8], total: usize, offset: u32, size: u32) -> Option<&[u8]> {
    let start = offset as usize;
    let end = start.checked_add(size as usize)?;
    bytes.get(..total)?.get(start..end)
}

/// The NUL-terminated UTF-8 string at `at` in `bytes`, without its NUL.
fn c_string(bytes: &[u8], at: usize) -> Option<&str> {
    let rest = bytes.get(at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&rest[..len]).ok()
}

/// Checks that a device tree blob has the shape the `fdt` crate assumes without checking
/// (it panics, or recurses without end, on anything else), naming the first problem.
///
/// What is required, beyond the magic and the total size that `Fdt::new` checks: the
/// structure, strings and memory-reservation blocks inside the blob; a structure block of
/// exactly one root node (with an empty name) followed by `FDT_END`, each node its name
/// (NUL-terminated UTF-8), its properties, then its child nodes, nested at most
/// [`MAX_TREE_DEPTH`] deep; every property inside the block, its name a NUL-terminated
/// UTF-8 string of the strings block; `#address-cells` and `#size-cells` of at least four
/// bytes; in `/aliases`, no alias name starting with `/` and every alias an absolute path
/// (so resolving one cannot loop). `FDT_NOP` tokens are refused: the `fdt` crate does not
/// skip them everywhere.
pub fn check_structure(bytes: &[u8]) -> Result<(), &'static str> {
    let field = |index: usize| be32(bytes, index * 4).ok_or("blob shorter than its header");
    let total = field(1)? as usize;
    if total < FDT_HEADER_BYTES || total > bytes.len() {
        return Err("header's total size out of range");
    }
    let structure =
        block(bytes, total, field(2)?, field(9)?).ok_or("structure block outside the blob")?;
    let strings =
        block(bytes, total, field(3)?, field(8)?).ok_or("strings block outside the blob")?;
    if field(4)? as usize > total {
        return Err("memory reservation block outside the blob");
    }

    let mut at = 0usize;
    let mut depth = 0usize;
    let mut seen_root = false;
    // Whether properties may still come: only before a node's first child.
    let mut properties_open = false;
    // Whether the current node is `/aliases` (a child of the root named `aliases[@...]`).
    let mut in_aliases = false;
    loop {
        let token = be32(structure, at).ok_or("structure block ends without FDT_END")?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                if depth == 0 && seen_root {
                    return Err("more than one root node");
                }
                let name =
                    c_string(structure, at).ok_or("node name not a NUL-terminated UTF-8 string")?;
                if depth == 0 && !name.is_empty() {
                    return Err("root node has a name");
                }
                depth += 1;
                if depth > MAX_TREE_DEPTH {
                    return Err("nodes nested too deep");
                }
                seen_root = true;
                properties_open = true;
                in_aliases = depth == 2 && name.split('@').next() == Some("aliases");
                at = (at + name.len() + 1).next_multiple_of(4);
            }
            FDT_PROP => {
                if !properties_open {
                    return Err("property after a child node");
                }
                let len =
                    be32(structure, at).ok_or("property header outside the structure block")?;
                let name_offset =
                    be32(structure, at + 4).ok_or("property header outside the structure block")?;
                at += 8;
                let value = at
                    .checked_add(len as usize)
                    .and_then(|end| structure.get(at..end))
                    .ok_or("property value outside the structure block")?;
                let name = c_string(strings, name_offset as usize).ok_or(
                    "property name not a NUL-terminated UTF-8 string of the strings block",
                )?;
                if (name == "#address-cells" || name == "#size-cells") && value.len() < 4 {
                    return Err("#address-cells or #size-cells shorter than a cell");
                }
                if in_aliases {
                    let path = core::str::from_utf8(value).map(|p| p.trim_end_matches('\0'));
                    if name.starts_with('/') || path.is_ok_and(|p| !p.starts_with('/')) {
                        return Err("alias that is not a name for an absolute path");
                    }
                }
                at = (at + value.len()).next_multiple_of(4);
            }
            FDT_END_NODE => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("FDT_END_NODE outside any node")?;
                properties_open = false;
                in_aliases = false;
            }
            FDT_END if depth == 0 && seen_root => return Ok(()),
            FDT_END => return Err("FDT_END inside a node or before the root node"),
            FDT_NOP => return Err("FDT_NOP tokens are not supported"),
            _ => return Err("unknown token in the structure block"),
        }
    }
}

/// The `/chosen` node, if the tree has one.
fn chosen<'b, 'a>(tree: &'b Fdt<'a>) -> Option<FdtNode<'b, 'a>> {
    tree.find_node("/chosen")
}

/// A string property, without its trailing NULs; `None` if absent or not UTF-8.
fn string_property<'a>(node: FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
    let value = node.property(name)?.value;
    core::str::from_utf8(value)
        .ok()
        .map(|s| s.trim_end_matches('\0'))
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

        // `stdout-path` is a path or an alias, optionally followed by `:` and options.
        let uart = chosen(tree)
            .and_then(|node| string_property(node, "stdout-path"))
            .and_then(|path| tree.find_node(path.split(':').next().unwrap_or(path)))
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

        let cpus = tree.find_node("/cpus").map_or(0, |cpus| {
            cpus.children()
                .filter(|c| c.name.split('@').next() == Some("cpu"))
                .count()
        });
        let cpu_count = u32::try_from(cpus).unwrap_or(u32::MAX).max(1);
        let bootargs = chosen(tree)
            .and_then(|node| string_property(node, "bootargs"))
            .unwrap_or("");
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

    /// Total RAM in bytes (saturating: a hostile tree may describe more than 2^64).
    pub fn ram_bytes(&self) -> u64 {
        self.memory()
            .iter()
            .fold(0, |total: u64, range| total.saturating_add(range.size()))
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

impl DeviceNode<'_> {
    /// The boot info's description of this device, with its interrupt IDs `irqs`
    /// (collected from [`interrupt_ids`] by the caller, who keeps them alive).
    pub fn desc<'b>(&'b self, irqs: &'b [u32]) -> kaal_bootinfo::DeviceDesc<'b> {
        kaal_bootinfo::DeviceDesc {
            base: self.region.start,
            size_bytes: self.region.size(),
            irqs,
            compatible: self.compatible,
        }
    }
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

/// Why a device region of the tree is not handed to user space as device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Withheld {
    /// Empty, or its end cannot be rounded up to a page.
    #[error("its range cannot be widened to whole pages")]
    NotPages,
    /// It shares a page with RAM.
    #[error("it overlaps RAM")]
    Ram,
    /// It shares a page with a memory reservation of the tree.
    #[error("it overlaps a firmware memory reservation")]
    Reserved,
    /// It shares a page with a device the kernel drives itself.
    #[error("it overlaps a device the kernel drives")]
    KernelDevice,
}

/// The pages user space may get as device memory for one device `region`: the region
/// widened to whole pages, unless those touch RAM (`ram`: device memory over RAM would
/// let a task map kernel or other tasks' memory uncached, outside every untyped), a
/// memory reservation of the tree (`reserved`: firmware's) or a region the kernel keeps
/// for itself (`kernel`: its console, interrupt controller); then it says which.
pub fn device_pages(
    region: PhysRange,
    kernel: &[PhysRange],
    ram: &[PhysRange],
    reserved: &[PhysRange],
) -> Result<PhysRange, Withheld> {
    const PAGE: u64 = 4096;
    let pages = PhysRange {
        start: region.start & !(PAGE - 1),
        end: region
            .end
            .checked_next_multiple_of(PAGE)
            .ok_or(Withheld::NotPages)?,
    };
    let overlaps = |other: &PhysRange| pages.start < other.end && other.start < pages.end;
    if pages.start >= pages.end {
        Err(Withheld::NotPages)
    } else if ram.iter().any(overlaps) {
        Err(Withheld::Ram)
    } else if reserved.iter().any(overlaps) {
        Err(Withheld::Reserved)
    } else if kernel.iter().any(overlaps) {
        Err(Withheld::KernelDevice)
    } else {
        Ok(pages)
    }
}

/// Whether a device (its `compatible` list, entries separated by NUL) is a part of the
/// interrupt controller that the kernel keeps from user space like the GIC itself: a
/// GICv3 ITS (which reads and writes its tables in memory by DMA) or a GICv2m MSI frame
/// (whose holder could raise any SPI).
///
/// ```
/// use kaal_kernel::platform::is_interrupt_controller_part;
///
/// assert!(is_interrupt_controller_part("arm,gic-v3-its"));
/// assert!(is_interrupt_controller_part("arm,gic-v2m-frame"));
/// assert!(!is_interrupt_controller_part("arm,pl031\0arm,primecell"));
/// ```
pub fn is_interrupt_controller_part(compatible: &str) -> bool {
    compatible
        .split('\0')
        .any(|entry| matches!(entry, "arm,gic-v3-its" | "arm,gic-v2m-frame"))
}

/// The pages user space may get as device memory: every device region of the tree that
/// [`device_pages`] allows, widened to whole pages, sorted and merged.
pub fn user_device_pages(
    devices: impl Iterator<Item = PhysRange>,
    kernel: &[PhysRange],
    ram: &[PhysRange],
    reserved: &[PhysRange],
) -> alloc::vec::Vec<PhysRange> {
    let mut pages: alloc::vec::Vec<PhysRange> = devices
        .filter_map(|region| device_pages(region, kernel, ram, reserved).ok())
        .collect();
    pages.sort_by_key(|r| r.start);
    let mut merged: alloc::vec::Vec<PhysRange> = alloc::vec::Vec::new();
    for range in pages {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_gic_s_msi_frames_are_the_kernel_s() {
        use super::is_interrupt_controller_part as part;
        assert!(part("arm,gic-v3-its"));
        assert!(part("vendor,its\0arm,gic-v3-its"));
        assert!(part("arm,gic-v2m-frame"));
        assert!(!part("arm,gic-v3"));
        assert!(!part("virtio,mmio"));
        assert!(!part(""));
    }

    #[test]
    fn device_pages_never_cover_ram_reservations_or_the_kernels_devices() {
        let r = |start, end| PhysRange { start, end };
        let devices = [
            r(0x0900_0000, 0x0900_1000), // the kernel's UART
            r(0x0901_0000, 0x0901_0010), // a small device: widened to its page
            r(0x0a00_0000, 0x0a00_0200),
            r(0x0a00_0200, 0x0a00_0400),        // same page: merged
            r(0x4000_0000, 0x4000_1000),        // over RAM
            r(0x3000_0000, 0x3000_1000),        // a firmware reservation
            r(0xffff_ffff_ffff_f001, u64::MAX), // cannot be rounded up
        ];
        let pages = user_device_pages(
            devices.into_iter(),
            &[r(0x0900_0000, 0x0900_1000)],
            &[r(0x4000_0000, 0x5000_0000)],
            &[r(0x3000_0000, 0x3000_2000)],
        );
        assert_eq!(
            pages,
            [r(0x0901_0000, 0x0901_1000), r(0x0a00_0000, 0x0a00_1000)]
        );
        // Each dropped region with its reason, for the kernel's boot log.
        let why = |region| {
            device_pages(
                region,
                &[r(0x0900_0000, 0x0900_1000)],
                &[r(0x4000_0000, 0x5000_0000)],
                &[r(0x3000_0000, 0x3000_2000)],
            )
        };
        assert_eq!(why(devices[0]), Err(Withheld::KernelDevice));
        assert_eq!(why(devices[4]), Err(Withheld::Ram));
        assert_eq!(why(r(0x3fff_f800, 0x4000_0010)), Err(Withheld::Ram));
        assert_eq!(why(devices[5]), Err(Withheld::Reserved));
        assert_eq!(why(devices[6]), Err(Withheld::NotPages));
        assert_eq!(why(devices[1]), Ok(r(0x0901_0000, 0x0901_1000)));
    }

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

    /// Builds device tree blobs token by token, well-formed or not.
    #[derive(Default)]
    struct Blob {
        structure: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Blob {
        fn token(&mut self, token: u32) -> &mut Self {
            self.structure.extend_from_slice(&token.to_be_bytes());
            self
        }

        fn begin(&mut self, name: &str) -> &mut Self {
            self.token(FDT_BEGIN_NODE);
            self.structure.extend_from_slice(name.as_bytes());
            self.structure.push(0);
            self.structure
                .resize(self.structure.len().next_multiple_of(4), 0);
            self
        }

        fn name_offset(&mut self, name: &str) -> u32 {
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            offset
        }

        fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let offset = self.name_offset(name);
            self.raw_prop(offset, value.len() as u32, value)
        }

        fn raw_prop(&mut self, name_offset: u32, len: u32, value: &[u8]) -> &mut Self {
            self.token(FDT_PROP);
            self.structure.extend_from_slice(&len.to_be_bytes());
            self.structure.extend_from_slice(&name_offset.to_be_bytes());
            self.structure.extend_from_slice(value);
            self.structure
                .resize(self.structure.len().next_multiple_of(4), 0);
            self
        }

        fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
            let value: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
            self.prop(name, &value)
        }

        fn end(&mut self) -> &mut Self {
            self.token(FDT_END_NODE)
        }

        /// Header, empty memory reservation block, structure block, strings block.
        fn finish(&self) -> Vec<u8> {
            let structure_at = 40 + 16;
            let strings_at = structure_at + self.structure.len();
            let total = strings_at + self.strings.len();
            let mut out = Vec::with_capacity(total);
            for word in [
                0xd00d_feed,
                total as u32,
                structure_at as u32,
                strings_at as u32,
                40,
                17,
                16,
                0,
                self.strings.len() as u32,
                self.structure.len() as u32,
            ] {
                out.extend_from_slice(&u32::to_be_bytes(word));
            }
            out.resize(structure_at, 0);
            out.extend_from_slice(&self.structure);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A small `virt`-like tree: memory, a PL011, a GICv2 and the timer, then `tail`
    /// (more nodes of the root), without `/chosen` or `/cpus` unless `tail` adds them.
    fn machine(tail: impl FnOnce(&mut Blob)) -> Vec<u8> {
        let mut blob = Blob::default();
        blob.begin("")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2]);
        blob.begin("memory@40000000")
            .cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000])
            .end();
        blob.begin("pl011@9000000")
            .prop("compatible", b"arm,pl011\0arm,primecell\0")
            .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
            .cells("interrupts", &[0, 1, 4])
            .end();
        blob.begin("intc@8000000")
            .prop("compatible", b"arm,cortex-a15-gic\0")
            .cells(
                "reg",
                &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x0801_0000, 0, 0x1_0000],
            )
            .end();
        blob.begin("timer")
            .prop("compatible", b"arm,armv8-timer\0")
            .cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
            .end();
        tail(&mut blob);
        blob.end().token(FDT_END);
        blob.finish()
    }

    fn invalid(bytes: &[u8]) -> &'static str {
        match parse_blob(bytes) {
            Err(PlatformError::InvalidBlob(why)) => why,
            other => panic!("accepted or wrong error: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn every_qemu_tree_passes_the_structure_check() {
        assert_eq!(check_structure(GICV2), Ok(()));
        assert_eq!(check_structure(GICV3), Ok(()));
        assert_eq!(check_structure(&machine(|_| {})), Ok(()));
    }

    /// Regression tests for trees the `fdt` crate panicked on (found by fuzzing
    /// `parse_blob` and `Platform::from_fdt`): each is now refused with a named error.
    #[test]
    fn malformed_structure_blocks_are_named_errors_not_panics() {
        // A node's properties interleaved with FDT_NOP: the crate asserted "bad node".
        let nop = machine(|b| {
            b.begin("chosen")
                .token(FDT_NOP)
                .prop("bootargs", b"x\0")
                .end();
        });
        assert_eq!(invalid(&nop), "FDT_NOP tokens are not supported");
        // A node without FDT_END_NODE (the structure block ends first).
        let mut blob = Blob::default();
        blob.begin("").begin("memory");
        assert_eq!(
            invalid(&blob.finish()),
            "structure block ends without FDT_END"
        );
        // FDT_END_NODE with no node open: the crate's depth counter underflowed.
        let mut blob = Blob::default();
        blob.begin("").end().end().token(FDT_END);
        assert_eq!(invalid(&blob.finish()), "FDT_END_NODE outside any node");
        // A property after a child node.
        let mut blob = Blob::default();
        blob.begin("")
            .begin("a")
            .end()
            .prop("x", b"")
            .end()
            .token(FDT_END);
        assert_eq!(invalid(&blob.finish()), "property after a child node");
        // A property name past the strings block: the crate sliced out of bounds.
        let mut blob = Blob::default();
        blob.begin("").raw_prop(0x1000, 0, &[]).end().token(FDT_END);
        assert!(invalid(&blob.finish()).starts_with("property name"));
        // A property value past the structure block.
        let mut blob = Blob::default();
        blob.begin("").raw_prop(0, 0x1000, &[]);
        blob.name_offset("x");
        assert_eq!(
            invalid(&blob.finish()),
            "property value outside the structure block"
        );
        // `#address-cells` shorter than a cell: the crate's `reg()` expected four bytes.
        let mut blob = Blob::default();
        blob.begin("")
            .prop("#address-cells", &[0, 1])
            .begin("memory")
            .cells("reg", &[0x4000_0000, 0x1000])
            .end()
            .end()
            .token(FDT_END);
        assert_eq!(
            invalid(&blob.finish()),
            "#address-cells or #size-cells shorter than a cell"
        );
        // Nesting deeper than the crate's fixed parent stack.
        let mut blob = Blob::default();
        blob.begin("");
        for _ in 0..MAX_TREE_DEPTH {
            blob.begin("n");
        }
        assert_eq!(invalid(&blob.finish()), "nodes nested too deep");
        // Two aliases naming each other: resolving `stdout-path` recursed without end.
        let loop_ = machine(|b| {
            b.begin("aliases")
                .prop("serial0", b"serial1\0")
                .prop("serial1", b"serial0\0")
                .end();
            b.begin("chosen").prop("stdout-path", b"serial0\0").end();
        });
        assert_eq!(
            invalid(&loop_),
            "alias that is not a name for an absolute path"
        );
        // A blob whose structure block lies past its end.
        let mut bytes = machine(|_| {});
        bytes[8..12].copy_from_slice(&0x0fff_fff0u32.to_be_bytes());
        assert_eq!(invalid(&bytes), "structure block outside the blob");
    }

    /// Regression tests for well-formed trees the kernel's reading panicked on: no
    /// `/chosen` (`Fdt::chosen` panicked), no `/cpus` (`Fdt::cpus` panicked), an empty
    /// `bootargs` or `stdout-path` (the crate sliced `[..len - 1]`).
    #[test]
    fn optional_nodes_and_empty_strings_do_not_panic() {
        let bare = machine(|_| {});
        let tree = parse_blob(&bare).unwrap();
        let platform = Platform::from_fdt(&tree).unwrap();
        assert_eq!(platform.uart, PhysRange::new(0x0900_0000, 0x1000));
        assert_eq!(platform.cpu_count, 1);
        assert_eq!(platform.bootargs, "");
        assert_eq!(platform.virtual_timer_irq, 27);

        let empty = machine(|b| {
            b.begin("chosen")
                .prop("bootargs", b"")
                .prop("stdout-path", b"")
                .end();
            b.begin("cpus")
                .cells("#address-cells", &[1])
                .cells("#size-cells", &[0]);
            for name in ["cpu@0", "cpu@1", "cpu-map"] {
                b.begin(name).end();
            }
            b.end();
        });
        let tree = parse_blob(&empty).unwrap();
        let platform = Platform::from_fdt(&tree).unwrap();
        assert_eq!(platform.bootargs, "");
        assert_eq!(platform.cpu_count, 2);
        assert_eq!(platform.uart.start, 0x0900_0000);
    }

    /// Regression test: memory regions adding up to more than 2^64 bytes made
    /// `ram_bytes` overflow.
    #[test]
    fn total_ram_saturates() {
        let blob = machine(|b| {
            b.begin("memory@1000")
                .cells("reg", &[0, 0x1000, u32::MAX, 0xffff_f000])
                .end();
        });
        let tree = parse_blob(&blob).unwrap();
        let platform = Platform::from_fdt(&tree).unwrap();
        assert_eq!(platform.memory().len(), 2);
        assert_eq!(platform.ram_bytes(), u64::MAX);
    }

    #[test]
    fn stdout_path_may_be_an_alias_with_options() {
        let blob = machine(|b| {
            b.begin("pl011@9040000")
                .prop("compatible", b"arm,pl011\0")
                .cells("reg", &[0, 0x0904_0000, 0, 0x1000])
                .end();
            b.begin("aliases")
                .prop("serial1", b"/pl011@9040000\0")
                .end();
            b.begin("chosen")
                .prop("stdout-path", b"serial1:115200n8\0")
                .prop("bootargs", b"console=pl011\0")
                .end();
        });
        let tree = parse_blob(&blob).unwrap();
        let platform = Platform::from_fdt(&tree).unwrap();
        assert_eq!(platform.uart, PhysRange::new(0x0904_0000, 0x1000));
        assert_eq!(platform.bootargs, "console=pl011");
    }
}
