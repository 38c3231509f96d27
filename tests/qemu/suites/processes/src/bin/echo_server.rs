//! A separate process: serves calls on the endpoint in slot 5 (replying `words[0] + 1`
//! and the caller's badge) until a call labelled `STOP`, then waits on the notification in
//! slot 6 and exits with the word it receives.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::cap::{Cap, Endpoint, Notification};
use kaal_user::ipc::{self, Message};

kaal_user::component!(main);

const STOP: u64 = 0xdead;

fn main(_argument: u64) -> i32 {
    let endpoint = Cap::<Endpoint>::from_slot(5);
    let Ok(mut received) = endpoint.recv() else {
        return -1;
    };
    let mut served = 0;
    while received.message.info.label != STOP {
        served += 1;
        let words = received.message.words;
        let reply = Message::new(1, [words[0] + 1, received.badge, served, 0]);
        received = match endpoint.reply_recv(&reply) {
            Ok(received) => received,
            Err(_) => return -2,
        };
    }
    if ipc::reply(&Message::new(0, [served, 0, 0, 0])).is_err() {
        return -3;
    }
    Cap::<Notification>::from_slot(6)
        .wait()
        .map_or(-4, |word| word as i32)
}
