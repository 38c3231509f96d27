#![no_std]
#![no_main]
static COMPONENTS: &[u8] = include_bytes!(env!("KAAL_COMPONENTS"));
kaal_kernel::entry!(kaal_kernel::Config::qemu_virt(COMPONENTS));
