//! The system description: which components a KaaL system runs, what each may use and
//! how they are connected.
//!
//! A system is written as `system.toml`, checked at build time by `kaal-build` and
//! embedded in the component archive as the entry [`SYSTEM_ENTRY`] in the compact binary
//! form defined here. The root task decodes it with [`SystemDescription::decode`] (it
//! never parses TOML) and builds the components from it.
//!
//! ```
//! use kaal_bootinfo::system::{
//!     ChannelSpec, ComponentSpec, RestartPolicy, SystemDescription, services,
//! };
//!
//! let component = |name: &str| ComponentSpec {
//!     name: name.into(),
//!     image: name.into(),
//!     priority: 100,
//!     stack_bytes: 64 * 1024,
//!     heap_bytes: 1024 * 1024,
//!     memory_quota_bytes: 8 * 1024 * 1024,
//!     restart: RestartPolicy::Never,
//!     devices: vec![],
//!     irqs: vec![],
//!     services: services::MEMORY,
//!     arguments: 0,
//!     core: 0,
//! };
//! let system = SystemDescription {
//!     name: "demo".into(),
//!     components: vec![component("producer"), component("consumer")],
//!     channels: vec![ChannelSpec {
//!         name: "samples".into(),
//!         element: "u64".into(),
//!         element_bytes: 8,
//!         element_align: 8,
//!         capacity: 1024,
//!         producer: "producer".into(),
//!         consumer: "consumer".into(),
//!     }],
//!     ..SystemDescription::default()
//! };
//! let bytes = system.encode();
//! let decoded = SystemDescription::decode(&bytes)?;
//! assert_eq!(decoded, system);
//! assert_eq!(decoded.component("consumer").map(|c| c.priority), Some(100));
//! # Ok::<(), kaal_bootinfo::system::SystemError>(())
//! ```
//!
//! ## Format
//!
//! All integers little-endian; no field is aligned (the description is read from the
//! archive, whose entries are only 16-byte aligned, through alignment-1 reads).
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 8    | magic `KAALSYS1` ([`SYSTEM_MAGIC`])                      |
//! | 8      | 2    | major version ([`SYSTEM_VERSION_MAJOR`])                 |
//! | 10     | 2    | minor version ([`SYSTEM_VERSION_MINOR`])                 |
//! | 12     | 4    | header size (24 in version 1.0)                          |
//! | 16     | 4    | total size of the description in bytes                   |
//! | 20     | 4    | flags, written 0, ignored                                |
//!
//! The body starts at the header size. It is the *system record*, then four sections in
//! this order: components, devices, channels, endpoints. A section is a `u32` count
//! followed by that many records. A *record* is a `u32` length followed by that many
//! bytes of fields. Inside records a *string* is a `u32` length and that many bytes of
//! UTF-8, a *list* a `u32` count and that many items.
//!
//! | record    | fields, in order                                                       |
//! |-----------|------------------------------------------------------------------------|
//! | system    | name (string)                                                          |
//! | component | name, image (strings); priority (`u8`); restart kind (`u8`: 0 never, 1 always, 2 at most); core (`u16`; since 1.2, reserved and 0 before); restarts (`u32`); window in ms (`u64`); stack, heap, memory quota (`u64` bytes each); services (`u32`); arguments (`u64`); devices (list of strings); IRQs (list of `u32`) |
//! | device    | name, compatible (strings); index (`u32`)                              |
//! | channel   | name, element (strings); element size, element alignment, capacity (`u32` each); producer, consumer (strings) |
//! | endpoint  | name, server (strings); clients (list of strings)                      |
//!
//! ## Versioning
//!
//! A different major version is rejected. A newer minor version may only append: to the
//! header (a larger header size), to the end of any record (a longer record) or after
//! the last section; the decoder ignores such tails and unknown [`services`] bits. For
//! this minor version or an older one it rejects them, so that corruption is caught.

use alloc::collections::BTreeMap;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Name of the archive entry that holds the encoded system description.
pub const SYSTEM_ENTRY: &str = "system";
/// The first eight bytes of an encoded system description.
pub const SYSTEM_MAGIC: [u8; 8] = *b"KAALSYS1";
/// Major version of the encoding. A different major is incompatible.
pub const SYSTEM_VERSION_MAJOR: u16 = 1;
/// Minor version of the encoding. A newer minor only appends fields.
pub const SYSTEM_VERSION_MINOR: u16 = 2;

