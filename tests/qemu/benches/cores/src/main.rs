//! A ring channel between KaaL components on two CPUs, measured under
//! `qemu-system-aarch64 -icount shift=0` (one guest instruction per nanosecond of
//! virtual time). The root task is the broker; the components print
//! `[bench] NAME: X instructions`; this prints `[bench] done` once they have ended.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_broker::Broker;
use kaal_user::broker::ComponentState;
use kaal_user::{BootInfo, println};

kaal_user::entry!(main);

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut broker = Broker::new(boot).expect("system description");
    broker.set_logging(false);
    broker.start_system().expect("components");
    broker.serve_until(|broker, _| {
        broker
            .components()
            .iter()
            .all(|c| matches!(c.state(), ComponentState::Exited | ComponentState::Failed))
            .then_some(())
    });
    for component in broker.components() {
        if component.exit_code() != Some(0) {
            println!(
                "[bench] {} failed: {:?}",
                component.name(),
                component.exit_code()
            );
            return 1;
        }
    }
    println!("[bench] done");
    0
}
