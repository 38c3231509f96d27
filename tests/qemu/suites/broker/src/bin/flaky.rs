//! Faults as soon as it starts, every time: its restart budget (`at_most = 3`) runs out
//! and the broker keeps it down.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    kaal_user::sys::raise_memory_fault()
}
