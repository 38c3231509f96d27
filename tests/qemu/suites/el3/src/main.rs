//! The root task of a suite booted at EL3 (`secure = on` in `suite.txt`): the kernel
//! must refuse to run there before any task starts. If this runs anyway, it says so and
//! fails.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kaal_test_harness::Suite;
use kaal_user::BootInfo;

kaal_user::entry!(main);

fn main(_boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("el3");
    suite.run("kernel_refuses_to_run_at_el3", || {
        Err("the kernel started a root task after booting at EL3".into())
    });
    suite.finish()
}
