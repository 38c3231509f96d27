//! A real device interrupt in user space: a PL031 real-time-clock driver maps the
//! device from device untyped memory, routes its interrupt line to a notification,
//! makes the RTC raise its match interrupt, waits for it, clears it and acknowledges.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use kaal_abi::{Error, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, Cap, Frame4K, IrqControl, IrqHandler, Notification, Untyped};
use kaal_user::memory::MappedFrame;
use kaal_user::{BootInfo, println, time};

kaal_user::entry!(main);

// PL031 registers.
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCCR: usize = 0x0c;
const RTCIMSC: usize = 0x10;
const RTCRIS: usize = 0x14;
const RTCICR: usize = 0x1c;
const RTC_VADDR: u64 = 0x30_0000_0000;

fn err(error: Error) -> String {
    format!("{error:?}")
}

/// Makes the RTC's match interrupt fire: match register = current count.
fn raise(rtc: &MappedFrame) {
    let now = rtc.read32(RTCDR).unwrap_or(0);
    rtc.write32(RTCMR, now);
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("interrupts");
    let untyped: Cap<Untyped> = cap::largest_ram_untyped(boot).expect("RAM untyped");
    let control = Cap::<IrqControl>::from_slot(slots::IRQ_CONTROL);
    let rtc_device = boot
        .find_device("arm,pl031")
        .expect("PL031 in the device tree");
    let irq = rtc_device.irqs().next().expect("PL031 interrupt");

    suite.run("irq_control_rejects_bad_lines", || {
        let slot = cap::allocate_slot().map_err(err)?;
        check!(
            control.get(27, slot).err() == Some(Error::InvalidArgument),
            "the timer's PPI"
        );
        check!(
            control.get(5, slot).err() == Some(Error::InvalidArgument),
            "an SGI"
        );
        check!(
            control.get(5000, slot).err() == Some(Error::InvalidArgument),
            "past the GIC"
        );
        let first = control.get(irq + 1, slot).map_err(err)?;
        let again = cap::allocate_slot().map_err(err)?;
        check!(
            control.get(irq + 1, again).err() == Some(Error::IllegalOperation),
            "the same line twice"
        );
        first.delete().map_err(err)?;
        let reissued = control.get(irq + 1, again).map_err(err)?;
        reissued.delete().map_err(err)?;
        check!(
            Cap::<IrqControl>::from_slot(slots::ROOT_CNODE)
                .get(irq, slot)
                .err()
                == Some(Error::WrongObjectType),
            "control from a CNode"
        );
        Ok(())
    });

    suite.run(
        "pl031_interrupt_reaches_a_notification_and_is_acknowledged",
        || {
            // Find the device untyped that holds the RTC's registers and make a frame of it.
            let caps = boot.caps();
            let index = boot
                .untyped()
                .enumerate()
                .skip(caps.untyped.count as usize)
                .find(|(_, r)| r.base <= rtc_device.base && rtc_device.base < r.base + r.size_bytes)
                .map(|(i, _)| i)
                .ok_or("no device untyped covers the PL031")?;
            let device = Cap::<Untyped>::from_slot(u64::from(caps.untyped.start) + index as u64);
            let frame: Cap<Frame4K> = device.retype_one(0).map_err(err)?;
            let rtc = MappedFrame::device(frame, RTC_VADDR, untyped).map_err(err)?;
            check!(rtc.read32(RTCCR).is_some(), "RTC registers not readable");
            rtc.write32(RTCCR, 1);
            rtc.write32(RTCICR, 1);

            let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
            let badged = notification
                .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 1 << 5)
                .map_err(err)?;
            let handler: Cap<IrqHandler> = control
                .get(irq, cap::allocate_slot().map_err(err)?)
                .map_err(err)?;
            // A read-only copy of the handler acknowledges but cannot route the line.
            let ack_only = handler
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(err)?;
            check!(
                ack_only.set_notification(badged) == Err(Error::MissingRights),
                "routing through a read-only handler"
            );
            let write_only = handler
                .copy(cap::allocate_slot().map_err(err)?, rights::WRITE)
                .map_err(err)?;
            check!(
                write_only.ack() == Err(Error::MissingRights),
                "acknowledging through a write-only handler"
            );
            write_only.delete().map_err(err)?;
            handler.set_notification(badged).map_err(err)?;
            rtc.write32(RTCIMSC, 1);

            for round in 0..2 {
                // The count may tick between reading it and writing the match register;
                // then the match is a full wrap away, so try again.
                let mut word = 0;
                for _attempt in 0..20 {
                    raise(&rtc);
                    let start = time::now_ticks();
                    while time::now_ticks() - start < time::ticks_per_second() / 20 {
                        word = notification.poll().map_err(err)?;
                        if word != 0 {
                            break;
                        }
                    }
                    if word != 0 {
                        break;
                    }
                }
                check!(word == 1 << 5, "round {round}: notification word {word:#x}");
                check!(
                    rtc.read32(RTCRIS) == Some(1),
                    "round {round}: RTC shows no pending interrupt"
                );
                rtc.write32(RTCICR, 1);
                ack_only.ack().map_err(err)?;
                println!(
                    "[interrupts] PL031 interrupt {irq} delivered and acknowledged (round {round})"
                );
            }
            // Masked at the device, no more signals arrive.
            rtc.write32(RTCIMSC, 0);
            raise(&rtc);
            check!(
                notification.poll() == Ok(0),
                "signal with the device masked"
            );
            handler.delete().map_err(err)?;
            Ok(())
        },
    );

    suite.finish()
}
