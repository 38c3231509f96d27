//! Processes built by the root task from untyped memory: their own address space, CSpace
//! and thread, loaded from the component archive, talking to the root and to each other
//! through endpoints, notifications and shared frames.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kaal_abi::{Error, layout, rights};
use kaal_test_harness::{Suite, check};
use kaal_user::BootInfo;
use kaal_user::bootinfo::loader::{LoadError, SegmentProblem};
use kaal_user::cap::{self, Cap, Endpoint, Frame4K, Notification, Untyped};
use kaal_user::ipc::Message;
use kaal_user::memory::MappedFrame;
use kaal_user::process::{FIRST_FREE_SLOT, MAX_IMAGE_BYTES, Process, ProcessError};
use kaal_user::sys::{self, ThreadState};

/// Offsets in an ELF64 program header.
const P_FLAGS: usize = 4;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;
const PF_X: u64 = 1;
/// Where the broker's start-up record goes in every component.
const STARTUP_VADDR: u64 = kaal_user::bootinfo::startup::STARTUP_VADDR;

kaal_user::entry!(main);

const ROUND_TRIPS: u64 = 10_000;
const STOP: u64 = 0xdead;

fn err(error: Error) -> String {
    format!("{error:?}")
}

fn perr(error: ProcessError) -> String {
    format!("{error:?}")
}

fn wait_for(tcb: Cap<kaal_user::cap::Tcb>) -> ThreadState {
    loop {
        match tcb.status() {
            Ok(ThreadState::Alive) => sys::yield_now(),
            Ok(state) => return state,
            Err(_) => return ThreadState::Faulted,
        }
    }
}

/// A component image whose program headers can be patched.
struct Image {
    bytes: Vec<u8>,
    /// Program-header indices of the text (RX), read-only data (R) and data (RW)
    /// segments.
    text: usize,
    rodata: usize,
    data: usize,
}

impl Image {
    fn new(bytes: &[u8]) -> Result<Self, String> {
        let read = |at: usize, size: usize| -> Result<u64, String> {
            let mut word = [0u8; 8];
            word[..size].copy_from_slice(bytes.get(at..at + size).ok_or("short ELF file")?);
            Ok(u64::from_le_bytes(word))
        };
        let (phoff, phentsize, phnum) = (read(32, 8)?, read(54, 2)?, read(56, 2)?);
        let mut image = Self {
            bytes: Vec::new(),
            text: usize::MAX,
            rodata: usize::MAX,
            data: usize::MAX,
        };
        // Only the loaded part is kept (the file with its debug sections would not fit
        // this task's heap), without section headers.
        let mut end = (phoff + phentsize * phnum) as usize;
        for index in 0..phnum as usize {
            let at = (phoff + phentsize * index as u64) as usize;
            if read(at, 4)? != 1 {
                continue; // not PT_LOAD
            }
            end = end.max((read(at + 8, 8)? + read(at + P_FILESZ, 8)?) as usize);
            match read(at + P_FLAGS, 4)? {
                5 => image.text = index,
                4 => image.rodata = index,
                6 => image.data = index,
                flags => return Err(format!("segment {index} has flags {flags}")),
            }
        }
        check!(
            image.text != usize::MAX && image.rodata != usize::MAX && image.data != usize::MAX,
            "expected text, read-only data and data segments"
        );
        image.bytes = bytes.get(..end).ok_or("segments past the end")?.into();
        // e_shoff, e_shnum, e_shstrndx: no section headers.
        image.bytes[40..48].fill(0);
        image.bytes[60..64].fill(0);
        Ok(image)
    }

    fn field_at(&self, index: usize, field: usize) -> usize {
        let phoff = u64::from_le_bytes(self.bytes[32..40].try_into().unwrap_or_default());
        phoff as usize + 56 * index + field
    }

    fn get(&self, index: usize, field: usize) -> u64 {
        let at = self.field_at(index, field);
        let size = if field == P_FLAGS { 4 } else { 8 };
        let mut word = [0u8; 8];
        word[..size].copy_from_slice(&self.bytes[at..at + size]);
        u64::from_le_bytes(word)
    }

