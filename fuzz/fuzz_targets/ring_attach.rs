//! `cargo fuzz run ring_attach`: see `kaal_fuzz_targets::ring_attach`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::ring_attach(data));
