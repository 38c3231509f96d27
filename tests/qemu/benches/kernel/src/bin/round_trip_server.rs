//! The server of `call_reply_recv_round_trip_two_processes`: a process of its own
//! (address space, CSpace, thread) that answers calls on the endpoint in slot 5 exactly
//! as the same-address-space server thread of the kernel benchmark does: it replies
//! `words[0] + 1` with `reply_recv`, forever.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::cap::{Cap, Endpoint};
use kaal_user::ipc::Message;
use kaal_user::process::FIRST_FREE_SLOT;

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    let endpoint = Cap::<Endpoint>::from_slot(FIRST_FREE_SLOT);
    let Ok(mut received) = endpoint.recv() else {
        return 1;
    };
    loop {
        let reply = Message::new(0, [received.message.words[0] + 1, 0, 0, 0]);
        received = match endpoint.reply_recv(&reply) {
            Ok(r) => r,
            Err(_) => return 2,
        };
    }
}
