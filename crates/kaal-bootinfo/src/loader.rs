//! Checking an ELF image before loading it: the one planner the kernel (for the root
//! task) and `kaal-user` (for every process it builds) both use.
//!
//! [`plan`] turns an untrusted ELF file into a [`LoadPlan`], a list of page-aligned
//! segments that can be loaded without further checks, or a [`LoadError`] that names what
//! is wrong (for a segment: its program-header index and the rule it breaks). It parses
//! with the `elf` crate (a well-kept, `no_std`, zero-allocation parser that reads fields
//! without alignment assumptions, so it works on bytes embedded with `include_bytes!`)
//! and adds KaaL's rules:
//!
//! * the file: 64-bit, little-endian, AArch64, a static executable (`ET_EXEC`), 56-byte
//!   program headers, at most [`MAX_PROGRAM_HEADERS`] of them, 1 to [`MAX_SEGMENTS`]
//!   loadable segments;
//! * each `PT_LOAD` segment: no more file bytes than memory bytes, its file bytes inside
//!   the file, `p_vaddr + p_memsz` without overflow and inside the caller's user range,
//!   no page shared with a window the caller reserves (stack, boot info, ...) or with
//!   another segment, and never writable and executable (W^X);
//! * the whole image: at most the caller's number of bytes of memory, the entry point
//!   inside an executable segment.
//!
//! The loader then fills each page of a segment with [`Segment::file_bytes_in_page`],
//! straight from the image, without a buffer.
//!
//! ```
//! use kaal_bootinfo::loader::{LoadError, Rules, Window, plan};
//!
//! const RESERVED: [Window; 1] = [Window::new("stack", 0x3f_ffff_0000, 0x40_0000_0000)];
//! let rules = Rules {
//!     user_start: 0x1000,
//!     user_end: 1 << 39,
//!     reserved: &RESERVED,
//!     max_bytes: 16 << 20,
//! };
//! assert_eq!(plan(b"not an ELF file", &rules).unwrap_err(), LoadError::NotElf);
//! ```

use core::ops::Range;
use elf::ElfBytes;
use elf::abi::{EM_AARCH64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;

/// Most loadable segments an image may have.
pub const MAX_SEGMENTS: usize = 8;
/// Most program headers (of any type) an image may have.
pub const MAX_PROGRAM_HEADERS: u16 = 64;
/// The page size segments are mapped with.
pub const PAGE_SIZE: u64 = 4096;
/// Size of an ELF64 program header.
const PROGRAM_HEADER_BYTES: u16 = 56;
/// Size of an ELF64 file header.
const FILE_HEADER_BYTES: usize = 64;

/// A range of user addresses that the loader maps itself (a stack, the boot info, ...),
/// which no segment may touch. Checked page by page: a segment may not share a page with
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// What the window holds, for error messages.
    pub name: &'static str,
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl Window {
    /// The window `[start, end)` named `name`.
    pub const fn new(name: &'static str, start: u64, end: u64) -> Self {
        Self { name, start, end }
    }

    /// Whether the pages of `[start, end)` and of this window meet.
    fn meets(&self, start: u64, end: u64) -> bool {
        let own_start = self.start & !(PAGE_SIZE - 1);
        let own_end = self
            .end
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(u64::MAX);
        own_start < own_end && start < own_end && own_start < end
    }
}

/// What the caller allows: where segments may go and how much memory they may take.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// Lowest address a segment may use.
    pub user_start: u64,
    /// One past the highest address a segment may use.
    pub user_end: u64,
    /// Windows the loader uses for other things.
    pub reserved: &'a [Window],
    /// Most bytes of memory (whole pages) all segments together may take.
    pub max_bytes: u64,
}

/// One checked loadable segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Its index in the program header table.
    pub index: u16,
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Size in memory (the tail past `file_size` is zero).
    pub mem_size: u64,
    /// Offset of the segment's bytes in the file.
    pub file_offset: u64,
    /// Number of bytes taken from the file (at most `mem_size`).
    pub file_size: u64,
    /// Writable.
    pub write: bool,
    /// Executable (never together with `write`).
    pub execute: bool,
}

impl Segment {
    /// The first page and one past the last page this segment touches, page-aligned.
    /// Never overflows for a segment of a [`LoadPlan`].
    pub fn page_span(&self) -> (u64, u64) {
        (
            self.vaddr & !(PAGE_SIZE - 1),
            (self.vaddr + self.mem_size).next_multiple_of(PAGE_SIZE),
        )
    }

