//! User-space drivers built with the driver kit, in a system the broker builds: the PL031
//! real-time clock driver reports the host's time, sees time advance, takes its alarm
//! interrupt, and is restarted (re-probing its device) after a crash on purpose, its
//! client seeing the interrupted request fail rather than hang.
//!
//! The root task's main thread is the broker; a client thread of the root task runs the
//! tests, calling the driver's endpoint.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_abi::Error;
use kaal_broker::Broker;
use kaal_test_harness::{Suite, bootarg, check};
use kaal_user::cap::{Cap, Endpoint};
use kaal_user::ipc::Message;
use kaal_user::{BootInfo, thread, time};

kaal_user::entry!(main);

/// The host's time when QEMU started (Unix seconds), from the boot arguments.
static HOST_TIME: AtomicU64 = AtomicU64::new(0);
/// Requests of the PL031 driver.
const TIME: u64 = 1;
const ALARM: u64 = 2;
const ALARMS: u64 = 3;

fn request(clock: Cap<Endpoint>, label: u64, argument: u64) -> Result<[u64; 4], Error> {
    let reply = clock.call(&Message::new(label, [argument, 0, 0, 0]))?;
    match reply.info.label {
        0 => Ok(reply.words),
        code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}

fn seconds(clock: Cap<Endpoint>) -> Result<u64, alloc::string::String> {
    request(clock, TIME, 0)
        .map(|words| words[0])
        .map_err(|e| format!("TIME: {e:?}"))
}

fn client(slot: usize) -> u64 {
    let clock = Cap::<Endpoint>::from_slot(slot as u64);
    let mut suite = Suite::new("drivers");
    suite.run("rtc_driver_reports_the_hosts_time", || {
        let now = seconds(clock)?;
        let host = HOST_TIME.load(Ordering::Relaxed);
        check!(host != 0, "no kaal.test.unix_time boot argument");
        check!(
            now.abs_diff(host) <= 300,
            "RTC says {now}, the host said {host}"
        );
        Ok(())
    });
    suite.run("rtc_time_advances", || {
        let first = seconds(clock)?;
        time::spin_for_micros(1_200_000);
        let second = seconds(clock)?;
        check!(second > first, "{first} then {second} after 1.2 s");
        Ok(())
    });
    suite.run("rtc_alarm_interrupt_reaches_the_driver", || {
        let before = request(clock, ALARMS, 0).map_err(|e| format!("{e:?}"))?[0];
        request(clock, ALARM, 1).map_err(|e| format!("ALARM: {e:?}"))?;
        let start = time::now_ticks();
        let mut fired = before;
        while fired == before && time::now_ticks() - start < 4 * time::ticks_per_second() {
            time::spin_for_micros(10_000);
            fired = request(clock, ALARMS, 0).map_err(|e| format!("{e:?}"))?[0];
        }
        check!(fired == before + 1, "alarms {before} then {fired}");
        Ok(())
    });
    suite.run("unknown_request_is_refused", || {
        check!(
            request(clock, 99, 0) == Err(Error::InvalidArgument),
            "request 99"
        );
        Ok(())
    });
    suite.run(
        "driver_crashed_on_purpose_is_restarted_and_re_probes_its_device",
        || {
            request(clock, ALARM, 30).map_err(|e| format!("ALARM: {e:?}"))?;
            // The interrupted request fails with an error the client sees.
            let crashed = request(clock, kaal_dddk::CRASH, 0);
            check!(crashed == Err(Error::Aborted), "CRASH answered {crashed:?}");
            // The restarted driver serves the same endpoint, its device probed again.
            for _ in 0..3 {
                let now = seconds(clock)?;
                let host = HOST_TIME.load(Ordering::Relaxed);
                check!(
                    now.abs_diff(host) <= 300,
                    "after the restart the RTC says {now}"
                );
            }
            let alarms = request(clock, ALARMS, 0).map_err(|e| format!("{e:?}"))?[0];
            check!(alarms == 0, "a new life counts alarms from 0, not {alarms}");
            Ok(())
        },
    );
    if suite.report() {
        // The harness types on the serial line now, then presses the power button; the
        // system must switch itself off.
        kaal_user::println!("[drivers] waiting for serial input");
        0
    } else {
        kaal_user::sys::debug_exit(1);
        1
    }
}

fn main(boot: &BootInfo<'_>) -> i32 {
    if let Some(host) = bootarg(boot.bootargs(), "kaal.test.unix_time").and_then(|t| t.parse().ok())
    {
        HOST_TIME.store(host, Ordering::Relaxed);
    }
    let mut broker = match Broker::new(boot) {
        Ok(broker) => broker,
        Err(error) => {
            let mut suite = Suite::new("drivers");
            suite.run("broker_starts", || Err(format!("{error}")));
            return suite.finish();
        }
    };
    if let Err(error) = broker.start_system() {
        let mut suite = Suite::new("drivers");
        suite.run("system_starts", || Err(format!("{error}")));
        return suite.finish();
    }
    let Some(clock) = broker.endpoint_named("clock") else {
        let mut suite = Suite::new("drivers");
        suite.run("clock_endpoint", || Err("no endpoint `clock`".into()));
        return suite.finish();
    };
    if let Err(error) = thread::spawn(client, clock.slot() as usize, 120) {
        let mut suite = Suite::new("drivers");
        suite.run("client_thread", || Err(format!("{error:?}")));
        return suite.finish();
    }
    broker.serve()
}
