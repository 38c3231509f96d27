//! Puts the kernel linker script where the linker finds it (`-Tkaal-kernel.ld`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("kaal-kernel.ld"), include_bytes!("kaal-kernel.ld"))
        .expect("write linker script");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=kaal-kernel.ld");
}
