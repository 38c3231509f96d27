//! Two processes, one ring. The parent creates the ring in a memfd, starts
//! a child (this program again, with the argument `child`), hands it the
//! memfd over a Unix socket (SCM_RIGHTS) and streams readings to it; the
//! child attaches and checks their order and count. The child's exit code
//! becomes the parent's.

use std::error::Error;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode};
use std::time::Duration;

use kaal_ipc::shm::SharedMemory;
use kaal_ipc::{Futex, RecvError, SharedRing};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The item: `#[repr(C)]`, no padding, valid for every bit pattern.
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Reading {
    seq: u64,
    sensor: u32,
    celsius: f32,
}

const N: usize = 1024;
type Ring = SharedRing<Reading, N>;
const COUNT: u64 = 100_000;
const TIMEOUT: Duration = Duration::from_secs(10);

fn reading(seq: u64) -> Reading {
    let sensor = (seq % 8) as u32;
    Reading {
        seq,
        sensor,
        celsius: 20.0 + sensor as f32 / 4.0,
    }
}

fn main() -> ExitCode {
    let is_child = std::env::args().nth(1).as_deref() == Some("child");
    let result = if is_child { child() } else { parent() };
    result.unwrap_or_else(|e| {
        eprintln!("{}: {e}", if is_child { "child" } else { "parent" });
        ExitCode::FAILURE
    })
}

fn parent() -> Result<ExitCode, Box<dyn Error>> {
    let mut mem = SharedMemory::create(c"readings", Ring::REGION_SIZE)?;
    // The ring borrows `mem` from here on: keep a descriptor to send.
    let memfd = mem.fd().try_clone_to_owned()?;
    // Initialise before the child can attach.
    let mut tx = mem.init_ring::<Reading, N>()?.into_producer(Futex)?;

    // The child gets its end of the socket pair as its standard input.
    let (socket, child_socket) = UnixStream::pair()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("child")
        .stdin(OwnedFd::from(child_socket))
        .spawn()?;
    send_fd(&socket, memfd.as_fd())?;
    drop(memfd);

    let sent = (0..COUNT).try_for_each(|seq| tx.push_timeout(reading(seq), TIMEOUT));
    drop(tx); // closes the ring: the child sees `Closed` after the last item
    let status = child.wait()?;
    if let Err(e) = sent {
        eprintln!("parent: {e}");
    }
    println!("parent: sent {COUNT} readings, child {status}");
    // A child killed by a signal has no code: report 1.
    let code = status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1));
    Ok(ExitCode::from(code))
}

fn child() -> Result<ExitCode, Box<dyn Error>> {
    let socket = UnixStream::from(io::stdin().as_fd().try_clone_to_owned()?);
    let memfd = recv_fd(&socket)?;
    // SAFETY: this process maps the memfd once, here.
    let mut mem = unsafe { SharedMemory::from_fd(memfd) }?;
    let mut rx = mem.attach_ring::<Reading, N>()?.into_consumer(Futex)?;

    let mut received = 0;
    loop {
        match rx.pop_timeout(TIMEOUT) {
            Ok(r) if r == reading(received) => received += 1,
            Ok(r) => {
                eprintln!("child: got {r:?}, expected {:?}", reading(received));
                return Ok(ExitCode::from(2));
            }
            Err(RecvError::Closed) => break, // every item sent has arrived
            Err(e) => return Err(e.into()),
        }
    }
    println!("child: received {received} readings in order");
    Ok(if received == COUNT {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Sends one descriptor as SCM_RIGHTS ancillary data, with one byte of data.
fn send_fd(socket: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let data = [IoSlice::new(b"m")];
    rustix::net::sendmsg(socket, &data, &mut control, SendFlags::empty())?;
    Ok(())
}

/// Receives the descriptor `send_fd` sent.
fn recv_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let iov = &mut [IoSliceMut::new(&mut byte)];
    rustix::net::recvmsg(socket, iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let fd = control.drain().find_map(|message| match message {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    fd.ok_or_else(|| io::Error::other("no descriptor in the message"))
}
