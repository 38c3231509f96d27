//! The block driver's client, and the suite's tests of it: the disk's capacity, data of
//! the previous boot on the same disk image, 1,000 random writes read back, refused
//! requests, a write stream during which the driver is crashed 20 times (every write it
//! acknowledged must read back; unanswered ones are sent again after its restart), and
//! interrupts taken by the driver.
//!
//! It prints the protocol's `[test]` lines and a `[suite] blkclient` summary, then ends
//! with the boot number it found on the disk (1 on a fresh image) if every test passed,
//! 255 otherwise; the root task checks that against the harness's `kaal.test.boot`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::cell::{Cell, RefCell};
use kaal_ipc::PushError;
use kaal_test_harness::{Suite, check};
use kaal_user::startup::{ChannelConsumer, ChannelProducer, PeerState};
use protocol::blk as protocol;
use protocol::{
    BAD_REQUEST, BlkReply, BlkRequest, CRASH_AFTER, CRASH_BEFORE, FLUSH, HELLO, INFO, OK,
    OUT_OF_RANGE, READ, SECTOR, SLOTS, WRITE,
};

type Result<T> = core::result::Result<T, String>;

/// Sectors of the disk image the harness attaches (`disk = 8` MiB in `suite.txt`).
const DISK_SECTORS: u64 = 8 * 1024 * 1024 / SECTOR as u64;
/// Where QEMU puts the first virtio-blk-device: the highest virtio-mmio transport.
const TRANSPORT: u64 = 0x0a00_3e00;
/// Sector 0: the marker of the last boot that wrote the persistent sectors.
const MARKER_SECTOR: u64 = 0;
/// Sectors each boot checks (as the previous boot left them) and rewrites.
const PERSISTENT: core::ops::Range<u64> = 1..65;
/// The crash stream's sectors: one write each.
const STREAM_BASE: u64 = 1024;
/// Writes in the crash stream.
const STREAM_WRITES: u64 = 600;
/// Every `CRASH_EVERY`-th write of the stream asks the driver to crash.
const CRASH_EVERY: u64 = 30;
/// Crashes in the stream.
const CRASHES: u32 = (STREAM_WRITES / CRASH_EVERY) as u32;
/// Requests the stream keeps in flight.
const WINDOW: usize = 8;
/// The random test's sectors: `RANDOM_BASE..DISK_SECTORS`.
const RANDOM_BASE: u64 = 4096;
/// Writes of the random test.
const RANDOM_WRITES: u32 = 1000;
/// First bytes of the marker sector.
const MAGIC: [u8; 8] = *b"KAAL-BLK";

