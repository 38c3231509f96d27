//! A virtio-blk driver built with the driver kit (`blk`), against the disk image the
//! harness attaches as QEMU's first `virtio-blk-device`, tested by a client component
//! (`blkclient`) over two ring channels: random writes read back, a write stream during
//! which the driver is crashed and restarted 20 times without losing an acknowledged
//! write, and data written by the previous boot of the same image (the harness boots the
//! suite twice, `kaal.test.boot=1` then `=2`).
//!
//! The root task is the broker; it serves until the client ends, then checks the
//! client's verdict (its exit code: the boot number it found on the disk if its tests
//! passed) and the driver's restarts.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use kaal_broker::{Broker, Event};
use kaal_test_harness::{Suite, bootarg, check};
use kaal_user::BootInfo;
use kaal_user::broker::ComponentState;

kaal_user::entry!(main);

/// Restarts of the driver the client's crash stream asks for.
const CRASHES: u32 = 20;

fn main(boot: &BootInfo<'_>) -> i32 {
    let expected_boot: Option<i32> =
        bootarg(boot.bootargs(), "kaal.test.boot").and_then(|n| n.parse().ok());
    let mut broker = match Broker::new(boot) {
        Ok(broker) => broker,
        Err(error) => {
            let mut suite = Suite::new("blk");
            suite.run("broker_starts", || Err(format!("{error}")));
            return suite.finish();
        }
    };
    if let Err(error) = broker.start_system() {
        let mut suite = Suite::new("blk");
        suite.run("system_starts", || Err(format!("{error}")));
        return suite.finish();
    }
    let mut restart_events = 0u32;
    let client_exit = broker.serve_until(|broker, event| {
        if let Event::Restarted { index, .. } = event
            && broker.components().get(*index).map(|c| c.name()) == Some("blk")
        {
            restart_events += 1;
        }
        let client = broker.component("blkclient")?;
        matches!(
            client.state(),
            ComponentState::Exited | ComponentState::Failed
        )
        .then(|| client.exit_code())
    });

    let mut suite = Suite::new("blk");
    suite.run("client_passed_its_tests_on_the_expected_boot", || {
        let code = client_exit.ok_or("the client did not exit (it faulted)")?;
        check!(
            code != 255,
            "the client's tests failed (see its [test] lines)"
        );
        check!((1..255).contains(&code), "the client ended with {code}");
        if let Some(expected) = expected_boot {
            check!(
                code == expected,
                "the client found the disk of boot {code}, the harness says this is boot {expected}"
            );
        }
        Ok(())
    });
    suite.run("supervisor_restarted_the_crashed_driver_20_times", || {
        let driver = broker.component("blk").ok_or("no component `blk`")?;
        check!(
            driver.restarts() == CRASHES,
            "{} restarts",
            driver.restarts()
        );
        check!(restart_events == CRASHES, "{restart_events} restart events");
        // Running, or ended after the client closed its rings; not given up on.
        check!(
            matches!(
                driver.state(),
                ComponentState::Running | ComponentState::Exited
            ),
            "the driver is {:?}",
            driver.state()
        );
        Ok(())
    });
    suite.finish()
}
