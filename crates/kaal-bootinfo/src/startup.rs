//! The start-up record: what a component was granted, by name.
//!
//! The broker builds each component with exactly the capabilities its system description
//! grants and writes a start-up record into one page mapped read-only at
//! [`STARTUP_VADDR`] in the component (its address is also in `x0` at entry, its size in
//! `x1`). The component's runtime finds its grants there by name: a channel end, an
//! endpoint, a device, an IRQ line, the broker's service endpoint.
//!
//! ## Format
//!
//! Little-endian, read through alignment-1 types. A 64-byte [`StartupHeader`] (magic
//! `KAALSTRT`, major/minor version, header and entry sizes, entry count, the component's
//! id, generation, start argument and heap), then `entry_count` entries of
//! `entry_size` bytes, each a [`StartupEntry`]: a name (48 bytes, UTF-8, zero-padded), a
//! [`GrantKind`], four capability slots and four values whose meaning depends on the kind.
//! A newer minor version may grow the header and entries; the parser ignores the tail.
//!
//! ```
//! use kaal_bootinfo::startup::{Grant, GrantKind, StartupInfo, StartupWriter};
//!
//! let mut page = [0u8; 4096];
//! let mut writer = StartupWriter::new(&mut page, "producer", 3, 1)?;
//! writer.push(&Grant::new("fs", GrantKind::EndpointClient).slots([7, 0, 0, 0]))?;
//! let used = writer.finish();
//!
//! let startup = StartupInfo::parse(&page[..used])?;
//! assert_eq!(startup.component_name(), "producer");
//! let fs = startup.find("fs", GrantKind::EndpointClient)?;
//! assert_eq!(fs.slots[0], 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Where the broker maps a component's start-up record (read-only, one page).
pub const STARTUP_VADDR: u64 = 0x0000_0000_0f00_0000;
/// Largest start-up record (one page).
pub const STARTUP_MAX_BYTES: usize = 4096;
/// `KAALSTRT`.
pub const STARTUP_MAGIC: [u8; 8] = *b"KAALSTRT";
/// Major version: a different major is incompatible.
pub const STARTUP_VERSION_MAJOR: u16 = 1;
/// Minor version: a newer minor only appends fields.
pub const STARTUP_VERSION_MINOR: u16 = 0;
/// Longest grant name (bytes of UTF-8).
pub const MAX_GRANT_NAME_BYTES: usize = 48;

/// The record's header, 64 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct StartupHeader {
    /// [`STARTUP_MAGIC`].
    pub magic: [u8; 8],
    /// [`STARTUP_VERSION_MAJOR`].
    pub version_major: U16,
    /// [`STARTUP_VERSION_MINOR`].
    pub version_minor: U16,
    /// Size of this header (64 in version 1.0).
    pub header_size: U32,
    /// Size of one entry (128 in version 1.0).
    pub entry_size: U32,
    /// Number of entries.
    pub entry_count: U32,
    /// The component's id in the broker.
    pub component_id: U32,
    /// How many times the component was started before this start (0 the first time).
    pub generation: U32,
    /// The start argument from the system description.
    pub argument: U64,
    /// Where the component's heap is mapped (0: none, use the built-in one).
    pub heap_vaddr: U64,
    /// Size of the heap in bytes.
    pub heap_bytes: U64,
    /// Reserved, written 0.
    pub reserved: U64,
}

/// One grant, 128 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct StartupEntry {
    /// Name, zero-padded UTF-8.
    pub name: [u8; MAX_GRANT_NAME_BYTES],
    /// A [`GrantKind`] number.
    pub kind: U32,
    /// Reserved, written 0.
    pub reserved: U32,
    /// Capability slots in the component's CSpace (meaning per kind).
    pub slots: [U64; 4],
    /// Values (meaning per kind).
    pub values: [U64; 4],
    /// Reserved, written 0.
    pub tail: [u8; 8],
}

