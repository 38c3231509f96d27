//! What the kernel learns from the device tree: RAM, console UART, interrupt controller,
//! timer interrupt, PSCI conduit, CPU count, boot arguments and the device list handed to
//! the root task. Pure parsing, tested on the host against the device trees QEMU
//! generates (and, for every tree, against a reading with the `fdt` crate, which this
//! reader replaced).
//!
//! The blob is checked whole first ([`check_structure`]); after that a walk over it reads
//! tokens whose bounds are known, and a property is found by comparing its name's bytes
//! in the strings block. The `fdt` crate made a checked UTF-8 string of every property
//! name it passed, and its searches walked the tree again for every question: the boot's
//! reading of QEMU virt's tree (56 nodes, 221 properties) took 1.9 million instructions,
//! half the boot; it now takes 285,000 (`docs/benchmarks.md`).

use crate::frame_allocator::PhysRange;
use thiserror::Error;

/// Most RAM regions tracked.
pub const MAX_MEMORY_REGIONS: usize = 8;
/// Most CPUs the kernel starts (further `cpu` nodes are counted, not started).
pub const MAX_CPUS: usize = 8;
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
    /// PSCI `CPU_ON`'s function id: the standard one (SMC64) where the node is
    /// compatible with PSCI 0.2 or later, else (PSCI 0.1) its `cpu_on` property, if any.
    pub psci_cpu_on: Option<u32>,
    /// Number of CPUs.
    pub cpu_count: u32,
    /// The affinity (`MPIDR_EL1` `Aff3..Aff0`, as the `reg` of each `/cpus/cpu` node) of
    /// the first [`MAX_CPUS`] CPUs with one, in tree order.
    cpu_affinities: [u64; MAX_CPUS],
    cpu_affinity_count: usize,
    /// `/chosen/bootargs`, empty if absent.
    pub bootargs: &'a str,
}

fn first_reg(node: Node<'_>) -> Option<PhysRange> {
    nth_reg(node, 0)
}

fn nth_reg(node: Node<'_>, n: usize) -> Option<PhysRange> {
    let (start, size) = node.reg()?.nth(n)?;
    Some(PhysRange::new(start, size.unwrap_or(0)))
}

/// Decodes a GIC `interrupts` property (three cells per interrupt) into interrupt ids.
pub fn interrupt_ids<'a>(node: Node<'a>) -> impl Iterator<Item = u32> + 'a {
    let value = node.property("interrupts").unwrap_or(&[]);
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
/// so that reading the tree afterwards cannot fail or panic, whatever the blob holds.
pub fn parse_blob(bytes: &[u8]) -> Result<DeviceTree<'_>, PlatformError> {
    let field = |index: usize| be32(bytes, index * 4);
    if bytes.len() < FDT_HEADER_BYTES {
        return Err(PlatformError::InvalidBlob(
            "blob shorter than its header's total size",
        ));
    }
    if field(0) != Some(FDT_MAGIC) {
        return Err(PlatformError::InvalidBlob("bad magic"));
    }
    if field(1).is_none_or(|total| total as usize > bytes.len()) {
        return Err(PlatformError::InvalidBlob(
            "blob shorter than its header's total size",
        ));
    }
    let blocks = check_blocks(bytes).map_err(PlatformError::InvalidBlob)?;
    Ok(DeviceTree {
        data: bytes,
        structure: blocks.structure,
        strings: blocks.strings,
        reservations: blocks.reservations,
    })
}

/// A device tree blob that [`parse_blob`] checked, and the kernel's reader of it.
#[derive(Clone, Copy)]
pub struct DeviceTree<'a> {
    /// The whole blob, as given.
    data: &'a [u8],
    structure: &'a [u8],
    strings: &'a [u8],
    /// Offset of the memory reservation block in `data`.
    reservations: usize,
}

/// A node of a [`DeviceTree`].
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// The name as written in the blob (empty for the root), UTF-8 (checked).
    raw_name: &'a [u8],
    /// Depth in the tree: 0 for the root.
    depth: usize,
    /// Offset in the structure block of the node's first property (or whatever token
    /// follows its name).
    props: usize,
    /// The same for its parent; `None` for the root.
    parent_props: Option<usize>,
    structure: &'a [u8],
    strings: &'a [u8],
}

impl core::fmt::Debug for DeviceTree<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceTree")
            .field("bytes", &self.data.len())
            .field("structure_bytes", &self.structure.len())
            .field("strings_bytes", &self.strings.len())
            .finish()
    }
}

impl core::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name())
            .field("depth", &self.depth)
            .finish()
    }
}

/// `#address-cells` and `#size-cells` a node's parent gives it when it says nothing.
const DEFAULT_CELLS: (u32, u32) = (2, 1);

impl<'a> DeviceTree<'a> {
    /// Every node, in the order of the blob (the root first, each node before its
    /// children).
    pub fn nodes(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        let (structure, strings) = (self.structure, self.strings);
        let mut at = 0;
        let mut parents = [0usize; MAX_TREE_DEPTH];
        let mut depth = 0usize;
        core::iter::from_fn(move || {
            loop {
                at = skip_nops(structure, at);
                match be32(structure, at)? {
                    FDT_BEGIN_NODE => {
                        let raw_name = c_bytes(structure, at + 4)?;
                        let props = (at + 4 + raw_name.len() + 1).next_multiple_of(4);
                        let parent_props = depth.checked_sub(1).map(|up| parents[up]);
                        *parents.get_mut(depth)? = props;
                        let node = Node {
                            raw_name,
                            depth,
                            props,
                            parent_props,
                            structure,
                            strings,
                        };
                        depth += 1;
                        at = skip_properties(structure, props);
                        return Some(node);
                    }
                    FDT_END_NODE => {
                        depth = depth.checked_sub(1)?;
                        at += 4;
                    }
                    _ => return None,
                }
            }
        })
    }

