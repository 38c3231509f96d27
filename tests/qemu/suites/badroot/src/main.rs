//! The root task of a suite whose image the harness corrupts (`corrupt_root_task` in
//! `suite.txt`): the kernel must refuse it before it runs. If it runs anyway, it says so
//! and fails.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kaal_test_harness::Suite;
use kaal_user::BootInfo;

kaal_user::entry!(main);

fn main(_boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("badroot");
    suite.run("kernel_refuses_the_corrupt_root_task", || {
        Err("the kernel started a root task whose first segment is 128 TiB".into())
    });
    suite.finish()
}