/// Size of the header of version 1.0 (bytes).
const HEADER_SIZE: usize = 24;
/// Largest channel capacity (elements).
const MAX_CAPACITY: u32 = 1 << 30;

/// Broker services a component may use, as bits of [`ComponentSpec::services`].
pub mod services {
    /// Allocate memory (frames, mappings) from the broker.
    pub const MEMORY: u32 = 1;
    /// Start, stop and watch processes.
    pub const PROCESSES: u32 = 2;
    /// Control the system (power off, debug exit).
    pub const SYSTEM_CONTROL: u32 = 4;
    /// Hold DMA-capable devices ([`super::is_dma_capable`]): `dma = true` in the
    /// component's table. Without an IOMMU such a device can read and write any memory,
    /// so the component is trusted with all of it.
    pub const DMA: u32 = 8;
    /// Every bit this version knows.
    pub(crate) const KNOWN: u32 = MEMORY | PROCESSES | SYSTEM_CONTROL | DMA;
}

/// Device-tree `compatible` strings of devices that can master DMA on the machines KaaL
/// runs on (QEMU `virt`): a driver holding one can make the device read or write any
/// physical memory, the kernel's included, since no IOMMU confines it. A component gets
/// such a device only if its description says `dma = true` ([`services::DMA`]).
pub const DMA_CAPABLE: &[&str] = &["virtio,mmio", "qemu,fw-cfg-mmio", "pci-host-ecam-generic"];

/// Whether a device with this `compatible` string can master DMA ([`DMA_CAPABLE`]).
pub fn is_dma_capable(compatible: &str) -> bool {
    DMA_CAPABLE.contains(&compatible)
}

/// A whole KaaL system: its components, the devices they drive and how they talk.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SystemDescription {
    /// Name of the system (informational).
    pub name: String,
    /// The components, in the order they are started.
    pub components: Vec<ComponentSpec>,
    /// Devices from the device tree that components are granted.
    pub devices: Vec<DeviceSpec>,
    /// Single-producer single-consumer ring channels between components.
    pub channels: Vec<ChannelSpec>,
    /// IPC endpoints: one server component, any number of client components.
    pub endpoints: Vec<EndpointSpec>,
}

/// One component: a program from the archive and what it is granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentSpec {
    /// Unique name of the component.
    pub name: String,
    /// Name of the archive entry holding its ELF image (by default the component name).
    pub image: String,
    /// Scheduling priority.
    pub priority: u8,
    /// Size of its stack in bytes.
    pub stack_bytes: u64,
    /// Size of its heap in bytes.
    pub heap_bytes: u64,
    /// Most memory it may hold in total, in bytes (stack and heap included).
    pub memory_quota_bytes: u64,
    /// What happens when it exits or faults.
    pub restart: RestartPolicy,
    /// Names of the [`DeviceSpec`]s it is granted.
    pub devices: Vec<String>,
    /// Interrupt lines (GIC INTIDs) it is granted besides those of its devices.
    pub irqs: Vec<u32>,
    /// The broker [`services`] it may use, as a bit set.
    pub services: u32,
    /// Value passed to the component in `x0` at start.
    pub arguments: u64,
    /// The CPU its thread runs on (0, the boot CPU, by default). The broker places the
    /// thread there when it starts it; on a machine with fewer CPUs it stays on CPU 0,
    /// and the broker says so. Since format 1.2 (older root tasks ignore it).
    pub core: u16,
}

/// What the root task does when a component exits or faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartPolicy {
    /// Leave it stopped.
    Never,
    /// Restart it every time.
    Always,
    /// Restart it, but give up after `restarts` restarts within `window_ms` milliseconds.
    AtMost {
        /// Restarts allowed within the window.
        restarts: u32,
        /// Length of the window in milliseconds.
        window_ms: u64,
    },
}

/// A device from the device tree, found by `compatible` string and index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Unique name of the device in the system description.
    pub name: String,
    /// A `compatible` string of the device-tree node.
    pub compatible: String,
    /// Which of the nodes with that `compatible` string (0 for the first).
    pub index: u32,
}