    /// The node at `path`, as the `fdt` crate finds it: the first node in the blob
    /// whose path matches, each component matching a node's whole name if it has a unit
    /// address (`/pl011@9000000`), else the name without its unit address (`/cpus`);
    /// `path` may end in `/`. If none does, `path` is looked up as an alias (a property
    /// of `/aliases` naming an absolute path).
    pub fn find_node(&self, path: &str) -> Option<Node<'a>> {
        self.find_path(path).or_else(|| {
            let aliases = self.find_path("/aliases")?;
            let target = core::str::from_utf8(aliases.property(path)?).ok()?;
            // `check_structure` made every alias an absolute path and no alias name
            // one: this lookup cannot come back here.
            self.find_path(target.trim_end_matches('\0'))
        })
    }

    fn find_path(&self, path: &str) -> Option<Node<'a>> {
        // The components as the `fdt` crate splits them: at each `/`, the rest after a
        // last `/` dropped if empty.
        let mut components = [""; MAX_TREE_DEPTH];
        let mut count = 0;
        let mut rest = path;
        loop {
            let (component, next) = match rest.split_once('/') {
                Some((component, next)) => (component, Some(next)),
                None => (rest, None),
            };
            // Deeper than any node: nothing matches.
            *components.get_mut(count)? = component;
            count += 1;
            match next {
                None | Some("") => break,
                Some(next) => rest = next,
            }
        }
        // Whether the last node seen at each depth matched the path so far: a node's
        // parent is the last node seen one level up.
        let mut matched = [false; MAX_TREE_DEPTH];
        for node in self.nodes() {
            let depth = node.depth;
            if depth >= count {
                continue;
            }
            matched[depth] = (depth == 0 || matched[depth - 1]) && node.has_name(components[depth]);
            if matched[depth] && depth + 1 == count {
                return Some(node);
            }
        }
        None
    }

    /// The memory reservation block's entries, up to the first empty one.
    pub fn memory_reservations(&self) -> impl Iterator<Item = PhysRange> + 'a {
        let data = self.data;
        let mut at = self.reservations;
        core::iter::from_fn(move || {
            let address = be64(data, at)?;
            let size = be64(data, at + 8)?;
            at += 16;
            (address != 0 || size != 0).then(|| PhysRange::new(address, size))
        })
    }
}

impl<'a> Node<'a> {
    /// The node's name with its unit address (`pl011@9000000`); `/` for the root.
    pub fn name(&self) -> &'a str {
        // `check_structure` checked that every node name is UTF-8.
        match core::str::from_utf8(self.raw_name) {
            Ok("") => "/",
            Ok(name) => name,
            Err(_) => "",
        }
    }

    /// Whether the node's name is `name`: the whole name if `name` has a unit address
    /// (`pl011@9000000`), else the name without its unit address (`cpus`), as a path
    /// component matches in the `fdt` crate. The root's name is empty.
    fn has_name(&self, name: &str) -> bool {
        if name.contains('@') {
            self.raw_name == name.as_bytes()
        } else {
            self.raw_name.split(|&b| b == b'@').next() == Some(name.as_bytes())
        }
    }

    /// Whether the node's name starts with `prefix`.
    fn name_starts_with(&self, prefix: &str) -> bool {
        self.raw_name.starts_with(prefix.as_bytes())
    }

    /// The properties of the node starting at `props`: (name offset, value) each.
    fn properties_at(&self, props: usize) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let structure = self.structure;
        let mut at = props;
        core::iter::from_fn(move || {
            at = skip_nops(structure, at);
            if be32(structure, at)? != FDT_PROP {
                return None;
            }
            let len = be32(structure, at + 4)? as usize;
            let name = be32(structure, at + 8)?;
            let value = structure.get(at + 12..at + 12 + len)?;
            at = (at + 12 + len).next_multiple_of(4);
            Some((name, value))
        })
    }

    /// Whether the string at `offset` of the strings block is `name`. (Its end is
    /// looked at first: most names differ in length.)
    fn named(&self, offset: u32, name: &str) -> bool {
        let at = offset as usize;
        let end = at + name.len();
        self.strings.get(end) == Some(&0) && self.strings.get(at..end) == Some(name.as_bytes())
    }

    /// The value of the node's first property called `name`.
    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties_at(self.props)
            .find(|&(offset, _)| self.named(offset, name))
            .map(|(_, value)| value)
    }

    /// The value of the node's last property called `name` (what the `fdt` crate's
    /// `compatible()` and cell sizes read).
    fn last_property(&self, props: usize, name: &str) -> Option<&'a [u8]> {
        self.properties_at(props)
            .filter(|&(offset, _)| self.named(offset, name))
            .last()
            .map(|(_, value)| value)
    }

    /// The strings of the node's (last) `compatible` property, as the `fdt` crate
    /// reads the list: NUL-separated, up to the first that is not UTF-8.
    fn compatible_entries(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut list = self
            .last_property(self.props, "compatible")
            .unwrap_or_default();
        core::iter::from_fn(move || {
            if list.is_empty() {
                return None;
            }
            let (entry, rest) = match list.iter().position(|&b| b == 0) {
                Some(end) => (&list[..end], &list[end + 1..]),
                None => (list, &[][..]),
            };
            if !entry.is_ascii() && core::str::from_utf8(entry).is_err() {
                return None;
            }
            list = rest;
            Some(entry)
        })
    }

    /// Whether one of the node's compatible strings is one of `with`.
    fn is_compatible(&self, with: &[&str]) -> bool {
        self.compatible_entries()
            .any(|entry| with.iter().any(|w| w.as_bytes() == entry))
    }

    /// The `#address-cells` and `#size-cells` the node's parent gives its children.
    fn parent_cells(&self) -> (u32, u32) {
        let Some(parent) = self.parent_props else {
            return DEFAULT_CELLS;
        };
        let cell = |value: &[u8]| be32(value, 0);
        let (mut address, mut size) = DEFAULT_CELLS;
        for (offset, value) in self.properties_at(parent) {
            // `check_structure` made both at least a cell long.
            if self.named(offset, "#address-cells") {
                address = cell(value).unwrap_or(address);
            } else if self.named(offset, "#size-cells") {
                size = cell(value).unwrap_or(size);
            }
        }
        (address, size)
    }

    /// The regions of the node's first `reg` property: (address, size) each, the size
    /// `None` when the parent's `#size-cells` is 0. `None` if the node has no `reg`, or
    /// its parent's cells are wider than two (64 bits).
    pub fn reg(&self) -> Option<impl Iterator<Item = (u64, Option<u64>)> + 'a> {
        let (address_cells, size_cells) = self.parent_cells();
        if address_cells > 2 || size_cells > 2 {
            return None;
        }
        let value = self.property("reg")?;
        let mut at = 0;
        let mut read = move |cells: u32| -> Option<u64> {
            let word = match cells {
                1 => u64::from(be32(value, at)?),
                2 => be64(value, at)?,
                _ => return None,
            };
            at += cells as usize * 4;
            Some(word)
        };
        Some(core::iter::from_fn(move || {
            let address = read(address_cells)?;
            let size = match size_cells {
                0 => None,
                cells => Some(read(cells)?),
            };
            Some((address, size))
        }))
    }

    /// How many direct children of the node are called `cpu` (with any unit address).
    fn cpu_children(&self) -> usize {
        let mut at = skip_properties(self.structure, self.props);
        let mut count = 0;
        // Each child: its name, then its properties and its own children, skipped.
        loop {
            at = skip_nops(self.structure, at);
            if be32(self.structure, at) != Some(FDT_BEGIN_NODE) {
                break;
            }
            let Some(raw) = c_bytes(self.structure, at + 4) else {
                break;
            };
            if raw.split(|&b| b == b'@').next() == Some(&b"cpu"[..]) {
                count += 1;
            }
            let Some(after) = skip_node(self.structure, at) else {
                break;
            };
            at = after;
        }
        count
    }
}

