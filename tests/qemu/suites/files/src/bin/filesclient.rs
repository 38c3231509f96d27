//! The file server's client, and the suite's tests of it, through the template's
//! `protocol::files::FilesClient` (what the template's shell uses). What it tests depends
//! on the disk it finds:
//!
//! * no FAT file system (the harness's zero-filled image, boot 1): listing, reading,
//!   writing and removing each fail with `FileError::NoFileSystem`, whose message names
//!   the problem; it ends with 1;
//! * a FAT volume without `BOOT.TXT` (freshly formatted, boot 2): writes, reads back,
//!   overwrites, lists, removes, refuses bad names, and leaves `BOOT.TXT` and
//!   `KEEP.BIN` for the next boot; it ends with 2;
//! * `BOOT.TXT` saying `n` (boot 3): `KEEP.BIN` holds what boot `n` wrote; it ends
//!   with `n + 1`.
//!
//! It prints the protocol's `[test]` lines and a `[suite] filesclient` summary; it ends
//! with 255 if a test failed.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use kaal_test_harness::{Suite, check};
use protocol::files::{
    BAD_NAME, BAD_REQUEST, FAILED, FileError, FileReply, FileRequest, FilesClient, LIST, NOT_FOUND,
    OK, READ, REMOVE, WRITE,
};

mod grants {
    include!(concat!(env!("OUT_DIR"), "/filesclient-grants.rs"));
}

type Result<T> = core::result::Result<T, String>;

/// The file that says which boot wrote the disk last.
const BOOT_FILE: &str = "BOOT.TXT";
/// The file a boot leaves for the next one.
const KEEP_FILE: &str = "KEEP.BIN";
/// Its size: several chunks and a partial one.
const KEEP_BYTES: usize = 3000;

/// `bytes` pseudo-random bytes determined by `tag`.
fn pattern(tag: u64, bytes: usize) -> Vec<u8> {
    let mut state = tag | 1;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn read_all(files: &mut FilesClient, name: &str) -> core::result::Result<Vec<u8>, FileError> {
    let mut data = Vec::new();
    let size = files.read(name, |chunk| data.extend_from_slice(chunk))?;
    if size != data.len() as u64 {
        return Err(FileError::Failed(format!(
            "read {} bytes, the size is {size}",
            data.len()
        )));
    }
    Ok(data)
}

fn listing(files: &mut FilesClient) -> Result<Vec<(String, u64)>> {
    let mut entries = Vec::new();
    files
        .list(|name, size| entries.push((name.to_string(), size)))
        .map_err(|e| format!("list: {e}"))?;
    Ok(entries)
}

/// Boot 1: the disk holds no FAT volume.
fn no_file_system(files: &mut FilesClient, first: &FileError) -> Result<()> {
    let message = first.to_string();
    check!(
        message.starts_with("no FAT file system on the disk: ") && message.len() > 32,
        "the error does not name the problem: {message}"
    );
    kaal_user::println!("[filesclient] {message}");
    let results = [
        ("read", files.read("HELLO.TXT", |_| {}).map(drop)),
        ("write", files.write("HELLO.TXT", b"hello\n")),
        ("remove", files.remove("HELLO.TXT")),
        ("list", files.list(|_, _| {})),
    ];
    for (what, result) in results {
        check!(
            matches!(&result, Err(FileError::NoFileSystem(_))),
            "{what} on a disk without FAT: {result:?}"
        );
    }
    Ok(())
}

/// Ids of the requests [`raw`] sends: far from the client's own (1, 2, ...).
static RAW_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1 << 62);

/// Sends a request built field by field, as a hostile client could write it into the
/// ring: `name` as raw bytes (cut to the field), `length` whatever the data holds.
fn raw(
    files: &mut FilesClient,
    op: u32,
    name: &[u8],
    offset: u64,
    length: u32,
) -> Result<FileReply> {
    let id = RAW_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let mut request = FileRequest::new(id, op, "", offset).ok_or("no request")?;
    let n = name.len().min(request.name.len());
    request.name[..n].copy_from_slice(&name[..n]);
    request.length = length;
    request.data.fill(b'x');
    files
        .request(request)
        .map_err(|e| format!("op {op} on {name:?}: {e}"))
}

/// One garbage request: what it is, operation, name, offset, length, expected status.
type Garbage<'a> = (&'a str, u32, &'a [u8], u64, u32, u32);

