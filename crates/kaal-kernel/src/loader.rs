//! Checking a user ELF image before loading it.
//!
//! [`plan`] turns an untrusted ELF file into a list of page-aligned segments to map, or an
//! error naming what is wrong. It uses the `elf` crate for parsing (a well-kept,
//! `no_std`, zero-allocation parser that reads fields without alignment assumptions, so
//! it works on bytes embedded with `include_bytes!`) and adds KaaL's own rules: AArch64,
//! 64-bit, little-endian executables, segments inside the user range, no writable and
//! executable segment (W^X), no two segments sharing a page, entry in an executable
//! segment. Pure logic, tested on the host.

use elf::ElfBytes;
use elf::abi::{EM_AARCH64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use thiserror::Error;

/// Most loadable segments accepted.
pub const MAX_SEGMENTS: usize = 8;
const PAGE: u64 = 4096;

/// One loadable segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Size in memory (the tail past `file_size` is zero).
    pub mem_size: u64,
    /// Offset of the segment's bytes in the file.
    pub file_offset: u64,
    /// Number of bytes taken from the file.
    pub file_size: u64,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl Segment {
    /// First page and one past the last page this segment touches.
    pub fn page_span(&self) -> (u64, u64) {
        (
            self.vaddr & !(PAGE - 1),
            (self.vaddr + self.mem_size).next_multiple_of(PAGE),
        )
    }
}

/// A checked image: its entry point and segments.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Entry point.
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl LoadPlan {
    /// The segments, in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }
}

/// What is wrong with an ELF image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ElfError {
    /// The header or program header table could not be parsed.
    #[error("malformed ELF file: header or program headers are unreadable")]
    Malformed,
    /// Not a 64-bit ELF.
    #[error("not a 64-bit ELF file")]
    Not64Bit,
    /// Built for another machine.
    #[error("ELF machine {0} is not AArch64 ({EM_AARCH64})")]
    WrongMachine(u16),
    /// Not a static executable.
    #[error("ELF type {0} is not a static executable (ET_EXEC)")]
    NotExecutable(u16),
    /// No loadable segment.
    #[error("ELF file has no loadable segment")]
    NoSegments,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    #[error("more than {MAX_SEGMENTS} loadable segments")]
    TooManySegments,
    /// A segment is writable and executable.
    #[error("segment at {0:#x} is writable and executable (W^X)")]
    WriteAndExecute(u64),
    /// A segment lies (partly) outside the user address range.
    #[error("segment at {vaddr:#x} of {size:#x} bytes is outside user space")]
    OutsideUserSpace {
        /// Segment start.
        vaddr: u64,
        /// Segment size in memory.
        size: u64,
    },
    /// A segment's file bytes lie outside the file.
    #[error("segment file range {offset:#x}+{size:#x} is beyond the end of the file")]
    FileRangeOutOfBounds {
        /// File offset.
        offset: u64,
        /// Bytes.
        size: u64,
    },
    /// A segment has more file bytes than memory bytes.
    #[error("segment at {0:#x} has a file size larger than its memory size")]
    FileLargerThanMemory(u64),
    /// Two segments share a page.
    #[error("segments overlap or share a page at {0:#x}")]
    Overlap(u64),
    /// The entry point is not in an executable segment.
    #[error("entry point {0:#x} is not inside an executable segment")]
    BadEntry(u64),
}

