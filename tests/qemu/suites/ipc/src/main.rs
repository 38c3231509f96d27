//! Endpoints and notifications between threads: call/reply with badges, send/receive,
//! non-blocking variants, rights, bound notifications and deletion of waited-on objects.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_abi::{Error, MessageInfo, rights};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, Cap, Endpoint, Notification, Untyped};
use kaal_user::ipc::{self, Message};
use kaal_user::sys::{self, ThreadState};
use kaal_user::{BootInfo, thread};

kaal_user::entry!(main);

const PRIORITY: u8 = 128;
const ROUND_TRIPS: u64 = 10_000;
const STOP: u64 = 0xdead;

fn err(error: Error) -> String {
    format!("{error:?}")
}

/// Echo server: replies to every call with `words[0] + 1` and the caller's badge.
fn echo_server(endpoint: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(endpoint as u64);
    let mut received = match endpoint.recv() {
        Ok(received) => received,
        Err(_) => return 1,
    };
    let mut served = 0;
    loop {
        if received.message.info.label == STOP {
            let _ = ipc::reply(&Message::new(0, [served, 0, 0, 0]));
            return 0;
        }
        served += 1;
        let words = received.message.words;
        let reply = Message::new(1, [words[0] + 1, received.badge, words[2], words[3]]);
        received = match endpoint.reply_recv(&reply) {
            Ok(received) => received,
            Err(_) => return 2,
        };
    }
}

