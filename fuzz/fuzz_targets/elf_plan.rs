//! `cargo fuzz run elf_plan`: see `kaal_fuzz_targets::elf_plan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaal_fuzz_targets::elf_plan(data));
