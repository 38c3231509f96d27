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

/// Packs `components` (in order) and returns the archive bytes.
pub fn pack_bytes(components: &[Component]) -> Result<Vec<u8>> {
    let mut builder = ArchiveBuilder::new();
    for c in components {
        let bytes = std::fs::read(&c.elf).map_err(|e| Error::io(&c.elf, e))?;
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