/// The offset past the properties starting at `at` (and any `FDT_NOP` among them).
fn skip_properties(structure: &[u8], mut at: usize) -> usize {
    loop {
        at = skip_nops(structure, at);
        if be32(structure, at) != Some(FDT_PROP) {
            return at;
        }
        let len = be32(structure, at + 4).unwrap_or(0) as usize;
        at = (at + 12 + len).next_multiple_of(4);
    }
}

/// The offset of the first token at or after `at` that is not `FDT_NOP`. Boot loaders
/// and QEMU (loading a `-dtb` whose `/memory` or `/psci` it replaces) delete nodes and
/// properties by overwriting their tokens with `FDT_NOP`, which a reader skips wherever
/// a token may stand.
fn skip_nops(structure: &[u8], mut at: usize) -> usize {
    while be32(structure, at) == Some(FDT_NOP) {
        at += 4;
    }
    at
}

/// The offset past the node whose `FDT_BEGIN_NODE` is at `at` (its name, properties,
/// children and `FDT_END_NODE`).
fn skip_node(structure: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match be32(structure, at)? {
            FDT_BEGIN_NODE => {
                let name = c_bytes(structure, at + 4)?;
                at = skip_properties(structure, (at + 4 + name.len() + 1).next_multiple_of(4));
                depth += 1;
            }
            FDT_END_NODE => {
                at += 4;
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at);
                }
            }
            FDT_NOP => at += 4,
            _ => return None,
        }
    }
}

/// The NUL-terminated bytes at `at` in `bytes`, without the NUL.
fn c_bytes(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let rest = bytes.get(at..)?;
    Some(&rest[..rest.iter().position(|&b| b == 0)?])
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    let (word, _) = bytes.get(at..)?.split_first_chunk::<8>()?;
    Some(u64::from_be_bytes(*word))
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
const FDT_MAGIC: u32 = 0xd00d_feed;

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
    core::str::from_utf8(c_bytes(bytes, at)?).ok()
}

/// The blocks of a blob that [`check_structure`] accepted.
struct Blocks<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    reservations: usize,
}

/// Checks that a device tree blob has the shape [`DeviceTree`]'s walks assume, naming the
/// first problem. (The rules were made for the `fdt` crate the kernel read trees with
/// before, which panics or recurses without end on anything else; the reader keeps
/// them, so that both read every accepted tree alike.)
///
/// What is required, beyond the magic and the total size that [`parse_blob`] checks: the
/// structure, strings and memory-reservation blocks inside the blob; a structure block of
/// exactly one root node (with an empty name) followed by `FDT_END`, each node its name
/// (NUL-terminated UTF-8), its properties, then its child nodes, nested at most
/// [`MAX_TREE_DEPTH`] deep; every property inside the block, its name a NUL-terminated
/// UTF-8 string of the strings block; `#address-cells` and `#size-cells` of at least four
/// bytes; in `/aliases`, no alias name starting with `/` and every alias an absolute path
/// (so resolving one cannot loop). `FDT_NOP` tokens may stand wherever a token may, and
/// mean nothing.
pub fn check_structure(bytes: &[u8]) -> Result<(), &'static str> {
    check_blocks(bytes).map(|_| ())
}

