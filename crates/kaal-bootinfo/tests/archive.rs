//! The component archive: round trips, every malformed-input error, builder errors and
//! property tests (the parser never panics).

use kaal_bootinfo::archive::*;
use proptest::prelude::*;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

const SAMPLE: [Entry<'static>; 3] = [
    Entry {
        name: "root",
        data: b"\x7fELF root task",
    },
    Entry {
        name: "empty",
        data: b"",
    },
    Entry {
        name: "drivers/uart",
        data: &[0xAB; 37],
    },
];

fn write(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut buf = vec![0u8; archive_size(entries).unwrap()];
    let used = write_archive(&mut buf, entries).unwrap();
    assert_eq!(used, buf.len());
    buf
}

fn sample() -> Vec<u8> {
    write(&SAMPLE)
}

fn err(bytes: &[u8]) -> ArchiveError {
    Archive::parse(bytes).expect_err("must be rejected")
}

fn header(bytes: &[u8]) -> ArchiveHeader {
    ArchiveHeader::read_from_prefix(bytes).unwrap().0
}

fn patch_header(bytes: &mut [u8], f: impl FnOnce(&mut ArchiveHeader)) {
    let mut h = header(bytes);
    f(&mut h);
    bytes[..ARCHIVE_HEADER_SIZE].copy_from_slice(h.as_bytes());
}

fn patch_entry(bytes: &mut [u8], index: usize, f: impl FnOnce(&mut EntryHeader)) {
    let at = ARCHIVE_HEADER_SIZE + index * ENTRY_HEADER_SIZE;
    let mut e = EntryHeader::read_from_prefix(&bytes[at..]).unwrap().0;
    f(&mut e);
    bytes[at..at + ENTRY_HEADER_SIZE].copy_from_slice(e.as_bytes());
}

fn touch_everything(archive: &Archive<'_>) {
    assert_eq!(archive.entries().count(), archive.len());
    assert_eq!(archive.is_empty(), archive.entries().next().is_none());
    for e in archive.entries() {
        assert_eq!(archive.get(e.name), Some(e.data));
        let _ = format!("{e:?}");
    }
    let _ = archive.get("");
    let _ = archive.total_size();
}

#[test]
fn round_trip() {
    let bytes = sample();
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.len(), 3);
    assert!(!archive.is_empty());
    assert_eq!(archive.total_size(), bytes.len());
    assert_eq!(archive.entries().collect::<Vec<_>>(), SAMPLE);
    for e in SAMPLE {
        assert_eq!(archive.get(e.name), Some(e.data));
    }
    assert_eq!(archive.get("missing"), None);
    assert_eq!(archive.get("roo"), None);
    assert_eq!(bytes.len() % DATA_ALIGN, 0);
    for e in archive.entries() {
        let offset = e.data.as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset % DATA_ALIGN, 0, "{}", e.name);
    }
    touch_everything(&archive);
}

#[test]
fn empty_archive() {
    let bytes = write(&[]);
    assert_eq!(bytes.len(), ARCHIVE_HEADER_SIZE);
    let archive = Archive::parse(&bytes).unwrap();
    assert!(archive.is_empty());
    assert_eq!(archive.entries().next(), None);
}

#[cfg(feature = "alloc")]
#[test]
fn builder_matches_writer() {
    let mut builder = ArchiveBuilder::new();
    assert!(builder.is_empty());
    for e in SAMPLE {
        builder.add(e.name, e.data).unwrap();
    }
    assert_eq!(builder.len(), 3);
    assert_eq!(builder.finish(), sample());
}

