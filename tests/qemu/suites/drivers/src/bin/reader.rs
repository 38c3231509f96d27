//! Reads 65,536 bytes typed on the serial line from the PL011 driver's ring channel
//! `serial`, checks every byte and its order (byte `i` is `(i * 31 + 7) % 251`), then
//! writes a line back out through the driver.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::ipc::Message;
use kaal_user::println;

kaal_user::component!(main);

const BYTES: usize = 65_536;

fn write_line(console: kaal_user::cap::Cap<kaal_user::cap::Endpoint>, text: &[u8]) -> bool {
    for chunk in text.chunks(24) {
        let mut words = [chunk.len() as u64, 0, 0, 0];
        for (word, bytes) in words[1..].iter_mut().zip(chunk.chunks(8)) {
            let mut raw = [0u8; 8];
            raw[..bytes.len()].copy_from_slice(bytes);
            *word = u64::from_le_bytes(raw);
        }
        // The driver's transmit queue may be full for a moment: try again.
        loop {
            match console.call(&Message::new(1, words)) {
                Ok(reply) if reply.info.label == 0 => break,
                Ok(reply) if reply.info.label == kaal_abi::Error::WouldBlock as u64 => {
                    kaal_user::sys::yield_now();
                }
                _ => return false,
            }
        }
    }
    true
}

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let (Ok(mut serial), Ok(console)) = (
        startup.consumer::<u8, 4096>("serial"),
        startup.endpoint("console"),
    ) else {
        return 11;
    };

    let mut batch = [0u8; 512];
    let mut first = [0u8; 8];
    let mut received = 0usize;
    while received < BYTES {
        let got = match serial.pop_slice(&mut batch) {
            Ok(0) => match serial.pop() {
                Ok(byte) => {
                    batch[0] = byte;
                    1
                }
                Err(_) => return 12,
            },
            Ok(got) => got,
            Err(_) => return 13,
        };
        for &byte in &batch[..got] {
            let expected = ((received * 31 + 7) % 251) as u8;
            if byte != expected {
                println!("[reader] byte {received} is {byte:#x}, expected {expected:#x}");
                return 14;
            }
            if received < first.len() {
                first[received] = byte;
            }
            received += 1;
        }
    }
    // The first bytes typed come back out through the driver, as hex.
    let mut line = *b"[uart] echo 0000000000000000 from the user-space PL011 driver\n";
    for (i, byte) in first.iter().enumerate() {
        line[12 + 2 * i] = b"0123456789abcdef"[usize::from(byte >> 4)];
        line[13 + 2 * i] = b"0123456789abcdef"[usize::from(byte & 15)];
    }
    if !write_line(console, &line) {
        return 15;
    }
    println!("[reader] {received} bytes from the serial line, in order");
    0
}
