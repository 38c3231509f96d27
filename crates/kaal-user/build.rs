//! Puts the user linker script where the linker finds it (`-Tkaal-user.ld`), and declares
//! the `loom` cfg (the lock's model checks build with `RUSTFLAGS="--cfg loom"`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("kaal-user.ld"), include_bytes!("kaal-user.ld"))
        .expect("write linker script");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=kaal-user.ld");
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
