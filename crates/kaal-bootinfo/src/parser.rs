//! User side: the validating parser.

use core::fmt;
use core::iter::FusedIterator;

use zerocopy::FromBytes;

use crate::layout::{
    BlobRef, DEVICE_ENTRY_SIZE, DeviceEntry, HEADER_SIZE, Header, IRQ_ALIGN, SECTION_ALIGN,
    SectionDesc, UNTYPED_ENTRY_SIZE, UNTYPED_FLAG_DEVICE, UntypedEntry,
};
use crate::{
    ArchiveInfo, BootInfoError, InitialCaps, MAGIC, MAX_DEVICES, MAX_IRQS_PER_DEVICE,
    MAX_UNTYPED_REGIONS, Part, SlotRange, SystemFacts, UntypedRegion, VERSION_MAJOR,
};

/// A validated boot-info area.
///
/// Created by [`BootInfo::from_bytes`], which checks everything; the accessors then
/// cannot fail. Borrows the bytes: strings and IRQ lists are not copied.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo<'a> {
    /// The area, `total_size` bytes.
    bytes: &'a [u8],
    header: &'a Header,
    untyped: Table<'a>,
    devices: Table<'a>,
    strings: &'a [u8],
    kernel_version: &'a str,
    bootargs: &'a str,
}

/// An array section: `bytes.len()` is a multiple of `stride`, `stride` is non-zero.
#[derive(Clone, Copy, Debug)]
struct Table<'a> {
    bytes: &'a [u8],
    stride: usize,
}

impl<'a> Table<'a> {
    fn len(&self) -> usize {
        self.bytes.len().checked_div(self.stride).unwrap_or(0)
    }

    fn cursor(&self) -> Cursor<'a> {
        Cursor {
            rest: self.bytes,
            stride: self.stride,
        }
    }
}

/// Walks a [`Table`] entry by entry.
#[derive(Clone, Debug)]
struct Cursor<'a> {
    rest: &'a [u8],
    stride: usize,
}

impl<'a> Cursor<'a> {
    fn next_entry<T: FromBytes>(&mut self) -> Option<T> {
        if self.stride == 0 {
            return None;
        }
        let (entry, rest) = self.rest.split_at_checked(self.stride)?;
        self.rest = rest;
        T::read_from_prefix(entry).ok().map(|(value, _)| value)
    }

    fn remaining(&self) -> usize {
        self.rest.len().checked_div(self.stride).unwrap_or(0)
    }
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let (chunk, _) = bytes.get(at..)?.split_first_chunk::<8>()?;
    Some(u64::from_le_bytes(*chunk))
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let (chunk, _) = bytes.get(at..)?.split_first_chunk::<2>()?;
    Some(u16::from_le_bytes(*chunk))
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Checks one section descriptor and returns its bytes.
///
/// `entry_size` must equal `min_entry` if `exact`, else be at least `min_entry` and a
/// multiple of [`SECTION_ALIGN`] (a newer minor version may append entry fields).
fn section<'a>(
    area: &'a [u8],
    header_size: u32,
    section: Part,
    desc: &SectionDesc,
    min_entry: usize,
    exact: bool,
    max_count: u32,
) -> Result<Table<'a>, BootInfoError> {
    let entry_size = desc.entry_size.get();
    let min = u32::try_from(min_entry).unwrap_or(u32::MAX);
    let entry_ok = if exact {
        entry_size == min
    } else {
        entry_size >= min && (entry_size as usize).is_multiple_of(SECTION_ALIGN)
    };
    if !entry_ok {
        return Err(BootInfoError::BadEntrySize {
            section,
            found: entry_size,
            expected: min,
        });
    }
    let count = desc.count.get();
    if count > max_count {
        return Err(BootInfoError::CountTooLarge {
            part: section,
            count,
            max: max_count,
        });
    }
    let offset = u64::from(desc.offset.get());
    if offset % SECTION_ALIGN as u64 != 0 {
        return Err(BootInfoError::Misaligned {
            part: section,
            offset,
            align: SECTION_ALIGN as u32,
        });
    }
    // u32 * u32 and u32 + (u32 * u32) both fit in u64.
    let len = u64::from(count) * u64::from(entry_size);
    let end = offset + len;
    let out_of_bounds = BootInfoError::SectionOutOfBounds {
        section,
        offset,
        len,
    };
    if offset < u64::from(header_size) || end > area.len() as u64 {
        return Err(out_of_bounds);
    }
    let bytes = area
        .get(to_usize(offset)..to_usize(end))
        .ok_or(out_of_bounds)?;
    Ok(Table {
        bytes,
        stride: entry_size as usize,
    })
}

