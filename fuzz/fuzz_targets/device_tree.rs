//! `cargo fuzz run device_tree`: see `kaal_fuzz_targets::device_tree`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::device_tree(data));