    /// A copy with one program-header field of segment `index` set to `value`.
    fn with(&self, index: usize, field: usize, value: u64) -> Self {
        let mut copy = Self {
            bytes: self.bytes.clone(),
            ..*self
        };
        let at = self.field_at(index, field);
        let size = if field == P_FLAGS { 4 } else { 8 };
        copy.bytes[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
        copy
    }
}

/// Builds a process from `image` out of a fresh untyped block of `2^bits` bytes and
/// expects it to fail with an error for which `expected` holds, leaving nothing behind:
/// as many free slots as before, and an untyped block without children.
fn refused(
    untyped: Cap<Untyped>,
    image: &[u8],
    bits: u8,
    what: &str,
    expected: impl Fn(&ProcessError) -> bool,
) -> Result<(), String> {
    let block: Cap<Untyped> = untyped.retype_one(bits).map_err(err)?;
    let free = cap::available_slots();
    let result = Process::create(block, image, 6);
    let after = cap::available_slots();
    let left = block.revoke().map_err(err)?;
    let outcome = match result {
        Ok(process) => {
            process.release_slots();
            Err(format!("{what}: the image was accepted"))
        }
        Err(error) if !expected(&error) => Err(format!("{what}: unexpected error {error:?}")),
        Err(_) if after != free => Err(format!(
            "{what}: {after} slots free after the failed build, {free} before"
        )),
        Err(_) if left != 0 => Err(format!(
            "{what}: the failed build left {left} capabilities in its untyped memory"
        )),
        Err(_) => Ok(()),
    };
    let slot = block.slot();
    block.delete().map_err(err)?;
    cap::free_slot(slot).map_err(err)?;
    outcome
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("processes");
    let untyped: Cap<Untyped> = cap::largest_ram_untyped(boot).expect("RAM untyped");
    let archive = kaal_user::components().expect("component archive");

    suite.run("archive_holds_the_components", || {
        for name in ["root-task", "echo-server", "signaller", "writer"] {
            check!(archive.get(name).is_some(), "no component {name}");
        }
        Ok(())
    });

    suite.run(
        "a_build_that_runs_out_of_memory_leaves_nothing_behind",
        || {
            let writer = archive.get("writer").ok_or("no writer")?;
            // Enough for the CSpace, thread and first segments, not for the whole image.
            refused(untyped, writer, 17, "out of memory midway", |error| {
                *error == ProcessError::Kernel(Error::NotEnoughMemory)
            })
        },
    );

    suite.run(
        "malformed_images_are_refused_and_leave_nothing_behind",
        || {
            let writer = Image::new(archive.get("writer").ok_or("no writer")?)?;
            let (text, rodata, data) = (writer.text, writer.rodata, writer.data);
            let segment = |index: usize, problem| {
                ProcessError::BadImage(LoadError::Segment {
                    index: index as u16,
                    problem,
                })
            };
            let (text_size, rodata_size) = (writer.get(text, P_MEMSZ), writer.get(rodata, P_MEMSZ));
            let data_size = writer.get(data, P_MEMSZ);
            let pages = |size: u64| size.next_multiple_of(0x1000);
            let cases = [
                (
                    "file size above memory size",
                    data,
                    P_FILESZ,
                    data_size + 1,
                    segment(
                        data,
                        SegmentProblem::FileLargerThanMemory {
                            file_size: data_size + 1,
                            mem_size: data_size,
                        },
                    ),
                ),
                (
                    "vaddr + filesz overflows",
                    text,
                    P_VADDR,
                    u64::MAX - 0x1000,
                    segment(
                        text,
                        SegmentProblem::AddressOverflow {
                            vaddr: u64::MAX - 0x1000,
                            size: text_size,
                        },
                    ),
                ),
                (
                    "overlapping segments",
                    rodata,
                    P_VADDR,
                    writer.get(text, P_VADDR) + 0x1000,
                    segment(rodata, SegmentProblem::Overlap { other: text as u16 }),
                ),
                (
                    "writable and executable segment",
                    data,
                    P_FLAGS,
                    writer.get(data, P_FLAGS) | PF_X,
                    segment(data, SegmentProblem::WriteAndExecute),
                ),
                (
                    "segment over the start-up record",
                    rodata,
                    P_VADDR,
                    STARTUP_VADDR,
                    segment(
                        rodata,
                        SegmentProblem::Reserved {
                            window: "start-up record",
                            vaddr: STARTUP_VADDR,
                            size: rodata_size,
                        },
                    ),
                ),
                (
                    "segment over the stack",
                    rodata,
                    P_VADDR,
                    layout::ROOT_STACK_TOP - 0x2000,
                    segment(
                        rodata,
                        SegmentProblem::Reserved {
                            window: "stack",
                            vaddr: layout::ROOT_STACK_TOP - 0x2000,
                            size: rodata_size,
                        },
                    ),
                ),
                (
                    "128 MiB of memory",
                    data,
                    P_MEMSZ,
                    128 << 20,
                    ProcessError::BadImage(LoadError::TooLarge {
                        bytes: pages(text_size) + pages(rodata_size) + (128 << 20),
                        limit: MAX_IMAGE_BYTES,
                    }),
                ),
            ];
            let mut failures = Vec::new();
            for (what, index, field, value, expected) in cases {
                let image = writer.with(index, field, value);
                if let Err(failure) =
                    refused(untyped, &image.bytes, 22, what, |error| *error == expected)
                {
                    failures.push(failure);
                }
            }
            check!(failures.is_empty(), "{}", failures.join("; "));
            Ok(())
        },
    );

    suite.run(
        "second_process_serves_10000_badged_calls_and_a_third_signals_it",
        || {
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
            let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
            let server = Process::create(
                untyped,
                archive.get("echo-server").ok_or("no echo-server")?,
                6,
            )
            .map_err(perr)?;
            endpoint
                .copy_to(server.cnode(), FIRST_FREE_SLOT, rights::READ)
                .map_err(err)?;
            notification
                .copy_to(server.cnode(), FIRST_FREE_SLOT + 1, rights::READ)
                .map_err(err)?;
            server.start(0, 128).map_err(err)?;

            let client = endpoint
                .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 0x99)
                .map_err(err)?;
            for i in 0..ROUND_TRIPS {
                let reply = client.call(&Message::new(7, [i, 0, 0, 0])).map_err(err)?;
                check!(
                    reply.words[0] == i + 1 && reply.words[1] == 0x99 && reply.words[2] == i + 1,
                    "round trip {i}: {:?}",
                    reply.words
                );
            }
            let last = client.call(&Message::new(STOP, [0; 4])).map_err(err)?;
            check!(
                last.words[0] == ROUND_TRIPS,
                "server counted {}",
                last.words[0]
            );

            // The server now waits on its notification; a third process signals it.
            let signaller =
                Process::create(untyped, archive.get("signaller").ok_or("no signaller")?, 6)
                    .map_err(perr)?;
            notification
                .mint_to(signaller.cnode(), FIRST_FREE_SLOT, rights::WRITE, 0x5)
                .map_err(err)?;
            signaller.start(0, 128).map_err(err)?;
            check!(
                wait_for(signaller.tcb()) == ThreadState::Exited(0),
                "signaller {:?}",
                signaller.tcb().status()
            );
            check!(
                wait_for(server.tcb()) == ThreadState::Exited(0x5),
                "server ended {:?}",
                server.tcb().status()
            );
            Ok(())
        },
    );

