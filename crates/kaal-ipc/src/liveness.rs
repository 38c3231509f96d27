//! Noticing that the peer's process died.
//!
//! A process-shared endpoint (with `std`, on Linux) writes its
//! [`Identity`] into the ring header when it attaches, and again whenever it
//! checks on its peer ([`layout::PRODUCER_PID_OFFSET`](crate::layout::PRODUCER_PID_OFFSET)
//! and the words after it): its process id, the inode of its PID namespace
//! and its start time. A blocked endpoint whose peer is another process in
//! the same PID namespace watches that process through a `pidfd`
//! (`pidfd_open(2)`, Linux 5.3), which becomes readable when the process
//! exits (killed or not, reaped or not). The start time (field 22 of
//! `/proc/PID/stat`, unique per process id over the machine's uptime) tells
//! the peer from a later process that reused its id.
//!
//! Why a pidfd: a robust futex would need the ring's wait words to be locks
//! owned by a thread, and each thread has a single robust list (glibc's);
//! a liveness word the peer refreshes costs a store on its fast path and a
//! timeout guess on ours; `kill(pid, 0)` cannot tell a zombie (a killed child
//! its parent has not reaped yet, exactly the state in which the parent waits
//! on the ring) from a live process.
//!
//! The identity words are written by the peer, so a hostile peer can hide its
//! death (naming a live process) or fake it (naming none): the check serves
//! honest peers that crash or are killed. A peer that `exec`s keeps its id
//! and loses its mapping without being noticed.
//!
//! Everything here runs without allocating or taking a lock: a child forked
//! from a threaded process attaches through it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// A process as the ring header records it; 0 in a field means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Identity {
    /// Process id, in the namespace `ns`.
    pub(crate) pid: u32,
    /// Low 32 bits of the PID namespace's inode.
    pub(crate) ns: u32,
    /// Low 32 bits of the start time in clock ticks since boot.
    pub(crate) start: u32,
}

/// This process's identity, cached per process id without a lock: a forked
/// child (a new id, perhaps in a new PID namespace) computes its own.
pub(crate) fn own_identity() -> Identity {
    static PID: AtomicU32 = AtomicU32::new(0);
    static NS: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    if PID.load(Ordering::Acquire) == pid {
        return Identity {
            pid,
            ns: NS.load(Ordering::Relaxed),
            start: START.load(Ordering::Relaxed),
        };
    }
    let identity = Identity {
        pid,
        ns: namespace_of_self(),
        start: start_time(c"/proc/self/stat").unwrap_or(0),
    };
    // Racing threads of one process store the same values.
    NS.store(identity.ns, Ordering::Relaxed);
    START.store(identity.start, Ordering::Relaxed);
    PID.store(pid, Ordering::Release);
    identity
}

fn namespace_of_self() -> u32 {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a live, writable `stat`.
    if unsafe { libc::stat(c"/proc/self/ns/pid".as_ptr(), &mut st) } == 0 {
        st.st_ino as u32
    } else {
        0
    }
}

/// Field 22 of a `/proc/PID/stat` file (the start time), low 32 bits.
fn start_time(path: &std::ffi::CStr) -> Option<u32> {
    let mut buf = [0u8; 1024];
    // SAFETY: a NUL-terminated path; flags need no further argument.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: reading at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    let text = buf.get(..usize::try_from(n).ok()?)?;
    // The command name (field 2) is in parentheses and may hold anything;
    // fields 3 onwards follow the last ')'.
    let rest = &text[text.iter().rposition(|&b| b == b')')? + 1..];
    let field = rest
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .nth(19)?;
    let mut value = 0u64;
    for &digit in field {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
    }
    Some(value as u32)
}

/// `/proc/PID/stat` as a C string, without allocating.
fn stat_path(pid: u32, out: &mut [u8; 32]) -> &std::ffi::CStr {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut rest = pid;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut len = 0;
    for &b in b"/proc/" {
        out[len] = b;
        len += 1;
    }
    for &d in digits[..n].iter().rev() {
        out[len] = d;
        len += 1;
    }
    for &b in b"/stat\0" {
        out[len] = b;
        len += 1;
    }
    std::ffi::CStr::from_bytes_with_nul(&out[..len]).expect("one NUL, at the end")
}

/// What is known about the watched process.
#[derive(Debug, Default)]
enum Watched {
    /// Not opened yet, or a transient failure (out of descriptors or
    /// memory): try again at the next check.
    #[default]
    Retry,
    /// A pidfd on the process.
    Open(OwnedFd),
    /// The process does not exist, or its id now names another process.
    Vanished,
    /// It cannot be watched (no `pidfd_open` before Linux 5.3, not allowed,
    /// an id that names a thread): it counts as alive.
    Unwatchable,
}