const HEADER_SIZE: usize = size_of::<StartupHeader>();
const ENTRY_SIZE: usize = size_of::<StartupEntry>();
const _: () = assert!(HEADER_SIZE == 64 && ENTRY_SIZE == 128);

macro_rules! grant_kinds {
    ($($(#[$doc:meta])* $name:ident = $value:literal),* $(,)?) => {
        /// What a grant is; the meaning of its slots and values.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum GrantKind {
            $($(#[$doc])* $name = $value,)*
        }
        impl GrantKind {
            /// The kind numbered `raw`.
            pub const fn from_raw(raw: u32) -> Option<Self> {
                match raw {
                    $($value => Some(Self::$name),)*
                    _ => None,
                }
            }
        }
    };
}

grant_kinds! {
    /// The serving side of an endpoint: slot 0 the endpoint (receive right).
    EndpointServer = 1,
    /// A client of an endpoint: slot 0 a badged endpoint capability (send).
    EndpointClient = 2,
    /// The producing end of a ring channel: slot 0 the notification to wait on for
    /// space, slot 1 the consumer's notification to signal; values: the region's
    /// address, its size in bytes, the capacity, and element size | element align << 32.
    ChannelProducer = 3,
    /// The consuming end of a ring channel: slot 0 the notification to wait on for data,
    /// slot 1 the producer's notification to signal; values as for the producer.
    ChannelConsumer = 4,
    /// A device: slot 0 its IRQ handler (0: none), slot 1 the notification its IRQ
    /// signals; values: the registers' address, their size in bytes, their physical
    /// address, the IRQ line (`u64::MAX`: none).
    Device = 5,
    /// A bare IRQ line: slot 0 the handler, slot 1 its notification; value 0 the line.
    Irq = 6,
    /// The broker's service endpoint: slot 0 the badged endpoint; value 0 the services
    /// the component may use (`system::services` bits).
    Broker = 7,
}

/// Why a start-up record was rejected, or a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    /// Fewer bytes than the header or the entries need.
    #[error("start-up record too short: {needed} bytes needed, {available} available")]
    TooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The magic is wrong.
    #[error("not a start-up record (bad magic)")]
    BadMagic,
    /// An unsupported major version.
    #[error("start-up record version {found}, this runtime reads {expected}")]
    Version {
        /// Major version found.
        found: u16,
        /// Major version supported.
        expected: u16,
    },
    /// A header or entry size smaller than this version's.
    #[error("start-up record {what} size {found} is below {minimum}")]
    BadSize {
        /// `header` or `entry`.
        what: &'static str,
        /// Size found.
        found: u32,
        /// Smallest accepted.
        minimum: u32,
    },
    /// An entry's name is not UTF-8 or is empty.
    #[error("start-up entry {index} has a malformed name")]
    BadName {
        /// Entry index.
        index: usize,
    },
    /// An entry of an unknown kind (from a newer broker; lookups skip it).
    #[error("start-up entry {index} has unknown kind {kind}")]
    UnknownKind {
        /// Entry index.
        index: usize,
        /// Kind number.
        kind: u32,
    },
    /// No grant of that name.
    #[error("no grant named `{name}`")]
    NotGranted {
        /// The name asked for (truncated to 48 bytes).
        name: GrantName,
    },
    /// A grant of that name exists but is something else.
    #[error("grant `{name}` is a {found:?}, not a {expected:?}")]
    WrongKind {
        /// The name asked for.
        name: GrantName,
        /// Kind asked for.
        expected: GrantKind,
        /// Kind found.
        found: GrantKind,
    },
    /// The record does not fit the page, or a name is too long (writer).
    #[error("start-up record full or name longer than 48 bytes")]
    Full,
}

/// A grant name held inline, for errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrantName {
    bytes: [u8; MAX_GRANT_NAME_BYTES],
    len: u8,
}

impl GrantName {
    /// `name`, truncated to 48 bytes at a character boundary.
    pub fn new(name: &str) -> Self {
        let mut len = name.len().min(MAX_GRANT_NAME_BYTES);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; MAX_GRANT_NAME_BYTES];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl core::fmt::Display for GrantName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for GrantName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A decoded grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant<'a> {
    /// Its name in the system description.
    pub name: &'a str,
    /// What it is.
    pub kind: GrantKind,
    /// Capability slots (meaning per kind).
    pub slots: [u64; 4],
    /// Values (meaning per kind).
    pub values: [u64; 4],
}

impl<'a> Grant<'a> {
    /// A grant with zero slots and values.
    pub const fn new(name: &'a str, kind: GrantKind) -> Self {
        Self {
            name,
            kind,
            slots: [0; 4],
            values: [0; 4],
        }
    }

    /// With these slots.
    pub const fn slots(mut self, slots: [u64; 4]) -> Self {
        self.slots = slots;
        self
    }

    /// With these values.
    pub const fn values(mut self, values: [u64; 4]) -> Self {
        self.values = values;
        self
    }
}

/// A validated start-up record.
#[derive(Clone, Copy, Debug)]
pub struct StartupInfo<'a> {
    header: StartupHeader,
    name: &'a str,
    entries: &'a [u8],
    entry_size: usize,
    count: usize,
}

