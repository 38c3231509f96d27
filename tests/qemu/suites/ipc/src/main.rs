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
use kaal_user::cap::{self, Cap, Endpoint, Frame4K, Notification, Tcb, Untyped};
use kaal_user::ipc::{self, Message};
use kaal_user::memory::MappedFrame;
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
static SLOT: AtomicU64 = AtomicU64::new(0);
static SECOND: AtomicU64 = AtomicU64::new(0);
static SERVER_WAITING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
const MY_IPC_BUFFER: u64 = 0x30_0000_0000;
const THEIR_IPC_BUFFER: u64 = 0x30_0000_1000;
const SEND_CAP_WORD: usize = 64;
const RECEIVE_SLOT_WORD: usize = 65;

/// Serves calls for the IPC-buffer test: a long message (more than four message
/// registers) comes back with the same length and its buffer words incremented; a short
/// one is answered with word 0 = the number of capabilities that arrived with it.
fn echo_long(_: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(SLOT.load(Ordering::SeqCst));
    let Ok(mut received) = endpoint.recv() else {
        return 1;
    };
    loop {
        let info = received.message.info;
        if info.label == STOP {
            let _ = ipc::reply(&Message::default());
            return 0;
        }
        let reply = if info.length > 4 {
            // The long words arrived in this thread's IPC buffer: bump them in place and
            // reply with the same length, so they travel back the same way.
            bump_long_words(info.length as usize);
            Message {
                info: MessageInfo::new(0, info.length),
                words: received.message.words,
            }
        } else {
            Message::new(0, [u64::from(info.caps), 0, 0, 0])
        };
        received = match endpoint.reply_recv(&reply) {
            Ok(r) => r,
            Err(_) => return 2,
        };
    }
}

fn bump_long_words(length: usize) {
    // The test thread mapped this thread's IPC buffer at THEIR_IPC_BUFFER too; this
    // thread shares the address space, so it uses that view.
    if let Some(view) = THEIR_VIEW.get() {
        for i in 4..length {
            let value = view.read(i).unwrap_or(0);
            view.write(i, value + 1);
        }
    }
}

