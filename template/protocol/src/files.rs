//! What the file server (`files`) and its clients exchange over the ring channels
//! `files-requests` ([`FileRequest`]s, client to server) and `files-replies`
//! ([`FileReply`]s back), and [`FilesClient`], the client side.
//!
//! Every request is answered by exactly one reply with the request's `id`, and each is
//! complete in itself: a read or a write names its file and its offset, and the server
//! opens the file, does the one chunk and closes it again before it replies, so nothing
//! is held open between requests and everything a reply acknowledges is on the disk. A
//! whole file is read or written as a series of chunks of at most [`CHUNK`] bytes.
//!
//! Every life of the server first sends a [`HELLO`] reply (id 0, status [`HELLO`], `value` = its
//! generation, first `data` word = the id of the request at the head of the request
//! ring, 0 if it was empty). A client waiting for an answer that a crashed life took with
//! it sees the new life's `HELLO` and gives up on that request
//! ([`FileError::Restarted`]) instead of waiting forever.
//!
//! File names are FAT 8.3 short names (`NOTES.TXT`: up to 8 characters, a dot, up to
//! 3), in the root directory, matched without regard to case.

use alloc::string::String;
use core::fmt;

use kaal_ipc::zerocopy::{FromBytes, Immutable, IntoBytes};
use kaal_ipc::{PushError, RecvError};
use kaal_user::startup::{ChannelConsumer, ChannelProducer};

/// Slots of each ring (`capacity` of both channels in `system.toml`).
pub const SLOTS: usize = 16;
/// Bytes of a file name in a request, UTF-8, padded with zeros.
pub const NAME_BYTES: usize = 32;
/// Bytes of file data a request or a reply carries at most.
pub const CHUNK: usize = 512;
/// Bytes of a [`LIST`] entry in a reply's `data`: the name ([`ENTRY_NAME_BYTES`],
/// padded with zeros), then the size (u64, little-endian).
pub const ENTRY_BYTES: usize = 24;
/// Bytes of the name in a [`LIST`] entry (an 8.3 name has at most 12).
pub const ENTRY_NAME_BYTES: usize = 16;
/// [`LIST`] entries a reply carries at most.
pub const ENTRIES_PER_REPLY: usize = CHUNK / ENTRY_BYTES;
/// Entries a FAT directory holds at most (65536 directory entries of 32 bytes):
/// [`FilesClient::list`] refuses a listing longer than that.
pub const MAX_ENTRIES: u64 = 65536;
/// Bytes a FAT file holds at most (its size is a `u32`): [`FilesClient::read`] refuses a
/// larger size.
pub const MAX_FILE_BYTES: u64 = u32::MAX as u64;

/// The root directory's files from entry `offset` on: the reply's `length` entries in
/// `data`, `value` = how many files the directory holds.
pub const LIST: u32 = 1;
/// Up to [`CHUNK`] bytes of file `name` from byte `offset`: `length` bytes in the
/// reply's `data`, `value` = the file's size.
pub const READ: u32 = 2;
/// The request's `length` bytes of `data` into file `name` at byte `offset`. Offset 0
/// creates the file or truncates it first; any other offset must be the file's current
/// size (the data is appended). Reply `value`: the file's size after the write.
pub const WRITE: u32 = 3;
/// Removes file `name`.
pub const REMOVE: u32 = 4;
/// Reply status only: a new life of the server is serving (id 0; `value`: its
/// generation; first `data` word: the id of the request at the head of the ring, or 0).
pub const HELLO: u32 = 5;

/// Done.
pub const OK: u32 = 0;
/// No such file.
pub const NOT_FOUND: u32 = 1;
/// The name is not a valid 8.3 file name.
pub const BAD_NAME: u32 = 2;
/// The disk holds no FAT file system the server can mount (reason in `data`).
pub const NO_FILE_SYSTEM: u32 = 3;
/// The disk or its driver failed (reason in `data`).
pub const DISK_ERROR: u32 = 4;
/// No space left on the disk.
pub const DISK_FULL: u32 = 5;
/// Unknown operation, or a write at an offset that is not the file's size.
pub const BAD_REQUEST: u32 = 6;
/// Anything else (reason in `data`).
pub const FAILED: u32 = 7;

/// A request, client to server.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[zerocopy(crate = "kaal_ipc::zerocopy")]
#[repr(C)]
pub struct FileRequest {
    /// Chosen by the client, echoed in the reply (0 is the server's [`HELLO`]).
    pub id: u64,
    /// [`LIST`], [`READ`], [`WRITE`] or [`REMOVE`].
    pub op: u32,
    /// Bytes of `data` a [`WRITE`] writes.
    pub length: u32,
    /// [`READ`], [`WRITE`]: the byte offset in the file; [`LIST`]: the first entry.
    pub offset: u64,
    /// The file's name, UTF-8, padded with zeros.
    pub name: [u8; NAME_BYTES],
    /// What a [`WRITE`] writes.
    pub data: [u8; CHUNK],
}