    /// Bytes of memory the segment's pages take.
    pub fn page_bytes(&self) -> u64 {
        let (start, end) = self.page_span();
        end - start
    }

    /// What of the file lands in the page at `page` (page-aligned, inside
    /// [`Segment::page_span`]): the offset in the page and the range of file bytes to copy
    /// there, or `None` if the page is all zeros. For a segment of a [`LoadPlan`] the range
    /// lies inside the image the plan was made from.
    pub fn file_bytes_in_page(&self, page: u64) -> Option<(usize, Range<usize>)> {
        let from = page.max(self.vaddr);
        let to = page
            .saturating_add(PAGE_SIZE)
            .min(self.vaddr.saturating_add(self.file_size));
        if from >= to {
            return None;
        }
        let start = self.file_offset + (from - self.vaddr);
        Some((
            (from - page) as usize,
            start as usize..(start + (to - from)) as usize,
        ))
    }
}

/// A checked image: its entry point and loadable segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl LoadPlan {
    /// The entry point, inside an executable segment.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The loadable segments, in file order, none sharing a page with another.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// Bytes of memory the segments' pages take together.
    pub fn memory_bytes(&self) -> u64 {
        self.segments().iter().map(Segment::page_bytes).sum()
    }
}

/// What is wrong with one loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SegmentProblem {
    /// `p_filesz > p_memsz`.
    #[error("file size {file_size:#x} is larger than its memory size {mem_size:#x}")]
    FileLargerThanMemory {
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// `p_offset + p_filesz` overflows or lies past the end of the file.
    #[error("file bytes {offset:#x}+{size:#x} are not inside the file")]
    FileOutOfBounds {
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        size: u64,
    },
    /// `p_vaddr + p_memsz` (or the end of its last page) overflows.
    #[error("address {vaddr:#x}+{size:#x} overflows")]
    AddressOverflow {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        size: u64,
    },
    /// The segment lies (partly) outside the allowed user range.
    #[error("{vaddr:#x}+{size:#x} is outside user space")]
    OutsideUserSpace {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        size: u64,
    },
    /// The segment shares a page with a window the loader reserves.
    #[error("{vaddr:#x}+{size:#x} overlaps the {window} window")]
    Reserved {
        /// The window's name.
        window: &'static str,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        size: u64,
    },
    /// The segment shares a page with an earlier segment.
    #[error("shares a page with segment {other}")]
    Overlap {
        /// The earlier segment's program-header index.
        other: u16,
    },
    /// The segment is writable and executable.
    #[error("writable and executable (W^X)")]
    WriteAndExecute,
}

/// Why an ELF image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// No ELF magic, or shorter than an ELF64 file header.
    #[error("not an ELF file")]
    NotElf,
    /// Not a 64-bit ELF file (`EI_CLASS`).
    #[error("ELF class {0} is not 64-bit")]
    Not64Bit(u8),
    /// Not little-endian (`EI_DATA`).
    #[error("ELF data encoding {0} is not little-endian")]
    NotLittleEndian(u8),
    /// Built for another machine.
    #[error("ELF machine {0} is not AArch64 ({EM_AARCH64})")]
    WrongMachine(u16),
    /// Not a static executable.
    #[error("ELF type {0} is not a static executable (ET_EXEC)")]
    NotExecutable(u16),
    /// Program headers of a size other than 56 bytes.
    #[error("program header size {0} is not {PROGRAM_HEADER_BYTES}")]
    ProgramHeaderSize(u16),
    /// More than [`MAX_PROGRAM_HEADERS`] program headers.
    #[error("{0} program headers, more than {MAX_PROGRAM_HEADERS}")]
    TooManyProgramHeaders(u16),
    /// The `elf` crate could not parse the headers (tables outside the file, ...).
    #[error("malformed ELF file: headers are unreadable")]
    Malformed,
    /// No loadable segment.
    #[error("no loadable segment")]
    NoSegments,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    #[error("more than {MAX_SEGMENTS} loadable segments")]
    TooManySegments,
    /// A loadable segment breaks a rule.
    #[error("segment {index}: {problem}")]
    Segment {
        /// The segment's index in the program header table.
        index: u16,
        /// The rule it breaks.
        problem: SegmentProblem,
    },
    /// The segments take more memory than allowed.
    #[error("segments take {bytes:#x} bytes of memory, more than {limit:#x}")]
    TooLarge {
        /// Bytes the segments' pages take.
        bytes: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// The entry point is not inside an executable segment.
    #[error("entry point {0:#x} is not inside an executable segment")]
    BadEntry(u64),
}

