//! A hostile component: asks for what it was not granted, uses slots it was not given,
//! exceeds its memory quota and sends 100,000 random requests to the broker. Its exit
//! code is a bit set of the checks that failed (0: all held).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_abi::Error;
use kaal_user::broker::{ComponentState, protocol};
use kaal_user::cap::{Cap, Endpoint, Notification};
use kaal_user::ipc::Message;
use kaal_user::println;
use kaal_user::startup::{ChannelError, StartupError};

kaal_user::component!(main);

const RANDOM_REQUESTS: u32 = 100_000;

struct Checks(i32, u32);

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            println!("[intruder] check failed: {what}");
            self.0 |= 1 << self.1;
        }
        self.1 += 1;
    }
}

/// xorshift64*.
fn random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 1 << 30;
    };
    let mut checks = Checks(0, 0);
    // Grants it does not have: named errors.
    let device = startup.device("rtc");
    checks.check(
        matches!(device, Err(StartupError::NotGranted { name }) if name.as_str() == "rtc"),
        "device rtc not granted",
    );
    checks.check(
        matches!(startup.irq("irq33"), Err(StartupError::NotGranted { .. })),
        "irq not granted",
    );
    checks.check(
        matches!(
            startup.consumer::<u64, 1024>("numbers"),
            Err(ChannelError::Startup(StartupError::NotGranted { .. }))
        ),
        "channel not granted",
    );
    checks.check(
        matches!(
            startup.serve("results"),
            Err(StartupError::WrongKind { .. })
        ),
        "serving an endpoint it may only call",
    );
    checks.check(startup.endpoint("results").is_ok(), "endpoint it may call");
    if let Err(error) = startup.device("rtc") {
        println!("[intruder] asking for rtc: {error}");
    }
    // Slots it was not given: the kernel's error.
    let stolen = Cap::<Endpoint>::from_slot(30).call(&Message::new(1, [0; 4]));
    checks.check(stolen == Err(Error::InvalidCapability), "empty slot 30");
    // Slot 2 (the root's IRQ control) holds its console, write only.
    let irq_control = Cap::<Notification>::from_slot(kaal_abi::slots::IRQ_CONTROL).signal();
    checks.check(
        irq_control == Err(Error::WrongObjectType)
            && kaal_user::cap::identify(kaal_abi::slots::IRQ_CONTROL)
                == Ok((kaal_abi::ObjectType::Console, kaal_abi::rights::WRITE)),
        "slot 2 holds the console, not the root's IRQ control",
    );
    let system = Cap::<Notification>::from_slot(kaal_abi::slots::SYSTEM_CONTROL).signal();
    checks.check(system.is_err(), "slot 5 holds no system control");

    // Its broker capabilities (fault endpoint in slot 5, services in slot 6) are badged:
    // re-minting one with another component's badge is refused by the kernel.
    for (slot, badge) in [(5u64, (1u64 << 33) | 1), (6, 1 << 33 | 2), (6, 3)] {
        let forged = Cap::<Endpoint>::from_slot(slot).mint(40, kaal_abi::rights::WRITE, badge);
        checks.check(
            forged == Err(Error::IllegalOperation),
            "re-minting a broker capability",
        );
        let _ = Cap::<Endpoint>::from_slot(40).delete();
    }
    let Ok(broker) = startup.broker() else {
        return 1 << 29;
    };
    // Memory within the quota, then past it.
    let first = broker.allocate_memory(1 << 20);
    checks.check(
        matches!(first, Ok((vaddr, bytes)) if bytes >= 1 << 20 && vaddr >= 0x2_0000_0000),
        "1 MiB within the quota",
    );
    checks.check(
        broker.allocate_memory(16 << 20) == Err(Error::NotEnoughMemory),
        "16 MiB past the quota",
    );
    checks.check(
        broker.allocate_memory(0) == Err(Error::InvalidArgument),
        "zero bytes",
    );
    // Services it was not given.
    checks.check(
        broker.debug_exit(0) == Err(Error::MissingRights),
        "debug_exit without system-control",
    );
    checks.check(
        broker.power_off() == Err(Error::MissingRights),
        "power_off without system-control",
    );
    // The process list.
    let listed = broker.components().count();
    let me = broker.components().find(|c| c.name() == "intruder");
    checks.check(listed == 7, "seven components listed");
    checks.check(
        matches!(me, Some(c) if c.state == ComponentState::Running && c.priority == 90 && c.memory_bytes > 0),
        "its own line in the list",
    );

    // Garbage: random labels (any but exit) and words.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut wrong = 0u32;
    for _ in 0..RANDOM_REQUESTS {
        let pick = random(&mut state);
        let label = match pick % 4 {
            0 => random(&mut state),
            _ => pick % 12,
        };
        // Exit would only end the intruder itself; send an unknown label instead.
        let label = if label == protocol::EXIT { 0 } else { label };
        let words = [
            random(&mut state) >> (pick % 64),
            random(&mut state),
            random(&mut state),
            random(&mut state),
        ];
        // Every call comes back (a hang ends the run by timeout), with the answer its
        // label and words call for.
        let answer = broker.request(label, words);
        let expected = match label {
            protocol::ALLOCATE => matches!(
                answer,
                Ok(_)
                    | Err(Error::NotEnoughMemory | Error::OutOfResources | Error::InvalidArgument)
            ),
            protocol::COMPONENT | protocol::COMPONENT_NAME => {
                answer.is_ok() == (words[0] < 7)
                    && (answer.is_ok() || answer == Err(Error::InvalidArgument))
            }
            protocol::POWER_OFF | protocol::DEBUG_EXIT | protocol::INJECT_FAULT => {
                answer == Err(Error::MissingRights)
            }
            protocol::MEMORY => answer.is_ok(),
            // One device and two channels in this suite's system.toml.
            protocol::DEVICE => {
                answer.is_ok() == (words[0] < 1) && answer != Err(Error::MissingRights)
            }
            protocol::CHANNEL => {
                answer.is_ok() == (words[0] < 2) && answer != Err(Error::MissingRights)
            }
            protocol::NAME => {
                let valid = match words[0] {
                    protocol::NAME_DEVICE => words[1] < 1,
                    protocol::NAME_CHANNEL => words[1] < 2,
                    _ => false,
                };
                answer.is_ok() == valid && (valid || answer == Err(Error::InvalidArgument))
            }
            _ => answer == Err(Error::InvalidArgument),
        };
        if !expected {
            wrong += 1;
        }
    }
    checks.check(
        wrong == 0,
        "random requests answered as their labels call for",
    );
    // The broker still serves.
    checks.check(
        broker.components().count() == 7,
        "broker serves after the storm",
    );
    // However the storm went, a component holds at most 16 blocks from the broker.
    let mut blocks = 0;
    while broker.allocate_memory(64 * 1024).is_ok() {
        blocks += 1;
        if blocks > 16 {
            break;
        }
    }
    checks.check(blocks <= 16, "more than 16 memory blocks in one life");
    println!(
        "[intruder] {RANDOM_REQUESTS} random requests answered, {wrong} wrongly; checks failed: {:#x}",
        checks.0
    );
    checks.0
}
