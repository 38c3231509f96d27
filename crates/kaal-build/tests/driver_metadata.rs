//! `driver::read_metadata` on real ELF files: host programs and object files that
//! `rustc` builds from a source holding metadata statics like the ones
//! `#[derive(Driver)]` emits (in `.rodata`, and in `.data` for one with interior
//! mutability), and on broken ones. Skipped, with a message, where `rustc` is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use kaal_build::driver::{DriverInfoOwned, MetadataError, PciId, metadata_of, read_metadata};

fn pl031() -> DriverInfoOwned {
    DriverInfoOwned {
        name: "pl031".into(),
        compatible: vec!["arm,pl031".into()],
        pci: vec![],
        mmio: 1,
        irqs: 1,
        dma: vec![],
    }
}

fn virtio_blk() -> DriverInfoOwned {
    DriverInfoOwned {
        name: "virtio-blk".into(),
        compatible: vec!["virtio,mmio".into()],
        pci: vec![PciId {
            vendor: 0x1af4,
            device: 0x1001,
        }],
        mmio: 2,
        irqs: 1,
        dma: vec![65536, 4096],
    }
}

/// A `#[used]` static as the derive writes it: a byte string in `.rodata`.
fn rodata_static(name: &str, bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
    format!(
        "#[used]\nstatic __KAAL_DRIVER_METADATA_{name}: [u8; {}] = *b\"{escaped}\";\n",
        bytes.len()
    )
}

/// A `#[used]` static of atomics: interior mutability puts it in `.data`.
fn data_static(name: &str, bytes: &[u8]) -> String {
    let items: String = bytes
        .iter()
        .map(|b| format!("AtomicU8::new({b}),"))
        .collect();
    format!(
        "#[used]\nstatic __KAAL_DRIVER_METADATA_{name}: [AtomicU8; {}] = [{items}];\n",
        bytes.len()
    )
}

fn program(statics: &str) -> String {
    format!(
        "#![forbid(unsafe_code)]\n#![allow(dead_code)]\nuse std::sync::atomic::AtomicU8;\n{statics}\nfn main() {{}}\n"
    )
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("driver-metadata-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `source` with rustc (`-C opt-level=1`, and `extra` arguments) into `output`
/// in a scratch directory; `None` (after saying why) if rustc is not there.
fn rustc(test: &str, source: &str, output: &str, extra: &[&str]) -> Option<PathBuf> {
    let dir = scratch_dir(test);
    let source_path = dir.join("driver.rs");
    std::fs::write(&source_path, source).unwrap();
    let out = dir.join(output);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let result = Command::new(&rustc)
        .args([
            "--edition",
            "2024",
            "--crate-name",
            "driver",
            "-C",
            "opt-level=1",
        ])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&source_path)
        .output();
    match result {
        Err(error) => {
            eprintln!("skipped: cannot run {}: {error}", rustc.to_string_lossy());
            None
        }
        Ok(finished) => {
            assert!(
                finished.status.success(),
                "rustc failed:\n{}",
                String::from_utf8_lossy(&finished.stderr)
            );
            Some(out)
        }
    }
}

fn is_elf_host() -> bool {
    cfg!(target_os = "linux")
}

#[test]
fn executable_with_rodata_and_data_statics() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let statics = rodata_static("PL031", &pl031().encode().unwrap())
        + &data_static("VIRTIO_BLK", &virtio_blk().encode().unwrap());
    let Some(binary) = rustc("executable", &program(&statics), "driver", &[]) else {
        return;
    };
    let mut drivers = read_metadata(&binary).unwrap();
    drivers.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(drivers, [pl031(), virtio_blk()]);
}

#[test]
fn object_file() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let statics = rodata_static("VIRTIO_BLK", &virtio_blk().encode().unwrap());
    let source = format!("#![crate_type = \"lib\"]\n{}", program(&statics));
    let Some(object) = rustc("object", &source, "driver.o", &["--emit=obj"]) else {
        return;
    };
    assert_eq!(read_metadata(&object).unwrap(), [virtio_blk()]);
}

#[test]
fn binary_without_drivers() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let Some(binary) = rustc("none", &program(""), "driver", &[]) else {
        return;
    };
    assert_eq!(read_metadata(&binary).unwrap(), []);
}

#[test]
fn stripped_binary() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let statics = rodata_static("PL031", &pl031().encode().unwrap());
    let Some(binary) = rustc(
        "stripped",
        &program(&statics),
        "driver",
        &["-C", "strip=symbols"],
    ) else {
        return;
    };
    let error = read_metadata(&binary).unwrap_err();
    assert!(
        matches!(error, MetadataError::NoSymbolTable { .. }),
        "{error}"
    );
}

