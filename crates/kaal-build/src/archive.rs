//! Packing user components into the archive the kernel embeds.
//!
//! The format belongs to `kaal-bootinfo` ([`kaal_bootinfo::archive`]); this module reads
//! the ELF files and writes the packed archive to disk.

use std::path::{Path, PathBuf};

use kaal_bootinfo::archive::ArchiveBuilder;

use crate::{Error, Result};

/// One archive entry: a name (the kernel starts [`crate::ROOT_TASK`]) and an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// Entry name inside the archive.
    pub name: String,
    /// Path of the ELF file.
    pub elf: PathBuf,
}

impl Component {
    /// Entry `name` holding the ELF file at `elf`.
    pub fn new(name: impl Into<String>, elf: impl Into<PathBuf>) -> Self {
        Component {
            name: name.into(),
            elf: elf.into(),
        }
    }
}

/// What the target needs of an ELF executable, for the archive: everything up to the
/// end of the last segment the program headers name, without section headers. Debug
/// information, symbol tables and other sections outside every segment (which the
/// linker places after the loadable data) stay in the file on the host, for debuggers;
/// the kernel and `kaal-user` load from program headers only. Anything that is not an
/// ELF file (the system description) is returned unchanged, and so is an ELF file this
/// cannot shorten safely (a 32-bit or big-endian one, or one whose section headers lie
/// inside a segment).
///
/// ```
/// let text = b"not an ELF file".to_vec();
/// assert_eq!(kaal_build::archive::strip_for_archive(&text), text);
/// ```
pub fn strip_for_archive(bytes: &[u8]) -> Vec<u8> {
    stripped_length(bytes).map_or_else(
        || bytes.to_vec(),
        |length| {
            let mut out = bytes[..length].to_vec();
            // e_shoff (0x28, 8 bytes), e_shnum (0x3c) and e_shstrndx (0x3e): no section
            // header table.
            out[0x28..0x30].fill(0);
            out[0x3c..0x40].fill(0);
            out
        },
    )
}

/// The length [`strip_for_archive`] keeps, if it can shorten `bytes`.
fn stripped_length(bytes: &[u8]) -> Option<usize> {
    let file = elf::ElfBytes::<elf::endian::LittleEndian>::minimal_parse(bytes).ok()?;
    if file.ehdr.class != elf::file::Class::ELF64 {
        return None;
    }
    let headers_end = file
        .ehdr
        .e_phoff
        .checked_add(u64::from(file.ehdr.e_phnum).checked_mul(u64::from(file.ehdr.e_phentsize))?)?;
    let mut end = headers_end.max(u64::from(file.ehdr.e_ehsize));
    for segment in file.segments()?.iter() {
        end = end.max(segment.p_offset.checked_add(segment.p_filesz)?);
    }
    let length = usize::try_from(end).ok()?;
    // Only shorter, and only if the section header table is not needed to keep the
    // segments whole (it lies past them).
    (length < bytes.len() && file.ehdr.e_shoff >= end).then_some(length)
}

/// Packs `components` (in order) and returns the archive bytes. ELF files go in
/// without what only a debugger needs ([`strip_for_archive`]).
pub fn pack_bytes(components: &[Component]) -> Result<Vec<u8>> {
    let mut builder = ArchiveBuilder::new();
    for c in components {
        let bytes = std::fs::read(&c.elf).map_err(|e| Error::io(&c.elf, e))?;
        let bytes = strip_for_archive(&bytes);
        builder.add(&c.name, &bytes).map_err(|e| Error::Archive {
            component: c.name.clone(),
            reason: format!("{e}"),
        })?;
    }
    Ok(builder.finish())
}

/// Packs `components` into the file `out` (creating its directory), rewriting it only when
/// its contents change so that the kernel is not rebuilt for nothing.
pub fn pack(components: &[Component], out: &Path) -> Result<()> {
    let bytes = pack_bytes(components)?;
    if std::fs::read(out).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(out, bytes).map_err(|e| Error::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::strip_for_archive;
    use kaal_bootinfo::loader::{Rules, plan};

    /// An AArch64 ELF64 executable: one loadable segment at file offset 0x1000 (0x100
    /// bytes), "debug information" after it, and a section header table at 0x3000.
    fn executable() -> Vec<u8> {
        let mut out = vec![0u8; 0x3000 + 2 * 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // 64-bit
        out[5] = 1; // little-endian
        out[6] = 1; // version
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes()); // entry
        out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        out[40..48].copy_from_slice(&0x3000u64.to_le_bytes()); // e_shoff
        out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        out[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        out[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out[60..62].copy_from_slice(&2u16.to_le_bytes()); // e_shnum
        let ph = &mut out[64..120];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R X
        ph[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        ph[16..24].copy_from_slice(&0x40_0000u64.to_le_bytes());
        ph[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        ph[32..40].copy_from_slice(&0x100u64.to_le_bytes());
        ph[40..48].copy_from_slice(&0x100u64.to_le_bytes());
        ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
        for (i, byte) in out[0x1000..0x1100].iter_mut().enumerate() {
            *byte = i as u8;
        }
        out[0x1100..0x3000].fill(0xdb); // debug information
        out
    }

    #[test]
    fn keeps_every_segment_and_drops_the_rest() {
        let elf = executable();
        let stripped = strip_for_archive(&elf);
        assert_eq!(stripped.len(), 0x1100);
        assert_eq!(stripped[0x1000..], elf[0x1000..0x1100]);
        assert_eq!(stripped[0x28..0x30], [0; 8], "section headers still named");
        let rules = Rules {
            user_start: 0x1000,
            user_end: 1 << 39,
            reserved: &[],
            max_bytes: 16 << 20,
        };
        let (before, after) = (
            plan(&elf, &rules).unwrap(),
            plan(&stripped, &rules).unwrap(),
        );
        assert_eq!(before.segments(), after.segments());
        assert_eq!(before.entry(), after.entry());
        // Stripping twice changes nothing.
        assert_eq!(strip_for_archive(&stripped), stripped);
    }

    #[test]
    fn leaves_what_it_cannot_shorten_safely() {
        // Section headers inside the segment: kept whole.
        let mut elf = executable();
        elf[40..48].copy_from_slice(&0x1080u64.to_le_bytes());
        assert_eq!(strip_for_archive(&elf), elf);
        // Not ELF, or truncated: unchanged.
        assert_eq!(strip_for_archive(b"\x7fELF"), b"\x7fELF");
        assert_eq!(strip_for_archive(&[]), Vec::<u8>::new());
    }
}
