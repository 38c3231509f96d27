//! `cargo fuzz run startup_record`: see `kaal_fuzz_targets::startup_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::startup_record(data));
