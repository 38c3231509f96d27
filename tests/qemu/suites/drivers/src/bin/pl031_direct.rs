//! The same PL031 driver as `pl031.rs`, written directly against the system calls and
//! the start-up record instead of the driver kit: for the line count in the docs.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_abi::{Error, MessageInfo};
use kaal_user::cap::{Cap, Endpoint, Tcb};
use kaal_user::ipc::{self, Message};
use kaal_user::startup::GrantKind;

const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCCR: usize = 0x0c;
const RTCIMSC: usize = 0x10;
const RTCMIS: usize = 0x18;
const RTCICR: usize = 0x1c;
const RTC_PERIPH_ID0: usize = 0xfe0;
const TIME: u64 = 1;
const ALARM: u64 = 2;
const ALARMS: u64 = 3;
const SHUTDOWN: u64 = 0xffff;

fn reply(result: Result<[u64; 4], Error>) -> Message {
    match result {
        Ok(words) => Message::new(0, words),
        Err(error) => Message {
            info: MessageInfo::new(error as u64, 0),
            words: [0; 4],
        },
    }
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 1;
    };
    let Some(grant) = startup
        .info()
        .grants()
        .find(|g| g.kind == GrantKind::Device)
    else {
        return 2;
    };
    let Ok(device) = startup.device(grant.name) else {
        return 3;
    };
    let Some(irq) = device.irq else {
        return 4;
    };
    let rtc = device.registers;
    if rtc.read32(RTC_PERIPH_ID0) != Some(0x31) {
        return 5;
    }
    rtc.write32(RTCCR, 1);
    rtc.write32(RTCIMSC, 0);
    rtc.write32(RTCICR, 1);
    let Some(server) = startup
        .info()
        .grants()
        .find(|g| g.kind == GrantKind::EndpointServer)
    else {
        return 6;
    };
    let endpoint = Cap::<Endpoint>::from_slot(server.slots[0]);
    if Cap::<Tcb>::from_slot(kaal_abi::slots::ROOT_TCB)
        .bind_notification(irq.notification)
        .is_err()
    {
        return 7;
    }
    let mut alarms = 0u64;
    let Ok(mut received) = endpoint.recv() else {
        return 8;
    };
    loop {
        if received.message.info.notification {
            if rtc.read32(RTCMIS).unwrap_or(0) & 1 != 0 {
                alarms += 1;
                rtc.write32(RTCIMSC, 0);
                rtc.write32(RTCICR, 1);
            }
            let _ = irq.ack();
            let Ok(next) = endpoint.recv() else {
                return 9;
            };
            received = next;
            continue;
        }
        let words = received.message.words;
        let result = match received.message.info.label {
            TIME => Ok([u64::from(rtc.read32(RTCDR).unwrap_or(0)), 0, 0, 0]),
            ALARM => match u32::try_from(words[0]) {
                Ok(seconds) => {
                    let at = rtc.read32(RTCDR).unwrap_or(0).wrapping_add(seconds);
                    rtc.write32(RTCICR, 1);
                    rtc.write32(RTCMR, at);
                    rtc.write32(RTCIMSC, 1);
                    Ok([u64::from(at), u64::from(irq.line), 0, 0])
                }
                Err(_) => Err(Error::InvalidArgument),
            },
            ALARMS => Ok([alarms, 0, 0, 0]),
            SHUTDOWN => {
                let _ = ipc::reply(&reply(Ok([0; 4])));
                return 0;
            }
            _ => Err(Error::InvalidArgument),
        };
        let Ok(next) = endpoint.reply_recv(&reply(result)) else {
            return 10;
        };
        received = next;
    }
}
