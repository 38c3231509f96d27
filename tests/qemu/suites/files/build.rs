//! Writes the grant accessors of the suite's components from its `system.toml`, each to
//! its own file in `OUT_DIR` (`blk-grants.rs`, `files-grants.rs`,
//! `filesclient-grants.rs`): the template's `blk` and `files` sources include theirs by
//! those names.

use std::path::{Path, PathBuf};

fn main() {
    let system = Path::new(env!("CARGO_MANIFEST_DIR")).join("system.toml");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for component in ["blk", "files", "filesclient"] {
        if let Err(error) = kaal_build::system::write_accessors(
            &system,
            component,
            &out.join(format!("{component}-grants.rs")),
        ) {
            println!("cargo::error={error}");
        }
    }
}
