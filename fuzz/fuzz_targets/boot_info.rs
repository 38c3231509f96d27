//! `cargo fuzz run boot_info`: see `kaal_fuzz_targets::boot_info`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::boot_info(data));
