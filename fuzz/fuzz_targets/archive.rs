//! `cargo fuzz run archive`: see `kaal_fuzz_targets::archive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::archive(data));