#[cfg(feature = "alloc")]
#[test]
fn builder_errors() {
    let mut builder = ArchiveBuilder::new();
    builder.add("a", b"1").unwrap().add("b", b"2").unwrap();
    assert_eq!(
        builder.add("a", b"3").unwrap_err(),
        ArchiveError::DuplicateName { index: 2, first: 0 }
    );
    assert_eq!(
        builder.add("", b"").unwrap_err(),
        ArchiveError::EmptyName { index: 2 }
    );
    let long = "n".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(
        builder.add(&long, b"").unwrap_err(),
        ArchiveError::NameTooLong {
            index: 2,
            len: MAX_NAME_BYTES + 1,
            max: MAX_NAME_BYTES
        }
    );
    builder.add(&long[..MAX_NAME_BYTES], b"max").unwrap();
    builder.add("ünïcödé", b"utf8").unwrap();
    assert_eq!(builder.len(), 4, "failed adds leave the builder unchanged");
    let bytes = builder.clone().finish();
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.get(&long[..MAX_NAME_BYTES]), Some(&b"max"[..]));
    assert_eq!(archive.get("ünïcödé"), Some(&b"utf8"[..]));

    let mut builder = ArchiveBuilder::new();
    for i in 0..MAX_ENTRIES {
        builder.add(&i.to_string(), b"").unwrap();
    }
    assert_eq!(
        builder.add("one-too-many", b"").unwrap_err(),
        ArchiveError::TooManyEntries {
            count: MAX_ENTRIES + 1,
            max: MAX_ENTRIES
        }
    );
    let bytes = builder.finish();
    assert_eq!(Archive::parse(&bytes).unwrap().len(), MAX_ENTRIES);
}

#[test]
fn writer_errors() {
    let mut buf = [0u8; 64];
    let needed = archive_size(&SAMPLE).unwrap();
    assert_eq!(
        write_archive(&mut buf, &SAMPLE),
        Err(ArchiveError::BufferTooSmall {
            needed,
            available: 64
        })
    );
    let dup = [SAMPLE[0], SAMPLE[1], SAMPLE[0]];
    assert_eq!(
        archive_size(&dup),
        Err(ArchiveError::DuplicateName { index: 2, first: 0 })
    );
    assert_eq!(
        archive_size(&[Entry {
            name: "",
            data: b""
        }]),
        Err(ArchiveError::EmptyName { index: 0 })
    );
}

#[test]
fn parses_at_any_alignment() {
    let bytes = sample();
    let mut buf = vec![0u8; bytes.len() + 16];
    for shift in 0..16 {
        buf[shift..shift + bytes.len()].copy_from_slice(&bytes);
        let archive = Archive::parse(&buf[shift..]).unwrap();
        assert_eq!(archive.entries().collect::<Vec<_>>(), SAMPLE);
    }
}

#[test]
fn trailing_bytes_ignored() {
    let mut bytes = sample();
    let n = bytes.len();
    bytes.extend_from_slice(&[0xFF; 100]);
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.total_size(), n);
    assert_eq!(archive.len(), 3);
}

#[test]
fn bad_magic() {
    let mut bytes = sample();
    bytes[7] = b'2';
    assert_eq!(
        err(&bytes),
        ArchiveError::BadMagic {
            found: *b"KAALARC2"
        }
    );
}

#[test]
fn truncated() {
    let bytes = sample();
    assert_eq!(
        err(&bytes[..3]),
        ArchiveError::Truncated {
            needed: 8,
            available: 3
        }
    );
    assert_eq!(
        err(&bytes[..20]),
        ArchiveError::Truncated {
            needed: 32,
            available: 20
        }
    );
    let n = bytes.len();
    assert_eq!(
        err(&bytes[..n - 1]),
        ArchiveError::Truncated {
            needed: n as u64,
            available: n - 1
        }
    );
    for len in 0..n {
        assert!(
            Archive::parse(&bytes[..len]).is_err(),
            "length {len} accepted"
        );
    }
}

#[test]
fn too_many_entries() {
    let mut bytes = sample();
    patch_header(&mut bytes, |h| h.entry_count = U32::new(u32::MAX));
    assert_eq!(
        err(&bytes),
        ArchiveError::TooManyEntries {
            count: u32::MAX as usize,
            max: MAX_ENTRIES
        }
    );
}

#[test]
fn table_out_of_bounds() {
    let mut bytes = sample();
    let n = bytes.len() as u64;
    patch_header(&mut bytes, |h| h.entry_count = U32::new(100));
    assert_eq!(
        err(&bytes),
        ArchiveError::TableOutOfBounds {
            count: 100,
            table_end: 32 + 100 * 88,
            total_size: n
        }
    );
    let mut bytes = sample();
    patch_header(&mut bytes, |h| h.total_size = U64::new(16));
    assert!(matches!(
        err(&bytes),
        ArchiveError::TableOutOfBounds { total_size: 16, .. }
    ));
}

