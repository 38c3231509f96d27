//! The broker refuses a DMA-capable device to a component that is not trusted with DMA,
//! at run time. The image's system description grants the `untrusted` component a
//! virtio-mmio transport with `dma = true` (so that `kaal-build` accepts it); the root
//! task reads it, clears the component's DMA service bit, and has the broker start the
//! system from that. The broker must refuse with `DmaNotTrusted` naming the component and
//! the device, leave nothing of the component behind, and go on working.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use kaal_bootinfo::system::{SYSTEM_ENTRY, SystemDescription, is_dma_capable, services};
use kaal_broker::{Broker, BrokerError};
use kaal_test_harness::{Suite, check};
use kaal_user::BootInfo;
use kaal_user::broker::ComponentState;
use kaal_user::cap::{Cap, Frame4K};
use kaal_user::process::write_frame;

kaal_user::entry!(main);

const COMPONENT: &str = "untrusted";
const DEVICE: &str = "transport";

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("dma");
    let description = kaal_user::components()
        .ok()
        .and_then(|archive| archive.get(SYSTEM_ENTRY))
        .map(SystemDescription::decode);
    let mut description = match description {
        Some(Ok(description)) => description,
        Some(Err(error)) => {
            suite.run("description_read", || Err(format!("{error}")));
            return suite.finish();
        }
        None => {
            suite.run("description_read", || Err("no system entry".into()));
            return suite.finish();
        }
    };
    suite.run("description_trusts_the_component_with_a_dma_device", || {
        let spec = description
            .components
            .iter()
            .find(|c| c.name == COMPONENT)
            .ok_or("no component `untrusted`")?;
        check!(spec.services & services::DMA != 0, "no DMA service bit");
        check!(spec.devices == [DEVICE], "devices {:?}", spec.devices);
        let device = description.device(DEVICE).ok_or("no device `transport`")?;
        check!(
            is_dma_capable(&device.compatible),
            "`{}` is not DMA-capable",
            device.compatible
        );
        Ok(())
    });
    // What `kaal-build` would have refused: the device without the trust.
    for spec in &mut description.components {
        spec.services &= !services::DMA;
    }

    let mut broker = match Broker::with_description(boot, description) {
        Ok(broker) => broker,
        Err(error) => {
            suite.run("broker_starts", || Err(format!("{error}")));
            return suite.finish();
        }
    };
    // Building a process maps a scratch page in the root task, whose page tables stay
    // for every later build: make them now, from memory kept to the end, so that the
    // counts below compare the refused component alone.
    let warm_up = broker
        .allocate_memory(64 << 10)
        .map_err(|e| format!("{e}"))
        .and_then(|memory| {
            let frame: Cap<Frame4K> = memory.untyped.retype_one(0).map_err(|e| format!("{e}"))?;
            write_frame(frame, 0, &[0], memory.untyped).map_err(|e| format!("{e}"))
        });
    if let Err(error) = warm_up {
        suite.run("scratch_mapping", || Err(error));
        return suite.finish();
    }
    let free_bytes = broker.free_bytes();
    // Root slots: free ones, plus those holding blocks the untyped allocator split off
    // (its bookkeeping, which a build may grow).
    let slots = |broker: &Broker| kaal_user::cap::available_slots() + broker.untyped_slots() as u64;
    let free_slots = slots(&broker);
    let started = broker.start_system();
    suite.run(
        "untrusted_component_refused_the_dma_device",
        || match &started {
            Err(BrokerError::DmaNotTrusted { component, device }) => {
                check!(
                    component == COMPONENT && device == DEVICE,
                    "refused component `{component}`, device `{device}`"
                );
                Ok(())
            }
            Err(error) => Err(format!("refused for another reason: {error}")),
            Ok(()) => Err("the broker started the system".into()),
        },
    );
    suite.run("refused_component_left_nothing_behind", || {
        let state = broker.component(COMPONENT).map(|c| c.state());
        check!(
            state == Some(ComponentState::Failed),
            "component state {state:?}"
        );
        check!(
            broker.free_bytes() == free_bytes,
            "{} bytes of memory free, {free_bytes} before",
            broker.free_bytes()
        );
        check!(
            slots(&broker) == free_slots,
            "{} free or untyped slots, {free_slots} before",
            slots(&broker)
        );
        let device = broker.description().device(DEVICE).ok_or("no device")?;
        let owner = broker
            .devices()
            .owner_of_device(&device.compatible, device.index);
        check!(owner.is_none(), "the device is still held by {owner:?}");
        Ok(())
    });
    suite.run("broker_goes_on", || {
        // The device the component did not get is the root task's to take.
        let transport = broker
            .request_named_device(DEVICE)
            .map_err(|e| format!("requesting the device: {e}"))?;
        check!(
            transport.base == 0x0a00_0000 && transport.frames.len() == 1,
            "grant at {:#x} with {} frame(s)",
            transport.base,
            transport.frames.len()
        );
        broker
            .map_own(&transport.frames, true)
            .map_err(|e| format!("mapping the device: {e}"))?;
        let memory = broker
            .allocate_memory(1 << 20)
            .map_err(|e| format!("allocating memory: {e}"))?;
        broker
            .free_memory(memory)
            .map_err(|e| format!("freeing memory: {e}"))?;
        Ok(())
    });
    suite.finish()
}