/// The name of entry `index` (in bounds: checked by `parse`).
fn name_at(entries: &[u8], entry_size: usize, index: usize) -> Option<&str> {
    let start = index * entry_size;
    let raw = entries.get(start..start + MAX_GRANT_NAME_BYTES)?;
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let name = core::str::from_utf8(&raw[..len]).ok()?;
    (!name.is_empty()).then_some(name)
}

impl<'a> StartupInfo<'a> {
    /// Validates `bytes` (header, sizes, every entry's name and kind).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, StartupError> {
        let too_short = |needed| StartupError::TooShort {
            needed,
            available: bytes.len(),
        };
        let (header, _) =
            StartupHeader::read_from_prefix(bytes).map_err(|_| too_short(HEADER_SIZE))?;
        if header.magic != STARTUP_MAGIC {
            return Err(StartupError::BadMagic);
        }
        if header.version_major.get() != STARTUP_VERSION_MAJOR {
            return Err(StartupError::Version {
                found: header.version_major.get(),
                expected: STARTUP_VERSION_MAJOR,
            });
        }
        let header_size = header.header_size.get();
        let entry_size = header.entry_size.get();
        if (header_size as usize) < HEADER_SIZE {
            return Err(StartupError::BadSize {
                what: "header",
                found: header_size,
                minimum: HEADER_SIZE as u32,
            });
        }
        if (entry_size as usize) < ENTRY_SIZE {
            return Err(StartupError::BadSize {
                what: "entry",
                found: entry_size,
                minimum: ENTRY_SIZE as u32,
            });
        }
        let count = header.entry_count.get() as usize;
        let needed = (entry_size as usize)
            .checked_mul(count)
            .and_then(|n| n.checked_add(header_size as usize))
            .ok_or(too_short(usize::MAX))?;
        if needed > bytes.len() {
            return Err(too_short(needed));
        }
        let entries = &bytes[header_size as usize..needed];
        let mut name = "";
        for index in 0..count {
            let entry_name = name_at(entries, entry_size as usize, index)
                .ok_or(StartupError::BadName { index })?;
            if index == 0 {
                name = entry_name;
            }
        }
        Ok(Self {
            header,
            name,
            entries,
            entry_size: entry_size as usize,
            count,
        })
    }

    fn raw(entries: &[u8], entry_size: usize, index: usize) -> StartupEntry {
        let start = index * entry_size;
        // In bounds: `parse` checked `count * entry_size` bytes, entry_size >= ENTRY_SIZE.
        StartupEntry::read_from_prefix(&entries[start..])
            .map(|(entry, _)| entry)
            .unwrap_or_else(|_| StartupEntry::new_zeroed())
    }

    /// The component's name (the first entry's).
    pub fn component_name(&self) -> &'a str {
        self.name
    }

    /// The component's id in the broker.
    pub fn component_id(&self) -> u32 {
        self.header.component_id.get()
    }

    /// How many times the component was started before (0 on the first start).
    pub fn generation(&self) -> u32 {
        self.header.generation.get()
    }

    /// The start argument from the system description.
    pub fn argument(&self) -> u64 {
        self.header.argument.get()
    }

    /// The heap the broker mapped, `(address, bytes)`, if any.
    pub fn heap(&self) -> Option<(u64, u64)> {
        let (vaddr, bytes) = (self.header.heap_vaddr.get(), self.header.heap_bytes.get());
        (vaddr != 0 && bytes != 0).then_some((vaddr, bytes))
    }

    /// Every grant of a known kind, in order (the first is the component itself).
    pub fn grants(&self) -> impl Iterator<Item = Grant<'a>> + '_ {
        (1..self.count).filter_map(move |index| {
            let raw = Self::raw(self.entries, self.entry_size, index);
            let kind = GrantKind::from_raw(raw.kind.get())?;
            let name = name_at(self.entries, self.entry_size, index)?;
            Some(Grant {
                name,
                kind,
                slots: raw.slots.map(|s| s.get()),
                values: raw.values.map(|v| v.get()),
            })
        })
    }

    /// The grant named `name`, which must be of kind `kind`.
    pub fn find(&self, name: &str, kind: GrantKind) -> Result<Grant<'a>, StartupError> {
        let mut found = None;
        for grant in self.grants().filter(|g| g.name == name) {
            if grant.kind == kind {
                return Ok(grant);
            }
            found = Some(grant.kind);
        }
        Err(match found {
            Some(found) => StartupError::WrongKind {
                name: GrantName::new(name),
                expected: kind,
                found,
            },
            None => StartupError::NotGranted {
                name: GrantName::new(name),
            },
        })
    }
}

