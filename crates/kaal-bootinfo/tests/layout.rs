//! The wire layout is frozen: every size and every field offset of every `#[repr(C)]`
//! struct is asserted here. Changing any of these numbers is a major-version change.

use core::mem::{align_of, offset_of, size_of};

use kaal_bootinfo::archive::{ARCHIVE_HEADER_SIZE, ArchiveHeader, ENTRY_HEADER_SIZE, EntryHeader};
use kaal_bootinfo::layout::*;

#[test]
fn header() {
    assert_eq!(size_of::<Header>(), 168);
    assert_eq!(size_of::<Header>(), HEADER_SIZE);
    assert_eq!(offset_of!(Header, magic), 0);
    assert_eq!(offset_of!(Header, version_major), 8);
    assert_eq!(offset_of!(Header, version_minor), 10);
    assert_eq!(offset_of!(Header, header_size), 12);
    assert_eq!(offset_of!(Header, total_size), 16);
    assert_eq!(offset_of!(Header, flags), 20);
    assert_eq!(offset_of!(Header, system), 24);
    assert_eq!(offset_of!(Header, caps), 56);
    assert_eq!(offset_of!(Header, archive), 80);
    assert_eq!(offset_of!(Header, kernel_version), 104);
    assert_eq!(offset_of!(Header, bootargs), 112);
    assert_eq!(offset_of!(Header, untyped), 120);
    assert_eq!(offset_of!(Header, devices), 136);
    assert_eq!(offset_of!(Header, strings), 152);
}

#[test]
fn system_facts() {
    assert_eq!(size_of::<SystemFactsRaw>(), 32);
    assert_eq!(offset_of!(SystemFactsRaw, ram_base), 0);
    assert_eq!(offset_of!(SystemFactsRaw, ram_bytes), 8);
    assert_eq!(offset_of!(SystemFactsRaw, timer_frequency_hz), 16);
    assert_eq!(offset_of!(SystemFactsRaw, cpu_count), 24);
    assert_eq!(offset_of!(SystemFactsRaw, cpus_online), 28);
}

#[test]
fn caps() {
    assert_eq!(size_of::<SlotRangeRaw>(), 8);
    assert_eq!(offset_of!(SlotRangeRaw, start), 0);
    assert_eq!(offset_of!(SlotRangeRaw, count), 4);
    assert_eq!(size_of::<InitialCapsRaw>(), 24);
    assert_eq!(offset_of!(InitialCapsRaw, untyped), 0);
    assert_eq!(offset_of!(InitialCapsRaw, device_untyped), 8);
    assert_eq!(offset_of!(InitialCapsRaw, first_free), 16);
    assert_eq!(offset_of!(InitialCapsRaw, reserved), 20);
}

#[test]
fn archive_info() {
    assert_eq!(size_of::<ArchiveInfoRaw>(), 24);
    assert_eq!(offset_of!(ArchiveInfoRaw, phys_base), 0);
    assert_eq!(offset_of!(ArchiveInfoRaw, size_bytes), 8);
    assert_eq!(offset_of!(ArchiveInfoRaw, user_vaddr), 16);
}

#[test]
fn refs_and_sections() {
    assert_eq!(size_of::<BlobRef>(), 8);
    assert_eq!(offset_of!(BlobRef, offset), 0);
    assert_eq!(offset_of!(BlobRef, len), 4);
    assert_eq!(size_of::<SectionDesc>(), 16);
    assert_eq!(offset_of!(SectionDesc, offset), 0);
    assert_eq!(offset_of!(SectionDesc, count), 4);
    assert_eq!(offset_of!(SectionDesc, entry_size), 8);
    assert_eq!(offset_of!(SectionDesc, reserved), 12);
}

#[test]
fn entries() {
    assert_eq!(size_of::<UntypedEntry>(), 24);
    assert_eq!(size_of::<UntypedEntry>(), UNTYPED_ENTRY_SIZE);
    assert_eq!(offset_of!(UntypedEntry, base), 0);
    assert_eq!(offset_of!(UntypedEntry, size_bytes), 8);
    assert_eq!(offset_of!(UntypedEntry, flags), 16);
    assert_eq!(offset_of!(UntypedEntry, reserved), 20);
    assert_eq!(UNTYPED_FLAG_DEVICE, 1);

    assert_eq!(size_of::<DeviceEntry>(), 32);
    assert_eq!(size_of::<DeviceEntry>(), DEVICE_ENTRY_SIZE);
    assert_eq!(offset_of!(DeviceEntry, base), 0);
    assert_eq!(offset_of!(DeviceEntry, size_bytes), 8);
    assert_eq!(offset_of!(DeviceEntry, compatible), 16);
    assert_eq!(offset_of!(DeviceEntry, irqs), 24);
}

#[test]
fn archive_structs() {
    assert_eq!(size_of::<ArchiveHeader>(), 32);
    assert_eq!(size_of::<ArchiveHeader>(), ARCHIVE_HEADER_SIZE);
    assert_eq!(offset_of!(ArchiveHeader, magic), 0);
    assert_eq!(offset_of!(ArchiveHeader, entry_count), 8);
    assert_eq!(offset_of!(ArchiveHeader, flags), 12);
    assert_eq!(offset_of!(ArchiveHeader, total_size), 16);
    assert_eq!(offset_of!(ArchiveHeader, reserved), 24);

    assert_eq!(size_of::<EntryHeader>(), 88);
    assert_eq!(size_of::<EntryHeader>(), ENTRY_HEADER_SIZE);
    assert_eq!(offset_of!(EntryHeader, offset), 0);
    assert_eq!(offset_of!(EntryHeader, size), 8);
    assert_eq!(offset_of!(EntryHeader, name_len), 16);
    assert_eq!(offset_of!(EntryHeader, reserved), 20);
    assert_eq!(offset_of!(EntryHeader, name), 24);
}

/// The wire structs are read from byte slices at any address.
#[test]
fn unaligned_types() {
    assert_eq!(align_of::<Header>(), 1);
    assert_eq!(align_of::<UntypedEntry>(), 1);
    assert_eq!(align_of::<DeviceEntry>(), 1);
    assert_eq!(align_of::<ArchiveHeader>(), 1);
    assert_eq!(align_of::<EntryHeader>(), 1);
}

#[test]
fn constants() {
    assert_eq!(kaal_bootinfo::MAGIC.to_le_bytes(), *b"KAALBOOT");
    assert_eq!(kaal_bootinfo::VERSION_MAJOR, 1);
    assert_eq!(kaal_bootinfo::VERSION_MINOR, 1);
    assert_eq!(kaal_bootinfo::BOOT_INFO_VADDR, 0x1000_0000);
    assert_eq!(kaal_bootinfo::BOOT_INFO_MAX_BYTES, 65536);
    assert_eq!(kaal_bootinfo::archive::ARCHIVE_MAGIC, *b"KAALARC1");
}