fn read_u16(image: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([image[at], image[at + 1]])
}

/// Checks `image` against the ELF rules and `rules`; see the [module](self) for the list.
pub fn plan(image: &[u8], rules: &Rules<'_>) -> Result<LoadPlan, LoadError> {
    // The identification bytes and the program-header shape are checked here, before the
    // `elf` crate parses the file, so that each gets its own error (the crate would fold
    // them into one parse error, and follows `PN_XNUM` into the section headers).
    if image.len() < FILE_HEADER_BYTES || image[..4] != *b"\x7fELF" {
        return Err(LoadError::NotElf);
    }
    if image[4] != elf::abi::ELFCLASS64 {
        return Err(LoadError::Not64Bit(image[4]));
    }
    if image[5] != elf::abi::ELFDATA2LSB {
        return Err(LoadError::NotLittleEndian(image[5]));
    }
    let (entry_size, count) = (read_u16(image, 54), read_u16(image, 56));
    if count > MAX_PROGRAM_HEADERS {
        return Err(LoadError::TooManyProgramHeaders(count));
    }
    if count > 0 && entry_size != PROGRAM_HEADER_BYTES {
        return Err(LoadError::ProgramHeaderSize(entry_size));
    }
    let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| LoadError::Malformed)?;
    let header = &file.ehdr;
    if header.e_machine != EM_AARCH64 {
        return Err(LoadError::WrongMachine(header.e_machine));
    }
    if header.e_type != ET_EXEC {
        return Err(LoadError::NotExecutable(header.e_type));
    }
    let table = file.segments().ok_or(LoadError::NoSegments)?;
    let mut plan = LoadPlan {
        entry: header.e_entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    let mut bytes: u64 = 0;
    for (index, header) in table.iter().enumerate() {
        if header.p_type != PT_LOAD || (header.p_memsz == 0 && header.p_filesz == 0) {
            continue;
        }
        // At most MAX_PROGRAM_HEADERS entries, checked above.
        let index = index as u16;
        let segment = Segment {
            index,
            vaddr: header.p_vaddr,
            mem_size: header.p_memsz,
            file_offset: header.p_offset,
            file_size: header.p_filesz,
            write: header.p_flags & PF_W != 0,
            execute: header.p_flags & PF_X != 0,
        };
        check_segment(&segment, image.len() as u64, rules, plan.segments())
            .map_err(|problem| LoadError::Segment { index, problem })?;
        *plan
            .segments
            .get_mut(plan.count)
            .ok_or(LoadError::TooManySegments)? = segment;
        plan.count += 1;
        bytes = bytes.saturating_add(segment.page_bytes());
    }
    if plan.count == 0 {
        return Err(LoadError::NoSegments);
    }
    if bytes > rules.max_bytes {
        return Err(LoadError::TooLarge {
            bytes,
            limit: rules.max_bytes,
        });
    }
    let entry = plan.entry;
    if !plan
        .segments()
        .iter()
        .any(|s| s.execute && entry >= s.vaddr && entry - s.vaddr < s.mem_size)
    {
        return Err(LoadError::BadEntry(entry));
    }
    Ok(plan)
}

