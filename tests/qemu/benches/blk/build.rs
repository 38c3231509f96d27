//! Writes the grant accessors of the template's `blk` driver from this bench's
//! `system.toml` to `OUT_DIR/blk-grants.rs`, the name its source includes.

use std::path::{Path, PathBuf};

fn main() {
    let system = Path::new(env!("CARGO_MANIFEST_DIR")).join("system.toml");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(error) =
        kaal_build::system::write_accessors(&system, "blk", &out.join("blk-grants.rs"))
    {
        println!("cargo::error={error}");
    }
}
