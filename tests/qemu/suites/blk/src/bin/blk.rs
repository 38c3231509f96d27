//! A virtio-blk driver built with the driver kit: it probes the virtio-mmio transport
//! the broker granted (magic value, version, device ID 2), serves 512-byte sector reads,
//! writes and flushes from the `blk-requests` ring channel, and answers on `blk-replies`.
//!
//! Design: one request at a time, in ring order. The driver sleeps on the request ring's
//! notification while idle and on the device's IRQ line while a request is on the
//! device (`VirtioBlk` submits, waits for the interrupt, completes), so it never waits
//! for both at once and needs no event loop beyond `pop, serve, push`. A write is
//! answered only after the device completed it. With at most one request taken and not
//! answered, a crash loses at most that one, which its client sends again; every life
//! first sends a `HELLO` reply, naming the request at the head of the ring, so that a
//! client waiting for the lost answer wakes up and knows what to send again.
//!
//! With fault injection (`arguments` bit 63), a request flagged `CRASH_BEFORE` crashes
//! the driver before it is served and `CRASH_AFTER` after the device did it but before
//! the reply: the restart tests of the suite.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

#[allow(dead_code)]
#[path = "../protocol.rs"]
mod protocol;

use alloc::format;
use alloc::string::String;
use kaal_dddk::virtio_drivers::Error as VirtioError;
use kaal_dddk::{
    DmaBuffer, Driver, DriverError, FAULT_INJECTION, IrqLine, Mmio, Probe, Resources, VirtioBlk,
    VirtioMmioHeader,
};
use protocol::{
    BAD_REQUEST, BlkReply, BlkRequest, CRASH_AFTER, CRASH_BEFORE, FLUSH, HELLO, INFO, IO_ERROR,
    NO_DEVICE, OK, OUT_OF_RANGE, READ, REFUSED, SLOTS, WRITE,
};

/// What the driver claims from its grants. The derive writes the probe and records the
/// driver's name and match in the binary, which `kaal-build` checks against
/// `driver = "virtio-blk"` in `system.toml`.
#[derive(Driver)]
#[driver(name = "virtio-blk")]
#[platform(compatible = "virtio,mmio")]
struct Grants {
    /// The virtio-mmio transport.
    #[mmio]
    registers: Mmio<VirtioMmioHeader>,
    /// Its interrupt.
    #[irq]
    irq: IrqLine,
    /// Virtqueue and bounce buffers (`VirtioBlk::DMA_BYTES`).
    #[dma(bytes = 65536)]
    dma: DmaBuffer,
}

struct Blk {
    disk: VirtioBlk,
}

impl Blk {
    /// Claims the grants and brings the disk up: the transport's magic value, version
    /// and device ID (2, block) are checked, the device reset and initialised.
    fn probe(resources: &mut Resources) -> Result<Self, DriverError> {
        let grants = Grants::probe(resources)?;
        let disk = VirtioBlk::new(grants.registers, grants.irq, grants.dma)?;
        if disk.read_only() {
            return Err(DriverError::Device("the disk is read-only"));
        }
        Ok(Self { disk })
    }

    fn serve(&mut self, request: &BlkRequest, generation: u32) -> BlkReply {
        let mut reply = BlkReply::to(request, OK);
        let result = match request.op {
            READ => self.disk.read(request.sector, &mut reply.data),
            WRITE => self.disk.write(request.sector, &request.data),
            FLUSH => self.disk.flush(),
            INFO => {
                reply.value = self.disk.capacity();
                let words = [
                    self.disk.interrupts(),
                    u64::from(generation),
                    self.disk.physical_address(),
                ];
                for (chunk, word) in reply.data.chunks_exact_mut(8).zip(words) {
                    chunk.copy_from_slice(&word.to_le_bytes());
                }
                Ok(())
            }
            _ => {
                reply.status = BAD_REQUEST;
                Ok(())
            }
        };
        if let Err(error) = result {
            reply.status = match error {
                VirtioError::InvalidParam => OUT_OF_RANGE,
                _ => IO_ERROR,
            };
        }
        reply
    }
}

kaal_user::component!(main);

fn main(argument: u64) -> i32 {
    match serve(argument) {
        Ok(()) => 0,
        Err(error) => {
            kaal_user::println!("[blk] {error}");
            1
        }
    }
}

fn serve(argument: u64) -> Result<(), String> {
    let startup = kaal_user::startup().map_err(|e| format!("no start-up record: {e}"))?;
    let fault_injection = argument & FAULT_INJECTION != 0;
    let generation = startup.generation();
    let mut requests = startup
        .consumer::<BlkRequest, SLOTS>("blk-requests")
        .map_err(|e| format!("blk-requests: {e}"))?;
    let mut replies = startup
        .producer::<BlkReply, SLOTS>("blk-replies")
        .map_err(|e| format!("blk-replies: {e}"))?;
    let mut hello = BlkReply {
        id: 0,
        status: OK,
        op: HELLO,
        value: u64::from(generation),
        data: [0; protocol::SECTOR],
    };
    let mut resources = Resources::from_startup(startup);
    let mut blk = match Blk::probe(&mut resources) {
        Ok(blk) => blk,
        Err(error) => {
            // Tell the client rather than leave it waiting.
            hello.status = NO_DEVICE;
            let _ = replies.push(hello);
            return Err(format!("probe failed: {error}"));
        }
    };
    if generation == 0 {
        kaal_user::println!(
            "[blk] virtio-blk at {:#x}, IRQ {}: {} sectors of 512 bytes",
            blk.disk.physical_address(),
            blk.disk.irq_line(),
            blk.disk.capacity()
        );
    }
    // The request a previous life left at the head of the ring (none: 0): everything the
    // client sent before it and has no answer for, that life took and never answered.
    let first_queued = requests.peek_copy().map_or(0, |request| request.id);
    hello.data[..8].copy_from_slice(&first_queued.to_le_bytes());
    replies
        .push(hello)
        .map_err(|e| format!("blk-replies: {e}"))?;
    loop {
        let Ok(request) = requests.pop() else {
            // The client closed its end: nothing more will come.
            return Ok(());
        };
        let crash = request.flags & (CRASH_BEFORE | CRASH_AFTER);
        let reply = if request.flags & !(CRASH_BEFORE | CRASH_AFTER) != 0 {
            BlkReply::to(&request, BAD_REQUEST)
        } else if crash != 0 && !fault_injection {
            BlkReply::to(&request, REFUSED)
        } else {
            if crash & CRASH_BEFORE != 0 {
                kaal_user::sys::raise_memory_fault();
            }
            let reply = blk.serve(&request, generation);
            if crash & CRASH_AFTER != 0 {
                kaal_user::sys::raise_memory_fault();
            }
            reply
        };
        replies
            .push(reply)
            .map_err(|e| format!("blk-replies: {e}"))?;
    }
}