/// A single-producer single-consumer ring channel between two components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Unique name of the channel (shared name space with endpoints).
    pub name: String,
    /// Name of the element type (a built-in such as `u64` or a declared type).
    pub element: String,
    /// Size of one element in bytes, more than 0.
    pub element_bytes: u32,
    /// Alignment of one element in bytes, a power of two.
    pub element_align: u32,
    /// Number of elements, a power of two in `1..=2^30`.
    pub capacity: u32,
    /// Name of the producing component.
    pub producer: String,
    /// Name of the consuming component.
    pub consumer: String,
}

/// An IPC endpoint served by one component and called by others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Unique name of the endpoint (shared name space with channels).
    pub name: String,
    /// Name of the component that receives on it.
    pub server: String,
    /// Names of the components that may call it.
    pub clients: Vec<String>,
}

/// Names a part of an encoded system description in a [`SystemError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SystemPart {
    /// The header.
    Header,
    /// The system record (the system's name).
    System,
    /// The count of the component section.
    Components,
    /// The count of the device section.
    Devices,
    /// The count of the channel section.
    Channels,
    /// The count of the endpoint section.
    Endpoints,
    /// The component record with this index.
    Component(u32),
    /// The device record with this index.
    Device(u32),
    /// The channel record with this index.
    Channel(u32),
    /// The endpoint record with this index.
    Endpoint(u32),
}

impl fmt::Display for SystemPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemPart::Header => f.write_str("header"),
            SystemPart::System => f.write_str("system record"),
            SystemPart::Components => f.write_str("component section"),
            SystemPart::Devices => f.write_str("device section"),
            SystemPart::Channels => f.write_str("channel section"),
            SystemPart::Endpoints => f.write_str("endpoint section"),
            SystemPart::Component(i) => write!(f, "component record {i}"),
            SystemPart::Device(i) => write!(f, "device record {i}"),
            SystemPart::Channel(i) => write!(f, "channel record {i}"),
            SystemPart::Endpoint(i) => write!(f, "endpoint record {i}"),
        }
    }
}

