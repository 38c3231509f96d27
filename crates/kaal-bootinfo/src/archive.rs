//! The component archive: named blobs (component ELF images, configuration) that the
//! image builder packs and the kernel embeds with `include_bytes!`.
//!
//! The host-side builder (`ArchiveBuilder`, feature `alloc`, or the allocation-free
//! [`write_archive`]) and the parser ([`Archive`]) live here together so both sides
//! share one definition of the format.
//!
//! ## Format
//!
//! All integers little-endian. Because the archive is embedded with `include_bytes!`
//! its base may have any alignment; the parser reads every field through alignment-1
//! types and never requires alignment of the slice.
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 8    | magic `KAALARC1` ([`ARCHIVE_MAGIC`])                     |
//! | 8      | 4    | entry count (at most [`MAX_ENTRIES`])                    |
//! | 12     | 4    | flags, written 0, ignored                                |
//! | 16     | 8    | total size of the archive in bytes                       |
//! | 24     | 8    | reserved, written 0, ignored                             |
//! | 32     | 88×n | entry table, one [`EntryHeader`] per entry               |
//!
//! An [`EntryHeader`] is: data offset (`u64`, from the archive start, a multiple of
//! [`DATA_ALIGN`]), data size (`u64`), name length (`u32`, 1..=[`MAX_NAME_BYTES`]),
//! reserved (`u32`), name (64 bytes, UTF-8, zero-padded). Names are unique. Entry data
//! follows the table; the builder pads each entry's start to [`DATA_ALIGN`] bytes and
//! the total size to a multiple of [`DATA_ALIGN`].

use core::fmt;
use core::iter::FusedIterator;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The first eight bytes of an archive.
pub const ARCHIVE_MAGIC: [u8; 8] = *b"KAALARC1";
/// Size of [`ArchiveHeader`] (bytes).
pub const ARCHIVE_HEADER_SIZE: usize = 32;
/// Size of one [`EntryHeader`] (bytes).
pub const ENTRY_HEADER_SIZE: usize = 88;
/// Alignment of each entry's data relative to the archive start (bytes).
pub const DATA_ALIGN: usize = 16;
/// Longest entry name (bytes of UTF-8).
pub const MAX_NAME_BYTES: usize = 64;
/// Most entries in one archive.
pub const MAX_ENTRIES: usize = 1024;

/// The archive header, at offset 0. 32 bytes.
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
pub struct ArchiveHeader {
    /// [`ARCHIVE_MAGIC`].
    pub magic: [u8; 8],
    /// Number of entries.
    pub entry_count: U32,
    /// Written as zero, ignored when read.
    pub flags: U32,
    /// Size of the whole archive in bytes.
    pub total_size: U64,
    /// Written as zero, ignored when read.
    pub reserved: U64,
}

/// One entry of the table that follows the header. 88 bytes.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct EntryHeader {
    /// Offset of the data from the archive start, a multiple of [`DATA_ALIGN`].
    pub offset: U64,
    /// Size of the data in bytes.
    pub size: U64,
    /// Length of the name in bytes.
    pub name_len: U32,
    /// Written as zero, ignored when read.
    pub reserved: U32,
    /// The name, UTF-8, zero-padded.
    pub name: [u8; MAX_NAME_BYTES],
}

const _: () = assert!(size_of::<ArchiveHeader>() == ARCHIVE_HEADER_SIZE);
const _: () = assert!(size_of::<EntryHeader>() == ENTRY_HEADER_SIZE);

