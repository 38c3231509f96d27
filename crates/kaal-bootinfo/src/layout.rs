//! The wire format: `#[repr(C)]` structs exactly as they sit in the boot-info area.
//!
//! Every field is a little-endian integer type from [`zerocopy::little_endian`], which
//! has alignment 1, so these structs can be read from a byte slice at any address. The
//! layout is nevertheless *naturally aligned*: explicit `reserved` fields keep every
//! field at an offset that is a multiple of its size, so the kernel's page-aligned copy
//! can also be read field by field by code that knows nothing of this crate.
//!
//! Offsets are frozen for major version 1 (see the crate's `README.md` for the table);
//! compile-time assertions at the bottom of this module and the crate's tests check
//! every size and offset. Reserved fields are written as zero and ignored when read.
//!
//! Most users want [`crate::BootInfo`] and [`crate::write_boot_info`] instead.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of [`Header`] in major version 1, minor version 0 (bytes).
pub const HEADER_SIZE: usize = 168;
/// Size of one [`UntypedEntry`] in version 1.0 (bytes).
pub const UNTYPED_ENTRY_SIZE: usize = 24;
/// Size of one [`DeviceEntry`] in version 1.0 (bytes).
pub const DEVICE_ENTRY_SIZE: usize = 32;
/// Alignment of every section offset and of the header size (bytes).
pub const SECTION_ALIGN: usize = 8;
/// Alignment of an IRQ list inside the string area (bytes).
pub const IRQ_ALIGN: usize = 4;
/// Bit in [`UntypedEntry::flags`]: the region is device memory, not RAM.
pub const UNTYPED_FLAG_DEVICE: u32 = 1 << 0;

/// Machine facts (`SystemFacts` on the wire). 32 bytes.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct SystemFactsRaw {
    /// Physical base of RAM.
    pub ram_base: U64,
    /// Size of RAM in bytes.
    pub ram_bytes: U64,
    /// Frequency of the generic timer (`CNTFRQ_EL0`) in Hz.
    pub timer_frequency_hz: U64,
    /// Number of CPUs.
    pub cpu_count: U32,
    /// Number of CPUs the kernel started (version 1.1; a version 1.0 kernel wrote 0).
    pub cpus_online: U32,
}

/// A range of capability slots (`SlotRange` on the wire). 8 bytes.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct SlotRangeRaw {
    /// First slot.
    pub start: U32,
    /// Number of slots.
    pub count: U32,
}

/// The root task's initial capabilities (`InitialCaps` on the wire). 24 bytes.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct InitialCapsRaw {
    /// Slots holding RAM untyped capabilities.
    pub untyped: SlotRangeRaw,
    /// Slots holding device untyped capabilities.
    pub device_untyped: SlotRangeRaw,
    /// First free slot of the root CNode.
    pub first_free: U32,
    /// Written as zero, ignored when read.
    pub reserved: U32,
}

/// Where the component archive is (`ArchiveInfo` on the wire). 24 bytes.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct ArchiveInfoRaw {
    /// Physical base of the archive.
    pub phys_base: U64,
    /// Size of the archive in bytes.
    pub size_bytes: U64,
    /// Virtual address in the root task, or 0 if not mapped.
    pub user_vaddr: U64,
}

/// A byte range in the string area: a string or an IRQ list. 8 bytes.
///
/// `offset` is relative to the start of the string area. For strings `len` counts
/// bytes; for IRQ lists it counts `u32` entries.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct BlobRef {
    /// Offset from the start of the string area.
    pub offset: U32,
    /// Length: bytes for a string, entries for an IRQ list.
    pub len: U32,
}

/// Where a section is and how it is divided. 16 bytes.
///
/// `offset` is relative to the start of the boot-info area and a multiple of
/// [`SECTION_ALIGN`]. The section occupies `count * entry_size` bytes. The string area
/// has `entry_size` 1 (so `count` is its length in bytes).
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct SectionDesc {
    /// Offset from the start of the boot-info area.
    pub offset: U32,
    /// Number of entries.
    pub count: U32,
    /// Size of one entry in bytes; at least the size this version defines.
    pub entry_size: U32,
    /// Written as zero, ignored when read.
    pub reserved: U32,
}

