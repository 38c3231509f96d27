//! `cargo fuzz run system_description`: see `kaal_fuzz_targets::system_description`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::system_description(data));