/// Writes a start-up record into a buffer (no allocation).
#[derive(Debug)]
pub struct StartupWriter<'b> {
    buffer: &'b mut [u8],
    header: StartupHeader,
    count: usize,
}

impl<'b> StartupWriter<'b> {
    /// Starts a record for component `name` (id `component_id`, started `generation`
    /// times before) in `buffer`.
    pub fn new(
        buffer: &'b mut [u8],
        name: &str,
        component_id: u32,
        generation: u32,
    ) -> Result<Self, StartupError> {
        if buffer.len() < HEADER_SIZE + ENTRY_SIZE {
            return Err(StartupError::Full);
        }
        let header = StartupHeader {
            magic: STARTUP_MAGIC,
            version_major: STARTUP_VERSION_MAJOR.into(),
            version_minor: STARTUP_VERSION_MINOR.into(),
            header_size: (HEADER_SIZE as u32).into(),
            entry_size: (ENTRY_SIZE as u32).into(),
            entry_count: 0.into(),
            component_id: component_id.into(),
            generation: generation.into(),
            argument: 0.into(),
            heap_vaddr: 0.into(),
            heap_bytes: 0.into(),
            reserved: 0.into(),
        };
        let mut writer = Self {
            buffer,
            header,
            count: 0,
        };
        // The first entry names the component; its kind is 0 (skipped by lookups).
        writer.push_raw(name, 0, [0; 4], [0; 4])?;
        Ok(writer)
    }

    /// Sets the start argument.
    pub fn argument(&mut self, argument: u64) {
        self.header.argument = argument.into();
    }

    /// Records the heap mapping.
    pub fn heap(&mut self, vaddr: u64, bytes: u64) {
        self.header.heap_vaddr = vaddr.into();
        self.header.heap_bytes = bytes.into();
    }

    fn push_raw(
        &mut self,
        name: &str,
        kind: u32,
        slots: [u64; 4],
        values: [u64; 4],
    ) -> Result<(), StartupError> {
        if name.is_empty() || name.len() > MAX_GRANT_NAME_BYTES || name.contains('\0') {
            return Err(StartupError::Full);
        }
        let start = HEADER_SIZE + self.count * ENTRY_SIZE;
        let target = self
            .buffer
            .get_mut(start..start + ENTRY_SIZE)
            .ok_or(StartupError::Full)?;
        let mut entry = StartupEntry::new_zeroed();
        entry.name[..name.len()].copy_from_slice(name.as_bytes());
        entry.kind = kind.into();
        entry.slots = slots.map(U64::new);
        entry.values = values.map(U64::new);
        target.copy_from_slice(entry.as_bytes());
        self.count += 1;
        Ok(())
    }