/// Why an archive could not be parsed or built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The first eight bytes are not [`ARCHIVE_MAGIC`].
    #[error("bad archive magic {found:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The archive is shorter than its header or its recorded total size.
    #[error("archive truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: usize,
    },
    /// The recorded total size cannot even hold the header and entry table.
    #[error(
        "archive of {total_size} bytes cannot hold its {count} table entries ({table_end} bytes)"
    )]
    TableOutOfBounds {
        /// Number of entries.
        count: usize,
        /// End of the entry table.
        table_end: u64,
        /// The recorded total size.
        total_size: u64,
    },
    /// More than [`MAX_ENTRIES`] entries.
    #[error("archive has {count} entries, more than the limit {max}")]
    TooManyEntries {
        /// Number of entries.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An entry's data lies outside the data area.
    #[error("archive entry {index}: data at {offset}, size {size} is out of bounds")]
    EntryOutOfBounds {
        /// Index of the entry.
        index: u32,
        /// Offset of its data.
        offset: u64,
        /// Size of its data.
        size: u64,
    },
    /// An entry's data offset is not a multiple of [`DATA_ALIGN`].
    #[error("archive entry {index}: data offset {offset} not aligned to 16 bytes")]
    MisalignedEntry {
        /// Index of the entry.
        index: u32,
        /// Offset of its data.
        offset: u64,
    },
    /// An entry's name is not valid UTF-8.
    #[error("archive entry {index}: name is not valid UTF-8")]
    BadNameUtf8 {
        /// Index of the entry.
        index: u32,
    },
    /// An entry's name is empty.
    #[error("archive entry {index}: empty name")]
    EmptyName {
        /// Index of the entry.
        index: u32,
    },
    /// An entry's name is longer than [`MAX_NAME_BYTES`].
    #[error("archive entry {index}: name of {len} bytes exceeds {max}")]
    NameTooLong {
        /// Index of the entry.
        index: u32,
        /// Length of its name.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two entries have the same name.
    #[error("archive entry {index}: name already used by entry {first}")]
    DuplicateName {
        /// Index of the later entry.
        index: u32,
        /// Index of the first entry with that name.
        first: u32,
    },
    /// The output buffer of [`write_archive`] is too small.
    #[error("archive buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

/// One named blob of an [`Archive`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry<'a> {
    /// The name, unique in its archive.
    pub name: &'a str,
    /// The data.
    pub data: &'a [u8],
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A validated component archive.
///
/// [`Archive::parse`] checks everything up front; lookups then cannot fail.
///
/// ```
/// use kaal_bootinfo::archive::{Archive, Entry, write_archive};
///
/// // Host side (the image builder): pack the components.
/// let mut buf = [0u8; 512];
/// let entries = [
///     Entry { name: "root", data: b"\x7fELF..." },
///     Entry { name: "uart.cfg", data: b"base=0x09000000" },
/// ];
/// let used = write_archive(&mut buf, &entries)?;
///
/// // Target side: the archive may sit at any alignment (it comes from `include_bytes!`).
/// let archive = Archive::parse(&buf[..used])?;
/// assert_eq!(archive.len(), 2);
/// assert_eq!(archive.get("uart.cfg"), Some(&b"base=0x09000000"[..]));
/// assert_eq!(archive.get("missing"), None);
/// let names: Vec<&str> = archive.entries().map(|e| e.name).collect();
/// assert_eq!(names, ["root", "uart.cfg"]);
/// # Ok::<(), kaal_bootinfo::archive::ArchiveError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    /// The archive, `total_size` bytes.
    bytes: &'a [u8],
    /// The entry table.
    table: &'a [u8],
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

const fn align_up(value: usize, align: usize) -> usize {
    value.div_ceil(align).saturating_mul(align)
}

/// Decodes an entry from a validated archive.
fn decode<'a>(bytes: &'a [u8], header: &'a EntryHeader) -> Entry<'a> {
    // `Archive::parse` checked everything; the fallbacks are unreachable.
    let name = header
        .name
        .get(..to_usize(header.name_len.get().into()))
        .and_then(|n| core::str::from_utf8(n).ok())
        .unwrap_or("");
    let start = to_usize(header.offset.get());
    let end = start.saturating_add(to_usize(header.size.get()));
    let data = bytes.get(start..end).unwrap_or(&[]);
    Entry { name, data }
}

impl<'a> Archive<'a> {
    /// Validates an archive.
    ///
    /// `bytes` may be longer than the archive's recorded total size; the tail is
    /// ignored. No alignment is required.
    ///
    /// # Errors
    ///
    /// An [`ArchiveError`] naming the first problem: truncated header, bad magic,
    /// total size larger than `bytes`, too many entries, entry table past the total
    /// size, then per entry: name too long, empty or not UTF-8, data misaligned or out
    /// of bounds, duplicate name. Never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        let available = bytes.len();
        let magic = bytes.first_chunk::<8>().ok_or(ArchiveError::Truncated {
            needed: 8,
            available,
        })?;
        if *magic != ARCHIVE_MAGIC {
            return Err(ArchiveError::BadMagic { found: *magic });
        }
        let (header, _) =
            ArchiveHeader::ref_from_prefix(bytes).map_err(|_| ArchiveError::Truncated {
                needed: ARCHIVE_HEADER_SIZE as u64,
                available,
            })?;
        let total_size = header.total_size.get();
        if total_size > available as u64 {
            return Err(ArchiveError::Truncated {
                needed: total_size,
                available,
            });
        }
        let count = header.entry_count.get() as usize;
        if count > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries {
                count,
                max: MAX_ENTRIES,
            });
        }
        // count <= MAX_ENTRIES, so this cannot overflow.
        let table_end = (ARCHIVE_HEADER_SIZE + count * ENTRY_HEADER_SIZE) as u64;
        let table_error = ArchiveError::TableOutOfBounds {
            count,
            table_end,
            total_size,
        };
        if table_end > total_size {
            return Err(table_error);
        }
        let bytes = bytes.get(..to_usize(total_size)).ok_or(table_error)?;
        let table = bytes
            .get(ARCHIVE_HEADER_SIZE..to_usize(table_end))
            .ok_or(table_error)?;
        let entries = <[EntryHeader]>::ref_from_bytes(table).map_err(|_| table_error)?;

        for (i, entry) in entries.iter().enumerate() {
            let index = index_u32(i);
            let len = entry.name_len.get() as usize;
            if len > MAX_NAME_BYTES {
                return Err(ArchiveError::NameTooLong {
                    index,
                    len,
                    max: MAX_NAME_BYTES,
                });
            }
            if len == 0 {
                return Err(ArchiveError::EmptyName { index });
            }
            let name = entry.name.get(..len).unwrap_or(&[]);
            if core::str::from_utf8(name).is_err() {
                return Err(ArchiveError::BadNameUtf8 { index });
            }
            let offset = entry.offset.get();
            let size = entry.size.get();
            if offset % DATA_ALIGN as u64 != 0 {
                return Err(ArchiveError::MisalignedEntry { index, offset });
            }
            let in_bounds = offset
                .checked_add(size)
                .is_some_and(|end| offset >= table_end && end <= total_size);
            if !in_bounds {
                return Err(ArchiveError::EntryOutOfBounds {
                    index,
                    offset,
                    size,
                });
            }
            let earlier = entries.get(..i).unwrap_or(&[]);
            if let Some(first) = earlier
                .iter()
                .position(|e| e.name.get(..len) == Some(name) && e.name_len == entry.name_len)
            {
                return Err(ArchiveError::DuplicateName {
                    index,
                    first: index_u32(first),
                });
            }
        }
        Ok(Archive { bytes, table })
    }

    /// The data of the entry called `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.entries().find(|e| e.name == name).map(|e| e.data)
    }

    /// The entries, in table order.
    pub fn entries(&self) -> Entries<'a> {
        let table = <[EntryHeader]>::ref_from_bytes(self.table).unwrap_or(&[]);
        Entries {
            bytes: self.bytes,
            inner: table.iter(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len() / ENTRY_HEADER_SIZE
    }

    /// Whether the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Size of the archive in bytes (its recorded total size).
    pub fn total_size(&self) -> usize {
        self.bytes.len()
    }

    /// The archive itself, `total_size` bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over the entries of an [`Archive`].
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    inner: core::slice::Iter<'a, EntryHeader>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        self.inner.next().map(|h| decode(self.bytes, h))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Entries<'_> {}
impl FusedIterator for Entries<'_> {}

/// Checks the name of the entry at `index` against the format's rules and the names
/// of the entries before it.
fn check_name<'n>(
    index: usize,
    name: &str,
    earlier: impl Iterator<Item = &'n str>,
) -> Result<(), ArchiveError> {
    let index = index_u32(index);
    if name.is_empty() {
        return Err(ArchiveError::EmptyName { index });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ArchiveError::NameTooLong {
            index,
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    if let Some(first) = earlier.into_iter().position(|n| n == name) {
        return Err(ArchiveError::DuplicateName {
            index,
            first: index_u32(first),
        });
    }
    Ok(())
}

/// Size in bytes of the archive holding `entries` (assumed valid).
fn layout_size<'e>(entries: impl ExactSizeIterator<Item = (&'e str, &'e [u8])>) -> usize {
    let table_end = entries
        .len()
        .saturating_mul(ENTRY_HEADER_SIZE)
        .saturating_add(ARCHIVE_HEADER_SIZE);
    let end = entries.fold(align_up(table_end, DATA_ALIGN), |cursor, (_, data)| {
        align_up(cursor.saturating_add(data.len()), DATA_ALIGN)
    });
    align_up(end, DATA_ALIGN)
}

/// Writes the archive holding `entries` (assumed valid) into `out`, which is
/// [`layout_size`] bytes and zeroed.
fn emit<'e>(out: &mut [u8], entries: impl ExactSizeIterator<Item = (&'e str, &'e [u8])>) {
    let count = entries.len();
    let header = ArchiveHeader {
        magic: ARCHIVE_MAGIC,
        entry_count: U32::new(index_u32(count)),
        flags: U32::ZERO,
        total_size: U64::new(out.len() as u64),
        reserved: U64::ZERO,
    };
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = out.get_mut(at..at.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
    };
    put(0, header.as_bytes());
    let mut cursor = align_up(ARCHIVE_HEADER_SIZE + count * ENTRY_HEADER_SIZE, DATA_ALIGN);
    for (i, (name, data)) in entries.enumerate() {
        let mut entry = EntryHeader::new_zeroed();
        entry.offset = U64::new(cursor as u64);
        entry.size = U64::new(data.len() as u64);
        entry.name_len = U32::new(index_u32(name.len()));
        if let Some(dst) = entry.name.get_mut(..name.len()) {
            dst.copy_from_slice(name.as_bytes());
        }
        put(
            ARCHIVE_HEADER_SIZE + i * ENTRY_HEADER_SIZE,
            entry.as_bytes(),
        );
        put(cursor, data);
        cursor = align_up(cursor.saturating_add(data.len()), DATA_ALIGN);
    }
}

