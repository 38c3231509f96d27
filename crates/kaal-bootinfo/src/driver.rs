//! Driver metadata: what `#[derive(Driver)]` records about a driver in its binary, and
//! `kaal-build` reads back from the ELF without running it.
//!
//! The derive macro encodes a record with [`encode`] (feature `alloc`) at expansion time
//! and emits it as a `#[used]` byte-array static named `__KAAL_DRIVER_METADATA_<NAME>`;
//! the host reads the static's bytes and validates them with [`DriverInfo::parse`]. The
//! record is data from a file, so the parser trusts nothing: it checks everything up
//! front, returns a [`DriverInfoError`] naming the problem, and never panics.
//!
//! ## Format
//!
//! All integers little-endian; no alignment is required (the static is a `[u8; N]`).
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 8    | magic `KAALDRV1` ([`DRIVER_MAGIC`])                          |
//! | 8      | 2    | version ([`DRIVER_VERSION`]); the parser rejects any other   |
//! | 10     | 2    | flags, written 0, ignored                                    |
//! | 12     | 4    | total size of the record in bytes, header included           |
//! | 16     | ...  | body, packed, ending exactly at the total size               |
//!
//! The body, in order:
//!
//! | field                  | encoding                                                          |
//! |------------------------|-------------------------------------------------------------------|
//! | name                   | `u8` length (1..=[`MAX_NAME_BYTES`]), UTF-8 bytes                |
//! | compatible strings     | `u8` count (<= [`MAX_COMPATIBLE`]), each a `u8` length (1..=[`MAX_COMPATIBLE_BYTES`]) and UTF-8 bytes without NUL |
//! | PCI ids                | `u8` count (<= [`MAX_PCI_IDS`]), each `u16` vendor, `u16` device  |
//! | register regions       | `u8`                                                              |
//! | IRQ lines              | `u8`                                                              |
//! | DMA buffers            | `u8` count (<= [`MAX_DMA_BUFFERS`]), each a `u64` size in bytes (> 0) |

use core::fmt;
use core::iter::FusedIterator;

/// The first eight bytes of a driver metadata record.
pub const DRIVER_MAGIC: [u8; 8] = *b"KAALDRV1";
/// Version of the record format.
pub const DRIVER_VERSION: u16 = 1;
/// Size of the fixed header (bytes).
pub const DRIVER_HEADER_SIZE: usize = 16;
/// Longest driver name (bytes of UTF-8).
pub const MAX_NAME_BYTES: usize = 64;
/// Most `compatible` strings of one driver.
pub const MAX_COMPATIBLE: usize = 32;
/// Longest `compatible` string (bytes of UTF-8).
pub const MAX_COMPATIBLE_BYTES: usize = 128;
/// Most PCI ids of one driver.
pub const MAX_PCI_IDS: usize = 64;
/// Most DMA buffers of one driver.
pub const MAX_DMA_BUFFERS: usize = 16;

/// Names a field of a driver metadata record in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DriverField {
    /// The header.
    Header,
    /// The driver's name.
    Name,
    /// The list of `compatible` strings.
    CompatibleList,
    /// The `compatible` string with this index.
    Compatible {
        /// Its position in the list.
        index: usize,
    },
    /// The list of PCI ids.
    PciIds,
    /// The register-region and IRQ-line counts.
    Counts,
    /// The list of DMA buffer sizes.
    DmaBuffers,
    /// The DMA buffer size with this index.
    DmaBuffer {
        /// Its position in the list.
        index: usize,
    },
}

impl fmt::Display for DriverField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("header"),
            Self::Name => f.write_str("driver name"),
            Self::CompatibleList => f.write_str("compatible list"),
            Self::Compatible { index } => write!(f, "compatible string {index}"),
            Self::PciIds => f.write_str("PCI id list"),
            Self::Counts => f.write_str("resource counts"),
            Self::DmaBuffers => f.write_str("DMA buffer list"),
            Self::DmaBuffer { index } => write!(f, "DMA buffer {index}"),
        }
    }
}