#[test]
fn entry_out_of_bounds() {
    let n = sample().len() as u64;
    let mut bytes = sample();
    patch_entry(&mut bytes, 2, |e| e.size = U64::new(n));
    assert!(
        matches!(err(&bytes), ArchiveError::EntryOutOfBounds { index: 2, size, .. } if size == n)
    );
    let mut bytes = sample();
    patch_entry(&mut bytes, 0, |e| {
        e.offset = U64::new(u64::MAX - 15);
        e.size = U64::new(32);
    });
    assert_eq!(
        err(&bytes),
        ArchiveError::EntryOutOfBounds {
            index: 0,
            offset: u64::MAX - 15,
            size: 32
        }
    );
    // Data may not overlap the header or the table.
    let mut bytes = sample();
    patch_entry(&mut bytes, 1, |e| e.offset = U64::new(0));
    assert_eq!(
        err(&bytes),
        ArchiveError::EntryOutOfBounds {
            index: 1,
            offset: 0,
            size: 0
        }
    );
}

#[test]
fn misaligned_entry() {
    let mut bytes = sample();
    let mut offset = 0;
    patch_entry(&mut bytes, 1, |e| {
        offset = e.offset.get() + 8;
        e.offset = U64::new(offset);
    });
    assert_eq!(
        err(&bytes),
        ArchiveError::MisalignedEntry { index: 1, offset }
    );
}

#[test]
fn bad_names() {
    let mut bytes = sample();
    patch_entry(&mut bytes, 1, |e| e.name[0] = 0xFF);
    assert_eq!(err(&bytes), ArchiveError::BadNameUtf8 { index: 1 });

    let mut bytes = sample();
    patch_entry(&mut bytes, 2, |e| e.name_len = U32::new(65));
    assert_eq!(
        err(&bytes),
        ArchiveError::NameTooLong {
            index: 2,
            len: 65,
            max: 64
        }
    );

    let mut bytes = sample();
    patch_entry(&mut bytes, 0, |e| e.name_len = U32::new(0));
    assert_eq!(err(&bytes), ArchiveError::EmptyName { index: 0 });

    let mut bytes = sample();
    patch_entry(&mut bytes, 2, |e| {
        e.name = [0; MAX_NAME_BYTES];
        e.name[..4].copy_from_slice(b"root");
        e.name_len = U32::new(4);
    });
    assert_eq!(
        err(&bytes),
        ArchiveError::DuplicateName { index: 2, first: 0 }
    );
}

#[test]
fn error_display() {
    assert_eq!(
        ArchiveError::DuplicateName { index: 2, first: 0 }.to_string(),
        "archive entry 2: name already used by entry 0"
    );
    assert!(
        ArchiveError::BadMagic {
            found: *b"KAALARC2"
        }
        .to_string()
        .contains("32")
    );
}

fn parse_and_touch(bytes: &[u8]) {
    if let Ok(archive) = Archive::parse(bytes) {
        touch_everything(&archive);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        parse_and_touch(&bytes);
    }

    #[test]
    fn random_bytes_after_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..1024)) {
        let mut bytes = ARCHIVE_MAGIC.to_vec();
        bytes.extend(tail);
        parse_and_touch(&bytes);
    }

    #[test]
    fn random_byte_flips_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = sample();
        let n = bytes.len();
        for (at, value) in flips {
            bytes[at.index(n)] = value;
        }
        parse_and_touch(&bytes);
    }

    #[test]
    fn truncations_error(cut in any::<prop::sample::Index>()) {
        let bytes = sample();
        let len = cut.index(bytes.len());
        prop_assert!(Archive::parse(&bytes[..len]).is_err());
    }

    #[test]
    fn round_trip_any_entries(
        entries in prop::collection::btree_map(
            "\\PC{1,16}",
            prop::collection::vec(any::<u8>(), 0..200),
            0..16,
        ),
        shift in 0usize..16,
    ) {
        let entries: Vec<Entry<'_>> =
            entries.iter().map(|(name, data)| Entry { name, data }).collect();
        let bytes = write(&entries);
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(&bytes);
        let archive = Archive::parse(&shifted[shift..]).unwrap();
        prop_assert_eq!(archive.entries().collect::<Vec<_>>(), entries.clone());
        for e in &entries {
            prop_assert_eq!(archive.get(e.name), Some(e.data));
        }
        #[cfg(feature = "alloc")]
        {
            let mut builder = ArchiveBuilder::new();
            for e in &entries {
                builder.add(e.name, e.data).unwrap();
            }
            prop_assert_eq!(builder.finish(), bytes);
        }
    }
}