static SEEN: AtomicU64 = AtomicU64::new(0);

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("ipc");
    let untyped: Cap<Untyped> = cap::largest_ram_untyped(boot).expect("RAM untyped");

    suite.run("call_reply_round_trips_with_badges", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let server = thread::spawn(echo_server, endpoint.slot() as usize, PRIORITY).map_err(err)?;
        let client = endpoint
            .mint(
                cap::allocate_slot().map_err(err)?,
                rights::WRITE | rights::GRANT,
                0x77,
            )
            .map_err(err)?;
        for i in 0..ROUND_TRIPS {
            let reply = client
                .call(&Message::new(5, [i, 0, i ^ 0xff, 42]))
                .map_err(err)?;
            check!(
                reply.words == [i + 1, 0x77, i ^ 0xff, 42],
                "round trip {i}: reply {:?}",
                reply.words
            );
            check!(reply.info.label == 1, "label {}", reply.info.label);
        }
        let last = client.call(&Message::new(STOP, [0; 4])).map_err(err)?;
        check!(
            last.words[0] == ROUND_TRIPS,
            "server counted {}",
            last.words[0]
        );
        check!(
            server.join() == ThreadState::Exited(0),
            "server ended {:?}",
            server.state()
        );
        Ok(())
    });

    suite.run("send_and_receive_carry_badges", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let receiver = thread::spawn(
            |slot| {
                let endpoint = Cap::<Endpoint>::from_slot(slot as u64);
                let mut sum = 0;
                for _ in 0..2 {
                    match endpoint.recv() {
                        Ok(r) => sum += r.badge * 1000 + r.message.words[0],
                        Err(_) => return u64::MAX,
                    }
                }
                sum
            },
            endpoint.slot() as usize,
            PRIORITY,
        )
        .map_err(err)?;
        let a = endpoint
            .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 1)
            .map_err(err)?;
        let b = endpoint
            .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 2)
            .map_err(err)?;
        a.send(&Message::new(0, [10, 0, 0, 0])).map_err(err)?;
        b.send(&Message::new(0, [20, 0, 0, 0])).map_err(err)?;
        check!(
            receiver.join() == ThreadState::Exited(1010 + 2020),
            "receiver got {:?}",
            receiver.state()
        );
        Ok(())
    });

    suite.run("non_blocking_calls_would_block", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        check!(
            endpoint.nb_send(&Message::default()) == Err(Error::WouldBlock),
            "nb_send"
        );
        check!(
            endpoint.nb_recv().err() == Some(Error::WouldBlock),
            "nb_recv"
        );
        Ok(())
    });

    suite.run("rights_are_enforced", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let read_only = endpoint
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        let write_only = endpoint
            .copy(cap::allocate_slot().map_err(err)?, rights::WRITE)
            .map_err(err)?;
        check!(
            read_only.nb_send(&Message::default()) == Err(Error::MissingRights),
            "send without write"
        );
        check!(
            read_only.call(&Message::default()).err() == Some(Error::MissingRights),
            "call without write"
        );
        check!(
            write_only.nb_recv().err() == Some(Error::MissingRights),
            "recv without read"
        );
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        let n_read = notification
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        let n_write = notification
            .copy(cap::allocate_slot().map_err(err)?, rights::WRITE)
            .map_err(err)?;
        check!(
            n_read.signal() == Err(Error::MissingRights),
            "signal without write"
        );
        check!(
            n_write.poll() == Err(Error::MissingRights),
            "poll without read"
        );
        // Wrong object types.
        let as_endpoint = Cap::<Endpoint>::from_slot(notification.slot());
        check!(
            as_endpoint.nb_recv().err() == Some(Error::WrongObjectType),
            "recv on a notification"
        );
        check!(
            Cap::<Endpoint>::from_slot(4000).nb_recv().err() == Some(Error::InvalidCapability),
            "recv on an empty slot"
        );
        Ok(())
    });

    suite.run("reply_needs_a_caller", || {
        check!(
            ipc::reply(&Message::default()) == Err(Error::InvalidCapability),
            "reply with no caller"
        );
        Ok(())
    });

    suite.run("notifications_accumulate_badges", || {
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        let one = notification
            .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 0b01)
            .map_err(err)?;
        let two = notification
            .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 0b10)
            .map_err(err)?;
        check!(notification.poll() == Ok(0), "fresh notification not clear");
        one.signal().map_err(err)?;
        two.signal().map_err(err)?;
        check!(notification.wait() == Ok(0b11), "word after two signals");
        check!(notification.poll() == Ok(0), "wait did not clear the word");
        notification.signal().map_err(err)?;
        check!(
            notification.poll() == Ok(1),
            "an unbadged signal sets bit 0"
        );
        Ok(())
    });

    suite.run("bound_notification_wakes_a_receiver", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        let server = thread::spawn(
            |slot| {
                let endpoint = Cap::<Endpoint>::from_slot(slot as u64);
                match endpoint.recv() {
                    Ok(r) if r.message.info.notification => r.badge,
                    _ => 0,
                }
            },
            endpoint.slot() as usize,
            PRIORITY,
        )
        .map_err(err)?;
        server.tcb().bind_notification(notification).map_err(err)?;
        check!(
            server.tcb().bind_notification(notification) == Err(Error::IllegalOperation),
            "double bind"
        );
        sys::yield_now(); // the server blocks in recv
        let badged = notification
            .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 0x40)
            .map_err(err)?;
        badged.signal().map_err(err)?;
        check!(
            server.join() == ThreadState::Exited(0x40),
            "server {:?}",
            server.state()
        );
        Ok(())
    });

    suite.run(
        "deleting_an_endpoint_wakes_its_waiters_with_an_error",
        || {
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
            let waiter = thread::spawn(
                |slot| match Cap::<Endpoint>::from_slot(slot as u64).recv() {
                    Err(Error::InvalidCapability) => 0,
                    other => {
                        if other.is_ok() {
                            1
                        } else {
                            2
                        }
                    }
                },
                endpoint.slot() as usize,
                PRIORITY,
            )
            .map_err(err)?;
            sys::yield_now(); // the waiter blocks in recv
            endpoint.delete().map_err(err)?;
            check!(
                waiter.join() == ThreadState::Exited(0),
                "waiter {:?}",
                waiter.state()
            );
            Ok(())
        },
    );

    suite.run("suspend_cancels_a_blocked_receive", || {
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let waiter = thread::spawn(
            |slot| {
                Cap::<Endpoint>::from_slot(slot as u64)
                    .recv()
                    .map_or(2, |_| 1)
            },
            endpoint.slot() as usize,
            PRIORITY,
        )
        .map_err(err)?;
        sys::yield_now();
        waiter.tcb().suspend().map_err(err)?;
        check!(
            waiter.state() == ThreadState::Inactive,
            "suspended thread {:?}",
            waiter.state()
        );
        // Nobody waits any more: a non-blocking send finds no receiver.
        check!(
            endpoint.nb_send(&Message::default()) == Err(Error::WouldBlock),
            "endpoint still has a receiver"
        );
        let _ = MessageInfo::default();
        Ok(())
    });

    // Last: it lowers this thread's priority for good (a thread can never raise its
    // priority above what it has).
    suite.run("signal_wakes_a_higher_priority_waiter_first", || {
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        SEEN.store(0, Ordering::SeqCst);
        let waiter = thread::spawn(
            |slot| {
                let word = Cap::<Notification>::from_slot(slot as u64)
                    .wait()
                    .unwrap_or(0);
                SEEN.store(word, Ordering::SeqCst);
                0
            },
            notification.slot() as usize,
            PRIORITY,
        )
        .map_err(err)?;
        let signaller = thread::spawn(
            |slot| {
                let _ = Cap::<Notification>::from_slot(slot as u64).signal();
                // The waiter has the higher priority: it ran before `signal` returned.
                if SEEN.load(Ordering::SeqCst) == 1 {
                    0
                } else {
                    9
                }
            },
            notification.slot() as usize,
            PRIORITY - 8,
        )
        .map_err(err)?;
        // Step below both: the waiter blocks, then the signaller runs.
        Cap::<kaal_user::cap::Tcb>::from_slot(kaal_abi::slots::ROOT_TCB)
            .set_priority(PRIORITY - 16)
            .map_err(err)?;
        check!(
            waiter.join() == ThreadState::Exited(0),
            "waiter {:?}",
            waiter.state()
        );
        check!(
            signaller.join() == ThreadState::Exited(0),
            "signaller saw the waiter late: {:?}",
            signaller.state()
        );
        let raise =
            Cap::<kaal_user::cap::Tcb>::from_slot(kaal_abi::slots::ROOT_TCB).set_priority(PRIORITY);
        check!(
            raise == Err(Error::InvalidArgument),
            "raised own priority: {raise:?}"
        );
        Ok(())
    });

    suite.finish()
}
