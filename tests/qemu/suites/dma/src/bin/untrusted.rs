//! A component granted a virtio-mmio transport. The suite's broker must never start it:
//! if it runs, it says so (the root task's checks fail too).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

/// virtio-mmio `MagicValue` register: "virt".
const MAGIC: usize = 0x00;

fn main(_argument: u64) -> i32 {
    let magic = kaal_user::startup()
        .ok()
        .and_then(|startup| startup.device("transport").ok())
        .and_then(|transport| transport.registers.read32(MAGIC));
    kaal_user::println!(
        "[untrusted] started with a DMA-capable device (magic {magic:#x?}): the broker should have refused it"
    );
    0
}
