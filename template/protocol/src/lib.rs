//! What the components of this system exchange over their ring channels.
//!
//! * [`blk`]: the block driver (`blk`) and its client, the file server: sector reads,
//!   writes and flushes over `blk-requests` and `blk-replies`.
//! * [`files`]: the file server (`files`) and its clients: list, read, write and remove
//!   files over `files-requests` and `files-replies`, and [`files::FilesClient`], the
//!   client side of that protocol.
//!
//! Every element type is `#[repr(C)]` and declared in `system.toml` as a `[types.NAME]`
//! table with its size and alignment; the components' generated accessors check them at
//! compile time.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod blk;
pub mod files;