/// A sector of pseudo-random bytes determined by `tag` and `sector`, starting with both.
fn pattern(tag: u64, sector: u64) -> [u8; SECTOR] {
    let mut data = [0u8; SECTOR];
    let mut state = (tag ^ sector.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    for chunk in data.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    data[..8].copy_from_slice(&tag.to_le_bytes());
    data[8..16].copy_from_slice(&sector.to_le_bytes());
    data
}

/// The marker sector boot `boot` writes.
fn marker(boot: u64) -> [u8; SECTOR] {
    let mut data = pattern(0x4d41_524b_0000_0000 | boot, MARKER_SECTOR);
    data[..8].copy_from_slice(&MAGIC);
    data[8..16].copy_from_slice(&boot.to_le_bytes());
    data
}

/// What boot `boot` writes to a persistent sector.
fn persistent(boot: u64, sector: u64) -> [u8; SECTOR] {
    pattern(0x5045_5253_0000_0000 | boot, sector)
}

/// What the stream of boot `boot` writes as its `index`-th write.
fn streamed(boot: u64, index: u64) -> [u8; SECTOR] {
    pattern(
        0x5354_5245_0000_0000 ^ (boot << 32) ^ index,
        STREAM_BASE + index,
    )
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The client's ends of the two rings, and the requests not answered yet.
struct Disk {
    requests: ChannelProducer<BlkRequest, SLOTS>,
    replies: ChannelConsumer<BlkReply, SLOTS>,
    next_id: u64,
    /// Sent (or to be sent) and not answered, by id.
    pending: BTreeMap<u64, BlkRequest>,
    /// Not yet in the request ring (it was full).
    outbox: VecDeque<BlkRequest>,
    /// Ids of the unanswered requests in the ring or taken from it, in push order (the
    /// ring's order; an id sent again appears again).
    pushed: VecDeque<u64>,
    /// `HELLO`s seen: lives of the driver.
    lives: u32,
    /// Restarts of the driver the reply ring's generation showed.
    ring_restarts: u32,
    /// Requests sent again after a restart.
    resent: u32,
    /// Replies to requests already answered (a request served twice).
    duplicates: u32,
}

impl Disk {
    /// Takes the ring ends and waits for the driver's first `HELLO`.
    fn connect() -> Result<Self> {
        let startup = kaal_user::startup().map_err(|e| format!("no start-up record: {e}"))?;
        let requests = startup
            .producer::<BlkRequest, SLOTS>("blk-requests")
            .map_err(|e| format!("blk-requests: {e}"))?;
        let mut replies = startup
            .consumer::<BlkReply, SLOTS>("blk-replies")
            .map_err(|e| format!("blk-replies: {e}"))?;
        let hello = replies.pop().map_err(|e| format!("blk-replies: {e}"))?;
        check!(
            hello.op == HELLO && hello.id == 0,
            "the driver's first reply is {} for request {}, not HELLO",
            hello.op,
            hello.id
        );
        check!(
            hello.status == OK,
            "the driver found no device (status {})",
            hello.status
        );
        // Records the driver's generation as seen.
        let _ = replies.peer_state();
        Ok(Self {
            requests,
            replies,
            next_id: 0,
            pending: BTreeMap::new(),
            outbox: VecDeque::new(),
            pushed: VecDeque::new(),
            lives: 1,
            ring_restarts: 0,
            resent: 0,
            duplicates: 0,
        })
    }

    /// Queues a request; returns its id.
    fn submit(&mut self, op: u32, flags: u32, sector: u64, data: Option<&[u8; SECTOR]>) -> u64 {
        self.next_id += 1;
        let mut request = BlkRequest::new(self.next_id, op, sector);
        request.flags = flags;
        if let Some(data) = data {
            request.data = *data;
        }
        self.pending.insert(request.id, request);
        self.outbox.push_back(request);
        request.id
    }

    /// Pushes what fits of the outbox into the request ring, then (if anything is
    /// unanswered) waits for one reply: `Some` for the answer to a pending request,
    /// `None` for a new life's `HELLO` or a duplicate answer. Never blocks on the
    /// request ring, so the driver never waits for room in the reply ring while this
    /// waits for room in the request ring.
    fn pump(&mut self) -> Result<Option<BlkReply>> {
        while let Some(request) = self.outbox.front() {
            match self.requests.try_push(*request) {
                Ok(()) => {
                    self.pushed.push_back(request.id);
                    self.outbox.pop_front();
                }
                Err(PushError::Full(_)) => break,
                Err(error) => return Err(format!("blk-requests: {error}")),
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let reply = self
            .replies
            .pop()
            .map_err(|e| format!("blk-replies: {e}"))?;
        if reply.op == HELLO && reply.id == 0 {
            self.lives += 1;
            check!(reply.status == OK, "the restarted driver found no device");
            if let PeerState::Restarted { seen, current } = self.replies.peer_state() {
                self.ring_restarts += current.wrapping_sub(seen);
                self.replies.acknowledge_peer();
            }
            // Every reply of the previous lives came before this one, so what is pending
            // now they either took without answering or left in the ring. The new life
            // names the head of the ring before it takes anything: requests pushed before
            // it (its last copy, if it was sent twice: that errs towards sending again)
            // were taken and are sent again, without a crash flag. If the ring was empty,
            // everything pushed is sent again: a request pushed after the driver looked
            // is then served twice, which the stream allows (its writes in flight are to
            // distinct sectors) and `pending` filters.
            let head = reply.word(0);
            let taken = match self.pushed.iter().rposition(|&id| id == head) {
                Some(position) if head != 0 => position,
                _ => self.pushed.len(),
            };
            let mut again = BTreeSet::new();
            for id in self.pushed.drain(..taken) {
                if again.insert(id)
                    && let Some(request) = self.pending.get_mut(&id)
                {
                    request.flags = 0;
                    self.outbox.push_back(*request);
                    self.resent += 1;
                }
            }
            return Ok(None);
        }
        if self.pending.remove(&reply.id).is_some() {
            self.outbox.retain(|r| r.id != reply.id);
            self.pushed.retain(|&id| id != reply.id);
            Ok(Some(reply))
        } else {
            self.duplicates += 1;
            Ok(None)
        }
    }

    /// One request, answered.
    fn call(&mut self, op: u32, sector: u64, data: Option<&[u8; SECTOR]>) -> Result<BlkReply> {
        let id = self.submit(op, 0, sector, data);
        loop {
            if let Some(reply) = self.pump()?
                && reply.id == id
            {
                return Ok(reply);
            }
        }
    }

    fn read(&mut self, sector: u64) -> Result<[u8; SECTOR]> {
        let reply = self.call(READ, sector, None)?;
        check!(reply.status == OK, "READ {sector}: status {}", reply.status);
        Ok(reply.data)
    }

    fn write(&mut self, sector: u64, data: &[u8; SECTOR]) -> Result<()> {
        let reply = self.call(WRITE, sector, Some(data))?;
        check!(
            reply.status == OK,
            "WRITE {sector}: status {}",
            reply.status
        );
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let reply = self.call(FLUSH, 0, None)?;
        check!(reply.status == OK, "FLUSH: status {}", reply.status);
        Ok(())
    }

    fn info(&mut self) -> Result<BlkReply> {
        let reply = self.call(INFO, 0, None)?;
        check!(reply.status == OK, "INFO: status {}", reply.status);
        Ok(reply)
    }
}

/// Sector 0 and the persistent sectors as the previous boot left them; returns this
/// boot's number. Then writes this boot's: data, flush, marker, flush.
fn persistence(disk: &mut Disk) -> Result<u64> {
    let found = disk.read(MARKER_SECTOR)?;
    let previous = if found.iter().all(|&b| b == 0) {
        0
    } else {
        check!(
            found[..8] == MAGIC,
            "sector 0 holds neither zeros nor the marker"
        );
        let boot = u64::from_le_bytes(found[8..16].try_into().unwrap_or_default());
        check!(
            found == marker(boot),
            "the marker of boot {boot} is corrupt"
        );
        boot
    };
    if previous > 0 {
        for sector in PERSISTENT {
            let data = disk.read(sector)?;
            check!(
                data == persistent(previous, sector),
                "sector {sector} does not hold what boot {previous} wrote"
            );
        }
    }
    let boot = previous + 1;
    if previous == 0 {
        kaal_user::println!("[blkclient] boot {boot}: fresh disk");
    } else {
        kaal_user::println!(
            "[blkclient] boot {boot}: the marker of boot {previous} and its {} sectors are on the disk",
            PERSISTENT.end - PERSISTENT.start
        );
    }
    for sector in PERSISTENT {
        disk.write(sector, &persistent(boot, sector))?;
    }
    // The data is durable before the marker that says it is there.
    disk.flush()?;
    disk.write(MARKER_SECTOR, &marker(boot))?;
    disk.flush()?;
    check!(
        disk.read(MARKER_SECTOR)? == marker(boot),
        "the new marker does not read back"
    );
    Ok(boot)
}

/// 1,000 writes of random data to random sectors, then every sector written reads
/// back the last data written to it.
fn random_writes(disk: &mut Disk, boot: u64) -> Result<()> {
    let mut rng = Rng(0x0123_4567_89ab_cdef ^ boot);
    let mut written = BTreeMap::new();
    for _ in 0..RANDOM_WRITES {
        let sector = RANDOM_BASE + rng.next() % (DISK_SECTORS - RANDOM_BASE);
        let tag = rng.next();
        disk.write(sector, &pattern(tag, sector))?;
        written.insert(sector, tag);
    }
    for (&sector, &tag) in &written {
        check!(
            disk.read(sector)? == pattern(tag, sector),
            "sector {sector} does not read back what was written last"
        );
    }
    kaal_user::println!(
        "[blkclient] {RANDOM_WRITES} random writes ({} distinct sectors) read back",
        written.len()
    );
    Ok(())
}

/// The crash stream: `STREAM_WRITES` writes, `WINDOW` in flight, every
/// `CRASH_EVERY`-th asking the driver to crash (alternately before serving it and after
/// the device wrote it, before the reply). Checks that every write was acknowledged and
/// reads back, then the 20 restarts seen through `HELLO`s and the ring's generation.
fn crash_stream(disk: &mut Disk, boot: u64) -> Result<()> {
    let (lives, ring_restarts, resent) = (disk.lives, disk.ring_restarts, disk.resent);
    let mut index_of = BTreeMap::new();
    let mut acknowledged = vec![false; STREAM_WRITES as usize];
    let mut crashes = 0u32;
    let mut next = 0u64;
    while next < STREAM_WRITES || !disk.pending.is_empty() {
        while next < STREAM_WRITES && disk.pending.len() < WINDOW {
            let flags = if next % CRASH_EVERY == CRASH_EVERY / 2 {
                crashes += 1;
                if crashes % 2 == 1 {
                    CRASH_BEFORE
                } else {
                    CRASH_AFTER
                }
            } else {
                0
            };
            let id = disk.submit(
                WRITE,
                flags,
                STREAM_BASE + next,
                Some(&streamed(boot, next)),
            );
            index_of.insert(id, next);
            next += 1;
        }
        if let Some(reply) = disk.pump()? {
            let index = *index_of
                .get(&reply.id)
                .ok_or("a reply to an unknown request")?;
            check!(
                reply.status == OK,
                "stream write {index}: status {}",
                reply.status
            );
            acknowledged[index as usize] = true;
        }
    }
    check!(
        acknowledged.iter().all(|&a| a),
        "a write of the stream was never acknowledged"
    );
    disk.flush()?;
    for index in 0..STREAM_WRITES {
        check!(
            disk.read(STREAM_BASE + index)? == streamed(boot, index),
            "acknowledged stream write {index} (sector {}) does not read back",
            STREAM_BASE + index
        );
    }
    let restarts = disk.lives - lives;
    check!(crashes == CRASHES, "{crashes} crashes asked");
    check!(
        restarts == CRASHES,
        "{restarts} new lives of the driver said HELLO, {CRASHES} expected"
    );
    check!(
        disk.ring_restarts - ring_restarts == CRASHES,
        "the reply ring's generation showed {} restarts",
        disk.ring_restarts - ring_restarts
    );
    check!(
        disk.resent - resent >= CRASHES,
        "only {} requests sent again after {CRASHES} crashes",
        disk.resent - resent
    );
    kaal_user::println!(
        "[blkclient] stream: {STREAM_WRITES} writes, {restarts} driver restarts, {} requests sent again, {} duplicate replies ignored",
        disk.resent - resent,
        disk.duplicates
    );
    Ok(())
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    let mut suite = Suite::new("blkclient");
    let disk = RefCell::new(None::<Disk>);
    let boot = Cell::new(0u64);
    suite.run("driver_answers_on_its_ring_channels", || {
        *disk.borrow_mut() = Some(Disk::connect()?);
        Ok(())
    });
    let mut disk = match disk.into_inner() {
        Some(disk) => disk,
        None => {
            suite.report();
            return 255;
        }
    };
    suite.run(
        "driver_probed_the_virtio_disk_and_reports_its_capacity",
        || {
            let info = disk.info()?;
            check!(
                info.value == DISK_SECTORS,
                "{} sectors, {DISK_SECTORS} expected",
                info.value
            );
            check!(
                info.word(2) == TRANSPORT,
                "transport at {:#x}, {TRANSPORT:#x} expected",
                info.word(2)
            );
            Ok(())
        },
    );
    suite.run("data_written_by_the_previous_boot_is_on_the_disk", || {
        boot.set(persistence(&mut disk)?);
        Ok(())
    });
    let boot = boot.get();
    suite.run("random_writes_1000_then_reads_verify", || {
        random_writes(&mut disk, boot)
    });
    suite.run("requests_past_the_end_or_unknown_are_refused", || {
        let reply = disk.call(READ, DISK_SECTORS, None)?;
        check!(
            reply.status == OUT_OF_RANGE,
            "READ past the end: status {}",
            reply.status
        );
        let reply = disk.call(WRITE, DISK_SECTORS + 7, Some(&[0xa5; SECTOR]))?;
        check!(
            reply.status == OUT_OF_RANGE,
            "WRITE past the end: status {}",
            reply.status
        );
        let reply = disk.call(99, 0, None)?;
        check!(
            reply.status == BAD_REQUEST,
            "operation 99: status {}",
            reply.status
        );
        Ok(())
    });
    suite.run(
        "driver_crashed_20_times_mid_stream_loses_no_acknowledged_write",
        || crash_stream(&mut disk, boot),
    );
    suite.run("restarted_driver_serves_with_its_interrupt", || {
        let info = disk.info()?;
        let (interrupts, generation) = (info.word(0), info.word(1));
        check!(
            generation == u64::from(CRASHES),
            "the driver's generation is {generation}"
        );
        check!(interrupts > 0, "the driver's last life took no interrupt");
        Ok(())
    });
    if suite.report() && boot > 0 {
        boot.min(254) as i32
    } else {
        255
    }
}