    suite.run("a_frame_mapped_in_two_address_spaces_is_shared", || {
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        let mine = MappedFrame::new(frame, 0x20_0000_0000, untyped).map_err(err)?;
        check!(mine.read(0) == Some(0), "fresh frame not zero");
        let writer =
            Process::create(untyped, archive.get("writer").ok_or("no writer")?, 6).map_err(perr)?;
        // The writer gets its own capability to the same frame, and memory for its tables.
        frame
            .copy_to(
                writer.cnode(),
                FIRST_FREE_SLOT,
                rights::READ | rights::WRITE,
            )
            .map_err(err)?;
        let tables: Cap<Untyped> = untyped.retype_one(16).map_err(err)?;
        tables
            .move_to_cnode(writer.cnode(), FIRST_FREE_SLOT + 1)
            .map_err(err)?;
        writer.start(0x7000_0000, 128).map_err(err)?;
        check!(
            wait_for(writer.tcb()) == ThreadState::Exited(0),
            "writer {:?}",
            writer.tcb().status()
        );
        check!(
            mine.read(0) == Some(0xc0ffee) && mine.read(511) == Some(0xfeed),
            "pattern not seen: {:?} {:?}",
            mine.read(0),
            mine.read(511)
        );
        // Read-only sharing: a copy without the write right cannot be mapped writable.
        let read_only = frame
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        let space = writer.address_space();
        check!(
            read_only.map(space, 0x7100_0000, rights::READ | rights::WRITE, 0)
                == Err(Error::MissingRights),
            "writable map of a read-only frame"
        );
        Ok(())
    });

    suite.finish()
}