/// Why [`DriverInfo::parse`] rejected a record, or [`encode`] a description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverInfoError {
    /// The buffer ends before the header or before the record's total size.
    #[error("driver metadata truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The first eight bytes are not [`DRIVER_MAGIC`].
    #[error("bad driver metadata magic {found:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The version is not [`DRIVER_VERSION`].
    #[error("unsupported driver metadata version {found} (supported: {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
        /// The version this parser reads.
        supported: u16,
    },
    /// The total size cannot even hold the header.
    #[error("driver metadata total size {total_size} smaller than the header ({min} bytes)")]
    TotalSizeTooSmall {
        /// The recorded total size.
        total_size: u32,
        /// The header size.
        min: usize,
    },
    /// A field runs past the record's total size.
    #[error("{field} ends at byte {end}, past the record's total size {total_size}")]
    FieldOutOfBounds {
        /// The field.
        field: DriverField,
        /// Where it would end.
        end: usize,
        /// The record's total size.
        total_size: usize,
    },
    /// The body ends before the record's total size.
    #[error("driver metadata ends at byte {end}, before its total size {total_size}")]
    TrailingBytes {
        /// Where the body ends.
        end: usize,
        /// The record's total size.
        total_size: usize,
    },
    /// A string is empty.
    #[error("{field} is empty")]
    Empty {
        /// The string.
        field: DriverField,
    },
    /// A string is longer than its limit.
    #[error("{field} is {len} bytes long, more than the limit {max}")]
    TooLong {
        /// The string.
        field: DriverField,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list has more entries than its limit.
    #[error("{field}: {count} entries, more than the limit {max}")]
    TooMany {
        /// The list.
        field: DriverField,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The string.
        field: DriverField,
    },
    /// A `compatible` string holds a NUL byte (device trees use NUL as the separator).
    #[error("{field} contains a NUL byte")]
    Nul {
        /// The string.
        field: DriverField,
    },
    /// A DMA buffer of zero bytes.
    #[error("{field} has size 0")]
    ZeroSize {
        /// The buffer.
        field: DriverField,
    },
}

/// A PCI vendor and device id pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PciId {
    /// Vendor id (`0x1af4`: virtio).
    pub vendor: u16,
    /// Device id.
    pub device: u16,
}

/// A driver's metadata as [`encode`] takes it: mirrors `kaal_dddk::DriverMetadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DriverDesc<'a> {
    /// `#[driver(name = "...")]`.
    pub name: &'a str,
    /// `#[platform(compatible = "...")]` strings.
    pub compatible: &'a [&'a str],
    /// `#[pci(vendor = .., device = ..)]` ids.
    pub pci: &'a [PciId],
    /// Register regions the driver needs.
    pub mmio: u8,
    /// IRQ lines the driver needs.
    pub irqs: u8,
    /// Sizes of the DMA buffers the driver needs, in bytes.
    pub dma: &'a [u64],
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// A validated driver metadata record.
///
/// [`DriverInfo::parse`] checks everything up front; the accessors then cannot fail.
///
/// ```
/// use kaal_bootinfo::driver::{DriverInfo, PciId};
///
/// let record = [
///     b'K', b'A', b'A', b'L', b'D', b'R', b'V', b'1', // magic
///     1, 0, 0, 0, 39, 0, 0, 0, // version 1, flags, total size 39
///     5, b'v', b'b', b'l', b'k', b'0', // name
///     0, // no compatible strings
///     1, 0xf4, 0x1a, 0x01, 0x10, // one PCI id: 1af4:1001
///     1, 1, // one register region, one IRQ line
///     1, 0, 0, 1, 0, 0, 0, 0, 0, // one DMA buffer of 64 KiB
/// ];
/// let info = DriverInfo::parse(&record)?;
/// assert_eq!(info.name(), "vblk0");
/// assert_eq!(info.compatible().count(), 0);
/// assert_eq!(info.pci().collect::<Vec<_>>(), [PciId { vendor: 0x1af4, device: 0x1001 }]);
/// assert_eq!((info.mmio(), info.irqs()), (1, 1));
/// assert_eq!(info.dma().collect::<Vec<_>>(), [65536]);
/// assert_eq!(info.total_size(), record.len());
/// # Ok::<(), kaal_bootinfo::driver::DriverInfoError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverInfo<'a> {
    name: &'a str,
    /// The encoded `compatible` strings (each a length byte and its bytes), validated.
    compatible: &'a [u8],
    compatible_count: usize,
    /// The PCI ids, 4 bytes each.
    pci: &'a [u8],
    mmio: u8,
    irqs: u8,
    /// The DMA sizes, 8 bytes each.
    dma: &'a [u8],
    total_size: usize,
}

