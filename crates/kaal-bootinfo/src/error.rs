//! Error types of the boot-info writer and parser.

use core::fmt;

/// Names a part of the boot-info area in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// The header.
    Header,
    /// The untyped-region section.
    Untyped,
    /// The device section.
    Devices,
    /// The string area (strings and IRQ lists).
    Strings,
    /// The kernel version string.
    KernelVersion,
    /// The kernel command line.
    Bootargs,
    /// The `compatible` string of the device with this index.
    DeviceCompatible {
        /// Index of the device.
        index: u32,
    },
    /// The IRQ list of the device with this index.
    DeviceIrqs {
        /// Index of the device.
        index: u32,
    },
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Header => f.write_str("header"),
            Part::Untyped => f.write_str("untyped section"),
            Part::Devices => f.write_str("device section"),
            Part::Strings => f.write_str("string area"),
            Part::KernelVersion => f.write_str("kernel version"),
            Part::Bootargs => f.write_str("bootargs"),
            Part::DeviceCompatible { index } => write!(f, "compatible string of device {index}"),
            Part::DeviceIrqs { index } => write!(f, "IRQ list of device {index}"),
        }
    }
}

/// Why [`crate::BootInfo::from_bytes`] rejected a boot-info area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootInfoError {
    /// The buffer ends before a structure that must be there.
    #[error("boot info too short: need {needed} bytes, have {available}")]
    TooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The first eight bytes are not `KAALBOOT`.
    #[error("bad boot-info magic {found:#018x}")]
    BadMagic {
        /// The magic found (little-endian `u64`).
        found: u64,
    },
    /// The major version is not [`crate::VERSION_MAJOR`].
    #[error("unsupported boot-info major version {found} (supported: {supported})")]
    UnsupportedMajor {
        /// The major version found.
        found: u16,
        /// The major version this parser reads.
        supported: u16,
    },
    /// `header_size` is smaller than this version's header.
    #[error("boot-info header size {found} smaller than minimum {min}")]
    HeaderTooSmall {
        /// The header size found.
        found: u32,
        /// The smallest header this major version allows.
        min: u32,
    },
    /// `total_size` is smaller than `header_size`.
    #[error("boot-info total size {total_size} smaller than header size {header_size}")]
    SizeMismatch {
        /// The header size.
        header_size: u32,
        /// The total size.
        total_size: u32,
    },
    /// `total_size` is larger than the buffer.
    #[error("boot-info total size {total_size} larger than buffer of {available} bytes")]
    TotalSizeTooLarge {
        /// The total size claimed by the header.
        total_size: u32,
        /// Bytes available.
        available: usize,
    },
    /// A section's entry size is smaller than this version's entry (or, for the string
    /// area, not 1).
    #[error("{section}: bad entry size {found} (expected {expected})")]
    BadEntrySize {
        /// The section.
        section: Part,
        /// The entry size found.
        found: u32,
        /// The entry size of this version (minimum for arrays, exact for the string area).
        expected: u32,
    },
    /// An offset or size is not a multiple of the required alignment.
    #[error("{part}: offset {offset} not aligned to {align} bytes")]
    Misaligned {
        /// What is misaligned.
        part: Part,
        /// The offending offset or size.
        offset: u64,
        /// The required alignment.
        align: u32,
    },
    /// A count exceeds the limit of this version.
    #[error("{part}: count {count} exceeds limit {max}")]
    CountTooLarge {
        /// What is counted.
        part: Part,
        /// The count found.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// A section does not lie between the end of the header and `total_size`.
    #[error("{section} at offset {offset}, length {len} is out of bounds")]
    SectionOutOfBounds {
        /// The section.
        section: Part,
        /// Its offset from the start of the boot-info area.
        offset: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// A string or IRQ list does not lie inside the string area.
    #[error("{field} at offset {offset}, length {len} is outside the string area")]
    FieldOutOfBounds {
        /// The string or IRQ list.
        field: Part,
        /// Its offset from the start of the string area.
        offset: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The string.
        field: Part,
    },
    /// A memory region's `base + size_bytes` overflows `u64`.
    #[error("{section} entry {index}: base {base:#x} + size {size:#x} overflows")]
    AddressOverflow {
        /// The section.
        section: Part,
        /// Index of the entry.
        index: u32,
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
}

/// Why [`crate::write_boot_info`] could not write a boot-info area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The output buffer is too small.
    #[error("boot-info buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The boot info would exceed [`crate::BOOT_INFO_MAX_BYTES`].
    #[error("boot info needs {needed} bytes, more than the maximum {max}")]
    TooLarge {
        /// Bytes needed.
        needed: usize,
        /// The maximum.
        max: usize,
    },
    /// A string is longer than its limit.
    #[error("{field} is {len} bytes long, more than the limit {max}")]
    StringTooLong {
        /// The string.
        field: Part,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many untyped regions, devices or IRQs of one device.
    #[error("{part}: {count} entries, more than the limit {max}")]
    TooMany {
        /// What is counted.
        part: Part,
        /// The count given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A memory region's `base + size_bytes` overflows `u64`.
    #[error("{section} entry {index}: base {base:#x} + size {size:#x} overflows")]
    AddressOverflow {
        /// The section.
        section: Part,
        /// Index of the entry.
        index: u32,
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
}