/// Why [`SystemDescription::decode`] rejected an encoded system description.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// The input is shorter than the header or the recorded total size.
    #[error("system description truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: usize,
    },
    /// The first eight bytes are not [`SYSTEM_MAGIC`].
    #[error("bad system-description magic {found:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The major version is not [`SYSTEM_VERSION_MAJOR`].
    #[error("unsupported system-description major version {found} (supported: {supported})")]
    UnsupportedMajor {
        /// The major version found.
        found: u16,
        /// The major version this decoder reads.
        supported: u16,
    },
    /// The header size is smaller than this version's header.
    #[error("system-description header size {found} smaller than minimum {min}")]
    HeaderTooSmall {
        /// The header size found.
        found: u32,
        /// The smallest header this major version allows.
        min: u32,
    },
    /// The total size is smaller than the header size.
    #[error("system-description total size {total_size} smaller than header size {header_size}")]
    SizeMismatch {
        /// The header size.
        header_size: u32,
        /// The total size.
        total_size: u32,
    },
    /// A field or record runs past the end of its record or of the description.
    #[error("{part}: {field} at offset {offset}, length {len} runs past the end at {end}")]
    OutOfBounds {
        /// Where the field is.
        part: SystemPart,
        /// Which field.
        field: &'static str,
        /// Its offset from the start of the description.
        offset: u64,
        /// Its length in bytes.
        len: u64,
        /// Offset of the end of the enclosing record or of the description.
        end: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{part}: {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string is.
        part: SystemPart,
        /// Which field.
        field: &'static str,
    },
    /// Bytes left over at the end of a record or after the last section, which only a
    /// newer minor version may add.
    #[error("{part}: {extra} unexpected bytes at offset {offset}")]
    TrailingBytes {
        /// The record, or [`SystemPart::Endpoints`] for bytes after the last section.
        part: SystemPart,
        /// Offset of the first unexpected byte.
        offset: u64,
        /// How many bytes are left over.
        extra: u64,
    },
    /// A component's restart kind is not 0, 1 or 2.
    #[error("component `{component}`: unknown restart policy kind {kind}")]
    UnknownRestartPolicy {
        /// The component.
        component: String,
        /// The kind found.
        kind: u8,
    },
    /// A component's service set has bits this version does not know.
    #[error("component `{component}`: unknown service bits {bits:#x}")]
    UnknownServices {
        /// The component.
        component: String,
        /// The unknown bits.
        bits: u32,
    },
    /// A component, device, channel or endpoint has an empty name.
    #[error("{kind} {index} has an empty name")]
    EmptyName {
        /// `"component"`, `"device"`, `"channel"` or `"endpoint"`.
        kind: &'static str,
        /// Its index in its section.
        index: u32,
    },
    /// A component's image name is empty.
    #[error("component `{component}` has an empty image name")]
    EmptyImage {
        /// The component.
        component: String,
    },
    /// Two components, two devices, or two channels or endpoints have the same name.
    #[error("duplicate {kind} name `{name}`")]
    DuplicateName {
        /// `"component"`, `"device"` or `"channel or endpoint"`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A channel or endpoint names a component that is not described.
    #[error("{kind} `{owner}`: {role} `{name}` is not a component")]
    UnknownComponent {
        /// `"channel"` or `"endpoint"`.
        kind: &'static str,
        /// Name of the channel or endpoint.
        owner: String,
        /// `"producer"`, `"consumer"`, `"server"` or `"client"`.
        role: &'static str,
        /// The unknown name.
        name: String,
    },
    /// A component is granted a device that is not described.
    #[error("component `{component}`: device `{device}` is not described")]
    UnknownDevice {
        /// The component.
        component: String,
        /// The unknown device name.
        device: String,
    },
    /// A device is granted twice (to two components, or twice to one).
    #[error("device `{device}` granted to component `{first}` and again to `{second}`")]
    DeviceGrantedTwice {
        /// The device.
        device: String,
        /// The component it was granted to first.
        first: String,
        /// The component it was granted to again.
        second: String,
    },
    /// An interrupt line is granted twice (to two components, or twice to one).
    #[error("IRQ {irq} granted to component `{first}` and again to `{second}`")]
    IrqGrantedTwice {
        /// The interrupt line.
        irq: u32,
        /// The component it was granted to first.
        first: String,
        /// The component it was granted to again.
        second: String,
    },
    /// An endpoint lists a client twice.
    #[error("endpoint `{endpoint}`: client `{client}` listed twice")]
    DuplicateClient {
        /// The endpoint.
        endpoint: String,
        /// The client.
        client: String,
    },
    /// A channel's producer and consumer are the same component.
    #[error("channel `{channel}`: producer and consumer are both `{component}`")]
    SameEnds {
        /// The channel.
        channel: String,
        /// The component at both ends.
        component: String,
    },
    /// A channel's capacity is not a power of two in `1..=2^30`.
    #[error("channel `{channel}`: capacity {capacity} is not a power of two in 1..=2^30")]
    BadCapacity {
        /// The channel.
        channel: String,
        /// The capacity found.
        capacity: u32,
    },
    /// A channel's element size is 0.
    #[error("channel `{channel}`: element size is 0")]
    ZeroElementSize {
        /// The channel.
        channel: String,
    },
    /// A channel's element alignment is not a power of two.
    #[error("channel `{channel}`: element alignment {align} is not a power of two")]
    BadElementAlign {
        /// The channel.
        channel: String,
        /// The alignment found.
        align: u32,
    },
}

/// The header, at offset 0. 24 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct SystemHeader {
    magic: [u8; 8],
    version_major: U16,
    version_minor: U16,
    header_size: U32,
    total_size: U32,
    flags: U32,
}

const _: () = assert!(size_of::<SystemHeader>() == HEADER_SIZE);

const RESTART_NEVER: u8 = 0;
const RESTART_ALWAYS: u8 = 1;
const RESTART_AT_MOST: u8 = 2;