/// Checks a reference into the string area of `len * unit` bytes.
fn blob<'a>(
    strings: &'a [u8],
    field: Part,
    r: &BlobRef,
    unit: u64,
) -> Result<&'a [u8], BootInfoError> {
    let offset = u64::from(r.offset.get());
    let len = u64::from(r.len.get()) * unit;
    let end = offset + len;
    let out_of_bounds = BootInfoError::FieldOutOfBounds { field, offset, len };
    if end > strings.len() as u64 {
        return Err(out_of_bounds);
    }
    strings
        .get(to_usize(offset)..to_usize(end))
        .ok_or(out_of_bounds)
}

fn string<'a>(strings: &'a [u8], field: Part, r: &BlobRef) -> Result<&'a str, BootInfoError> {
    let bytes = blob(strings, field, r, 1)?;
    core::str::from_utf8(bytes).map_err(|_| BootInfoError::InvalidUtf8 { field })
}

fn irq_list<'a>(strings: &'a [u8], index: u32, r: &BlobRef) -> Result<&'a [u8], BootInfoError> {
    let part = Part::DeviceIrqs { index };
    let count = r.len.get();
    if count > MAX_IRQS_PER_DEVICE {
        return Err(BootInfoError::CountTooLarge {
            part,
            count,
            max: MAX_IRQS_PER_DEVICE,
        });
    }
    let offset = r.offset.get();
    if !(offset as usize).is_multiple_of(IRQ_ALIGN) {
        return Err(BootInfoError::Misaligned {
            part,
            offset: offset.into(),
            align: IRQ_ALIGN as u32,
        });
    }
    blob(strings, part, r, 4)
}

fn check_range(section: Part, index: usize, base: u64, size: u64) -> Result<(), BootInfoError> {
    if base.checked_add(size).is_none() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        return Err(BootInfoError::AddressOverflow {
            section,
            index,
            base,
            size,
        });
    }
    Ok(())
}

impl<'a> BootInfo<'a> {
    /// Validates a boot-info area.
    ///
    /// `bytes` may be longer than the area (for example the whole mapping of
    /// [`crate::BOOT_INFO_MAX_BYTES`]); only the first `total_size` bytes are used. The
    /// bytes need no particular alignment.
    ///
    /// # Errors
    ///
    /// A [`BootInfoError`] naming the first problem found, in this order: buffer too
    /// short for magic and version, bad magic, unsupported major, buffer too short for
    /// the header, header size too small or misaligned, total size smaller than the
    /// header or larger than the buffer, then for each section (untyped, devices,
    /// strings) the entry size, count, alignment and bounds, then the kernel version and
    /// bootargs strings, each untyped region, and each device's compatible string and
    /// IRQ list. Never panics.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, BootInfoError> {
        let available = bytes.len();
        let magic = read_u64(bytes, 0).ok_or(BootInfoError::TooShort {
            needed: 8,
            available,
        })?;
        if magic != MAGIC {
            return Err(BootInfoError::BadMagic { found: magic });
        }
        let major = read_u16(bytes, 8).ok_or(BootInfoError::TooShort {
            needed: 10,
            available,
        })?;
        if major != VERSION_MAJOR {
            return Err(BootInfoError::UnsupportedMajor {
                found: major,
                supported: VERSION_MAJOR,
            });
        }
        let (header, _) = Header::ref_from_prefix(bytes).map_err(|_| BootInfoError::TooShort {
            needed: HEADER_SIZE,
            available,
        })?;

        let header_size = header.header_size.get();
        let min = HEADER_SIZE as u32;
        if header_size < min {
            return Err(BootInfoError::HeaderTooSmall {
                found: header_size,
                min,
            });
        }
        if !(header_size as usize).is_multiple_of(SECTION_ALIGN) {
            return Err(BootInfoError::Misaligned {
                part: Part::Header,
                offset: header_size.into(),
                align: SECTION_ALIGN as u32,
            });
        }
        let total_size = header.total_size.get();
        if total_size < header_size {
            return Err(BootInfoError::SizeMismatch {
                header_size,
                total_size,
            });
        }
        let too_large = BootInfoError::TotalSizeTooLarge {
            total_size,
            available,
        };
        if u64::from(total_size) > available as u64 {
            return Err(too_large);
        }
        let area = bytes.get(..to_usize(total_size.into())).ok_or(too_large)?;