/// Reads a record's fields in order, never past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: DriverField, len: usize) -> Result<&'a [u8], DriverInfoError> {
        let end = self.at.saturating_add(len);
        let taken = self
            .bytes
            .get(self.at..end)
            .ok_or(DriverInfoError::FieldOutOfBounds {
                field,
                end,
                total_size: self.bytes.len(),
            })?;
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self, field: DriverField) -> Result<u8, DriverInfoError> {
        let [byte] = self.array::<1>(field)?;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self, field: DriverField) -> Result<[u8; N], DriverInfoError> {
        let taken = self.take(field, N)?;
        // `take` returned exactly N bytes.
        Ok(taken.first_chunk::<N>().copied().unwrap_or([0; N]))
    }

    /// A `u8` count, checked against `max`.
    fn count(&mut self, field: DriverField, max: usize) -> Result<usize, DriverInfoError> {
        let count = usize::from(self.byte(field)?);
        check_count(field, count, max)?;
        Ok(count)
    }
}

impl<'a> DriverInfo<'a> {
    /// Validates a record.
    ///
    /// `bytes` may be longer than the record's total size (for instance the rest of the
    /// section it lives in); the tail is ignored. No alignment is required.
    ///
    /// # Errors
    ///
    /// A [`DriverInfoError`] naming the first problem: truncated header, bad magic,
    /// unsupported version, total size smaller than the header or larger than `bytes`,
    /// then per field in order: a field running past the total size, an empty, too
    /// long, NUL-holding or non-UTF-8 string, a list longer than its limit, a DMA
    /// buffer of size 0; finally a body that ends before the total size. Never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DriverInfoError> {
        let available = bytes.len();
        let header =
            bytes
                .first_chunk::<DRIVER_HEADER_SIZE>()
                .ok_or(DriverInfoError::Truncated {
                    needed: DRIVER_HEADER_SIZE,
                    available,
                })?;
        let [m0, m1, m2, m3, m4, m5, m6, m7, v0, v1, _, _, t0, t1, t2, t3] = *header;
        let magic = [m0, m1, m2, m3, m4, m5, m6, m7];
        if magic != DRIVER_MAGIC {
            return Err(DriverInfoError::BadMagic { found: magic });
        }
        let version = u16::from_le_bytes([v0, v1]);
        if version != DRIVER_VERSION {
            return Err(DriverInfoError::UnsupportedVersion {
                found: version,
                supported: DRIVER_VERSION,
            });
        }
        let total_size = u32::from_le_bytes([t0, t1, t2, t3]);
        let total = usize::try_from(total_size).unwrap_or(usize::MAX);
        if total < DRIVER_HEADER_SIZE {
            return Err(DriverInfoError::TotalSizeTooSmall {
                total_size,
                min: DRIVER_HEADER_SIZE,
            });
        }
        let record = bytes.get(..total).ok_or(DriverInfoError::Truncated {
            needed: total,
            available,
        })?;
        let mut reader = Reader {
            bytes: record,
            at: DRIVER_HEADER_SIZE,
        };

        let name_len = usize::from(reader.byte(DriverField::Name)?);
        let name = reader.take(DriverField::Name, name_len)?;
        let name = check_string(DriverField::Name, name, MAX_NAME_BYTES)?;

        let compatible_count = reader.count(DriverField::CompatibleList, MAX_COMPATIBLE)?;
        let compatible_start = reader.at;
        for index in 0..compatible_count {
            let field = DriverField::Compatible { index };
            let len = usize::from(reader.byte(field)?);
            let string = reader.take(field, len)?;
            check_string(field, string, MAX_COMPATIBLE_BYTES)?;
        }
        let compatible = record.get(compatible_start..reader.at).unwrap_or(&[]);

        let pci_count = reader.count(DriverField::PciIds, MAX_PCI_IDS)?;
        let pci = reader.take(DriverField::PciIds, pci_count * 4)?;

        let mmio = reader.byte(DriverField::Counts)?;
        let irqs = reader.byte(DriverField::Counts)?;

        let dma_count = reader.count(DriverField::DmaBuffers, MAX_DMA_BUFFERS)?;
        let dma = reader.take(DriverField::DmaBuffers, dma_count * 8)?;
        for (index, size) in DmaSizes(dma.chunks_exact(8)).enumerate() {
            if size == 0 {
                return Err(DriverInfoError::ZeroSize {
                    field: DriverField::DmaBuffer { index },
                });
            }
        }

