//! Generates typed accessors for the grants of component `files` from the workspace's
//! `system.toml`: `src/main.rs` includes them as `mod grants`, so a grant name the
//! description does not give `files` is a compile error, and channel element types and
//! slot counts come from the description. The file is `files-grants.rs` rather than
//! `grants.rs` so that a package building several components' sources (the KaaL
//! repository's QEMU suite `files` builds this one's) can hold them side by side.

use std::path::{Path, PathBuf};

/// The component's name in `system.toml` (its `[components.NAME]` table).
const COMPONENT: &str = "files";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("components live in <workspace>/components/NAME");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Also asks cargo to run this again when system.toml changes.
    if let Err(error) = kaal_build::system::write_accessors(
        &root.join("system.toml"),
        COMPONENT,
        &out.join("files-grants.rs"),
    ) {
        // Fails the build with `error: <path>/system.toml:LINE:COLUMN: problem`.
        println!("cargo::error={error}");
    }
}