/// [`check_structure`], returning the blocks.
fn check_blocks(bytes: &[u8]) -> Result<Blocks<'_>, &'static str> {
    let field = |index: usize| be32(bytes, index * 4).ok_or("blob shorter than its header");
    let total = field(1)? as usize;
    if total < FDT_HEADER_BYTES || total > bytes.len() {
        return Err("header's total size out of range");
    }
    let structure =
        block(bytes, total, field(2)?, field(9)?).ok_or("structure block outside the blob")?;
    let strings =
        block(bytes, total, field(3)?, field(8)?).ok_or("strings block outside the blob")?;
    let reservations = field(4)? as usize;
    if reservations > total {
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
            FDT_END if depth == 0 && seen_root => {
                return Ok(Blocks {
                    structure,
                    strings,
                    reservations,
                });
            }
            FDT_END => return Err("FDT_END inside a node or before the root node"),
            FDT_NOP => {}
            _ => return Err("unknown token in the structure block"),
        }
    }
}

/// A string property, without its trailing NULs; `None` if absent or not UTF-8.
fn string_property<'a>(node: Node<'a>, name: &str) -> Option<&'a str> {
    let value = node.property(name)?;
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

const PL011: &[&str] = &["arm,pl011"];
const GIC_V3: &[&str] = &["arm,gic-v3"];
const GIC_V2: &[&str] = &["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"];
const TIMER: &[&str] = &["arm,armv8-timer", "arm,armv7-timer"];
const PSCI: &[&str] = &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];

impl<'a> Platform<'a> {
    /// Reads the platform description from a checked device tree, in one walk over its
    /// nodes (and, for `stdout-path`, a path lookup).
    ///
    /// RAM: the `reg` regions of every node whose name starts with `memory`. The
    /// console: the PL011 `stdout-path` in `/chosen` names (a path or an alias,
    /// options after `:` ignored), else the first PL011. The interrupt controller, the
    /// timer and PSCI: the first node compatible with each (a GICv3 before a GICv2).
    pub fn from_fdt(tree: &DeviceTree<'a>) -> Result<Self, PlatformError> {
        let mut memory = [PhysRange::default(); MAX_MEMORY_REGIONS];
        let mut memory_count = 0;
        let mut too_many = false;
        let (mut pl011, mut gic_v3, mut gic_v2, mut timer, mut psci) =
            (None, None, None, None, None);
        // The first children of the root called so: what `/chosen` and `/cpus` find.
        let (mut chosen, mut cpus) = (None, None);
        let mut cpu_affinities = [0u64; MAX_CPUS];
        let mut cpu_affinity_count = 0;
        // Whether the nodes being walked are inside that `/cpus`.
        let mut in_cpus = false;
        for node in tree.nodes() {
            if node.depth == 1 {
                in_cpus = false;
                if chosen.is_none() && node.has_name("chosen") {
                    chosen = Some(node);
                } else if cpus.is_none() && node.has_name("cpus") {
                    cpus = Some(node);
                    in_cpus = true;
                }
            }
            if in_cpus && node.depth == 2 && node.has_name("cpu") {
                let affinity = node.reg().and_then(|mut reg| reg.next()).map(|(a, _)| a);
                if let (Some(affinity), Some(slot)) =
                    (affinity, cpu_affinities.get_mut(cpu_affinity_count))
                {
                    *slot = affinity;
                    cpu_affinity_count += 1;
                }
            }
            if node.name_starts_with("memory") {
                for (start, size) in node.reg().into_iter().flatten() {
                    let size = size.unwrap_or(0);
                    if size == 0 {
                        continue;
                    }
                    match memory.get_mut(memory_count) {
                        Some(slot) => *slot = PhysRange::new(start, size),
                        None => too_many = true,
                    }
                    memory_count += 1;
                }
            }
            for entry in node.compatible_entries() {
                for (found, with) in [
                    (&mut pl011, PL011),
                    (&mut gic_v3, GIC_V3),
                    (&mut gic_v2, GIC_V2),
                    (&mut timer, TIMER),
                    (&mut psci, PSCI),
                ] {
                    if found.is_none() && with.iter().any(|w| w.as_bytes() == entry) {
                        *found = Some(node);
                    }
                }
            }
        }
        if too_many {
            return Err(PlatformError::TooManyMemoryRegions);
        }
        if memory_count == 0 {
            return Err(PlatformError::NoMemory);
        }

        // `stdout-path` is a path or an alias, optionally followed by `:` and options.
        let uart = chosen
            .and_then(|node| string_property(node, "stdout-path"))
            .and_then(|path| tree.find_node(path.split(':').next().unwrap_or(path)))
            .filter(|node| node.is_compatible(PL011))
            .or(pl011)
            .and_then(first_reg)
            .ok_or(PlatformError::NoConsole)?;

        let gic = if let Some(node) = gic_v3 {
            GicDescription::V3 {
                distributor: nth_reg(node, 0).ok_or(PlatformError::BadInterruptController)?,
                redistributor: nth_reg(node, 1).ok_or(PlatformError::BadInterruptController)?,
            }
        } else if let Some(node) = gic_v2 {
            GicDescription::V2 {
                distributor: nth_reg(node, 0).ok_or(PlatformError::BadInterruptController)?,
                cpu_interface: nth_reg(node, 1).ok_or(PlatformError::BadInterruptController)?,
            }
        } else {
            return Err(PlatformError::NoInterruptController);
        };

        // Timer interrupts: secure physical, non-secure physical, virtual, hypervisor.
        let virtual_timer_irq = timer
            .and_then(|node| interrupt_ids(node).nth(2))
            .ok_or(PlatformError::NoTimer)?;

        let psci_cpu_on = psci.and_then(|node| {
            if node.is_compatible(&PSCI[..2]) {
                Some(0xc400_0003)
            } else {
                node.property("cpu_on").and_then(|value| be32(value, 0))
            }
        });
        let psci = psci
            .and_then(|node| string_property(node, "method"))
            .and_then(|method| match method {
                "hvc" => Some(PsciConduit::Hvc),
                "smc" => Some(PsciConduit::Smc),
                _ => None,
            });

        let cpus = cpus.map_or(0, |cpus| cpus.cpu_children());
        let cpu_count = u32::try_from(cpus).unwrap_or(u32::MAX).max(1);
        let bootargs = chosen
            .and_then(|node| string_property(node, "bootargs"))
            .unwrap_or("");
        Ok(Self {
            memory,
            memory_count,
            uart,
            gic,
            virtual_timer_irq,
            psci,
            psci_cpu_on,
            cpu_count,
            cpu_affinities,
            cpu_affinity_count,
            bootargs,
        })
    }