        if reader.at != total {
            return Err(DriverInfoError::TrailingBytes {
                end: reader.at,
                total_size: total,
            });
        }
        Ok(Self {
            name,
            compatible,
            compatible_count,
            pci,
            mmio,
            irqs,
            dma,
            total_size: total,
        })
    }

    /// The driver's name: what `system.toml` names in `driver = "..."`.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The device-tree `compatible` strings the driver drives, in declaration order.
    pub fn compatible(&self) -> Compatibles<'a> {
        Compatibles {
            rest: self.compatible,
            remaining: self.compatible_count,
        }
    }

    /// The PCI ids the driver drives, in declaration order.
    pub fn pci(&self) -> PciIds<'a> {
        PciIds(self.pci.chunks_exact(4))
    }

    /// How many register regions the driver needs.
    pub fn mmio(&self) -> u8 {
        self.mmio
    }

    /// How many IRQ lines the driver needs.
    pub fn irqs(&self) -> u8 {
        self.irqs
    }

    /// The sizes in bytes of the DMA buffers the driver needs, in declaration order.
    pub fn dma(&self) -> DmaSizes<'a> {
        DmaSizes(self.dma.chunks_exact(8))
    }

    /// Size of the record in bytes.
    pub fn total_size(&self) -> usize {
        self.total_size
    }
}

/// The `compatible` strings of a [`DriverInfo`].
#[derive(Clone, Debug)]
pub struct Compatibles<'a> {
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for Compatibles<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (&len, rest) = self.rest.split_first()?;
        let (string, rest) = rest.split_at_checked(usize::from(len))?;
        self.rest = rest;
        self.remaining = self.remaining.saturating_sub(1);
        // `DriverInfo::parse` checked every string; the fallback is unreachable.
        Some(core::str::from_utf8(string).unwrap_or(""))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Compatibles<'_> {}
impl FusedIterator for Compatibles<'_> {}

/// The PCI ids of a [`DriverInfo`].
#[derive(Clone, Debug)]
pub struct PciIds<'a>(core::slice::ChunksExact<'a, u8>);

