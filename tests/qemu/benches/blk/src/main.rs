//! The virtio-blk driver measured (`cargo xtask bench`): the root task is the broker;
//! the bench component prints its figure and ends; then this prints `[bench] done` and
//! ends the emulator.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_broker::Broker;
use kaal_user::{BootInfo, println, sys};

kaal_user::entry!(main);

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut broker = Broker::new(boot).expect("system description");
    broker.set_logging(false);
    broker.start_system().expect("components");
    let code = broker.serve_until(|broker, _| {
        let bench = broker.component("blkbench")?;
        bench.exit_code()
    });
    if code == 0 {
        println!("[bench] done");
    } else {
        println!("[bench] blkbench failed with {code}");
    }
    sys::debug_exit(u32::from(code != 0));
    0
}