/// A reply, server to client.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[zerocopy(crate = "kaal_ipc::zerocopy")]
#[repr(C)]
pub struct FileReply {
    /// The request's id (0 for [`HELLO`]).
    pub id: u64,
    /// [`OK`] or an error.
    pub status: u32,
    /// Bytes (or [`LIST`] entries) in `data`; for an error, bytes of its message.
    pub length: u32,
    /// [`READ`], [`WRITE`]: the file's size; [`LIST`]: files in the directory;
    /// [`HELLO`]: the server's generation.
    pub value: u64,
    /// What a [`READ`] read, a [`LIST`]'s entries, an error's message (UTF-8).
    pub data: [u8; CHUNK],
}

impl FileRequest {
    /// A request without data; `None` if `name` does not fit [`NAME_BYTES`] or holds a
    /// zero byte (the server would read the name only up to it).
    pub fn new(id: u64, op: u32, name: &str, offset: u64) -> Option<Self> {
        if name.contains('\0') {
            return None;
        }
        let mut request = Self {
            id,
            op,
            length: 0,
            offset,
            name: [0; NAME_BYTES],
            data: [0; CHUNK],
        };
        request
            .name
            .get_mut(..name.len())?
            .copy_from_slice(name.as_bytes());
        Some(request)
    }

    /// The name, up to its first zero byte; `None` if it is not UTF-8.
    pub fn name(&self) -> Option<&str> {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
        core::str::from_utf8(&self.name[..end]).ok()
    }

    /// The data a [`WRITE`] carries (`length` bytes, at most [`CHUNK`]).
    pub fn data(&self) -> &[u8] {
        &self.data[..(self.length as usize).min(CHUNK)]
    }
}

impl FileReply {
    /// A reply to `request` with `status` and nothing in `data`.
    pub const fn to(request: &FileRequest, status: u32) -> Self {
        Self {
            id: request.id,
            status,
            length: 0,
            value: 0,
            data: [0; CHUNK],
        }
    }

    /// A reply to `request` with error `status` and `message` (cut to [`CHUNK`]
    /// bytes, at a character boundary).
    pub fn error(request: &FileRequest, status: u32, message: &str) -> Self {
        let mut reply = Self::to(request, status);
        let mut end = message.len().min(CHUNK);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        reply.data[..end].copy_from_slice(&message.as_bytes()[..end]);
        reply.length = end as u32;
        reply
    }

    /// The data: `length` bytes, at most [`CHUNK`].
    pub fn data(&self) -> &[u8] {
        &self.data[..(self.length as usize).min(CHUNK)]
    }

    /// A new life's greeting: `HELLO` from `generation`, naming `head`, the id of the
    /// request at the head of the request ring (0: none).
    pub fn hello(generation: u32, head: u64) -> Self {
        let mut reply = Self {
            id: 0,
            status: HELLO,
            length: 8,
            value: u64::from(generation),
            data: [0; CHUNK],
        };
        reply.data[..8].copy_from_slice(&head.to_le_bytes());
        reply
    }

    /// Whether this is a server's [`HELLO`] (id 0, status [`HELLO`]).
    pub fn is_hello(&self) -> bool {
        self.id == 0 && self.status == HELLO
    }

    /// An error reply's message.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(self.data()).into_owned()
    }

    /// Word `index` of `data`, little-endian.
    pub fn word(&self, index: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.data[index * 8..index * 8 + 8]);
        u64::from_le_bytes(bytes)
    }

    /// Writes [`LIST`] entry `index` of this reply: `name` (cut to
    /// [`ENTRY_NAME_BYTES`]) and `size`.
    pub fn set_entry(&mut self, index: usize, name: &str, size: u64) {
        let entry = &mut self.data[index * ENTRY_BYTES..(index + 1) * ENTRY_BYTES];
        entry.fill(0);
        let mut n = name.len().min(ENTRY_NAME_BYTES);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        entry[..n].copy_from_slice(&name.as_bytes()[..n]);
        entry[ENTRY_NAME_BYTES..].copy_from_slice(&size.to_le_bytes());
    }

    /// [`LIST`] entry `index` of this reply: its name and size (`None` past `length` or
    /// for a name that is not UTF-8).
    pub fn entry(&self, index: usize) -> Option<(&str, u64)> {
        if index >= (self.length as usize).min(ENTRIES_PER_REPLY) {
            return None;
        }
        let entry = &self.data[index * ENTRY_BYTES..(index + 1) * ENTRY_BYTES];
        let end = entry[..ENTRY_NAME_BYTES]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(ENTRY_NAME_BYTES);
        let name = core::str::from_utf8(&entry[..end]).ok()?;
        let mut size = [0u8; 8];
        size.copy_from_slice(&entry[ENTRY_NAME_BYTES..]);
        Some((name, u64::from_le_bytes(size)))
    }
}

