//! Processes built by the root task from untyped memory: their own address space, CSpace
//! and thread, loaded from the component archive, talking to the root and to each other
//! through endpoints, notifications and shared frames.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use kaal_abi::{Error, rights};
use kaal_test_harness::{Suite, check};
use kaal_user::BootInfo;
use kaal_user::cap::{self, Cap, Endpoint, Frame4K, Notification, Untyped};
use kaal_user::ipc::Message;
use kaal_user::memory::MappedFrame;
use kaal_user::process::{FIRST_FREE_SLOT, Process, ProcessError};
use kaal_user::sys::{self, ThreadState};

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