/// Requests no honest client sends, each answered with its error and changing nothing.
fn garbage_requests(files: &mut FilesClient) -> Result<()> {
    let cases: [Garbage<'_>; 14] = [
        ("an unknown operation", 99, b"X.TXT", 0, 0, BAD_REQUEST),
        (
            "a write longer than a chunk",
            WRITE,
            b"X.TXT",
            0,
            4096,
            BAD_REQUEST,
        ),
        (
            "a write past 4 GiB",
            WRITE,
            b"X.TXT",
            u64::from(u32::MAX) - 10,
            100,
            BAD_REQUEST,
        ),
        (
            "a read past 4 GiB",
            READ,
            b"X.TXT",
            u64::MAX,
            0,
            BAD_REQUEST,
        ),
        // U+00E5 would be stored as 0xE5, the first byte of a deleted entry.
        (
            "a Latin-1 name",
            WRITE,
            "\u{e5}.TXT".as_bytes(),
            0,
            1,
            BAD_NAME,
        ),
        (
            "a name that is not UTF-8",
            WRITE,
            &[0xff, 0xfe, b'A'],
            0,
            1,
            BAD_NAME,
        ),
        ("a name with a slash", WRITE, b"A/B", 0, 1, BAD_NAME),
        (
            "a name with a control character",
            WRITE,
            b"A\x05B",
            0,
            1,
            BAD_NAME,
        ),
        ("the parent directory", REMOVE, b"..", 0, 0, BAD_NAME),
        (
            "a name filling the field",
            WRITE,
            &[b'A'; 40],
            0,
            1,
            BAD_NAME,
        ),
        // The harness's image has the volume label `KAAL` in its root directory.
        ("the volume label, written", WRITE, b"KAAL", 0, 1, FAILED),
        ("the volume label, read", READ, b"KAAL", 0, 0, NOT_FOUND),
        (
            "the volume label, removed",
            REMOVE,
            b"kaal",
            0,
            0,
            NOT_FOUND,
        ),
        ("a listing from a huge offset", LIST, b"", u64::MAX, 0, OK),
    ];
    for (what, op, name, offset, length, status) in cases {
        let reply = raw(files, op, name, offset, length)?;
        check!(
            reply.status == status && (status != OK || reply.length == 0),
            "{what}: status {}, length {}, {:?} (expected status {status})",
            reply.status,
            reply.length,
            reply.message()
        );
    }
    check!(
        listing(files)?.is_empty(),
        "the garbage requests left files: {:?}",
        listing(files)?
    );
    Ok(())
}

/// Boot 2: a fresh FAT volume.
fn fresh(files: &mut FilesClient) -> Result<()> {
    check!(listing(files)?.is_empty(), "the fresh volume is not empty");
    files
        .write("hello.txt", b"hello from KaaL\n")
        .map_err(|e| format!("write hello.txt: {e}"))?;
    let read = read_all(files, "HELLO.TXT").map_err(|e| format!("read HELLO.TXT: {e}"))?;
    check!(read == b"hello from KaaL\n", "HELLO.TXT reads {read:?}");

    let big = pattern(0xb16, 5000);
    files
        .write("BIG.BIN", &big)
        .map_err(|e| format!("write BIG.BIN: {e}"))?;
    check!(
        read_all(files, "big.bin").map_err(|e| format!("read big.bin: {e}"))? == big,
        "BIG.BIN does not read back what was written"
    );
    // Overwriting truncates.
    files
        .write("BIG.BIN", b"short")
        .map_err(|e| format!("overwrite BIG.BIN: {e}"))?;
    check!(
        read_all(files, "BIG.BIN").map_err(|e| format!("read BIG.BIN: {e}"))? == b"short",
        "the overwritten BIG.BIN is not just the new data"
    );
    files
        .write("EMPTY", b"")
        .map_err(|e| format!("write EMPTY: {e}"))?;
    check!(
        read_all(files, "EMPTY")
            .map_err(|e| format!("read EMPTY: {e}"))?
            .is_empty(),
        "EMPTY is not empty"
    );

    let mut entries = listing(files)?;
    entries.sort();
    let expected = [("BIG.BIN", 5), ("EMPTY", 0), ("HELLO.TXT", 16)];
    check!(
        entries.len() == expected.len()
            && entries
                .iter()
                .zip(expected)
                .all(|((name, size), (n, s))| name == n && *size == s),
        "the listing is {entries:?}"
    );

    files
        .remove("BIG.BIN")
        .map_err(|e| format!("remove BIG.BIN: {e}"))?;
    let gone = files.read("BIG.BIN", |_| {});
    check!(
        gone == Err(FileError::NotFound),
        "BIG.BIN after its removal: {gone:?}"
    );
    let again = files.remove("BIG.BIN");
    check!(
        again == Err(FileError::NotFound),
        "removing BIG.BIN twice: {again:?}"
    );
    for bad in ["much-too-long-a-name.text", "A.B.C", "", ".."] {
        let result = files.write(bad, b"x");
        check!(
            result == Err(FileError::InvalidName),
            "writing {bad:?}: {result:?}"
        );
    }
    check!(
        listing(files)?.len() == 2,
        "the listing after the removal has not 2 files"
    );
    // Many files: the listing takes several replies.
    for i in 0..30 {
        files
            .write(&format!("F{i}.TXT"), format!("file {i}\n").as_bytes())
            .map_err(|e| format!("write F{i}.TXT: {e}"))?;
    }
    let entries = listing(files)?;
    check!(
        entries.len() == 32,
        "{} files listed, 32 expected",
        entries.len()
    );
    for i in 0..30 {
        let name = format!("F{i}.TXT");
        check!(
            entries
                .iter()
                .any(|(n, size)| *n == name && *size == format!("file {i}\n").len() as u64),
            "{name} is not listed with its size"
        );
        files
            .remove(&name)
            .map_err(|e| format!("remove {name}: {e}"))?;
    }
    kaal_user::println!("[filesclient] boot 2: wrote, read back, listed and removed files");
    Ok(())
}