/// Why a file operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// No such file.
    NotFound,
    /// The name is not an 8.3 file name.
    InvalidName,
    /// The disk holds no FAT file system the server can mount; the reason.
    NoFileSystem(String),
    /// The disk or its driver failed; the reason.
    Disk(String),
    /// No space left on the disk.
    DiskFull,
    /// The file server restarted while the request was in flight: it may or may not
    /// have been carried out.
    Restarted,
    /// The file server cannot be reached (its ring channels are closed or corrupt).
    Unavailable(String),
    /// The server answered something this client does not understand, or failed
    /// otherwise; the reason.
    Failed(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotFound => f.write_str("no such file"),
            FileError::InvalidName => f.write_str(
                "not a valid file name (8.3 names: up to 8 characters, a dot, up to 3)",
            ),
            FileError::NoFileSystem(reason) => {
                write!(f, "no FAT file system on the disk: {reason}")
            }
            FileError::Disk(reason) => write!(f, "disk error: {reason}"),
            FileError::DiskFull => f.write_str("the disk is full"),
            FileError::Restarted => f.write_str(
                "the file server restarted during the request (it may not have been done); try again",
            ),
            FileError::Unavailable(reason) => write!(f, "the file server is unavailable: {reason}"),
            FileError::Failed(reason) => write!(f, "the file server failed: {reason}"),
        }
    }
}

impl core::error::Error for FileError {}

/// A client of the file server: the producing end of `files-requests` and the
/// consuming end of `files-replies`. One request is in flight at a time; each call
/// waits for its answers.
pub struct FilesClient {
    requests: ChannelProducer<FileRequest, SLOTS>,
    replies: ChannelConsumer<FileReply, SLOTS>,
    next_id: u64,
}

impl FilesClient {
    /// A client over the two ends of the server's channels. Its request ids carry the
    /// component's generation in their top bits, so that an answer to a request of an
    /// earlier life of the client (still in the reply ring when it restarted) is not
    /// taken for the answer to this life's request of the same number.
    pub fn new(
        requests: ChannelProducer<FileRequest, SLOTS>,
        replies: ChannelConsumer<FileReply, SLOTS>,
    ) -> Self {
        let generation = kaal_user::startup().map_or(0, |startup| startup.generation());
        Self {
            requests,
            replies,
            next_id: u64::from(generation) << 40,
        }
    }

    /// Calls `each` with the name and size of every file in the root directory.
    pub fn list(&mut self, mut each: impl FnMut(&str, u64)) -> Result<(), FileError> {
        let mut index = 0u64;
        loop {
            let reply = self.call(LIST, "", index, &[])?;
            let mut n = 0;
            while let Some((name, size)) = reply.entry(n) {
                each(name, size);
                n += 1;
            }
            index += n as u64;
            if n == 0 || index >= reply.value {
                return Ok(());
            }
            if index >= MAX_ENTRIES {
                return Err(FileError::Failed(alloc::format!(
                    "it lists more than the {MAX_ENTRIES} entries of a FAT directory"
                )));
            }
        }
    }

    /// Reads file `name` from start to end, calling `each` with every chunk (at most
    /// [`CHUNK`] bytes each); returns its size.
    pub fn read(&mut self, name: &str, mut each: impl FnMut(&[u8])) -> Result<u64, FileError> {
        let mut offset = 0u64;
        loop {
            let reply = self.call(READ, name, offset, &[])?;
            let data = reply.data();
            if reply.value > MAX_FILE_BYTES {
                return Err(FileError::Failed(alloc::format!(
                    "it says the file holds {} bytes, more than a FAT file",
                    reply.value
                )));
            }
            if offset + data.len() as u64 > reply.value {
                return Err(FileError::Failed(alloc::format!(
                    "it sent {} bytes from byte {offset} of a file of {} bytes",
                    data.len(),
                    reply.value
                )));
            }
            if !data.is_empty() {
                each(data);
            }
            offset += data.len() as u64;
            if data.is_empty() || offset >= reply.value {
                return Ok(offset);
            }
        }
    }

