//! Runs the README's two-process program, and its child half against a
//! parent that breaks the rules.

#![forbid(unsafe_code)]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};

use kaal_ipc::shm::SharedMemory;
use kaal_ipc::{Futex, SharedRing};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const PROGRAM: &str = env!("CARGO_BIN_EXE_memfd_pair");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn parent_and_child_exchange_every_reading_in_order() {
    let out = Command::new(PROGRAM).output().expect("run memfd_pair");
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("child: received 100000 readings in order"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout.contains("parent: sent 100000 readings, child exit status: 0"),
        "{}",
        describe(&out)
    );
}

#[test]
fn child_without_a_socket_fails() {
    let out = Command::new(PROGRAM)
        .arg("child")
        .stdin(Stdio::null())
        .output()
        .expect("run memfd_pair child");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).starts_with("child: "),
        "{}",
        describe(&out)
    );
}

/// The same layout as the program's `Reading`, but another type.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Reading {
    seq: u64,
    sensor: u32,
    celsius: f32,
}

/// This test plays the parent, with a ring of its own `Reading`: the child
/// must refuse to attach, and say why.
#[test]
fn child_refuses_a_ring_of_another_item_type() {
    let mut mem =
        SharedMemory::create(c"other-type", SharedRing::<Reading, 1024>::REGION_SIZE).unwrap();
    let memfd = mem.fd().try_clone_to_owned().unwrap();
    let _tx = mem
        .init_ring::<Reading, 1024>()
        .unwrap()
        .into_producer(Futex)
        .unwrap();

    let (socket, child_socket) = UnixStream::pair().unwrap();
    let child = Command::new(PROGRAM)
        .arg("child")
        .stdin(OwnedFd::from(child_socket))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn memfd_pair child");

    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [memfd.as_fd()];
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    rustix::net::sendmsg(
        &socket,
        &[IoSlice::new(b"m")],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("child: item type fingerprint"),
        "{}",
        describe(&out)
    );
}