#[test]
fn invalid_record() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let mut record = pl031().encode().unwrap();
    record[8] = 9; // version 9
    let statics = rodata_static("BROKEN", &record);
    let Some(binary) = rustc("invalid", &program(&statics), "driver", &[]) else {
        return;
    };
    let error = read_metadata(&binary).unwrap_err();
    let MetadataError::Decode { symbol, source, .. } = &error else {
        panic!("{error}");
    };
    assert!(symbol.contains("__KAAL_DRIVER_METADATA_BROKEN"), "{symbol}");
    assert_eq!(
        source.to_string(),
        "unsupported driver metadata version 9 (supported: 1)"
    );
    // The message names the file and the symbol.
    let message = error.to_string();
    assert!(message.contains("driver-metadata-invalid"), "{message}");
    let general: kaal_build::Error = error.into();
    assert!(general.to_string().contains("version 9"), "{general}");
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let statics = rodata_static("PL031", &pl031().encode().unwrap());
    let Some(binary) = rustc("corrupted", &program(&statics), "driver", &[]) else {
        return;
    };
    let bytes = std::fs::read(&binary).unwrap();
    let path = Path::new("corrupted");
    // Every length up to the header and then some, and a spread of longer cuts.
    let step = (bytes.len() / 512).max(1);
    for len in (0..256).chain((256..bytes.len()).step_by(step)) {
        let _ = metadata_of(&bytes[..len], path);
    }
    // Byte flips across the whole file.
    let mut flipped = bytes.clone();
    for at in (0..bytes.len()).step_by(step.max(7)) {
        flipped[at] ^= 0xff;
        let _ = metadata_of(&flipped, path);
        flipped[at] ^= 0xff;
    }
    assert_eq!(metadata_of(&bytes, path).unwrap(), [pl031()]);
}

#[test]
fn not_an_elf_file() {
    let error = metadata_of(b"#!/bin/sh\necho not a driver\n", Path::new("script")).unwrap_err();
    assert!(matches!(error, MetadataError::Elf { .. }), "{error}");
    let error = read_metadata(Path::new("/nonexistent/driver")).unwrap_err();
    assert!(matches!(error, MetadataError::Io { .. }), "{error}");
    assert!(matches!(
        kaal_build::Error::from(error),
        kaal_build::Error::Io { .. }
    ));
}

/// `system.toml` for [`system_toml_driver_declarations_are_checked_against_the_image`]:
/// component `clock` (image `driver`) gets device `dev` of `compatible`, and declares
/// driver `driver_name` (line 9).
fn system_toml(compatible: &str, driver_name: &str) -> String {
    format!(
        "[devices.dev]\ncompatible = \"{compatible}\"\n\n[components.clock]\nimage = \"driver\"\npriority = 100\nheap_bytes = 0\ndevices = [\"dev\"]\ndriver = \"{driver_name}\"\n"
    )
}

#[test]
fn system_toml_driver_declarations_are_checked_against_the_image() {
    if !is_elf_host() {
        eprintln!("skipped: the host does not produce ELF files");
        return;
    }
    let statics = rodata_static("PL031", &pl031().encode().unwrap());
    let Some(binary) = rustc("declarations", &program(&statics), "driver", &[]) else {
        return;
    };
    let images = vec![("driver".to_owned(), binary)];
    let dir = scratch_dir("declarations");
    let check = |compatible: &str, driver: &str| {
        let path = dir.join("system.toml");
        std::fs::write(&path, system_toml(compatible, driver)).unwrap();
        let description = kaal_build::system::load(&path, 256 << 20).unwrap();
        kaal_build::driver::check_drivers(&path, &description, &images).map_err(|e| e.to_string())
    };
    assert_eq!(check("arm,pl031", "pl031"), Ok(()));
    let wrong_device = check("arm,pl061", "pl031").unwrap_err();
    assert!(
        wrong_device.contains("system.toml:9:10: driver `pl031` of component `clock` does not match device `dev` (\"arm,pl061\")"),
        "{wrong_device}"
    );
    let wrong_driver = check("arm,pl031", "pl011").unwrap_err();
    assert!(
        wrong_driver.contains("system.toml:9:10: component `clock` declares driver `pl011`, but its image `driver` holds only pl031"),
        "{wrong_driver}"
    );
}
