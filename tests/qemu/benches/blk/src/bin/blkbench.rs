//! Reads 4 KiB blocks (eight sectors, requests queued together) through the virtio-blk
//! driver and reports the virtual time per block under `-icount shift=0`: the guest's
//! instructions plus, while the guest waits for the device, the host's time to do the
//! I/O (QEMU advances the virtual clock with real time when the guest is idle), so this
//! figure varies with the host, unlike the others.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use kaal_user::{println, time};
use protocol::blk::{BlkReply, BlkRequest, HELLO, OK, READ};

kaal_user::component!(main);

const BLOCKS: u64 = 128;
const SECTORS_PER_BLOCK: u64 = 8;

fn main(_argument: u64) -> i32 {
    let Ok(startup) = kaal_user::startup() else {
        return 10;
    };
    let (Ok(mut requests), Ok(mut replies)) = (
        startup.producer::<BlkRequest, 16>("blk-requests"),
        startup.consumer::<BlkReply, 16>("blk-replies"),
    ) else {
        return 11;
    };
    match replies.pop() {
        Ok(hello) if hello.op == HELLO => {}
        _ => return 12,
    }
    let mut id = 1;
    let mut read_block = |block: u64| -> bool {
        for sector in 0..SECTORS_PER_BLOCK {
            if requests
                .push(BlkRequest::new(
                    id + sector,
                    READ,
                    block * SECTORS_PER_BLOCK + sector,
                ))
                .is_err()
            {
                return false;
            }
        }
        for sector in 0..SECTORS_PER_BLOCK {
            match replies.pop() {
                Ok(reply) if reply.status == OK && reply.id == id + sector => {}
                _ => return false,
            }
        }
        id += SECTORS_PER_BLOCK;
        true
    };
    if !read_block(0) {
        return 13;
    }
    let start = time::now_ticks();
    for block in 0..BLOCKS {
        if !read_block(block) {
            return 14;
        }
    }
    let ticks = time::now_ticks() - start;
    let nanoseconds_per_tick = 1_000_000_000 / time::ticks_per_second();
    println!(
        "[bench] virtio_blk_4k_read: {} instructions",
        ticks * nanoseconds_per_tick / BLOCKS
    );
    0
}