/// The peer process an endpoint watches.
#[derive(Debug, Default)]
pub(crate) struct PeerWatch {
    /// The identity `watched` refers to.
    identity: Identity,
    watched: Watched,
}

impl PeerWatch {
    pub(crate) const fn new() -> Self {
        Self {
            identity: Identity {
                pid: 0,
                ns: 0,
                start: 0,
            },
            watched: Watched::Retry,
        }
    }

    /// Whether the process the header names has exited. An unknown peer (id
    /// 0, another or unknown namespace, this process itself) is never
    /// reported gone.
    pub(crate) fn gone(&mut self, peer: Identity) -> bool {
        let own = own_identity();
        if peer.pid == 0 || peer.ns == 0 || own.ns == 0 || peer.ns != own.ns || peer.pid == own.pid
        {
            return false;
        }
        if peer != self.identity {
            self.identity = peer;
            self.watched = Watched::Retry;
        }
        if matches!(self.watched, Watched::Retry) {
            self.watched = open(peer);
        }
        match &self.watched {
            Watched::Vanished => true,
            Watched::Retry | Watched::Unwatchable => false,
            Watched::Open(fd) => exited(fd),
        }
    }
}

fn exited(fd: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll` is one valid pollfd for the duration of the call; a zero
    // timeout never blocks.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

fn open(peer: Identity) -> Watched {
    let Ok(pid) = i32::try_from(peer.pid) else {
        // No process has such an id; a hostile peer wrote it.
        return Watched::Unwatchable;
    };
    // SAFETY: `pidfd_open` takes a process id and a flags word and returns a
    // new (close-on-exec) descriptor or -1; it touches no memory of ours.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => Watched::Vanished,
            Some(libc::ENOSYS | libc::EINVAL | libc::EPERM) => Watched::Unwatchable,
            _ => Watched::Retry,
        };
    }
    // SAFETY: a fresh descriptor returned to us, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    if peer.start != 0 {
        // The descriptor refers to whatever process had the id when it was
        // opened. If the id now names a process with the recorded start time,
        // that is the peer, and it already had the id before the descriptor
        // was opened (it wrote the header), so the descriptor is the peer's.
        // Any other start time: the peer died and its id was reused.
        let mut path = [0u8; 32];
        match start_time(stat_path(peer.pid, &mut path)) {
            Some(start) if start == peer.start => {}
            Some(_) => return Watched::Vanished,
            // Unreadable: it exited in between, or /proc is hidden; the
            // descriptor tells.
            None => {}
        }
    }
    Watched::Open(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc: not available under Miri")]
    fn own_identity_is_complete_and_stable() {
        let own = own_identity();
        assert_eq!(own.pid, std::process::id());
        assert_eq!(own, own_identity());
        if std::path::Path::new("/proc/self/stat").exists() {
            assert_ne!(own.ns, 0);
            assert_ne!(own.start, 0);
        }
    }

    #[test]
    fn stat_path_formats_ids() {
        let mut buf = [0u8; 32];
        assert_eq!(stat_path(0, &mut buf).to_bytes(), b"/proc/0/stat");
        assert_eq!(
            stat_path(u32::MAX, &mut buf).to_bytes(),
            b"/proc/4294967295/stat"
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "spawns processes and reads /proc: not available under Miri"
    )]
    fn live_dead_reused_and_foreign_processes() {
        let own = own_identity();
        let mut watch = PeerWatch::new();
        assert!(!watch.gone(own), "this process");
        assert!(!watch.gone(Identity { pid: 0, ..own }), "unknown peer");
        if own.ns == 0 {
            return; // no /proc here
        }
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut path = [0u8; 32];
        let start = start_time(stat_path(child.id(), &mut path)).unwrap();
        let peer = Identity {
            pid: child.id(),
            ns: own.ns,
            start,
        };
        assert!(!watch.gone(peer));
        assert!(
            !watch.gone(Identity {
                ns: own.ns ^ 1,
                ..peer
            }),
            "another namespace"
        );
        // The id names a process that started at another time: the peer's id
        // was reused, so the peer is gone.
        assert!(PeerWatch::new().gone(Identity {
            start: start ^ 1,
            ..peer
        }));
        // Start time unknown: the pidfd alone decides.
        assert!(!PeerWatch::new().gone(Identity { start: 0, ..peer }));
        child.kill().unwrap();
        // Killed but not yet reaped: a zombie is gone too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !watch.gone(peer) {
            assert!(Instant::now() < deadline, "kill not seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert!(watch.gone(peer), "still gone once reaped");
        assert!(PeerWatch::new().gone(peer), "an id nobody has");
    }
}