static THEIR_VIEW: spin::Once<MappedFrame> = spin::Once::new();

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

    suite.run(
        "a_call_whose_receiver_ends_without_replying_is_aborted",
        || {
            // The server receives the call and exits without replying: the caller must get
            // `Aborted`, not wait forever.
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
            let server = thread::spawn(
                |slot| {
                    let endpoint = Cap::<Endpoint>::from_slot(slot as u64);
                    match endpoint.recv() {
                        Ok(_) => 7,
                        Err(_) => 1,
                    }
                },
                endpoint.slot() as usize,
                PRIORITY,
            )
            .map_err(err)?;
            sys::yield_now(); // the server blocks in recv
            let answer = endpoint.call(&Message::new(1, [0; 4]));
            check!(answer == Err(Error::Aborted), "call answered {answer:?}");
            check!(
                server.join() == ThreadState::Exited(7),
                "server did not exit"
            );
            Ok(())
        },
    );

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
        // A copy that may only signal cannot be bound: binding receives the signals.
        let signal_only = notification
            .copy(cap::allocate_slot().map_err(err)?, rights::WRITE)
            .map_err(err)?;
        check!(
            server.tcb().bind_notification(signal_only) == Err(Error::MissingRights),
            "bind through a signal-only copy"
        );
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

    suite.run("a_signal_to_a_bound_server_keeps_its_reply_right", || {
        let requests: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let other: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        SLOT.store(requests.slot(), Ordering::SeqCst);
        SECOND.store(other.slot(), Ordering::SeqCst);
        SERVER_WAITING.store(false, Ordering::SeqCst);
        // The server takes a call, then waits elsewhere; a signal to its bound
        // notification wakes it, and it must still be able to answer the caller.
        let server = thread::spawn(
            |_| {
                let requests = Cap::<Endpoint>::from_slot(SLOT.load(Ordering::SeqCst));
                let other = Cap::<Endpoint>::from_slot(SECOND.load(Ordering::SeqCst));
                if requests.recv().is_err() {
                    return 1;
                }
                SERVER_WAITING.store(true, Ordering::SeqCst);
                match other.recv() {
                    Ok(r) if r.message.info.notification => {}
                    _ => return 2,
                }
                if ipc::reply(&Message::new(0, [77, 0, 0, 0])).is_ok() {
                    0
                } else {
                    3
                }
            },
            0,
            PRIORITY,
        )
        .map_err(err)?;
        server.tcb().bind_notification(notification).map_err(err)?;
        let signaller = thread::spawn(
            |slot| {
                while !SERVER_WAITING.load(Ordering::SeqCst) {
                    sys::yield_now();
                }
                sys::yield_now(); // let the server block in its second receive
                Cap::<Notification>::from_slot(slot as u64)
                    .signal()
                    .map_or(1, |()| 0)
            },
            notification.slot() as usize,
            PRIORITY,
        )
        .map_err(err)?;
        let reply = requests.call(&Message::new(1, [0; 4])).map_err(err)?;
        check!(reply.words[0] == 77, "reply {:?}", reply.words);
        check!(
            server.join() == ThreadState::Exited(0),
            "server ended {:?}",
            server.state()
        );
        check!(
            signaller.join() == ThreadState::Exited(0),
            "signaller ended {:?}",
            signaller.state()
        );
        Ok(())
    });

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

    suite.run(
        "long_messages_and_capabilities_travel_through_ipc_buffers",
        || {
            // IPC buffers for this thread and an echo server, both mapped here so this
            // thread can fill and inspect them.
            let mine: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
            let theirs: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
            let my_view = MappedFrame::new(mine, MY_IPC_BUFFER, untyped).map_err(err)?;
            let view = MappedFrame::new(theirs, THEIR_IPC_BUFFER, untyped).map_err(err)?;
            let their_view = THEIR_VIEW.call_once(|| view);
            Cap::<Tcb>::from_slot(kaal_abi::slots::ROOT_TCB)
                .configure(
                    Cap::from_slot(kaal_abi::slots::ROOT_CNODE),
                    Cap::from_slot(kaal_abi::slots::ROOT_ADDRESS_SPACE),
                    Some((mine, MY_IPC_BUFFER)),
                    0,
                )
                .map_err(err)?;
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
            SLOT.store(endpoint.slot(), Ordering::SeqCst);
            let server = thread::spawn_configured(
                echo_long,
                0,
                PRIORITY,
                0,
                Some((theirs, THEIR_IPC_BUFFER)),
            )
            .map_err(err)?;

            // Ten message registers: four in registers, six through the buffers, both ways.
            for i in 4..10 {
                my_view.write(i, 0x100 + i as u64);
            }
            let mut request = Message::new(3, [0, 1, 2, 3]);
            request.info.length = 10;
            let reply = endpoint.call(&request).map_err(err)?;
            check!(
                reply.info.length == 10,
                "reply length {}",
                reply.info.length
            );
            check!(
                reply.words == [0, 1, 2, 3],
                "register words {:?}",
                reply.words
            );
            for i in 4..10 {
                check!(
                    my_view.read(i) == Some(0x100 + i as u64 + 1),
                    "buffer word {i}: {:?}",
                    my_view.read(i)
                );
            }

            // A capability goes with a message only through a capability with the grant right.
            let gift: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
            let landing = cap::allocate_slot().map_err(err)?;
            their_view.write(RECEIVE_SLOT_WORD, landing);
            my_view.write(SEND_CAP_WORD, gift.slot());
            let no_grant = endpoint
                .copy(cap::allocate_slot().map_err(err)?, rights::WRITE)
                .map_err(err)?;
            let mut carrying = Message::new(4, [0; 4]);
            carrying.info.caps = 1;
            let reply = no_grant.call(&carrying).map_err(err)?;
            check!(
                reply.words[0] == 0,
                "capability arrived without the grant right"
            );
            check!(
                cap::identify(landing).err() == Some(Error::InvalidCapability),
                "landing slot filled"
            );
            let reply = endpoint.call(&carrying).map_err(err)?;
            check!(
                reply.words[0] == 1,
                "capability did not arrive with the grant right"
            );
            check!(
                cap::identify(landing).map(|c| c.0) == Ok(kaal_abi::ObjectType::Notification),
                "landing slot {:?}",
                cap::identify(landing)
            );
            // An occupied landing slot means no transfer, not an error.
            let reply = endpoint.call(&carrying).map_err(err)?;
            check!(
                reply.words[0] == 0,
                "capability transferred into an occupied slot"
            );

            let mut stop = Message::new(STOP, [0; 4]);
            stop.info.length = 0;
            endpoint.call(&stop).map_err(err)?;
            check!(
                server.join() == ThreadState::Exited(0),
                "server {:?}",
                server.state()
            );
            Ok(())
        },
    );

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