    /// The affinities (`MPIDR_EL1` `Aff3..Aff0`) of the CPUs the tree describes, in tree
    /// order, at most [`MAX_CPUS`]: what PSCI `CPU_ON` takes to start one.
    pub fn cpu_affinities(&self) -> &[u64] {
        &self.cpu_affinities[..self.cpu_affinity_count]
    }

    /// The CPUs to start besides the boot CPU (affinity `me`), as `(number, affinity)`:
    /// every other affinity the tree lists, once (a repeated one would only fail to
    /// start), in tree order, numbered from 1, at most `MAX_CPUS - 1` (the kernel has a
    /// stack for each).
    pub fn secondary_cpus(&self, me: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let listed = self.cpu_affinities();
        listed
            .iter()
            .enumerate()
            .filter(move |&(at, affinity)| *affinity != me && !listed[..at].contains(affinity))
            .map(|(_, &affinity)| affinity)
            .take(MAX_CPUS - 1)
            .zip(1u64..)
            .map(|(affinity, number)| (number, affinity))
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
    /// The node itself, for its name and interrupts.
    pub node: Node<'a>,
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
pub fn devices<'a>(tree: &DeviceTree<'a>) -> impl Iterator<Item = DeviceNode<'a>> + 'a {
    tree.nodes().filter_map(|node| {
        if node.name_starts_with("memory") || node.name_starts_with("cpu") {
            return None;
        }
        let raw = node.property("compatible")?;
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
    use fdt::Fdt;

    const GICV2: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-gicv2.dtb");
    const GICV3: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-gicv3.dtb");

    #[test]
    fn parses_qemu_virt_with_gicv2() {
        let tree = parse_blob(GICV2).unwrap();
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
        assert_eq!(platform.psci_cpu_on, Some(0xc400_0003));
        assert_eq!(platform.cpu_count, 1);
    }

    #[test]
    fn parses_qemu_virt_with_gicv3_and_lists_devices() {
        let tree = parse_blob(GICV3).unwrap();
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
        // (A node's properties interleaved with FDT_NOP made the crate assert "bad node":
        // the reader skips them, see `nops_mean_nothing_wherever_they_stand`.)
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

    /// A machine with `/cpus` of `#address-cells` = `cells` holding `cpus`: name and
    /// `reg` each (no `reg` property where it is empty).
    fn cpus_tree(cells: u32, cpus: &[(&str, &[u32])]) -> Vec<u8> {
        machine(|b| {
            b.begin("cpus")
                .cells("#address-cells", &[cells])
                .cells("#size-cells", &[0]);
            for (name, reg) in cpus {
                b.begin(name);
                if !reg.is_empty() {
                    b.cells("reg", reg);
                }
                b.end();
            }
            b.end();
        })
    }

    /// [`cpus_tree`] with one cell: `cpu@0`, `cpu@1`, ... with the affinities `regs`.
    fn cpus_with_affinities(regs: &[u32]) -> Vec<u8> {
        let names: Vec<String> = (0..regs.len()).map(|i| format!("cpu@{i}")).collect();
        let cpus: Vec<(&str, &[u32])> = names
            .iter()
            .zip(regs)
            .map(|(name, reg)| (name.as_str(), core::slice::from_ref(reg)))
            .collect();
        cpus_tree(1, &cpus)
    }

    #[test]
    fn cpu_affinities_come_from_the_cpu_nodes_reg() {
        let read = |blob: &[u8]| {
            let tree = parse_blob(blob).unwrap();
            let platform = Platform::from_fdt(&tree).unwrap();
            (platform.cpu_count, platform.cpu_affinities().to_vec())
        };
        // QEMU virt's: one cell; a cpu-map beside the cpus is not a CPU.
        let virt = cpus_tree(1, &[("cpu@0", &[0]), ("cpu@1", &[1]), ("cpu-map", &[7])]);
        assert_eq!(read(&virt), (2, vec![0, 1]));
        // Two cells (Aff3 in the upper word), and a CPU without `reg` is counted only.
        let wide = cpus_tree(
            2,
            &[("cpu@0", &[0, 0x100]), ("cpu@1", &[1, 0]), ("cpu@2", &[])],
        );
        assert_eq!(read(&wide), (3, vec![0x100, 1 << 32]));
        // More than MAX_CPUS: the first MAX_CPUS are kept.
        let many: Vec<u32> = (0..12).collect();
        let (count, affinities) = read(&cpus_with_affinities(&many));
        assert_eq!(count, 12);
        assert_eq!(affinities, (0..MAX_CPUS as u64).collect::<Vec<_>>());
        // No `/cpus`: none to start.
        assert_eq!(read(&machine(|_| {})), (1, vec![]));
    }

    #[test]
    fn secondaries_are_every_other_cpu_once_numbered_from_one() {
        let started = |regs: &[u32], me: u64| {
            let blob = cpus_with_affinities(regs);
            let tree = parse_blob(&blob).unwrap();
            let platform = Platform::from_fdt(&tree).unwrap();
            platform.secondary_cpus(me).collect::<Vec<_>>()
        };
        assert_eq!(started(&[0, 1, 2], 0), [(1, 1), (2, 2)]);
        // The boot CPU listed last, or in the middle.
        assert_eq!(started(&[3, 1, 0], 0), [(1, 3), (2, 1)]);
        assert_eq!(started(&[0x100, 0, 0x101], 0x100), [(1, 0), (2, 0x101)]);
        // Repeated affinities start once; the boot CPU's twice is still the boot CPU.
        assert_eq!(started(&[0, 1, 1, 0, 2], 0), [(1, 1), (2, 2)]);
        // The boot CPU not listed: at most MAX_CPUS - 1 others (one stack each).
        let eight: Vec<u32> = (1..=8).collect();
        let others = started(&eight, 0);
        assert_eq!(others.len(), MAX_CPUS - 1);
        assert_eq!(others.last(), Some(&(7, 7)));
        // Alone.
        assert_eq!(started(&[5], 5), []);
    }

    #[test]
    fn psci_0_1_gives_cpu_on_by_property() {
        let read = |compatible: &[u8], cpu_on: Option<u32>| {
            let blob = machine(|b| {
                b.begin("psci")
                    .prop("compatible", compatible)
                    .prop("method", b"smc\0");
                if let Some(id) = cpu_on {
                    b.cells("cpu_on", &[id]);
                }
                b.end();
            });
            let tree = parse_blob(&blob).unwrap();
            let platform = Platform::from_fdt(&tree).unwrap();
            (platform.psci, platform.psci_cpu_on)
        };
        let smc = Some(PsciConduit::Smc);
        assert_eq!(
            read(b"arm,psci\0", Some(0x8400_0002)),
            (smc, Some(0x8400_0002))
        );
        assert_eq!(read(b"arm,psci\0", None), (smc, None));
        // 0.2 and later: the standard id, whatever the property says.
        assert_eq!(
            read(b"arm,psci-0.2\0arm,psci\0", Some(0x8400_0002)),
            (smc, Some(0xc400_0003))
        );
        assert_eq!(read(b"arm,psci-1.0\0", None), (smc, Some(0xc400_0003)));
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

    /// The kernel's reading of a device tree before it had its own reader (the same
    /// questions asked through the `fdt` crate): the reference the new reader is
    /// compared with.
    mod fdt_reference {
        use super::super::{PhysRange, PlatformError, PsciConduit};
        use fdt::Fdt;
        use fdt::node::FdtNode;

        fn nth_reg(node: FdtNode<'_, '_>, n: usize) -> Option<PhysRange> {
            let region = node.reg()?.nth(n)?;
            Some(PhysRange::new(
                region.starting_address as u64,
                region.size.unwrap_or(0) as u64,
            ))
        }

        pub fn interrupt_ids(node: FdtNode<'_, '_>) -> Vec<u32> {
            let value = node.property("interrupts").map(|p| p.value).unwrap_or(&[]);
            value
                .chunks_exact(12)
                .filter_map(|cells| {
                    let kind = u32::from_be_bytes(cells[0..4].try_into().ok()?);
                    let number = u32::from_be_bytes(cells[4..8].try_into().ok()?);
                    match kind {
                        0 => number.checked_add(32),
                        1 => number.checked_add(16),
                        _ => None,
                    }
                })
                .collect()
        }

        fn string_property<'a>(node: FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
            let value = node.property(name)?.value;
            core::str::from_utf8(value)
                .ok()
                .map(|s| s.trim_end_matches('\0'))
        }

        /// Memory, UART, GIC (as its two regions), timer IRQ, PSCI, CPUs, bootargs.
        pub type Facts = (
            Vec<PhysRange>,
            PhysRange,
            (bool, PhysRange, PhysRange),
            u32,
            Option<PsciConduit>,
            u32,
            String,
        );

        pub fn platform(tree: &Fdt<'_>) -> Result<Facts, PlatformError> {
            let mut memory = Vec::new();
            for node in tree.all_nodes().filter(|n| n.name.starts_with("memory")) {
                for region in node.reg().into_iter().flatten() {
                    let size = region.size.unwrap_or(0) as u64;
                    if size == 0 {
                        continue;
                    }
                    if memory.len() == super::super::MAX_MEMORY_REGIONS {
                        return Err(PlatformError::TooManyMemoryRegions);
                    }
                    memory.push(PhysRange::new(region.starting_address as u64, size));
                }
            }
            if memory.is_empty() {
                return Err(PlatformError::NoMemory);
            }
            let chosen = || tree.find_node("/chosen");
            let uart = chosen()
                .and_then(|node| string_property(node, "stdout-path"))
                .and_then(|path| tree.find_node(path.split(':').next().unwrap_or(path)))
                .filter(|n| {
                    n.compatible()
                        .is_some_and(|c| c.all().any(|s| s == "arm,pl011"))
                })
                .or_else(|| tree.find_compatible(&["arm,pl011"]))
                .and_then(|node| nth_reg(node, 0))
                .ok_or(PlatformError::NoConsole)?;
            let gic = if let Some(node) = tree.find_compatible(&["arm,gic-v3"]) {
                (true, node)
            } else if let Some(node) =
                tree.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"])
            {
                (false, node)
            } else {
                return Err(PlatformError::NoInterruptController);
            };
            let gic = (
                gic.0,
                nth_reg(gic.1, 0).ok_or(PlatformError::BadInterruptController)?,
                nth_reg(gic.1, 1).ok_or(PlatformError::BadInterruptController)?,
            );
            let timer = tree
                .find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])
                .and_then(|node| interrupt_ids(node).get(2).copied())
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
            let bootargs = chosen()
                .and_then(|node| string_property(node, "bootargs"))
                .unwrap_or("");
            Ok((
                memory,
                uart,
                gic,
                timer,
                psci,
                u32::try_from(cpus).unwrap_or(u32::MAX).max(1),
                bootargs.to_owned(),
            ))
        }

        /// Region, compatible, name and interrupts of every device.
        pub fn devices(tree: &Fdt<'_>) -> Vec<(PhysRange, String, String, Vec<u32>)> {
            tree.all_nodes()
                .filter_map(|node| {
                    if node.name.starts_with("memory") || node.name.starts_with("cpu") {
                        return None;
                    }
                    let raw = node.property("compatible")?.value;
                    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
                    let compatible = core::str::from_utf8(raw).ok()?;
                    let region = nth_reg(node, 0).filter(|r| r.size() > 0)?;
                    Some((
                        region,
                        compatible.to_owned(),
                        node.name.to_owned(),
                        interrupt_ids(node),
                    ))
                })
                .collect()
        }

        pub fn reservations(tree: &Fdt<'_>) -> Vec<PhysRange> {
            tree.memory_reservations()
                .map(|r| PhysRange::new(r.address() as u64, r.size() as u64))
                .collect()
        }
    }

    /// Reads `blob` with this module and with the `fdt` crate (when this module
    /// accepts it) and checks that both find the same; returns whether it was accepted.
    fn same_reading(blob: &[u8]) -> bool {
        let Ok(tree) = parse_blob(blob) else {
            return false;
        };
        // The crate does not skip `FDT_NOP` everywhere; trees with them are compared
        // with the same tree without them instead (`nops_mean_nothing_wherever_they_stand`).
        if tokens(tree.structure)
            .iter()
            .any(|&(_, token)| token == FDT_NOP)
        {
            return false;
        }
        let reference = Fdt::new(blob).expect("a checked blob opens");
        let platform = Platform::from_fdt(&tree).map(|p| {
            let gic = match p.gic {
                GicDescription::V3 {
                    distributor,
                    redistributor,
                } => (true, distributor, redistributor),
                GicDescription::V2 {
                    distributor,
                    cpu_interface,
                } => (false, distributor, cpu_interface),
            };
            (
                p.memory().to_vec(),
                p.uart,
                gic,
                p.virtual_timer_irq,
                p.psci,
                p.cpu_count,
                p.bootargs.to_owned(),
            )
        });
        assert_eq!(platform, fdt_reference::platform(&reference));
        assert_eq!(device_reading(&tree), fdt_reference::devices(&reference));
        assert_eq!(
            tree.memory_reservations().collect::<Vec<_>>(),
            fdt_reference::reservations(&reference)
        );
        true
    }

    /// The tokens of a checked structure block: (offset, token) each, up to `FDT_END`.
    fn tokens(structure: &[u8]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(token) = be32(structure, at) {
            out.push((at, token));
            at = match token {
                FDT_BEGIN_NODE => {
                    (at + 4 + c_bytes(structure, at + 4).unwrap().len() + 1).next_multiple_of(4)
                }
                FDT_PROP => {
                    (at + 12 + be32(structure, at + 4).unwrap() as usize).next_multiple_of(4)
                }
                FDT_END => break,
                _ => at + 4,
            };
        }
        out
    }

    /// `blob` (header, reservations, structure, strings in that order) with an
    /// `FDT_NOP` before every token of its structure block, as a boot loader that
    /// deleted a property or a node everywhere would leave it.
    fn with_nops(blob: &[u8]) -> Vec<u8> {
        let field = |index: usize| be32(blob, index * 4).unwrap() as usize;
        let (total, structure_at, strings_at, structure_len) =
            (field(1), field(2), field(3), field(9));
        assert!(structure_at + structure_len <= strings_at);
        let structure = &blob[structure_at..structure_at + structure_len];
        let mut grown = Vec::new();
        let starts = tokens(structure);
        for (index, &(at, _)) in starts.iter().enumerate() {
            let end = starts
                .get(index + 1)
                .map_or(structure.len(), |&(next, _)| next);
            grown.extend_from_slice(&FDT_NOP.to_be_bytes());
            grown.extend_from_slice(&structure[at..end]);
        }
        let added = grown.len() - structure_len;
        let mut out = blob[..structure_at].to_vec();
        out.extend_from_slice(&grown);
        out.extend_from_slice(&blob[structure_at + structure_len..total]);
        for (index, value) in [
            (1, total + added),
            (3, strings_at + added),
            (9, grown.len()),
        ] {
            out[index * 4..index * 4 + 4].copy_from_slice(&(value as u32).to_be_bytes());
        }
        out
    }

    /// Each device as the kernel reads it: region, `compatible`, node name, interrupts.
    fn device_reading(tree: &DeviceTree<'_>) -> Vec<(PhysRange, String, String, Vec<u32>)> {
        devices(tree)
            .map(|d| {
                (
                    d.region,
                    d.compatible.to_owned(),
                    d.node.name().to_owned(),
                    interrupt_ids(d.node).collect(),
                )
            })
            .collect()
    }

    /// What the kernel reads from a blob: its platform, devices and reservations.
    fn kernel_reading(blob: &[u8]) -> String {
        let tree = parse_blob(blob).expect("a valid blob");
        format!(
            "{:?}\n{:?}\n{:?}",
            Platform::from_fdt(&tree),
            device_reading(&tree),
            tree.memory_reservations().collect::<Vec<_>>()
        )
    }

    #[test]
    fn nops_mean_nothing_wherever_they_stand() {
        let mut compared = 0;
        for tree in every_tree() {
            if check_blocks(&tree).is_err() {
                continue;
            }
            let nops = with_nops(&tree);
            let structure = check_blocks(&nops).expect("NOPs are accepted").structure;
            assert!(tokens(structure).iter().filter(|t| t.1 == FDT_NOP).count() > 4);
            assert_eq!(kernel_reading(&nops), kernel_reading(&tree));
            compared += 1;
        }
        assert!(compared >= 4, "only {compared} trees");
        // QEMU's own deletion: a node's tokens all overwritten with NOPs.
        let deleted = machine(|b| {
            b.begin("chosen").prop("bootargs", b"x\0").end();
        });
        let plain = machine(|_| {});
        let mut nopped = deleted.clone();
        let field = |index: usize| be32(&deleted, index * 4).unwrap() as usize;
        let structure = field(2)..field(2) + field(9);
        let starts = tokens(&deleted[structure.clone()]);
        let chosen = starts
            .iter()
            .position(|&(at, token)| {
                token == FDT_BEGIN_NODE
                    && c_bytes(&deleted[structure.clone()], at + 4) == Some(b"chosen")
            })
            .unwrap();
        let (from, to) = (starts[chosen].0, starts[chosen + 3].0);
        for word in nopped[structure.start + from..structure.start + to].chunks_mut(4) {
            word.copy_from_slice(&FDT_NOP.to_be_bytes());
        }
        assert_eq!(kernel_reading(&nopped), kernel_reading(&plain));
        // (And the node mattered: with it, the reading differs.)
        assert_ne!(kernel_reading(&deleted), kernel_reading(&plain));
    }

    /// Trees this module's tests build, the QEMU trees of the fixtures, the fuzzing
    /// corpus, and (for a local check) the blobs in the directory `KAAL_DTB_DIR` names.
    fn every_tree() -> Vec<Vec<u8>> {
        let mut trees = vec![
            GICV2.to_vec(),
            GICV3.to_vec(),
            machine(|_| {}),
            paths_tree(),
        ];
        trees.push(machine(|b| {
            b.begin("pl011@9040000")
                .prop("compatible", b"arm,pl011\0")
                .cells("reg", &[0, 0x0904_0000, 0, 0x1000])
                .end();
            b.begin("aliases")
                .prop("serial1", b"/pl011@9040000\0")
                .prop("serial2", b"/nowhere\0")
                .end();
            b.begin("chosen")
                .prop("stdout-path", b"serial1:115200n8\0")
                .prop("bootargs", b"console=pl011\0")
                .end();
        }));
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("../../fuzz/corpus/device_tree")];
        dirs.extend(std::env::var_os("KAAL_DTB_DIR").map(std::path::PathBuf::from));
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            trees.extend(paths.iter().map(|path| std::fs::read(path).unwrap()));
        }
        trees
    }