        let untyped = section(
            area,
            header_size,
            Part::Untyped,
            &header.untyped,
            UNTYPED_ENTRY_SIZE,
            false,
            MAX_UNTYPED_REGIONS,
        )?;
        let devices = section(
            area,
            header_size,
            Part::Devices,
            &header.devices,
            DEVICE_ENTRY_SIZE,
            false,
            MAX_DEVICES,
        )?;
        let strings = section(
            area,
            header_size,
            Part::Strings,
            &header.strings,
            1,
            true,
            u32::MAX,
        )?
        .bytes;

        let kernel_version = string(strings, Part::KernelVersion, &header.kernel_version)?;
        let bootargs = string(strings, Part::Bootargs, &header.bootargs)?;

        let mut cursor = untyped.cursor();
        let mut index = 0;
        while let Some(entry) = cursor.next_entry::<UntypedEntry>() {
            check_range(
                Part::Untyped,
                index,
                entry.base.get(),
                entry.size_bytes.get(),
            )?;
            index += 1;
        }

        let mut cursor = devices.cursor();
        let mut index = 0u32;
        while let Some(entry) = cursor.next_entry::<DeviceEntry>() {
            string(strings, Part::DeviceCompatible { index }, &entry.compatible)?;
            irq_list(strings, index, &entry.irqs)?;
            check_range(
                Part::Devices,
                index as usize,
                entry.base.get(),
                entry.size_bytes.get(),
            )?;
            index += 1;
        }

        Ok(BootInfo {
            bytes: area,
            header,
            untyped,
            devices,
            strings,
            kernel_version,
            bootargs,
        })
    }

    /// The layout version as (major, minor).
    pub fn version(&self) -> (u16, u16) {
        (
            self.header.version_major.get(),
            self.header.version_minor.get(),
        )
    }

    /// Size of the boot-info area in bytes (`total_size` in the header).
    pub fn total_size(&self) -> usize {
        self.bytes.len()
    }

    /// Size of the header in bytes (larger than [`HEADER_SIZE`] if written by a newer
    /// minor version).
    pub fn header_size(&self) -> usize {
        self.header.header_size.get() as usize
    }

    /// The boot-info area itself, `total_size` bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Machine facts.
    pub fn system(&self) -> SystemFacts {
        let s = &self.header.system;
        SystemFacts {
            ram_base: s.ram_base.get(),
            ram_bytes: s.ram_bytes.get(),
            cpu_count: s.cpu_count.get(),
            cpus_online: s.cpus_online.get(),
            timer_frequency_hz: s.timer_frequency_hz.get(),
        }
    }

    /// The kernel version string.
    pub fn kernel_version(&self) -> &'a str {
        self.kernel_version
    }

    /// The kernel command line.
    pub fn bootargs(&self) -> &'a str {
        self.bootargs
    }

    /// The untyped regions, in the order of the initial untyped capabilities.
    pub fn untyped(&self) -> UntypedRegions<'a> {
        UntypedRegions {
            cursor: self.untyped.cursor(),
        }
    }

    /// Number of untyped regions.
    pub fn untyped_count(&self) -> usize {
        self.untyped.len()
    }

    /// The devices, in device-tree order.
    pub fn devices(&self) -> Devices<'a> {
        Devices {
            cursor: self.devices.cursor(),
            strings: self.strings,
        }
    }

    /// Number of devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The first device one of whose `compatible` entries equals `compatible`.
    pub fn find_device(&self, compatible: &str) -> Option<Device<'a>> {
        self.devices().find(|d| d.is_compatible(compatible))
    }

    /// The root task's initial capabilities.
    pub fn caps(&self) -> InitialCaps {
        let c = &self.header.caps;
        let range = |r: &crate::layout::SlotRangeRaw| SlotRange {
            start: r.start.get(),
            count: r.count.get(),
        };
        InitialCaps {
            untyped: range(&c.untyped),
            device_untyped: range(&c.device_untyped),
            first_free: c.first_free.get(),
        }
    }

    /// Where the component archive is.
    pub fn archive(&self) -> ArchiveInfo {
        let a = &self.header.archive;
        ArchiveInfo {
            phys_base: a.phys_base.get(),
            size_bytes: a.size_bytes.get(),
            user_vaddr: a.user_vaddr.get(),
        }
    }
}

