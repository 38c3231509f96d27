//! The root task of a suite built for an ABI version the kernel does not provide: it
//! claims KaaL ABI 9.0 (`entry!(main, claimed_abi = (9, 0))`), so the runtime must
//! refuse to run `main`, say why naming both versions, and end QEMU with
//! `kaal_user::EXIT_REFUSED` (3). If `main` runs anyway, it says so and fails.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kaal_test_harness::Suite;
use kaal_user::BootInfo;

kaal_user::entry!(main, claimed_abi = (9, 0));

fn main(_boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("badabi");
    suite.run("runtime_refuses_an_incompatible_kernel", || {
        Err(
            "the runtime ran main of a task built for ABI 9.0 on a kernel of another major version"
                .into(),
        )
    });
    suite.finish()
}
