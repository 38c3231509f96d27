//! Reading the metadata `#[derive(Driver)]` records in a driver's binary, without
//! running it: the name the system description refers to, the devices it drives and
//! the resources it needs.
//!
//! The derive emits a `#[used]` byte-array static `__KAAL_DRIVER_METADATA_<NAME>`
//! holding a [`kaal_bootinfo::driver`] record. [`read_metadata`] finds such statics in
//! the ELF symbol table (their mangled names contain `__KAAL_DRIVER_METADATA`), reads
//! their bytes from the file through the section headers of the sections they live in
//! (`.rodata`, or `.data` for a static with interior mutability) and validates them.
//! The ELF is untrusted input: every offset and size is checked.
//!
//! ```no_run
//! use std::path::Path;
//!
//! # fn main() -> Result<(), kaal_build::driver::MetadataError> {
//! let path = Path::new("target/aarch64-unknown-none/release/pl031");
//! for driver in kaal_build::driver::read_metadata(path)? {
//!     println!("{}: {:?}, {} register regions", driver.name, driver.compatible, driver.mmio);
//! }
//! # Ok(())
//! # }
//! ```

use std::io;
use std::path::{Path, PathBuf};

use elf::ElfBytes;
use elf::abi::{ET_REL, SHN_LORESERVE, SHN_UNDEF, SHT_NOBITS, STT_FUNC};
use elf::endian::AnyEndian;
use elf::section::SectionHeader;
use elf::symbol::Symbol;

use kaal_bootinfo::driver::DriverInfo;
pub use kaal_bootinfo::driver::{DriverInfoError, DriverInfoOwned, PciId};

/// What the names of the metadata statics contain (before and after mangling).
pub const METADATA_SYMBOL: &str = "__KAAL_DRIVER_METADATA";

/// Why [`read_metadata`] could not read a binary's driver metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The binary.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not an ELF file, or its headers or symbol table are malformed.
    #[error("{path}: not a readable ELF file: {source}")]
    Elf {
        /// The binary.
        path: PathBuf,
        /// What the ELF parser found wrong.
        #[source]
        source: elf::ParseError,
    },
    /// The file has no symbol table (it was stripped): the metadata is found by symbol.
    #[error("{path}: no symbol table (stripped?): driver metadata is found by symbol name")]
    NoSymbolTable {
        /// The binary.
        path: PathBuf,
    },
    /// A metadata symbol refers to a section the file does not have.
    #[error("{path}: symbol `{symbol}` is in section {index}, which the file does not have")]
    NoSuchSection {
        /// The binary.
        path: PathBuf,
        /// The symbol's name.
        symbol: String,
        /// The section index it gives.
        index: u16,
    },
    /// A metadata symbol lies in a section without contents in the file (`.bss`).
    #[error("{path}: symbol `{symbol}` is in a section without file contents")]
    NoBits {
        /// The binary.
        path: PathBuf,
        /// The symbol's name.
        symbol: String,
    },
    /// A metadata symbol's bytes are not inside its section, or the section not inside
    /// the file.
    #[error(
        "{path}: symbol `{symbol}` ({size} bytes at {value:#x}) lies outside its section or the file"
    )]
    OutOfBounds {
        /// The binary.
        path: PathBuf,
        /// The symbol's name.
        symbol: String,
        /// Its value (an address, or an offset in its section in an object file).
        value: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// A metadata symbol's bytes are not a valid record.
    #[error("{path}: symbol `{symbol}`: {source}")]
    Decode {
        /// The binary.
        path: PathBuf,
        /// The symbol's name.
        symbol: String,
        /// What the record parser found wrong.
        #[source]
        source: DriverInfoError,
    },
}

impl From<MetadataError> for crate::Error {
    fn from(error: MetadataError) -> Self {
        match error {
            MetadataError::Io { path, source } => crate::Error::Io { path, source },
            other => crate::Error::Invalid(other.to_string()),
        }
    }
}

/// The metadata of every `#[derive(Driver)]` driver linked into the ELF file at `elf`,
/// in symbol-table order: none for a binary without drivers.
///
/// Reads executables and shared objects (symbol values are addresses) as well as
/// relocatable object files (symbol values are offsets in their sections).
///
/// # Errors
///
/// A [`MetadataError`]: the file cannot be read, is not ELF, has no symbol table, or a
/// metadata symbol's bytes are missing, out of bounds or not a valid record.
pub fn read_metadata(elf: &Path) -> Result<Vec<DriverInfoOwned>, MetadataError> {
    let bytes = std::fs::read(elf).map_err(|source| MetadataError::Io {
        path: elf.to_owned(),
        source,
    })?;
    metadata_of(&bytes, elf)
}

