//! A driver component: reads the PL031 real-time clock it was granted by name, and
//! finds its interrupt line with it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

/// PL031 data register (seconds since the epoch).
const RTCDR: usize = 0x00;
/// PL031 peripheral id register 0 (0x31).
const RTC_PERIPH_ID0: usize = 0xfe0;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let rtc = match startup.device("rtc") {
        Ok(rtc) => rtc,
        Err(error) => {
            kaal_user::println!("[clock] no rtc: {error}");
            return 11;
        }
    };
    if rtc.registers.read32(RTC_PERIPH_ID0) != Some(0x31) {
        return 12;
    }
    let Some(seconds) = rtc.registers.read32(RTCDR) else {
        return 13;
    };
    if seconds == 0 || rtc.irq.is_none() {
        return 14;
    }
    // Its IRQ handler acknowledges but cannot route the line elsewhere.
    if let Some(irq) = rtc.irq {
        if irq.handler.set_notification(irq.notification) != Err(kaal_abi::Error::MissingRights) {
            return 16;
        }
        if irq.ack().is_err() {
            return 17;
        }
    }
    // A bare IRQ line, granted by number.
    match startup.irq("irq46") {
        Ok(irq) if irq.line == 46 && irq.ack().is_ok() => {}
        _ => return 18,
    }
    // Outside the granted registers: refused, not a fault.
    if rtc
        .registers
        .read32(rtc.registers.bytes() as usize)
        .is_some()
    {
        return 15;
    }
    kaal_user::println!(
        "[clock] PL031 at {:#x} reads {seconds} s, interrupt {}",
        rtc.registers.physical_address(),
        rtc.irq.map_or(0, |irq| irq.line)
    );
    0
}
