//! Kernel side: the one-pass, allocation-free writer.

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

use crate::layout::{
    ArchiveInfoRaw, BlobRef, DEVICE_ENTRY_SIZE, DeviceEntry, HEADER_SIZE, Header, IRQ_ALIGN,
    InitialCapsRaw, SECTION_ALIGN, SectionDesc, SlotRangeRaw, SystemFactsRaw, UNTYPED_ENTRY_SIZE,
    UNTYPED_FLAG_DEVICE, UntypedEntry,
};
use crate::{
    BOOT_INFO_MAX_BYTES, BootInfoInput, BuildError, MAGIC, MAX_BOOTARGS_BYTES,
    MAX_COMPATIBLE_BYTES, MAX_DEVICES, MAX_IRQS_PER_DEVICE, MAX_KERNEL_VERSION_BYTES,
    MAX_UNTYPED_REGIONS, Part, SlotRange, VERSION_MAJOR, VERSION_MINOR,
};

const fn align_up(value: usize, align: usize) -> usize {
    value.div_ceil(align) * align
}

/// Offsets of the sections, computed from a validated input.
struct Plan {
    untyped_off: usize,
    devices_off: usize,
    strings_off: usize,
    strings_len: usize,
    total: usize,
}

/// Converts a size that the limits keep far below 4 GiB.
fn wire(value: usize) -> U32 {
    U32::new(u32::try_from(value).unwrap_or(u32::MAX))
}

fn check_string(field: Part, s: &str, max: usize) -> Result<(), BuildError> {
    if s.len() > max {
        return Err(BuildError::StringTooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

fn check_count(part: Part, count: usize, max: u32) -> Result<(), BuildError> {
    let max = max as usize;
    if count > max {
        return Err(BuildError::TooMany { part, count, max });
    }
    Ok(())
}

fn check_range(section: Part, index: usize, base: u64, size: u64) -> Result<(), BuildError> {
    if base.checked_add(size).is_none() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        return Err(BuildError::AddressOverflow {
            section,
            index,
            base,
            size,
        });
    }
    Ok(())
}

/// Validates `input` and computes where everything goes.
fn plan(input: &BootInfoInput<'_>) -> Result<Plan, BuildError> {
    check_string(
        Part::KernelVersion,
        input.kernel_version,
        MAX_KERNEL_VERSION_BYTES,
    )?;
    check_string(Part::Bootargs, input.bootargs, MAX_BOOTARGS_BYTES)?;
    check_count(Part::Untyped, input.untyped.len(), MAX_UNTYPED_REGIONS)?;
    check_count(Part::Devices, input.devices.len(), MAX_DEVICES)?;
    for (i, region) in input.untyped.iter().enumerate() {
        check_range(Part::Untyped, i, region.base, region.size_bytes)?;
    }

    // All sizes below are bounded by the limits just checked, so plain arithmetic
    // cannot overflow even with a 32-bit `usize`.
    let untyped_off = HEADER_SIZE;
    let devices_off = untyped_off + input.untyped.len() * UNTYPED_ENTRY_SIZE;
    let strings_off = devices_off + input.devices.len() * DEVICE_ENTRY_SIZE;
    let mut cursor = input.kernel_version.len() + input.bootargs.len();
    for (i, device) in input.devices.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        check_string(
            Part::DeviceCompatible { index },
            device.compatible,
            MAX_COMPATIBLE_BYTES,
        )?;
        check_count(
            Part::DeviceIrqs { index },
            device.irqs.len(),
            MAX_IRQS_PER_DEVICE,
        )?;
        check_range(Part::Devices, i, device.base, device.size_bytes)?;
        cursor += device.compatible.len();
        cursor = align_up(cursor, IRQ_ALIGN) + device.irqs.len() * 4;
    }
    let strings_len = cursor;
    let total = align_up(strings_off + strings_len, SECTION_ALIGN);
    if total > BOOT_INFO_MAX_BYTES {
        return Err(BuildError::TooLarge {
            needed: total,
            max: BOOT_INFO_MAX_BYTES,
        });
    }
    Ok(Plan {
        untyped_off,
        devices_off,
        strings_off,
        strings_len,
        total,
    })
}

/// Copies `bytes` to `out[at..]`.
fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), BuildError> {
    let needed = at.saturating_add(bytes.len());
    let available = out.len();
    let dst = out
        .get_mut(at..needed)
        .ok_or(BuildError::BufferTooSmall { needed, available })?;
    dst.copy_from_slice(bytes);
    Ok(())
}

/// Returns the number of bytes [`write_boot_info`] would write for `input`, or why it
/// cannot be written.
pub fn boot_info_size(input: &BootInfoInput<'_>) -> Result<usize, BuildError> {
    plan(input).map(|p| p.total)
}