/// The boot-info header, at offset 0. 168 bytes in version 1.0.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct Header {
    /// [`crate::MAGIC`]: the bytes `KAALBOOT`.
    pub magic: U64,
    /// [`crate::VERSION_MAJOR`]; a different major is incompatible.
    pub version_major: U16,
    /// [`crate::VERSION_MINOR`]; a newer minor only appends fields.
    pub version_minor: U16,
    /// Size of the header in bytes, at least [`HEADER_SIZE`], a multiple of 8.
    pub header_size: U32,
    /// Size of the whole boot-info area in bytes, header included.
    pub total_size: U32,
    /// Written as zero, ignored when read.
    pub flags: U32,
    /// Machine facts.
    pub system: SystemFactsRaw,
    /// Initial capabilities.
    pub caps: InitialCapsRaw,
    /// Component archive location.
    pub archive: ArchiveInfoRaw,
    /// Kernel version string, in the string area.
    pub kernel_version: BlobRef,
    /// Kernel command line, in the string area.
    pub bootargs: BlobRef,
    /// The array of [`UntypedEntry`].
    pub untyped: SectionDesc,
    /// The array of [`DeviceEntry`].
    pub devices: SectionDesc,
    /// The string area: strings and IRQ lists.
    pub strings: SectionDesc,
}

/// One untyped memory region. 24 bytes in version 1.0.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct UntypedEntry {
    /// Physical base.
    pub base: U64,
    /// Size in bytes.
    pub size_bytes: U64,
    /// [`UNTYPED_FLAG_DEVICE`]; other bits are reserved (written 0, ignored).
    pub flags: U32,
    /// Written as zero, ignored when read.
    pub reserved: U32,
}

/// One device. 32 bytes in version 1.0.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct DeviceEntry {
    /// Physical base of the device's registers.
    pub base: U64,
    /// Size of the register window in bytes.
    pub size_bytes: U64,
    /// The device-tree `compatible` list (NUL-separated), in the string area.
    pub compatible: BlobRef,
    /// The IRQ list (`len` little-endian `u32`s), in the string area, 4-byte aligned.
    pub irqs: BlobRef,
}

// Layout frozen for version 1.0.
const _: () = assert!(size_of::<SystemFactsRaw>() == 32);
const _: () = assert!(size_of::<SlotRangeRaw>() == 8);
const _: () = assert!(size_of::<InitialCapsRaw>() == 24);
const _: () = assert!(size_of::<ArchiveInfoRaw>() == 24);
const _: () = assert!(size_of::<BlobRef>() == 8);
const _: () = assert!(size_of::<SectionDesc>() == 16);
const _: () = assert!(size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(size_of::<UntypedEntry>() == UNTYPED_ENTRY_SIZE);
const _: () = assert!(size_of::<DeviceEntry>() == DEVICE_ENTRY_SIZE);
const _: () = assert!(HEADER_SIZE.is_multiple_of(SECTION_ALIGN));
const _: () = assert!(UNTYPED_ENTRY_SIZE.is_multiple_of(SECTION_ALIGN));
const _: () = assert!(DEVICE_ENTRY_SIZE.is_multiple_of(SECTION_ALIGN));
const _: () = assert!(core::mem::offset_of!(Header, system) == 24);
const _: () = assert!(core::mem::offset_of!(Header, caps) == 56);
const _: () = assert!(core::mem::offset_of!(Header, archive) == 80);
const _: () = assert!(core::mem::offset_of!(Header, kernel_version) == 104);
const _: () = assert!(core::mem::offset_of!(Header, untyped) == 120);
const _: () = assert!(core::mem::offset_of!(Header, strings) == 152);
