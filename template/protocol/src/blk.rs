//! What the block driver (`blk`) and its client (the file server, `files`) exchange over
//! their two ring channels: `blk-requests` carries [`BlkRequest`]s from the client,
//! `blk-replies` carries [`BlkReply`]s back. A request names its sector and carries its
//! data (a ring slot holds a whole sector), so nothing else is shared. The driver serves
//! requests in order, one at a time, and answers each with the request's `id`.
//!
//! Every life of the driver first sends a [`HELLO`] reply (id 0, `value` = its
//! generation, first `data` word = the id of the request at the head of the request
//! ring, 0 if it is empty): a client waiting for replies that the previous life took to
//! its grave wakes up and sends those requests again: the ones it sent before that
//! head request and has no answer for.

use kaal_ipc::zerocopy::{FromBytes, Immutable, IntoBytes};

/// Bytes of a sector.
pub const SECTOR: usize = 512;
/// Slots of each ring (`capacity` in `system.toml`).
pub const SLOTS: usize = 16;

/// Reads `sector` into the reply's `data`.
pub const READ: u32 = 1;
/// Writes `data` to `sector`; answered once the device completed the write.
pub const WRITE: u32 = 2;
/// Makes every completed write durable (the device's flush).
pub const FLUSH: u32 = 3;
/// The disk: `value` = capacity in sectors; `data` = interrupts taken (u64), the
/// driver's generation (u64), the transport's physical address (u64).
pub const INFO: u32 = 4;
/// Reply only: a new life of the driver is serving (`value`: its generation; first
/// `data` word: the id of the first request still queued, or 0).
pub const HELLO: u32 = 5;

/// Request flag: crash on purpose before serving it (needs fault injection).
pub const CRASH_BEFORE: u32 = 1;
/// Request flag: serve it, then crash on purpose before replying (needs fault
/// injection): the work is done but never acknowledged.
pub const CRASH_AFTER: u32 = 2;

/// Done.
pub const OK: u32 = 0;
/// The device reported an error.
pub const IO_ERROR: u32 = 1;
/// The sector is past the end of the disk.
pub const OUT_OF_RANGE: u32 = 2;
/// Unknown operation or flags.
pub const BAD_REQUEST: u32 = 3;
/// A crash was asked of a driver without fault injection.
pub const REFUSED: u32 = 4;
/// (In a [`HELLO`]:) the driver did not find its device and ends.
pub const NO_DEVICE: u32 = 5;

/// A request, client to driver.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[zerocopy(crate = "kaal_ipc::zerocopy")]
#[repr(C)]
pub struct BlkRequest {
    /// Chosen by the client, echoed in the reply (0 is the driver's [`HELLO`]).
    pub id: u64,
    /// [`READ`], [`WRITE`], [`FLUSH`] or [`INFO`].
    pub op: u32,
    /// [`CRASH_BEFORE`], [`CRASH_AFTER`] or 0.
    pub flags: u32,
    /// The sector read or written.
    pub sector: u64,
    /// What [`WRITE`] writes.
    pub data: [u8; SECTOR],
}

/// A reply, driver to client.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[zerocopy(crate = "kaal_ipc::zerocopy")]
#[repr(C)]
pub struct BlkReply {
    /// The request's id (0 for [`HELLO`]).
    pub id: u64,
    /// [`OK`] or an error.
    pub status: u32,
    /// The request's operation ([`HELLO`] for a new life's greeting).
    pub op: u32,
    /// [`INFO`]: capacity; [`HELLO`]: the driver's generation.
    pub value: u64,
    /// What [`READ`] read; [`INFO`]'s details.
    pub data: [u8; SECTOR],
}

impl BlkRequest {
    /// A request without data.
    pub const fn new(id: u64, op: u32, sector: u64) -> Self {
        Self {
            id,
            op,
            flags: 0,
            sector,
            data: [0; SECTOR],
        }
    }
}

impl BlkReply {
    /// A reply to `request` with `status` and no data.
    pub const fn to(request: &BlkRequest, status: u32) -> Self {
        Self {
            id: request.id,
            status,
            op: request.op,
            value: 0,
            data: [0; SECTOR],
        }
    }

    /// Word `index` of `data`, little-endian.
    pub fn word(&self, index: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.data[index * 8..index * 8 + 8]);
        u64::from_le_bytes(bytes)
    }
}