    /// Regression test: a node below a parent that does not match the path was
    /// compared with the state its predecessor at that depth left (`/z/b/c` was found
    /// for `/a/b/c`).
    #[test]
    fn finds_nodes_by_path_as_the_fdt_crate_does() {
        let blob = paths_tree();
        let tree = parse_blob(&blob).unwrap();
        let reference = Fdt::new(&blob).unwrap();
        for path in [
            "/a/b/c", "/z/b/c", "/z/b", "/a/b", "/a@1/b", "/a", "/b", "/", "", "/z/b/c/",
            "serial0", "/chosen", "/a/b/c/d", "z/b",
        ] {
            // Found or not, and which node: each has its own `x`.
            assert_eq!(
                tree.find_node(path).map(|n| n.property("x")),
                reference
                    .find_node(path)
                    .map(|n| n.property("x").map(|p| p.value)),
                "{path}"
            );
        }
        assert!(tree.find_node("/a/b/c").is_none());
        assert_eq!(tree.find_node("/z/b/c").unwrap().name(), "c");
    }

    /// `/a@1/b` and `/z/b/c`, each node with its own property `x`, and an alias.
    fn paths_tree() -> Vec<u8> {
        machine(|b| {
            b.begin("a@1")
                .prop("x", b"1")
                .begin("b")
                .prop("x", b"2")
                .end()
                .end();
            b.begin("z")
                .prop("x", b"3")
                .begin("b")
                .prop("x", b"4")
                .begin("c")
                .prop("x", b"5")
                .end()
                .end()
                .end();
            b.begin("aliases").prop("serial0", b"/z/b/c\0").end();
        })
    }

