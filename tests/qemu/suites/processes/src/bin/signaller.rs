//! A separate process: signals the notification in slot 5 once and exits.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::cap::{Cap, Notification};

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    if Cap::<Notification>::from_slot(5).signal().is_ok() {
        0
    } else {
        1
    }
}
