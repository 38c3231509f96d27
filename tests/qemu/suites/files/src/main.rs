//! The template's storage components, built from the template's sources: the virtio-blk
//! driver (`blk`) and the FAT file server (`files`), tested by a client component
//! (`filesclient`) through the template's `protocol::files::FilesClient`. The harness
//! boots the suite three times on one disk image (`kaal.test.boot=1..3`): zero-filled for
//! the first boot, formatted as FAT before the second.
//!
//! The root task is the broker; it serves until the client ends, then checks the
//! client's verdict (its exit code: the boot it recognised from the disk, if its tests
//! passed) and that neither storage component faulted.
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

fn main(boot: &BootInfo<'_>) -> i32 {
    let expected_boot: Option<i32> =
        bootarg(boot.bootargs(), "kaal.test.boot").and_then(|n| n.parse().ok());
    let mut broker = match Broker::new(boot) {
        Ok(broker) => broker,
        Err(error) => {
            let mut suite = Suite::new("files");
            suite.run("broker_starts", || Err(format!("{error}")));
            return suite.finish();
        }
    };
    if let Err(error) = broker.start_system() {
        let mut suite = Suite::new("files");
        suite.run("system_starts", || Err(format!("{error}")));
        return suite.finish();
    }
    let mut restart_events = 0u32;
    let client_exit = broker.serve_until(|broker, event| {
        if let Event::Restarted { .. } = event {
            restart_events += 1;
        }
        let client = broker.component("filesclient")?;
        matches!(
            client.state(),
            ComponentState::Exited | ComponentState::Failed
        )
        .then(|| client.exit_code())
    });

    let mut suite = Suite::new("files");
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
    suite.run("storage_components_never_faulted", || {
        for name in ["blk", "files"] {
            let component = broker
                .component(name)
                .ok_or(format!("no component `{name}`"))?;
            check!(
                component.restarts() == 0,
                "`{name}` restarted {} times",
                component.restarts()
            );
            // Running, or ended after its client closed its rings.
            check!(
                matches!(
                    component.state(),
                    ComponentState::Running | ComponentState::Exited
                ),
                "`{name}` is {:?}",
                component.state()
            );
        }
        check!(restart_events == 0, "{restart_events} restart events");
        Ok(())
    });
    suite.finish()
}