/// Writes boot info into `buf`; returns bytes used. Errors (typed) if it doesn't fit, a
/// string is too long, etc.
///
/// Writes `buf[..n]` completely (padding and reserved fields are zero), where `n` is
/// the returned size, a multiple of 8 and at most [`BOOT_INFO_MAX_BYTES`]; the rest of
/// `buf` is untouched. The kernel's variant of `buf` is the page-aligned boot-info
/// frame(s). One pass, no allocation.
///
/// # Errors
///
/// [`BuildError::StringTooLong`] or [`BuildError::TooMany`] if an input exceeds a
/// limit (see the `MAX_*` constants), [`BuildError::AddressOverflow`] if a region's
/// end overflows `u64`, [`BuildError::TooLarge`] if the result would exceed
/// [`BOOT_INFO_MAX_BYTES`], [`BuildError::BufferTooSmall`] if it does not fit in `buf`.
pub fn write_boot_info(buf: &mut [u8], input: &BootInfoInput<'_>) -> Result<usize, BuildError> {
    let plan = plan(input)?;
    let available = buf.len();
    let out = buf
        .get_mut(..plan.total)
        .ok_or(BuildError::BufferTooSmall {
            needed: plan.total,
            available,
        })?;
    out.fill(0);

    let strings_at = plan.strings_off;
    let kernel_version = BlobRef {
        offset: U32::new(0),
        len: wire(input.kernel_version.len()),
    };
    put(out, strings_at, input.kernel_version.as_bytes())?;
    let mut cursor = input.kernel_version.len();
    let bootargs = BlobRef {
        offset: wire(cursor),
        len: wire(input.bootargs.len()),
    };
    put(out, strings_at + cursor, input.bootargs.as_bytes())?;
    cursor += input.bootargs.len();

    for (i, region) in input.untyped.iter().enumerate() {
        let entry = UntypedEntry {
            base: U64::new(region.base),
            size_bytes: U64::new(region.size_bytes),
            flags: U32::new(if region.is_device {
                UNTYPED_FLAG_DEVICE
            } else {
                0
            }),
            reserved: U32::ZERO,
        };
        put(
            out,
            plan.untyped_off + i * UNTYPED_ENTRY_SIZE,
            entry.as_bytes(),
        )?;
    }

    for (i, device) in input.devices.iter().enumerate() {
        let compatible = BlobRef {
            offset: wire(cursor),
            len: wire(device.compatible.len()),
        };
        put(out, strings_at + cursor, device.compatible.as_bytes())?;
        cursor = align_up(cursor + device.compatible.len(), IRQ_ALIGN);
        let irqs = BlobRef {
            offset: wire(cursor),
            len: wire(device.irqs.len()),
        };
        for irq in device.irqs {
            put(out, strings_at + cursor, &irq.to_le_bytes())?;
            cursor += 4;
        }
        let entry = DeviceEntry {
            base: U64::new(device.base),
            size_bytes: U64::new(device.size_bytes),
            compatible,
            irqs,
        };
        put(
            out,
            plan.devices_off + i * DEVICE_ENTRY_SIZE,
            entry.as_bytes(),
        )?;
    }
    debug_assert_eq!(cursor, plan.strings_len);

    let slots = |r: SlotRange| SlotRangeRaw {
        start: U32::new(r.start),
        count: U32::new(r.count),
    };
    let header = Header {
        magic: U64::new(MAGIC),
        version_major: U16::new(VERSION_MAJOR),
        version_minor: U16::new(VERSION_MINOR),
        header_size: wire(HEADER_SIZE),
        total_size: wire(plan.total),
        flags: U32::ZERO,
        system: SystemFactsRaw {
            ram_base: U64::new(input.system.ram_base),
            ram_bytes: U64::new(input.system.ram_bytes),
            timer_frequency_hz: U64::new(input.system.timer_frequency_hz),
            cpu_count: U32::new(input.system.cpu_count),
            cpus_online: U32::new(input.system.cpus_online),
        },
        caps: InitialCapsRaw {
            untyped: slots(input.caps.untyped),
            device_untyped: slots(input.caps.device_untyped),
            first_free: U32::new(input.caps.first_free),
            reserved: U32::ZERO,
        },
        archive: ArchiveInfoRaw {
            phys_base: U64::new(input.archive.phys_base),
            size_bytes: U64::new(input.archive.size_bytes),
            user_vaddr: U64::new(input.archive.user_vaddr),
        },
        kernel_version,
        bootargs,
        untyped: SectionDesc {
            offset: wire(plan.untyped_off),
            count: wire(input.untyped.len()),
            entry_size: wire(UNTYPED_ENTRY_SIZE),
            reserved: U32::ZERO,
        },
        devices: SectionDesc {
            offset: wire(plan.devices_off),
            count: wire(input.devices.len()),
            entry_size: wire(DEVICE_ENTRY_SIZE),
            reserved: U32::ZERO,
        },
        strings: SectionDesc {
            offset: wire(plan.strings_off),
            count: wire(plan.strings_len),
            entry_size: U32::new(1),
            reserved: U32::ZERO,
        },
    };
    put(out, 0, header.as_bytes())?;
    Ok(plan.total)
}

/// Writes boot info into a new vector of exactly the needed size (host tools, tests).
///
/// # Errors
///
/// As [`write_boot_info`], except that the buffer is never too small.
#[cfg(feature = "alloc")]
pub fn boot_info_to_vec(input: &BootInfoInput<'_>) -> Result<alloc::vec::Vec<u8>, BuildError> {
    let size = boot_info_size(input)?;
    let mut out = alloc::vec![0u8; size];
    write_boot_info(&mut out, input)?;
    Ok(out)
}