    /// Creates file `name`, or empties it, and writes `data` into it.
    pub fn write(&mut self, name: &str, data: &[u8]) -> Result<(), FileError> {
        if data.is_empty() {
            return self.call(WRITE, name, 0, &[]).map(drop);
        }
        for (index, chunk) in data.chunks(CHUNK).enumerate() {
            self.call(WRITE, name, (index * CHUNK) as u64, chunk)?;
        }
        Ok(())
    }

    /// Removes file `name`.
    pub fn remove(&mut self, name: &str) -> Result<(), FileError> {
        self.call(REMOVE, name, 0, &[]).map(drop)
    }

    /// Sends `request` as it is (its id, operation and every field) and returns the
    /// server's reply to it, whatever its status: for tools and tests that speak the
    /// protocol directly. Its id should not be one this client uses (they count up from
    /// the generation shifted left by 40) nor 0, which the server ignores.
    pub fn request(&mut self, request: FileRequest) -> Result<FileReply, FileError> {
        self.exchange(request)
    }

    /// One request, answered: the reply if its status is [`OK`].
    fn call(
        &mut self,
        op: u32,
        name: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<FileReply, FileError> {
        self.next_id += 1;
        let id = self.next_id;
        if name.is_empty() && op != LIST {
            return Err(FileError::InvalidName);
        }
        let mut request = FileRequest::new(id, op, name, offset).ok_or(FileError::InvalidName)?;
        request.data[..data.len()].copy_from_slice(data);
        request.length = data.len() as u32;
        let reply = self.exchange(request)?;
        match reply.status {
            OK => Ok(reply),
            NOT_FOUND => Err(FileError::NotFound),
            BAD_NAME => Err(FileError::InvalidName),
            NO_FILE_SYSTEM => Err(FileError::NoFileSystem(reply.message())),
            DISK_ERROR => Err(FileError::Disk(reply.message())),
            DISK_FULL => Err(FileError::DiskFull),
            _ => Err(FileError::Failed(reply.message())),
        }
    }

    /// Sends `request` and waits for the reply with its id.
    fn exchange(&mut self, request: FileRequest) -> Result<FileReply, FileError> {
        let id = request.id;
        // Replies nobody waits for any more (to requests given up on) and greetings of
        // lives that started while no request was in flight.
        while self.replies.try_pop().is_ok() {}
        match self.requests.try_push(request) {
            Ok(()) => {}
            Err(PushError::Full(_)) => {
                return Err(FileError::Unavailable("its request ring is full".into()));
            }
            Err(error) => return Err(FileError::Unavailable(alloc::format!("{error}"))),
        }
        loop {
            let reply = self.replies.pop().map_err(|error| match error {
                RecvError::Closed => FileError::Unavailable("it has ended".into()),
                error => FileError::Unavailable(alloc::format!("{error}")),
            })?;
            if reply.is_hello() {
                // The first life, or a new life that found this request still queued,
                // serves it; any other new life started after the one that took it died.
                if reply.value == 0 || reply.word(0) == id {
                    continue;
                }
                return Err(FileError::Restarted);
            }
            if reply.id == id {
                return Ok(reply);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_zero_byte_or_too_long_makes_no_request() {
        assert!(FileRequest::new(1, READ, "A\0B", 0).is_none());
        assert!(FileRequest::new(1, READ, &"A".repeat(NAME_BYTES + 1), 0).is_none());
        let request = FileRequest::new(1, READ, "NOTES.TXT", 0).unwrap();
        assert_eq!(request.name(), Some("NOTES.TXT"));
    }

    #[test]
    fn lengths_from_a_peer_are_clamped() {
        let mut request = FileRequest::new(1, WRITE, "A", 0).unwrap();
        request.length = u32::MAX;
        assert_eq!(request.data().len(), CHUNK);
        let mut reply = FileReply::to(&request, OK);
        reply.length = u32::MAX;
        assert_eq!(reply.data().len(), CHUNK);
        // Entries past what a reply can hold are none, whatever `length` says.
        assert!(reply.entry(ENTRIES_PER_REPLY).is_none());
        reply.data[..2].copy_from_slice(&[0xff, 0xfe]);
        assert!(reply.entry(0).is_none());
    }

    #[test]
    fn an_error_message_is_cut_at_a_character_boundary() {
        let request = FileRequest::new(1, READ, "A", 0).unwrap();
        let message = "é".repeat(CHUNK);
        let reply = FileReply::error(&request, FAILED, &message);
        assert_eq!(reply.length as usize, CHUNK);
        assert!(core::str::from_utf8(reply.data()).is_ok());
    }
}