/// [`read_metadata`] on the bytes of an ELF file; `path` names it in errors.
///
/// # Errors
///
/// As [`read_metadata`], except [`MetadataError::Io`].
pub fn metadata_of(bytes: &[u8], path: &Path) -> Result<Vec<DriverInfoOwned>, MetadataError> {
    let elf_error = |source| MetadataError::Elf {
        path: path.to_owned(),
        source,
    };
    let file = ElfBytes::<AnyEndian>::minimal_parse(bytes).map_err(elf_error)?;
    let (symbols, names) =
        file.symbol_table()
            .map_err(elf_error)?
            .ok_or_else(|| MetadataError::NoSymbolTable {
                path: path.to_owned(),
            })?;
    let sections = file.section_headers();
    let relocatable = file.ehdr.e_type == ET_REL;

    let mut drivers = Vec::new();
    for symbol in symbols.iter() {
        if symbol.st_shndx == SHN_UNDEF
            || symbol.st_shndx >= SHN_LORESERVE
            || symbol.st_symtype() == STT_FUNC
        {
            continue;
        }
        let name = names
            .get(usize::try_from(symbol.st_name).unwrap_or(usize::MAX))
            .map_err(elf_error)?;
        if !name.contains(METADATA_SYMBOL) {
            continue;
        }
        let section = sections
            .and_then(|table| table.get(usize::from(symbol.st_shndx)).ok())
            .ok_or_else(|| MetadataError::NoSuchSection {
                path: path.to_owned(),
                symbol: name.to_owned(),
                index: symbol.st_shndx,
            })?;
        if section.sh_type == SHT_NOBITS {
            return Err(MetadataError::NoBits {
                path: path.to_owned(),
                symbol: name.to_owned(),
            });
        }
        let record = symbol_bytes(bytes, &section, &symbol, relocatable).ok_or_else(|| {
            MetadataError::OutOfBounds {
                path: path.to_owned(),
                symbol: name.to_owned(),
                value: symbol.st_value,
                size: symbol.st_size,
            }
        })?;
        let info = DriverInfo::parse(record).map_err(|source| MetadataError::Decode {
            path: path.to_owned(),
            symbol: name.to_owned(),
            source,
        })?;
        drivers.push(info.into_owned());
    }
    Ok(drivers)
}

/// A symbol's bytes in the file: `st_size` bytes, or the rest of its section if the
/// symbol has no size (the record then says where it ends). `None` if they are not
/// inside the section, or the section not inside the file.
fn symbol_bytes<'f>(
    file: &'f [u8],
    section: &SectionHeader,
    symbol: &Symbol,
    relocatable: bool,
) -> Option<&'f [u8]> {
    // In an object file a symbol's value is an offset in its section; elsewhere an
    // address, which the section's address turns into one.
    let in_section = if relocatable {
        symbol.st_value
    } else {
        symbol.st_value.checked_sub(section.sh_addr)?
    };
    let size = match symbol.st_size {
        0 => section.sh_size.checked_sub(in_section)?,
        size => size,
    };
    if in_section.checked_add(size)? > section.sh_size {
        return None;
    }
    let start = section.sh_offset.checked_add(in_section)?;
    let end = start.checked_add(size)?;
    file.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

/// Checks every `driver = "NAME"` of the `system.toml` at `system_toml` (already parsed
/// into `description`) against the built images: the component's image (`images` maps
/// archive entry names to ELF files) must contain driver NAME, and each device granted to
/// the component must be one the driver matches (`#[platform(compatible = ...)]`).
///
/// # Errors
///
/// A [`SystemTomlError`](crate::system::SystemTomlError) at the `driver` value naming the
/// problem, or the image's metadata cannot be read.
pub fn check_drivers(
    system_toml: &Path,
    description: &kaal_bootinfo::system::SystemDescription,
    images: &[(String, std::path::PathBuf)],
) -> crate::Result<()> {
    let text =
        std::fs::read_to_string(system_toml).map_err(|e| crate::Error::io(system_toml, e))?;
    for declaration in crate::system::driver_declarations(system_toml, &text)? {
        let at = |message: String| {
            crate::Error::from(crate::system::error_at(
                system_toml,
                &text,
                Some(declaration.span.clone()),
                message,
            ))
        };
        let Some(component) = description.component(&declaration.component) else {
            continue;
        };
        let Some((_, elf)) = images.iter().find(|(name, _)| *name == component.image) else {
            return Err(at(format!(
                "component `{}` declares driver `{}`, but its image `{}` is not built",
                component.name, declaration.driver, component.image
            )));
        };
        let drivers = read_metadata(elf)?;
        let Some(driver) = drivers.iter().find(|d| d.name == declaration.driver) else {
            let found: Vec<&str> = drivers.iter().map(|d| d.name.as_str()).collect();
            return Err(at(format!(
                "component `{}` declares driver `{}`, but its image `{}` holds {}",
                component.name,
                declaration.driver,
                component.image,
                if found.is_empty() {
                    "no driver".to_owned()
                } else {
                    format!("only {}", found.join(", "))
                }
            )));
        };
        for device_name in &component.devices {
            let Some(device) = description.device(device_name) else {
                continue;
            };
            if !driver.compatible.contains(&device.compatible) {
                return Err(at(format!(
                    "driver `{}` of component `{}` does not match device `{}` ({:?}); it drives {:?}",
                    driver.name, component.name, device.name, device.compatible, driver.compatible
                )));
            }
        }
    }
    Ok(())
}