    /// Appends a grant.
    pub fn push(&mut self, grant: &Grant<'_>) -> Result<(), StartupError> {
        self.push_raw(grant.name, grant.kind as u32, grant.slots, grant.values)
    }

    /// Writes the header; returns the record's size in bytes.
    pub fn finish(mut self) -> usize {
        self.header.entry_count = (self.count as u32).into();
        self.buffer[..HEADER_SIZE].copy_from_slice(self.header.as_bytes());
        HEADER_SIZE + self.count * ENTRY_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ([u8; 4096], usize) {
        let mut page = [0u8; 4096];
        let mut writer = StartupWriter::new(&mut page, "consumer", 2, 5).unwrap();
        writer.argument(42);
        writer.heap(0x1_0000_0000, 1 << 20);
        writer
            .push(&Grant::new("samples", GrantKind::ChannelConsumer).slots([8, 9, 0, 0]))
            .unwrap();
        writer
            .push(&Grant::new("broker", GrantKind::Broker).values([3, 0, 0, 0]))
            .unwrap();
        let used = writer.finish();
        (page, used)
    }

    #[test]
    fn round_trip() {
        let (page, used) = record();
        let info = StartupInfo::parse(&page[..used]).unwrap();
        assert_eq!(info.component_name(), "consumer");
        assert_eq!((info.component_id(), info.generation()), (2, 5));
        assert_eq!(info.argument(), 42);
        assert_eq!(info.heap(), Some((0x1_0000_0000, 1 << 20)));
        assert_eq!(info.grants().count(), 2);
        let samples = info.find("samples", GrantKind::ChannelConsumer).unwrap();
        assert_eq!(samples.slots, [8, 9, 0, 0]);
        assert_eq!(
            info.find("samples", GrantKind::ChannelProducer),
            Err(StartupError::WrongKind {
                name: GrantName::new("samples"),
                expected: GrantKind::ChannelProducer,
                found: GrantKind::ChannelConsumer
            })
        );
        assert!(matches!(
            info.find("nothing", GrantKind::Device),
            Err(StartupError::NotGranted { .. })
        ));
    }

    #[test]
    fn every_truncation_and_corruption_is_rejected_or_harmless() {
        let (page, used) = record();
        for len in 0..used {
            assert!(StartupInfo::parse(&page[..len]).is_err(), "length {len}");
        }
        for at in 0..used {
            for value in [0u8, 0xff, 0x80] {
                let mut bytes = page;
                bytes[at] = value;
                if let Ok(info) = StartupInfo::parse(&bytes[..used]) {
                    let _ = info.grants().count();
                    let _ = info.find("samples", GrantKind::ChannelConsumer);
                }
            }
        }
        let mut bad = page;
        bad[0] = b'X';
        assert_eq!(
            StartupInfo::parse(&bad[..used]).err(),
            Some(StartupError::BadMagic)
        );
    }

    #[test]
    fn writer_refuses_overflow_and_bad_names() {
        let mut page = [0u8; 512];
        let mut writer = StartupWriter::new(&mut page, "x", 0, 0).unwrap();
        assert_eq!(
            writer.push(&Grant::new("", GrantKind::Irq)),
            Err(StartupError::Full)
        );
        let long = core::str::from_utf8(&[b'n'; 49]).unwrap();
        assert_eq!(
            writer.push(&Grant::new(long, GrantKind::Irq)),
            Err(StartupError::Full)
        );
        let mut pushed = 0;
        while writer.push(&Grant::new("irq", GrantKind::Irq)).is_ok() {
            pushed += 1;
        }
        assert_eq!(pushed, 2);
    }
}