fn len_u32(len: usize) -> u32 {
    // Descriptions are tiny; a length past u32 cannot be encoded and will not decode.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Appends fields to a record or the body.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(len_u32(s.len()));
        self.out.extend_from_slice(s.as_bytes());
    }
    fn strs(&mut self, list: &[String]) {
        self.u32(len_u32(list.len()));
        for s in list {
            self.str(s);
        }
    }
    /// Appends a record whose fields `fill` writes.
    fn record(&mut self, fill: impl FnOnce(&mut Writer)) {
        let mut record = Writer::default();
        fill(&mut record);
        self.u32(len_u32(record.out.len()));
        self.out.append(&mut record.out);
    }
    /// Appends a section: the count, then one record per item.
    fn section<T>(&mut self, items: &[T], mut fill: impl FnMut(&mut Writer, &T)) {
        self.u32(len_u32(items.len()));
        for item in items {
            self.record(|w| fill(w, item));
        }
    }
}

/// Reads fields from a record or the body, naming `part` in its errors.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes` from the start of the description.
    base: usize,
    part: SystemPart,
}

impl<'a> Reader<'a> {
    fn offset(&self, pos: usize) -> u64 {
        self.base.saturating_add(pos) as u64
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], SystemError> {
        let slice = self
            .pos
            .checked_add(len)
            .and_then(|end| self.bytes.get(self.pos..end));
        match slice {
            Some(slice) => {
                self.pos = self.pos.saturating_add(len);
                Ok(slice)
            }
            None => Err(SystemError::OutOfBounds {
                part: self.part,
                field,
                offset: self.offset(self.pos),
                len: len as u64,
                end: self.offset(self.bytes.len()),
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SystemError> {
        let bytes = self.take(N, field)?;
        // `take` returned exactly N bytes.
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, SystemError> {
        self.array::<1>(field).map(|[b]| b)
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, SystemError> {
        self.array(field).map(u16::from_le_bytes)
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, SystemError> {
        self.array(field).map(u32::from_le_bytes)
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, SystemError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn string(&mut self, field: &'static str) -> Result<String, SystemError> {
        let len = self.u32(field)?;
        let bytes = self.take(len as usize, field)?;
        core::str::from_utf8(bytes)
            .map(String::from)
            .map_err(|_| SystemError::InvalidUtf8 {
                part: self.part,
                field,
            })
    }

    fn strings(&mut self, field: &'static str) -> Result<Vec<String>, SystemError> {
        let count = self.u32(field)?;
        // Every string takes at least four bytes, so a bad count fails quickly; do not
        // trust it for an allocation.
        let mut list = Vec::new();
        for _ in 0..count {
            list.push(self.string(field)?);
        }
        Ok(list)
    }

    fn u32s(&mut self, field: &'static str) -> Result<Vec<u32>, SystemError> {
        let count = self.u32(field)?;
        let mut list = Vec::new();
        for _ in 0..count {
            list.push(self.u32(field)?);
        }
        Ok(list)
    }

    /// Reads a record (length and body) and returns a reader over its body.
    fn record(&mut self, part: SystemPart) -> Result<Reader<'a>, SystemError> {
        let saved = self.part;
        self.part = part;
        let len = self.u32("record length");
        let start = self.pos;
        let body = len.and_then(|len| self.take(len as usize, "record"));
        self.part = saved;
        Ok(Reader {
            bytes: body?,
            pos: 0,
            base: self.base.saturating_add(start),
            part,
        })
    }

    /// Checks that nothing is left over, unless a newer minor version may have appended.
    fn finish(self, lenient: bool) -> Result<(), SystemError> {
        let extra = self.bytes.len().saturating_sub(self.pos);
        if extra == 0 || lenient {
            Ok(())
        } else {
            Err(SystemError::TrailingBytes {
                part: self.part,
                offset: self.offset(self.pos),
                extra: extra as u64,
            })
        }
    }
}

fn encode_component(w: &mut Writer, c: &ComponentSpec) {
    w.str(&c.name);
    w.str(&c.image);
    w.u8(c.priority);
    let (kind, restarts, window_ms) = match c.restart {
        RestartPolicy::Never => (RESTART_NEVER, 0, 0),
        RestartPolicy::Always => (RESTART_ALWAYS, 0, 0),
        RestartPolicy::AtMost {
            restarts,
            window_ms,
        } => (RESTART_AT_MOST, restarts, window_ms),
    };
    w.u8(kind);
    w.u16(c.core);
    w.u32(restarts);
    w.u64(window_ms);
    w.u64(c.stack_bytes);
    w.u64(c.heap_bytes);
    w.u64(c.memory_quota_bytes);
    w.u32(c.services);
    w.u64(c.arguments);
    w.strs(&c.devices);
    w.u32(len_u32(c.irqs.len()));
    for &irq in &c.irqs {
        w.u32(irq);
    }
}

fn decode_component(r: &mut Reader<'_>, lenient: bool) -> Result<ComponentSpec, SystemError> {
    let name = r.string("name")?;
    let image = r.string("image")?;
    let priority = r.u8("priority")?;
    let kind = r.u8("restart kind")?;
    let core = r.u16("core")?;
    let restarts = r.u32("restart count")?;
    let window_ms = r.u64("restart window")?;
    let restart = match kind {
        RESTART_NEVER => RestartPolicy::Never,
        RESTART_ALWAYS => RestartPolicy::Always,
        RESTART_AT_MOST => RestartPolicy::AtMost {
            restarts,
            window_ms,
        },
        kind => {
            return Err(SystemError::UnknownRestartPolicy {
                component: name,
                kind,
            });
        }
    };
    let stack_bytes = r.u64("stack size")?;
    let heap_bytes = r.u64("heap size")?;
    let memory_quota_bytes = r.u64("memory quota")?;
    let services = r.u32("services")?;
    if !lenient && services & !services::KNOWN != 0 {
        return Err(SystemError::UnknownServices {
            component: name,
            bits: services & !services::KNOWN,
        });
    }
    let arguments = r.u64("arguments")?;
    let devices = r.strings("devices")?;
    let irqs = r.u32s("IRQs")?;
    Ok(ComponentSpec {
        name,
        image,
        priority,
        stack_bytes,
        heap_bytes,
        memory_quota_bytes,
        restart,
        devices,
        irqs,
        services,
        arguments,
        core,
    })
}

fn encode_device(w: &mut Writer, d: &DeviceSpec) {
    w.str(&d.name);
    w.str(&d.compatible);
    w.u32(d.index);
}

fn decode_device(r: &mut Reader<'_>, _lenient: bool) -> Result<DeviceSpec, SystemError> {
    Ok(DeviceSpec {
        name: r.string("name")?,
        compatible: r.string("compatible")?,
        index: r.u32("index")?,
    })
}

fn encode_channel(w: &mut Writer, c: &ChannelSpec) {
    w.str(&c.name);
    w.str(&c.element);
    w.u32(c.element_bytes);
    w.u32(c.element_align);
    w.u32(c.capacity);
    w.str(&c.producer);
    w.str(&c.consumer);
}

fn decode_channel(r: &mut Reader<'_>, _lenient: bool) -> Result<ChannelSpec, SystemError> {
    Ok(ChannelSpec {
        name: r.string("name")?,
        element: r.string("element")?,
        element_bytes: r.u32("element size")?,
        element_align: r.u32("element alignment")?,
        capacity: r.u32("capacity")?,
        producer: r.string("producer")?,
        consumer: r.string("consumer")?,
    })
}

fn encode_endpoint(w: &mut Writer, e: &EndpointSpec) {
    w.str(&e.name);
    w.str(&e.server);
    w.strs(&e.clients);
}

fn decode_endpoint(r: &mut Reader<'_>, _lenient: bool) -> Result<EndpointSpec, SystemError> {
    Ok(EndpointSpec {
        name: r.string("name")?,
        server: r.string("server")?,
        clients: r.strings("clients")?,
    })
}

/// Reads a section: its count, then one record per item, each decoded by `decode`.
fn decode_section<T>(
    r: &mut Reader<'_>,
    count_part: SystemPart,
    record_part: fn(u32) -> SystemPart,
    lenient: bool,
    decode: fn(&mut Reader<'_>, bool) -> Result<T, SystemError>,
) -> Result<Vec<T>, SystemError> {
    let saved = r.part;
    r.part = count_part;
    let count = r.u32("count");
    r.part = saved;
    let mut items = Vec::new();
    for i in 0..count? {
        let mut record = r.record(record_part(i))?;
        items.push(decode(&mut record, lenient)?);
        record.finish(lenient)?;
    }
    Ok(items)
}

fn check_names<'a>(
    kind: &'static str,
    names: impl Iterator<Item = &'a str>,
    seen: &mut BTreeSet<&'a str>,
) -> Result<(), SystemError> {
    for (index, name) in names.enumerate() {
        if name.is_empty() {
            return Err(SystemError::EmptyName {
                kind,
                index: index_u32(index),
            });
        }
        if !seen.insert(name) {
            return Err(SystemError::DuplicateName {
                kind,
                name: String::from(name),
            });
        }
    }
    Ok(())
}

impl SystemDescription {
    /// Encodes the description in the binary form described in the [module
    /// documentation](self).
    ///
    /// Encoding does not validate; [`SystemDescription::decode`] does. (`kaal-build`
    /// validates `system.toml` before it encodes.)
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Writer::default();
        body.record(|w| w.str(&self.name));
        body.section(&self.components, encode_component);
        body.section(&self.devices, encode_device);
        body.section(&self.channels, encode_channel);
        body.section(&self.endpoints, encode_endpoint);

        let total = HEADER_SIZE.saturating_add(body.out.len());
        let header = SystemHeader {
            magic: SYSTEM_MAGIC,
            version_major: U16::new(SYSTEM_VERSION_MAJOR),
            version_minor: U16::new(SYSTEM_VERSION_MINOR),
            header_size: U32::new(len_u32(HEADER_SIZE)),
            total_size: U32::new(len_u32(total)),
            flags: U32::new(0),
        };
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(header.as_bytes());
        out.append(&mut body.out);
        out
    }

    /// Decodes and validates an encoded description.
    ///
    /// `bytes` may be longer than the recorded total size; the tail is ignored. No
    /// alignment is required.
    ///
    /// # Errors
    ///
    /// A [`SystemError`] naming the first problem: the structure (magic, major version,
    /// sizes, every length in bounds, UTF-8, known restart kinds and services) and then
    /// the meaning: non-empty unique names (channels and endpoints share one name
    /// space), every component and device name that is used is described, no device or
    /// IRQ granted twice, no endpoint client listed twice, channels with two different
    /// ends, a power-of-two capacity in `1..=2^30`, a non-zero element size and a
    /// power-of-two element alignment. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, SystemError> {
        let available = bytes.len();
        let magic = bytes.first_chunk::<8>().ok_or(SystemError::Truncated {
            needed: 8,
            available,
        })?;
        if *magic != SYSTEM_MAGIC {
            return Err(SystemError::BadMagic { found: *magic });
        }
        let (header, _) =
            SystemHeader::ref_from_prefix(bytes).map_err(|_| SystemError::Truncated {
                needed: HEADER_SIZE as u64,
                available,
            })?;
        let major = header.version_major.get();
        if major != SYSTEM_VERSION_MAJOR {
            return Err(SystemError::UnsupportedMajor {
                found: major,
                supported: SYSTEM_VERSION_MAJOR,
            });
        }
        let lenient = header.version_minor.get() > SYSTEM_VERSION_MINOR;
        let header_size = header.header_size.get();
        let total_size = header.total_size.get();
        if (header_size as usize) < HEADER_SIZE {
            return Err(SystemError::HeaderTooSmall {
                found: header_size,
                min: len_u32(HEADER_SIZE),
            });
        }
        if total_size < header_size {
            return Err(SystemError::SizeMismatch {
                header_size,
                total_size,
            });
        }
        let body =
            bytes
                .get(header_size as usize..total_size as usize)
                .ok_or(SystemError::Truncated {
                    needed: total_size.into(),
                    available,
                })?;
        if !lenient && header_size as usize != HEADER_SIZE {
            return Err(SystemError::TrailingBytes {
                part: SystemPart::Header,
                offset: HEADER_SIZE as u64,
                extra: u64::from(header_size) - HEADER_SIZE as u64,
            });
        }

        let mut r = Reader {
            bytes: body,
            pos: 0,
            base: header_size as usize,
            part: SystemPart::System,
        };
        let mut system = r.record(SystemPart::System)?;
        let name = system.string("name")?;
        system.finish(lenient)?;
        let components = decode_section(
            &mut r,
            SystemPart::Components,
            SystemPart::Component,
            lenient,
            decode_component,
        )?;
        let devices = decode_section(
            &mut r,
            SystemPart::Devices,
            SystemPart::Device,
            lenient,
            decode_device,
        )?;
        let channels = decode_section(
            &mut r,
            SystemPart::Channels,
            SystemPart::Channel,
            lenient,
            decode_channel,
        )?;
        let endpoints = decode_section(
            &mut r,
            SystemPart::Endpoints,
            SystemPart::Endpoint,
            lenient,
            decode_endpoint,
        )?;
        r.part = SystemPart::Endpoints;
        r.finish(lenient)?;

        let description = SystemDescription {
            name,
            components,
            devices,
            channels,
            endpoints,
        };
        description.validate()?;
        Ok(description)
    }

    /// Checks what the encoding cannot express: names, references and channel shapes.
    fn validate(&self) -> Result<(), SystemError> {
        let mut components = BTreeSet::new();
        check_names(
            "component",
            self.components.iter().map(|c| c.name.as_str()),
            &mut components,
        )?;
        let mut devices = BTreeSet::new();
        check_names(
            "device",
            self.devices.iter().map(|d| d.name.as_str()),
            &mut devices,
        )?;
        let mut links = BTreeSet::new();
        check_names(
            "channel",
            self.channels.iter().map(|c| c.name.as_str()),
            &mut links,
        )?;
        // Endpoints share the name space of channels.
        for (index, e) in self.endpoints.iter().enumerate() {
            if e.name.is_empty() {
                return Err(SystemError::EmptyName {
                    kind: "endpoint",
                    index: index_u32(index),
                });
            }
            if !links.insert(e.name.as_str()) {
                return Err(SystemError::DuplicateName {
                    kind: "channel or endpoint",
                    name: e.name.clone(),
                });
            }
        }

        let mut device_owner: BTreeMap<&str, &str> = BTreeMap::new();
        let mut irq_owner: BTreeMap<u32, &str> = BTreeMap::new();
        for c in &self.components {
            if c.image.is_empty() {
                return Err(SystemError::EmptyImage {
                    component: c.name.clone(),
                });
            }
            for d in &c.devices {
                if !devices.contains(d.as_str()) {
                    return Err(SystemError::UnknownDevice {
                        component: c.name.clone(),
                        device: d.clone(),
                    });
                }
                if let Some(first) = device_owner.insert(d, &c.name) {
                    return Err(SystemError::DeviceGrantedTwice {
                        device: d.clone(),
                        first: String::from(first),
                        second: c.name.clone(),
                    });
                }
            }
            for &irq in &c.irqs {
                if let Some(first) = irq_owner.insert(irq, &c.name) {
                    return Err(SystemError::IrqGrantedTwice {
                        irq,
                        first: String::from(first),
                        second: c.name.clone(),
                    });
                }
            }
        }

        let component = |kind, owner: &str, role, name: &str| {
            if components.contains(name) {
                Ok(())
            } else {
                Err(SystemError::UnknownComponent {
                    kind,
                    owner: String::from(owner),
                    role,
                    name: String::from(name),
                })
            }
        };
        for ch in &self.channels {
            component("channel", &ch.name, "producer", &ch.producer)?;
            component("channel", &ch.name, "consumer", &ch.consumer)?;
            if ch.producer == ch.consumer {
                return Err(SystemError::SameEnds {
                    channel: ch.name.clone(),
                    component: ch.producer.clone(),
                });
            }
            if !ch.capacity.is_power_of_two() || ch.capacity > MAX_CAPACITY {
                return Err(SystemError::BadCapacity {
                    channel: ch.name.clone(),
                    capacity: ch.capacity,
                });
            }
            if ch.element_bytes == 0 {
                return Err(SystemError::ZeroElementSize {
                    channel: ch.name.clone(),
                });
            }
            if !ch.element_align.is_power_of_two() {
                return Err(SystemError::BadElementAlign {
                    channel: ch.name.clone(),
                    align: ch.element_align,
                });
            }
        }
        for e in &self.endpoints {
            component("endpoint", &e.name, "server", &e.server)?;
            let mut clients = BTreeSet::new();
            for client in &e.clients {
                component("endpoint", &e.name, "client", client)?;
                if !clients.insert(client.as_str()) {
                    return Err(SystemError::DuplicateClient {
                        endpoint: e.name.clone(),
                        client: client.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The device called `name`.
    pub fn device(&self, name: &str) -> Option<&DeviceSpec> {
        self.devices.iter().find(|d| d.name == name)
    }
}
