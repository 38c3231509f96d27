//! The broker builds a system from the image's system description: a 1,000,000-message
//! ring stream between two components, a producer crashed on purpose 100 times and
//! restarted, a hostile component, and a device driver. The root task is the broker; it
//! serves its endpoint until every component has ended, then checks what happened.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use kaal_broker::devices::DeviceError;
use kaal_broker::{Broker, BrokerError, DeviceId, Event};
use kaal_test_harness::{Suite, check};
use kaal_user::BootInfo;
use kaal_user::broker::ComponentState;

kaal_user::entry!(main);

/// Components that end on their own; the suite waits for all of them.
const ENDING: [&str; 7] = [
    "source", "sink", "crasher", "checker", "intruder", "clock", "flaky",
];

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("broker");
    let mut broker = match Broker::new(boot) {
        Ok(broker) => broker,
        Err(error) => {
            suite.run("broker_starts", || Err(format!("{error}")));
            return suite.finish();
        }
    };
    let free_before = broker.free_bytes();
    suite.run("description_read_from_the_image", || {
        let description = broker.description();
        check!(
            description.components.len() == 7,
            "{} components",
            description.components.len()
        );
        check!(
            description.channels.len() == 2,
            "{} channels",
            description.channels.len()
        );
        Ok(())
    });
    let started = broker.start_system();
    suite.run("every_component_built_and_started", || {
        started.as_ref().map_err(|e| format!("{e}"))?;
        Ok(())
    });
    if started.is_err() {
        return suite.finish();
    }
    let channel_bytes: u64 = broker
        .channels()
        .iter()
        .map(|c| c.region_bytes.next_power_of_two())
        .sum();

    // Every root slot a component's life holds returns when it ends; broker-owned
    // objects (channels, endpoints, device frames) were all made by now.
    let held_at_start: usize = broker
        .components()
        .iter()
        .map(|c| c.root_slots())
        .sum::<usize>()
        + broker.untyped_slots();
    let free_slots_at_start = kaal_user::cap::available_slots();
    let mut restarts_seen = 0u32;
    broker.serve_until(|broker, event| {
        if let Event::Restarted { .. } = event {
            restarts_seen += 1;
        }
        let done = ENDING.iter().all(|name| {
            broker.component(name).is_some_and(|c| {
                matches!(c.state(), ComponentState::Exited | ComponentState::Failed)
            })
        });
        done.then_some(())
    });

    let exit = |name: &str| broker.component(name).and_then(|c| c.exit_code());
    suite.run("ring_channel_carries_1000000_messages_in_order", || {
        check!(
            exit("source") == Some(0),
            "source ended with {:?}",
            exit("source")
        );
        // The sink is placed on core 1 (`system.toml`): there when the machine has it,
        // on CPU 0 otherwise; it ends with 100 + the CPU it ran on.
        let core = if boot.system().cpus_online > 1 { 1 } else { 0 };
        check!(
            exit("sink") == Some(100 + core),
            "sink ended with {:?}, not 100 + CPU {core}",
            exit("sink")
        );
        Ok(())
    });
    suite.run(
        "producer_crashed_100_times_restarted_nothing_committed_lost_or_duplicated",
        || {
            let crasher = broker.component("crasher").ok_or("no crasher")?;
            check!(crasher.restarts() == 100, "{} restarts", crasher.restarts());
            check!(
                restarts_seen == 103,
                "{restarts_seen} restart events (100 + flaky's 3)"
            );
            check!(
                exit("crasher") == Some(0),
                "crasher ended with {:?}",
                exit("crasher")
            );
            check!(
                exit("checker") == Some(0),
                "checker ended with {:?}",
                exit("checker")
            );
            Ok(())
        },
    );
    suite.run(
        "hostile_component_gets_named_errors_and_the_broker_keeps_serving",
        || {
            check!(
                exit("intruder") == Some(0),
                "intruder's failed checks: {:#x?}",
                exit("intruder")
            );
            Ok(())
        },
    );
    suite.run("device_granted_by_name_to_a_driver_component", || {
        check!(
            exit("clock") == Some(0),
            "clock ended with {:?}",
            exit("clock")
        );
        check!(
            broker.devices().devices().all(|(_, owner)| owner.is_none()),
            "a device is still held after its driver ended"
        );
        Ok(())
    });
    suite.run("component_past_its_restart_budget_stays_down", || {
        let flaky = broker.component("flaky").ok_or("no flaky")?;
        check!(flaky.restarts() == 3, "{} restarts", flaky.restarts());
        check!(
            flaky.state() == ComponentState::Failed,
            "state {:?}",
            flaky.state()
        );
        Ok(())
    });
    suite.run("every_root_slot_returns_across_100_restarts", || {
        // Split untyped blocks that remain (the broker's own, the channels') still hold theirs.
        let free_slots = kaal_user::cap::available_slots() + broker.untyped_slots() as u64;
        check!(
            free_slots == free_slots_at_start + held_at_start as u64,
            "{free_slots} free slots at the end, {free_slots_at_start} + {held_at_start} expected"
        );
        Ok(())
    });
    suite.run("every_resource_returns_when_components_end", || {
        let free_after = broker.free_bytes();
        check!(
            free_after + channel_bytes == free_before,
            "free untyped memory {free_after:#x} + channels {channel_bytes:#x} != {free_before:#x} before"
        );
        Ok(())
    });
    suite.run(
        "root_task_api_hands_out_memory_endpoints_irqs_devices_channels",
        || {
            let free = broker.free_bytes();
            let memory = broker
                .allocate_memory(100_000)
                .map_err(|e| format!("{e}"))?;
            check!(
                memory.bytes == 128 * 1024,
                "{} bytes for 100,000",
                memory.bytes
            );
            check!(
                broker.free_bytes() == free - memory.bytes,
                "free bytes not charged"
            );
            broker.free_memory(memory).map_err(|e| format!("{e}"))?;
            check!(broker.free_bytes() == free, "memory not returned");

            let endpoint = broker.create_endpoint().map_err(|e| format!("{e}"))?;
            let notification = broker.create_notification().map_err(|e| format!("{e}"))?;
            check!(
                endpoint.identify().map(|(t, _)| t) == Ok(kaal_abi::ObjectType::Endpoint)
                    && notification.identify().map(|(t, _)| t)
                        == Ok(kaal_abi::ObjectType::Notification),
                "object types"
            );

            // The clock component has ended: its RTC is free again, once.
            check!(
                matches!(
                    broker.request_named_device("uart7"),
                    Err(BrokerError::UnknownDevice { .. })
                ),
                "a device the description does not name"
            );
            let rtc = broker
                .request_named_device("rtc")
                .map_err(|e| format!("{e}"))?;
            let vaddr = broker
                .map_own(&rtc.frames, true)
                .map_err(|e| format!("{e}"))?;
            check!(vaddr >= 0x20_0000_0000, "rtc mapped at {vaddr:#x}");
            check!(
                rtc.frames.len() == 1 && rtc.irq.is_some(),
                "rtc grant {rtc:?}"
            );
            check!(
                matches!(
                    broker.request_device(DeviceId::new("arm,pl031", 0)),
                    Err(BrokerError::Device(DeviceError::AlreadyGranted { .. }))
                ),
                "the RTC granted twice"
            );
            check!(
                matches!(
                    broker.request_device(DeviceId::new("arm,pl031", 1)),
                    Err(BrokerError::Device(DeviceError::NotFound { .. }))
                ),
                "a second RTC"
            );
            let line = rtc.irq.map_or(0, |irq| irq.line);
            check!(
                matches!(
                    broker.request_irq(line),
                    Err(BrokerError::Device(DeviceError::IrqAlreadyGranted { .. }))
                ),
                "the RTC's line as a bare IRQ"
            );
            let irq = broker.request_irq(45).map_err(|e| format!("{e}"))?;
            check!(irq.line == 45, "irq {irq:?}");
            check!(broker.request_irq(45).is_err(), "line 45 twice");

            let channels = broker.channels().len();
            let index = broker
                .create_channel::<u64, 64>("late", 1, 2)
                .map_err(|e| format!("{e}"))?;
            let channel = &broker.channels()[index];
            check!(
                broker.channels().len() == channels + 1
                    && channel.capacity == 64
                    && channel.element == (8, 8)
                    && channel.frames.len() == 1,
                "channel {channel:?}"
            );
            check!(
                broker.create_channel::<u64, 64>("nowhere", 1, 99).is_err(),
                "a channel to component 99"
            );
            Ok(())
        },
    );
    suite.finish()
}