/// Returns the size of the archive holding `entries`, or why it cannot be built.
///
/// # Errors
///
/// [`ArchiveError::TooManyEntries`], [`ArchiveError::EmptyName`],
/// [`ArchiveError::NameTooLong`] or [`ArchiveError::DuplicateName`].
pub fn archive_size(entries: &[Entry<'_>]) -> Result<usize, ArchiveError> {
    if entries.len() > MAX_ENTRIES {
        return Err(ArchiveError::TooManyEntries {
            count: entries.len(),
            max: MAX_ENTRIES,
        });
    }
    for (i, entry) in entries.iter().enumerate() {
        let earlier = entries.get(..i).unwrap_or(&[]);
        check_name(i, entry.name, earlier.iter().map(|e| e.name))?;
    }
    Ok(layout_size(entries.iter().map(|e| (e.name, e.data))))
}

/// Writes an archive holding `entries`, in order, into `buf` without allocating;
/// returns the bytes used. The rest of `buf` is untouched.
///
/// # Errors
///
/// As [`archive_size`], or [`ArchiveError::BufferTooSmall`].
pub fn write_archive(buf: &mut [u8], entries: &[Entry<'_>]) -> Result<usize, ArchiveError> {
    let size = archive_size(entries)?;
    let available = buf.len();
    let out = buf.get_mut(..size).ok_or(ArchiveError::BufferTooSmall {
        needed: size,
        available,
    })?;
    out.fill(0);
    emit(out, entries.iter().map(|e| (e.name, e.data)));
    Ok(size)
}

#[cfg(feature = "alloc")]
pub use builder::ArchiveBuilder;

#[cfg(feature = "alloc")]
mod builder {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::{ArchiveError, MAX_ENTRIES, check_name, emit, layout_size};

    /// Builds an archive in memory (host tools).
    ///
    /// ```
    /// use kaal_bootinfo::archive::{Archive, ArchiveBuilder};
    ///
    /// let mut builder = ArchiveBuilder::new();
    /// builder.add("root", b"root task image")?.add("hello", b"hello image")?;
    /// let bytes = builder.finish();
    /// let archive = Archive::parse(&bytes)?;
    /// assert_eq!(archive.get("hello"), Some(&b"hello image"[..]));
    /// # Ok::<(), kaal_bootinfo::archive::ArchiveError>(())
    /// ```
    #[derive(Clone, Debug, Default)]
    pub struct ArchiveBuilder {
        entries: Vec<(String, Vec<u8>)>,
    }

    impl ArchiveBuilder {
        /// An empty builder.
        pub fn new() -> Self {
            Self::default()
        }

        /// Appends an entry.
        ///
        /// # Errors
        ///
        /// [`ArchiveError::EmptyName`], [`ArchiveError::NameTooLong`],
        /// [`ArchiveError::DuplicateName`] or [`ArchiveError::TooManyEntries`]; the
        /// builder is unchanged then.
        pub fn add(&mut self, name: &str, data: &[u8]) -> Result<&mut Self, ArchiveError> {
            let index = self.entries.len();
            check_name(index, name, self.entries.iter().map(|(n, _)| n.as_str()))?;
            if index >= MAX_ENTRIES {
                return Err(ArchiveError::TooManyEntries {
                    count: index + 1,
                    max: MAX_ENTRIES,
                });
            }
            self.entries.push((String::from(name), Vec::from(data)));
            Ok(self)
        }

        /// Number of entries added so far.
        pub fn len(&self) -> usize {
            self.entries.len()
        }

        /// Whether no entry was added yet.
        pub fn is_empty(&self) -> bool {
            self.entries.is_empty()
        }

        /// The archive bytes.
        pub fn finish(self) -> Vec<u8> {
            let entries = || self.entries.iter().map(|(n, d)| (n.as_str(), d.as_slice()));
            let mut out = alloc::vec![0u8; layout_size(entries())];
            emit(&mut out, entries());
            out
        }
    }
}