/// Iterator over the untyped regions of a [`BootInfo`].
#[derive(Clone, Debug)]
pub struct UntypedRegions<'a> {
    cursor: Cursor<'a>,
}

impl Iterator for UntypedRegions<'_> {
    type Item = UntypedRegion;

    fn next(&mut self) -> Option<UntypedRegion> {
        let entry = self.cursor.next_entry::<UntypedEntry>()?;
        Some(UntypedRegion {
            base: entry.base.get(),
            size_bytes: entry.size_bytes.get(),
            is_device: entry.flags.get() & UNTYPED_FLAG_DEVICE != 0,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.cursor.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for UntypedRegions<'_> {}
impl FusedIterator for UntypedRegions<'_> {}

/// Iterator over the devices of a [`BootInfo`].
#[derive(Clone, Debug)]
pub struct Devices<'a> {
    cursor: Cursor<'a>,
    strings: &'a [u8],
}

impl<'a> Iterator for Devices<'a> {
    type Item = Device<'a>;

    fn next(&mut self) -> Option<Device<'a>> {
        let entry = self.cursor.next_entry::<DeviceEntry>()?;
        // Validated by `BootInfo::from_bytes`; the fallbacks are unreachable.
        let compatible = string(self.strings, Part::Devices, &entry.compatible).unwrap_or("");
        let irqs = blob(self.strings, Part::Devices, &entry.irqs, 4).unwrap_or(&[]);
        Some(Device {
            base: entry.base.get(),
            size_bytes: entry.size_bytes.get(),
            compatible,
            irqs,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.cursor.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Devices<'_> {}
impl FusedIterator for Devices<'_> {}

/// A device listed in a [`BootInfo`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device<'a> {
    /// Physical base address of the register window.
    pub base: u64,
    /// Size of the register window in bytes.
    pub size_bytes: u64,
    /// The raw device-tree `compatible` property: a NUL-separated list, most specific
    /// first, possibly with a trailing NUL. Use [`Device::compatible_list`] to read the
    /// entries, [`Device::is_compatible`] to test one.
    pub compatible: &'a str,
    /// The IRQ list: little-endian `u32`s, length a multiple of 4.
    irqs: &'a [u8],
}

impl<'a> Device<'a> {
    /// The device's interrupt numbers.
    pub fn irqs(&self) -> Irqs<'a> {
        Irqs { rest: self.irqs }
    }

    /// Number of interrupts.
    pub fn irq_count(&self) -> usize {
        self.irqs.len() / 4
    }

    /// The entries of the `compatible` list, without empty ones.
    pub fn compatible_list(&self) -> CompatibleList<'a> {
        CompatibleList {
            inner: self.compatible.split('\0'),
        }
    }

    /// Whether any entry of the `compatible` list equals `compatible`.
    pub fn is_compatible(&self, compatible: &str) -> bool {
        self.compatible_list().any(|c| c == compatible)
    }
}

impl fmt::Debug for Device<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<I>(I);
        impl<I: Iterator<Item = T> + Clone, T: fmt::Debug> fmt::Debug for List<I> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.clone()).finish()
            }
        }
        f.debug_struct("Device")
            .field("base", &format_args!("{:#x}", self.base))
            .field("size_bytes", &format_args!("{:#x}", self.size_bytes))
            .field("compatible", &List(self.compatible_list()))
            .field("irqs", &List(self.irqs()))
            .finish()
    }
}

/// Iterator over the interrupt numbers of a [`Device`].
#[derive(Clone, Debug)]
pub struct Irqs<'a> {
    rest: &'a [u8],
}

impl Iterator for Irqs<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (irq, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(u32::from_le_bytes(*irq))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Irqs<'_> {}
impl FusedIterator for Irqs<'_> {}

/// Iterator over the entries of a device's `compatible` list.
#[derive(Clone, Debug)]
pub struct CompatibleList<'a> {
    inner: core::str::Split<'a, char>,
}

impl<'a> Iterator for CompatibleList<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.inner.by_ref().find(|s| !s.is_empty())
    }
}

impl FusedIterator for CompatibleList<'_> {}