    #[test]
    fn reads_every_tree_as_the_fdt_crate_does() {
        let trees = every_tree();
        let accepted = trees.iter().filter(|tree| same_reading(tree)).count();
        assert!(
            accepted >= 4,
            "only {accepted} of {} trees accepted",
            trees.len()
        );
    }

    /// The same comparison over mutations of the trees: pseudo-random bytes of their
    /// structure and strings blocks, each set to a few values that make other names,
    /// lengths, cells and tokens.
    #[test]
    #[cfg_attr(miri, ignore = "thousands of trees read twice: too slow under Miri")]
    fn reads_mutated_trees_as_the_fdt_crate_does() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut compared = 0;
        for tree in every_tree() {
            let Ok(blocks) = check_blocks(&tree) else {
                continue;
            };
            // The structure block, then the strings block (QEMU's trees have nothing
            // between them).
            let start = blocks.structure.as_ptr() as usize - tree.as_ptr() as usize;
            let end = start + blocks.structure.len() + blocks.strings.len();
            for _ in 0..200 {
                let at = start + next() as usize % (end - start);
                for value in [0u8, 3, b'@', tree[at] ^ 0x80, next() as u8] {
                    let mut mutated = tree.clone();
                    mutated[at] = value;
                    compared += usize::from(same_reading(&mutated));
                }
            }
        }
        assert!(compared > 2_000, "only {compared} mutated trees accepted");
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