fn check_segment(
    segment: &Segment,
    file_bytes: u64,
    rules: &Rules<'_>,
    earlier: &[Segment],
) -> Result<(), SegmentProblem> {
    let (vaddr, size) = (segment.vaddr, segment.mem_size);
    if segment.write && segment.execute {
        return Err(SegmentProblem::WriteAndExecute);
    }
    if segment.file_size > size {
        return Err(SegmentProblem::FileLargerThanMemory {
            file_size: segment.file_size,
            mem_size: size,
        });
    }
    if segment
        .file_offset
        .checked_add(segment.file_size)
        .is_none_or(|end| end > file_bytes)
    {
        return Err(SegmentProblem::FileOutOfBounds {
            offset: segment.file_offset,
            size: segment.file_size,
        });
    }
    // `file_size <= mem_size`, so this also covers `p_vaddr + p_filesz`.
    let Some(end) = vaddr
        .checked_add(size)
        .and_then(|end| end.checked_next_multiple_of(PAGE_SIZE))
    else {
        return Err(SegmentProblem::AddressOverflow { vaddr, size });
    };
    if vaddr < rules.user_start || vaddr + size > rules.user_end {
        return Err(SegmentProblem::OutsideUserSpace { vaddr, size });
    }
    let start = vaddr & !(PAGE_SIZE - 1);
    if let Some(window) = rules.reserved.iter().find(|w| w.meets(start, end)) {
        return Err(SegmentProblem::Reserved {
            window: window.name,
            vaddr,
            size,
        });
    }
    if let Some(other) = earlier.iter().find(|other| {
        let (other_start, other_end) = other.page_span();
        start < other_end && other_start < end
    }) {
        return Err(SegmentProblem::Overlap { other: other.index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;
    use std::vec::Vec;

    const R: u32 = 4;
    const RX: u32 = 5;
    const RW: u32 = 6;
    const RWX: u32 = 7;
    const FILE_BYTES: usize = 0x3000;
    const RESERVED: [Window; 2] = [
        Window::new("stack", 0x3f_fff0_0000, 0x40_0000_0000),
        Window::new("start-up record", 0x0f00_0000, 0x0f00_1000),
    ];
    const RULES: Rules<'static> = Rules {
        user_start: 0x1000,
        user_end: 1 << 39,
        reserved: &RESERVED,
        max_bytes: 16 << 20,
    };

    /// A program header: `(type, flags, vaddr, offset, filesz, memsz)`.
    type Header = (u32, u32, u64, u64, u64, u64);

    fn load(flags: u32, vaddr: u64, offset: u64, filesz: u64, memsz: u64) -> Header {
        (PT_LOAD, flags, vaddr, offset, filesz, memsz)
    }

    /// A minimal little-endian ELF64 AArch64 executable with these program headers.
    fn image(entry: u64, headers: &[Header]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // 64-bit
        out[5] = 1; // little-endian
        out[6] = 1; // version
        out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        out[56..58].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        for &(kind, flags, vaddr, offset, filesz, memsz) in headers {
            let mut ph = [0u8; 56];
            ph[0..4].copy_from_slice(&kind.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
            out.extend_from_slice(&ph);
        }
        out.resize(FILE_BYTES.max(out.len()), 0);
        out
    }

    /// A well-formed image: text, read-only data, data with a bss tail.
    fn good() -> Vec<u8> {
        image(
            0x40_0010,
            &[
                load(RX, 0x40_0000, 0x1000, 0x100, 0x100),
                (6, R, 0x40_0040, 0x40, 0x38, 0x38), // PT_PHDR: not loaded
                load(R, 0x40_1000, 0x1100, 0x80, 0x80),
                load(RW, 0x40_2010, 0x2000, 0x10, 0x5000),
            ],
        )
    }

    fn check(bytes: &[u8]) -> LoadError {
        plan(bytes, &RULES).unwrap_err()
    }

    fn segment(index: u16, problem: SegmentProblem) -> LoadError {
        LoadError::Segment { index, problem }
    }

    #[test]
    fn accepts_a_well_formed_executable() {
        let plan = plan(&good(), &RULES).unwrap();
        assert_eq!(plan.entry(), 0x40_0010);
        let segments = plan.segments();
        assert_eq!(segments.len(), 3);
        assert_eq!(
            segments.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 2, 3]
        );
        assert!(segments[0].execute && !segments[0].write);
        assert!(!segments[1].execute && !segments[1].write);
        assert_eq!(segments[2].page_span(), (0x40_2000, 0x40_8000));
        assert_eq!(plan.memory_bytes(), 0x8000);
    }

    #[test]
    fn file_bytes_land_where_the_segment_says() {
        let plan = plan(&good(), &RULES).unwrap();
        let data = plan.segments()[2];
        // The data segment starts 0x10 into its first page; its 0x10 file bytes follow.
        assert_eq!(
            data.file_bytes_in_page(0x40_2000),
            Some((0x10, 0x2000..0x2010))
        );
        assert_eq!(data.file_bytes_in_page(0x40_3000), None);
        // A segment spanning pages: each page gets its slice.
        let long = Segment {
            index: 0,
            vaddr: 0x40_0800,
            mem_size: 0x3000,
            file_offset: 0x1800,
            file_size: 0x1900,
            write: false,
            execute: true,
        };
        assert_eq!(
            long.file_bytes_in_page(0x40_0000),
            Some((0x800, 0x1800..0x2000))
        );
        assert_eq!(
            long.file_bytes_in_page(0x40_1000),
            Some((0, 0x2000..0x3000))
        );
        assert_eq!(
            long.file_bytes_in_page(0x40_2000),
            Some((0, 0x3000..0x3100))
        );
        assert_eq!(long.file_bytes_in_page(0x40_3000), None);
    }

    #[test]
    fn refuses_a_bad_file_header() {
        let mut bytes = good();
        assert_eq!(check(&bytes[..63]), LoadError::NotElf);
        assert_eq!(check(&[]), LoadError::NotElf);
        bytes[0] = 0;
        assert_eq!(check(&bytes), LoadError::NotElf);
        let mut bytes = good();
        bytes[4] = 1;
        assert_eq!(check(&bytes), LoadError::Not64Bit(1));
        let mut bytes = good();
        bytes[5] = 2;
        assert_eq!(check(&bytes), LoadError::NotLittleEndian(2));
        let mut bytes = good();
        bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert_eq!(check(&bytes), LoadError::WrongMachine(62));
        let mut bytes = good();
        bytes[16..18].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(check(&bytes), LoadError::NotExecutable(3));
        let mut bytes = good();
        bytes[54..56].copy_from_slice(&32u16.to_le_bytes());
        assert_eq!(check(&bytes), LoadError::ProgramHeaderSize(32));
        let mut bytes = good();
        bytes[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(check(&bytes), LoadError::TooManyProgramHeaders(0xffff));
        let mut bytes = good();
        bytes[56..58].copy_from_slice(&65u16.to_le_bytes());
        assert_eq!(check(&bytes), LoadError::TooManyProgramHeaders(65));
        // The program header table runs past the end of the file.
        let mut bytes = good();
        bytes[32..40].copy_from_slice(&0x2ff0u64.to_le_bytes());
        assert_eq!(check(&bytes), LoadError::Malformed);
    }

    #[test]
    fn refuses_images_without_or_with_too_many_segments() {
        assert_eq!(check(&image(0x40_0000, &[])), LoadError::NoSegments);
        assert_eq!(
            check(&image(0x40_0000, &[(6, R, 0x40_0000, 0, 0x10, 0x10)])),
            LoadError::NoSegments
        );
        let many: Vec<Header> = (0..9)
            .map(|i| load(R, 0x40_0000 + i * 0x1000, 0x1000, 0x10, 0x10))
            .collect();
        assert_eq!(check(&image(0x40_0000, &many)), LoadError::TooManySegments);
    }

    #[test]
    fn names_each_segment_problem() {
        let text = load(RX, 0x40_0000, 0x1000, 0x100, 0x100);
        let one = |second: Header| check(&image(0x40_0000, &[text, second]));
        assert_eq!(
            one(load(RWX, 0x50_0000, 0x1000, 0x10, 0x10)),
            segment(1, SegmentProblem::WriteAndExecute)
        );
        assert_eq!(
            one(load(RW, 0x50_0000, 0x1000, 0x20, 0x10)),
            segment(
                1,
                SegmentProblem::FileLargerThanMemory {
                    file_size: 0x20,
                    mem_size: 0x10
                }
            )
        );
        // A segment with no memory but file bytes is not skipped.
        assert_eq!(
            one(load(RW, 0x50_0000, 0x1000, 0x20, 0)),
            segment(
                1,
                SegmentProblem::FileLargerThanMemory {
                    file_size: 0x20,
                    mem_size: 0
                }
            )
        );
        assert_eq!(
            one(load(RW, 0x50_0000, 0x2f00, 0x200, 0x200)),
            segment(
                1,
                SegmentProblem::FileOutOfBounds {
                    offset: 0x2f00,
                    size: 0x200
                }
            )
        );
        assert_eq!(
            one(load(RW, 0x50_0000, u64::MAX, 0x10, 0x10)),
            segment(
                1,
                SegmentProblem::FileOutOfBounds {
                    offset: u64::MAX,
                    size: 0x10
                }
            )
        );
        // p_vaddr + p_filesz (and p_memsz) overflows.
        assert_eq!(
            one(load(RW, u64::MAX - 8, 0x1000, 0x10, 0x10)),
            segment(
                1,
                SegmentProblem::AddressOverflow {
                    vaddr: u64::MAX - 8,
                    size: 0x10
                }
            )
        );
        // The end of the last page overflows.
        assert_eq!(
            one(load(RW, u64::MAX - 0x100, 0x1000, 0x10, 0x10)),
            segment(
                1,
                SegmentProblem::AddressOverflow {
                    vaddr: u64::MAX - 0x100,
                    size: 0x10
                }
            )
        );
        assert_eq!(
            one(load(RW, 0, 0x1000, 0x10, 0x10)),
            segment(
                1,
                SegmentProblem::OutsideUserSpace {
                    vaddr: 0,
                    size: 0x10
                }
            )
        );
        assert_eq!(
            one(load(RW, (1 << 39) - 0x1000, 0x1000, 0x10, 0x2000)),
            segment(
                1,
                SegmentProblem::OutsideUserSpace {
                    vaddr: (1 << 39) - 0x1000,
                    size: 0x2000
                }
            )
        );
        // A p_memsz of 2^39 is outside user space, whatever the address.
        assert_eq!(
            one(load(RW, 0x50_0000, 0x1000, 0x10, 1 << 39)),
            segment(
                1,
                SegmentProblem::OutsideUserSpace {
                    vaddr: 0x50_0000,
                    size: 1 << 39
                }
            )
        );
        // Sharing a page with a reserved window, from either side.
        assert_eq!(
            one(load(RW, 0x0eff_f800, 0x1000, 0x10, 0x900)),
            segment(
                1,
                SegmentProblem::Reserved {
                    window: "start-up record",
                    vaddr: 0x0eff_f800,
                    size: 0x900
                }
            )
        );
        assert_eq!(
            one(load(RW, 0x0f00_0ff0, 0x1000, 0x10, 0x10)),
            segment(
                1,
                SegmentProblem::Reserved {
                    window: "start-up record",
                    vaddr: 0x0f00_0ff0,
                    size: 0x10
                }
            )
        );
        assert_eq!(
            one(load(RW, 0x3f_ffff_f000, 0x1000, 0x10, 0x10)),
            segment(
                1,
                SegmentProblem::Reserved {
                    window: "stack",
                    vaddr: 0x3f_ffff_f000,
                    size: 0x10
                }
            )
        );
        // Right next to a window is fine.
        assert!(
            plan(
                &image(
                    0x40_0000,
                    &[text, load(RW, 0x0f00_1000, 0x1000, 0x10, 0x10)]
                ),
                &RULES
            )
            .is_ok()
        );
        // Sharing a page with an earlier segment, or covering it.
        assert_eq!(
            one(load(RW, 0x40_0800, 0x1000, 0x10, 0x10)),
            segment(1, SegmentProblem::Overlap { other: 0 })
        );
        assert_eq!(
            one(load(RW, 0x3f_0000, 0x1000, 0x10, 0x20000)),
            segment(1, SegmentProblem::Overlap { other: 0 })
        );
    }

    #[test]
    fn bounds_memory_and_entry() {
        let text = load(RX, 0x40_0000, 0x1000, 0x100, 0x100);
        assert_eq!(
            check(&image(
                0x40_0000,
                &[text, load(RW, 0x50_0000, 0x1000, 0x10, 16 << 20)]
            )),
            LoadError::TooLarge {
                bytes: (16 << 20) + 0x1000,
                limit: 16 << 20
            }
        );
        // Outside every segment, in a non-executable one, one past the end.
        for entry in [0x60_0000, 0x50_0000, 0x40_0100] {
            assert_eq!(
                check(&image(
                    entry,
                    &[text, load(RW, 0x50_0000, 0x1000, 0x10, 0x10)]
                )),
                LoadError::BadEntry(entry)
            );
        }
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            std::format!("{}", segment(2, SegmentProblem::WriteAndExecute)),
            "segment 2: writable and executable (W^X)"
        );
        assert_eq!(
            std::format!(
                "{}",
                segment(
                    1,
                    SegmentProblem::Reserved {
                        window: "stack",
                        vaddr: 0x3f_ffff_f000,
                        size: 0x10
                    }
                )
            ),
            "segment 1: 0x3ffffff000+0x10 overlaps the stack window"
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let base = good();
        for _ in 0..20_000 {
            let mut bytes = base.clone();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % 300) as usize;
                bytes[at] = (seed >> 32) as u8;
            }
            if let Ok(plan) = plan(&bytes, &RULES) {
                // Whatever is accepted can be loaded without going out of bounds.
                for segment in plan.segments() {
                    let (start, end) = segment.page_span();
                    let mut page = start;
                    while page < end {
                        if let Some((offset, range)) = segment.file_bytes_in_page(page) {
                            assert!(offset + range.len() <= PAGE_SIZE as usize);
                            assert!(bytes.get(range).is_some());
                        }
                        page += PAGE_SIZE;
                    }
                }
            }
        }
    }
}
