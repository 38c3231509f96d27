//! A separate process: maps the frame in slot 5 (page tables from the untyped in slot 6),
//! writes a pattern into it, and exits. Its starter reads the pattern through its own
//! mapping of the same frame.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::cap::{Cap, Frame4K, Untyped};
use kaal_user::memory::MappedFrame;

kaal_user::component!(main);

fn main(vaddr: u64) -> i32 {
    let Ok(shared) = MappedFrame::new(
        Cap::<Frame4K>::from_slot(5),
        vaddr,
        Cap::<Untyped>::from_slot(6),
    ) else {
        return 1;
    };
    shared.write(0, 0xc0ffee);
    shared.write(511, 0xfeed);
    0
}