/// Checks `image` for loading into user space `[user_start, user_end)`.
pub fn plan(image: &[u8], user_start: u64, user_end: u64) -> Result<LoadPlan, ElfError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| ElfError::Malformed)?;
    let header = &file.ehdr;
    if header.class != Class::ELF64 {
        return Err(ElfError::Not64Bit);
    }
    if header.e_machine != EM_AARCH64 {
        return Err(ElfError::WrongMachine(header.e_machine));
    }
    if header.e_type != ET_EXEC {
        return Err(ElfError::NotExecutable(header.e_type));
    }
    let table = file.segments().ok_or(ElfError::NoSegments)?;
    let mut plan = LoadPlan {
        entry: header.e_entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    for header in table
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
    {
        let segment = Segment {
            vaddr: header.p_vaddr,
            mem_size: header.p_memsz,
            file_offset: header.p_offset,
            file_size: header.p_filesz,
            write: header.p_flags & PF_W != 0,
            execute: header.p_flags & PF_X != 0,
        };
        if segment.write && segment.execute {
            return Err(ElfError::WriteAndExecute(segment.vaddr));
        }
        let end = segment.vaddr.checked_add(segment.mem_size);
        if segment.vaddr < user_start || end.is_none_or(|end| end > user_end) {
            return Err(ElfError::OutsideUserSpace {
                vaddr: segment.vaddr,
                size: segment.mem_size,
            });
        }
        if segment.file_size > segment.mem_size {
            return Err(ElfError::FileLargerThanMemory(segment.vaddr));
        }
        let file_end = segment.file_offset.checked_add(segment.file_size);
        if file_end.is_none_or(|end| end > image.len() as u64) {
            return Err(ElfError::FileRangeOutOfBounds {
                offset: segment.file_offset,
                size: segment.file_size,
            });
        }
        let (start, stop) = segment.page_span();
        if let Some(other) = plan.segments().iter().find(|o| {
            let (o_start, o_stop) = o.page_span();
            start < o_stop && o_start < stop
        }) {
            return Err(ElfError::Overlap(other.vaddr.max(start)));
        }
        *plan
            .segments
            .get_mut(plan.count)
            .ok_or(ElfError::TooManySegments)? = segment;
        plan.count += 1;
    }
    if plan.count == 0 {
        return Err(ElfError::NoSegments);
    }
    let entry = plan.entry;
    if !plan
        .segments()
        .iter()
        .any(|s| s.execute && entry >= s.vaddr && entry < s.vaddr + s.mem_size)
    {
        return Err(ElfError::BadEntry(entry));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal little-endian ELF64 executable with the given program headers
    /// `(flags, vaddr, offset, filesz, memsz)`.
    fn image(
        machine: u16,
        kind: u16,
        entry: u64,
        segments: &[(u32, u64, u64, u64, u64)],
    ) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // 64-bit
        out[5] = 1; // little-endian
        out[6] = 1; // version
        out[16..18].copy_from_slice(&kind.to_le_bytes());
        out[18..20].copy_from_slice(&machine.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for &(flags, vaddr, offset, filesz, memsz) in segments {
            let mut ph = [0u8; 56];
            ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
            out.extend_from_slice(&ph);
        }
        out.resize(0x3000, 0);
        out
    }

    const RX: u32 = 5;
    const RW: u32 = 6;
    const LIMIT: (u64, u64) = (0x1000, 1 << 39);

    #[test]
    fn accepts_a_well_formed_executable() {
        let bytes = image(
            EM_AARCH64,
            ET_EXEC,
            0x40_0010,
            &[
                (RX, 0x40_0000, 0x1000, 0x100, 0x100),
                (RW, 0x40_1000, 0x2000, 0x10, 0x5000),
            ],
        );
        let plan = plan(&bytes, LIMIT.0, LIMIT.1).unwrap();
        assert_eq!(plan.entry, 0x40_0010);
        assert_eq!(plan.segments().len(), 2);
        assert!(plan.segments()[0].execute && !plan.segments()[0].write);
        assert_eq!(plan.segments()[1].page_span(), (0x40_1000, 0x40_6000));
    }

    #[test]
    fn names_each_problem() {
        let ok = [(RX, 0x40_0000, 0x1000, 0x100, 0x100)];
        let check = |bytes: Vec<u8>| plan(&bytes, LIMIT.0, LIMIT.1).unwrap_err();
        assert_eq!(
            check(image(62, ET_EXEC, 0x40_0000, &ok)),
            ElfError::WrongMachine(62)
        );
        assert_eq!(
            check(image(EM_AARCH64, 3, 0x40_0000, &ok)),
            ElfError::NotExecutable(3)
        );
        assert_eq!(
            check(image(EM_AARCH64, ET_EXEC, 0x40_0000, &[])),
            ElfError::NoSegments
        );
        assert_eq!(
            check(image(
                EM_AARCH64,
                ET_EXEC,
                0x40_0000,
                &[(7, 0x40_0000, 0x1000, 0x10, 0x10)]
            )),
            ElfError::WriteAndExecute(0x40_0000)
        );
        assert_eq!(
            check(image(
                EM_AARCH64,
                ET_EXEC,
                0,
                &[(RX, 0, 0x1000, 0x10, 0x10)]
            )),
            ElfError::OutsideUserSpace {
                vaddr: 0,
                size: 0x10
            }
        );
        assert_eq!(
            check(image(
                EM_AARCH64,
                ET_EXEC,
                0x40_0000,
                &[(RX, u64::MAX - 8, 0x1000, 0x10, 0x10)]
            )),
            ElfError::OutsideUserSpace {
                vaddr: u64::MAX - 8,
                size: 0x10
            }
        );
        assert_eq!(
            check(image(
                EM_AARCH64,
                ET_EXEC,
                0x40_0000,
                &[(RX, 0x40_0000, 0x2f00, 0x1000, 0x1000)]
            )),
            ElfError::FileRangeOutOfBounds {
                offset: 0x2f00,
                size: 0x1000
            }
        );
        assert_eq!(
            check(image(
                EM_AARCH64,
                ET_EXEC,
                0x40_0000,
                &[(RX, 0x40_0000, 0x1000, 0x20, 0x10)]
            )),
            ElfError::FileLargerThanMemory(0x40_0000)
        );
        assert_eq!(
            check(image(
                EM_AARCH64,
                ET_EXEC,
                0x40_0000,
                &[
                    (RX, 0x40_0000, 0x1000, 0x10, 0x10),
                    (RW, 0x40_0800, 0x1000, 0x10, 0x10)
                ]
            )),
            ElfError::Overlap(0x40_0000)
        );
        assert_eq!(
            check(image(EM_AARCH64, ET_EXEC, 0x50_0000, &ok)),
            ElfError::BadEntry(0x50_0000)
        );
        assert_eq!(
            plan(b"\x7fELF garbage", LIMIT.0, LIMIT.1).unwrap_err(),
            ElfError::Malformed
        );
        assert_eq!(
            plan(&[], LIMIT.0, LIMIT.1).unwrap_err(),
            ElfError::Malformed
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let base = image(
            EM_AARCH64,
            ET_EXEC,
            0x40_0010,
            &[(RX, 0x40_0000, 0x1000, 0x100, 0x100)],
        );
        for _ in 0..2000 {
            let mut bytes = base.clone();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % 300) as usize;
                bytes[at] = (seed >> 32) as u8;
            }
            let _ = plan(&bytes, LIMIT.0, LIMIT.1);
        }
    }
}