/// Leaves `KEEP.BIN` and `BOOT.TXT` for the next boot.
fn leave(files: &mut FilesClient, boot: u64) -> Result<()> {
    files
        .write(KEEP_FILE, &pattern(boot, KEEP_BYTES))
        .map_err(|e| format!("write {KEEP_FILE}: {e}"))?;
    files
        .write(BOOT_FILE, format!("{boot}\n").as_bytes())
        .map_err(|e| format!("write {BOOT_FILE}: {e}"))?;
    Ok(())
}

kaal_user::component!(main);

fn main(_argument: u64) -> i32 {
    let mut suite = Suite::new("filesclient");
    let files = RefCell::new(None::<FilesClient>);
    suite.run("client_reaches_the_file_server", || {
        let startup = kaal_user::startup().map_err(|e| format!("no start-up record: {e}"))?;
        let grants = grants::Grants::new(startup);
        let requests = grants
            .files_requests()
            .map_err(|e| format!("files-requests: {e}"))?;
        let replies = grants
            .files_replies()
            .map_err(|e| format!("files-replies: {e}"))?;
        *files.borrow_mut() = Some(FilesClient::new(requests, replies));
        Ok(())
    });
    let Some(mut files) = files.into_inner() else {
        suite.report();
        return 255;
    };
    let boot = Cell::new(0u64);
    // What the disk holds decides the tests.
    match files.list(|_, _| {}) {
        Err(error @ FileError::NoFileSystem(_)) => {
            suite.run("a_disk_without_fat_gives_a_named_error", || {
                no_file_system(&mut files, &error)
            });
            boot.set(1);
        }
        Err(error) => {
            suite.run("the_disk_can_be_listed", || Err(format!("list: {error}")));
        }
        Ok(()) => match read_all(&mut files, BOOT_FILE) {
            Err(FileError::NotFound) => {
                suite.run("garbage_requests_get_errors", || {
                    garbage_requests(&mut files)
                });
                suite.run("files_written_read_back_listed_and_removed", || {
                    fresh(&mut files)
                });
                suite.run("files_left_for_the_next_boot", || leave(&mut files, 2));
                boot.set(2);
            }
            Err(error) => {
                suite.run("boot_file_reads", || Err(format!("{BOOT_FILE}: {error}")));
            }
            Ok(text) => {
                suite.run("files_of_the_previous_boot_are_on_the_disk", || {
                    let previous: u64 = core::str::from_utf8(&text)
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .ok_or(format!("{BOOT_FILE} holds {text:?}"))?;
                    let kept = read_all(&mut files, KEEP_FILE)
                        .map_err(|e| format!("read {KEEP_FILE}: {e}"))?;
                    check!(
                        kept == pattern(previous, KEEP_BYTES),
                        "{KEEP_FILE} does not hold what boot {previous} wrote"
                    );
                    let entries = listing(&mut files)?;
                    check!(
                        entries
                            .iter()
                            .any(|(n, s)| n == KEEP_FILE && *s == KEEP_BYTES as u64),
                        "{KEEP_FILE} is not listed with its size: {entries:?}"
                    );
                    kaal_user::println!(
                        "[filesclient] boot {}: the files of boot {previous} are on the disk",
                        previous + 1
                    );
                    leave(&mut files, previous + 1)?;
                    boot.set(previous + 1);
                    Ok(())
                });
            }
        },
    }
    let boot = boot.get();
    if suite.report() && boot > 0 {
        boot.min(254) as i32
    } else {
        255
    }
}