impl Iterator for PciIds<'_> {
    type Item = PciId;

    fn next(&mut self) -> Option<PciId> {
        let &[v0, v1, d0, d1] = self.0.next()? else {
            return None;
        };
        Some(PciId {
            vendor: u16::from_le_bytes([v0, v1]),
            device: u16::from_le_bytes([d0, d1]),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for PciIds<'_> {}
impl FusedIterator for PciIds<'_> {}

/// The DMA buffer sizes of a [`DriverInfo`].
#[derive(Clone, Debug)]
pub struct DmaSizes<'a>(core::slice::ChunksExact<'a, u8>);

impl Iterator for DmaSizes<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let chunk = self.0.next()?;
        chunk.first_chunk::<8>().copied().map(u64::from_le_bytes)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for DmaSizes<'_> {}
impl FusedIterator for DmaSizes<'_> {}

/// Checks a string field against the format's rules: non-empty, at most `max` bytes,
/// no NUL, UTF-8.
fn check_string(field: DriverField, bytes: &[u8], max: usize) -> Result<&str, DriverInfoError> {
    if bytes.is_empty() {
        return Err(DriverInfoError::Empty { field });
    }
    if bytes.len() > max {
        return Err(DriverInfoError::TooLong {
            field,
            len: bytes.len(),
            max,
        });
    }
    if bytes.contains(&0) {
        return Err(DriverInfoError::Nul { field });
    }
    core::str::from_utf8(bytes).map_err(|_| DriverInfoError::InvalidUtf8 { field })
}

/// Checks a list's length against its limit.
fn check_count(field: DriverField, count: usize, max: usize) -> Result<(), DriverInfoError> {
    if count > max {
        return Err(DriverInfoError::TooMany { field, count, max });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Encoding (host side)
// ---------------------------------------------------------------------------------------

/// A driver's metadata, owned: what a host tool keeps after reading a binary.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DriverInfoOwned {
    /// The driver's name.
    pub name: alloc::string::String,
    /// The device-tree `compatible` strings it drives.
    pub compatible: alloc::vec::Vec<alloc::string::String>,
    /// The PCI ids it drives.
    pub pci: alloc::vec::Vec<PciId>,
    /// Register regions it needs.
    pub mmio: u8,
    /// IRQ lines it needs.
    pub irqs: u8,
    /// Sizes of the DMA buffers it needs, in bytes.
    pub dma: alloc::vec::Vec<u64>,
}

#[cfg(feature = "alloc")]
impl DriverInfoOwned {
    /// Encodes the metadata as a record (see [`encode`]).
    ///
    /// # Errors
    ///
    /// As [`encode`].
    pub fn encode(&self) -> Result<alloc::vec::Vec<u8>, DriverInfoError> {
        let compatible: alloc::vec::Vec<&str> = self
            .compatible
            .iter()
            .map(alloc::string::String::as_str)
            .collect();
        encode(&DriverDesc {
            name: &self.name,
            compatible: &compatible,
            pci: &self.pci,
            mmio: self.mmio,
            irqs: self.irqs,
            dma: &self.dma,
        })
    }
}

#[cfg(feature = "alloc")]
impl From<DriverInfo<'_>> for DriverInfoOwned {
    fn from(info: DriverInfo<'_>) -> Self {
        Self {
            name: info.name().into(),
            compatible: info.compatible().map(Into::into).collect(),
            pci: info.pci().collect(),
            mmio: info.mmio(),
            irqs: info.irqs(),
            dma: info.dma().collect(),
        }
    }
}

/// Encodes a driver's metadata as a record that [`DriverInfo::parse`] accepts.
///
/// ```
/// use kaal_bootinfo::driver::{DriverDesc, DriverInfo, encode};
///
/// // Expansion time (the derive macro): encode the record.
/// let bytes = encode(&DriverDesc {
///     name: "pl031",
///     compatible: &["arm,pl031", "arm,primecell"],
///     pci: &[],
///     mmio: 1,
///     irqs: 1,
///     dma: &[65536],
/// })?;
///
/// // Build time (kaal-build): validate the bytes found in the driver's ELF, then read.
/// let info = DriverInfo::parse(&bytes)?;
/// assert_eq!(info.name(), "pl031");
/// assert_eq!(info.compatible().collect::<Vec<_>>(), ["arm,pl031", "arm,primecell"]);
/// assert_eq!(info.pci().count(), 0);
/// assert_eq!((info.mmio(), info.irqs()), (1, 1));
/// assert_eq!(info.dma().collect::<Vec<_>>(), [65536]);
/// assert_eq!(info.total_size(), bytes.len());
/// # Ok::<(), kaal_bootinfo::driver::DriverInfoError>(())
/// ```
///
/// # Errors
///
/// [`DriverInfoError::Empty`], [`DriverInfoError::TooLong`], [`DriverInfoError::Nul`]
/// or [`DriverInfoError::InvalidUtf8`] for a name or `compatible` string the format
/// cannot hold, [`DriverInfoError::TooMany`] for a list past its limit,
/// [`DriverInfoError::ZeroSize`] for a DMA buffer of 0 bytes.
#[cfg(feature = "alloc")]
pub fn encode(desc: &DriverDesc<'_>) -> Result<alloc::vec::Vec<u8>, DriverInfoError> {
    check_string(DriverField::Name, desc.name.as_bytes(), MAX_NAME_BYTES)?;
    check_count(
        DriverField::CompatibleList,
        desc.compatible.len(),
        MAX_COMPATIBLE,
    )?;
    for (index, string) in desc.compatible.iter().enumerate() {
        let field = DriverField::Compatible { index };
        check_string(field, string.as_bytes(), MAX_COMPATIBLE_BYTES)?;
    }
    check_count(DriverField::PciIds, desc.pci.len(), MAX_PCI_IDS)?;
    check_count(DriverField::DmaBuffers, desc.dma.len(), MAX_DMA_BUFFERS)?;
    if let Some(index) = desc.dma.iter().position(|&size| size == 0) {
        return Err(DriverInfoError::ZeroSize {
            field: DriverField::DmaBuffer { index },
        });
    }

    // Every length and count was checked against a limit below 256, so `length` is
    // exact and the total stays far below `u32::MAX`.
    let length = |len: usize| u8::try_from(len).unwrap_or(u8::MAX);
    let mut out = alloc::vec::Vec::with_capacity(256);
    out.extend_from_slice(&DRIVER_MAGIC);
    out.extend_from_slice(&DRIVER_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // total size, patched below
    out.push(length(desc.name.len()));
    out.extend_from_slice(desc.name.as_bytes());
    out.push(length(desc.compatible.len()));
    for string in desc.compatible {
        out.push(length(string.len()));
        out.extend_from_slice(string.as_bytes());
    }
    out.push(length(desc.pci.len()));
    for id in desc.pci {
        out.extend_from_slice(&id.vendor.to_le_bytes());
        out.extend_from_slice(&id.device.to_le_bytes());
    }
    out.push(desc.mmio);
    out.push(desc.irqs);
    out.push(length(desc.dma.len()));
    for size in desc.dma {
        out.extend_from_slice(&size.to_le_bytes());
    }
    let total = u32::try_from(out.len()).unwrap_or(u32::MAX).to_le_bytes();
    if let Some(slot) = out.get_mut(12..16) {
        slot.copy_from_slice(&total);
    }
    Ok(out)
}

#[cfg(feature = "alloc")]
impl DriverInfo<'_> {
    /// An owned copy, for keeping past the bytes it was parsed from.
    pub fn into_owned(self) -> DriverInfoOwned {
        self.into()
    }
}
