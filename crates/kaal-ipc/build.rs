//! Declares the `loom` cfg so `RUSTFLAGS="--cfg loom"` model-checking builds
//! do not trigger `unexpected_cfgs` warnings.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
    println!("cargo::rerun-if-changed=build.rs");
}
