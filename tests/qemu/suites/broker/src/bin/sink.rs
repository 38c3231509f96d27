//! Pops 1,000,000 messages from channel `numbers`, checking order and count; ends with
//! 100 + the CPU it ran on (the system places it on core 1; the test kernel's hook
//! `CURRENT_CPU` says where it is).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

kaal_user::component!(main);

const MESSAGES: u64 = 1_000_000;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let mut numbers = match startup.consumer::<u64, 1024>("numbers") {
        Ok(numbers) => numbers,
        Err(error) => {
            kaal_user::println!("[sink] no channel: {error}");
            return 11;
        }
    };
    let mut batch = [0u64; 256];
    let mut expected = 0u64;
    while expected < MESSAGES {
        let got = match numbers.pop_slice(&mut batch) {
            Ok(0) => match numbers.pop() {
                // Empty: sleep until the source commits.
                Ok(value) => {
                    batch[0] = value;
                    1
                }
                Err(_) => return 12,
            },
            Ok(got) => got,
            Err(_) => return 13,
        };
        for &value in &batch[..got] {
            if value != expected {
                kaal_user::println!("[sink] message {expected} arrived as {value}");
                return 14;
            }
            expected += 1;
        }
    }
    let cpu = current_cpu();
    kaal_user::println!("[sink] {expected} messages in order, on CPU {cpu}");
    100 + cpu as i32
}

/// Test hook 8 (`svc #0x7e57`, armed by this suite's boot arguments): the caller's CPU.
#[allow(unsafe_code)]
fn current_cpu() -> u64 {
    let cpu: u64;
    // SAFETY: a system-call trap; the test kernel's hook writes only x0.
    unsafe {
        core::arch::asm!(
            "svc #0x7e57",
            inout("x0") 8u64 => cpu,
            in("x8") u64::MAX,
            clobber_abi("C"),
            options(nostack),
        );
    }
    cpu
}
