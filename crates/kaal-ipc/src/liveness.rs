//! Noticing that the peer's process died.
//!
//! A process-shared endpoint (with `std`, on Linux) writes its process id and
//! the inode of its PID namespace into the ring header when it attaches
//! ([`layout::PRODUCER_PID_OFFSET`](crate::layout::PRODUCER_PID_OFFSET) and
//! the words after it). A blocked endpoint whose peer is another process in
//! the same PID namespace watches that process through a `pidfd`
//! (`pidfd_open(2)`, Linux 5.3): the descriptor becomes readable when the
//! process exits (killed or not, reaped or not). The descriptor is opened the
//! first time the peer's id is seen and kept, so a process id reused after
//! the peer died cannot be mistaken for the peer.
//!
//! Why a pidfd: a robust futex would need the ring's wait words to be locks
//! owned by a thread, and each thread has a single robust list (glibc's);
//! a liveness word the peer refreshes costs a store on its fast path and a
//! timeout guess on ours; `kill(pid, 0)` cannot tell a zombie (a killed child
//! its parent has not reaped yet, exactly the state in which the parent waits
//! on the ring) from a live process, and races with id reuse.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// This process: its id and the low 32 bits of its PID namespace's inode (0
/// if `/proc` is not mounted: the peer then never checks this process).
pub(crate) fn own_identity() -> (u32, u32) {
    static NAMESPACE: OnceLock<u32> = OnceLock::new();
    let ns = *NAMESPACE.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino() as u32)
    });
    (std::process::id(), ns)
}

/// The peer process an endpoint watches.
#[derive(Debug, Default)]
pub(crate) struct PeerWatch {
    /// The process id `fd` refers to (0: none yet).
    pid: u32,
    /// A pidfd for `pid`; `None` if it could not be opened for a reason
    /// other than the process not existing (the peer then counts as alive).
    fd: Option<OwnedFd>,
    /// `pid` did not exist when first seen.
    vanished: bool,
}

impl PeerWatch {
    pub(crate) const fn new() -> Self {
        Self {
            pid: 0,
            fd: None,
            vanished: false,
        }
    }

    /// Whether the process the header names, `(pid, ns)`, has exited. An
    /// unknown peer (id 0, another or unknown namespace, this process itself)
    /// is never reported gone.
    pub(crate) fn gone(&mut self, pid: u32, ns: u32) -> bool {
        let (own_pid, own_ns) = own_identity();
        if pid == 0 || ns == 0 || own_ns == 0 || ns != own_ns || pid == own_pid {
            return false;
        }
        if pid != self.pid {
            self.pid = pid;
            self.fd = None;
            self.vanished = false;
            match i32::try_from(pid) {
                Ok(raw) => self.open(raw),
                // No process has such an id; a hostile peer wrote it.
                Err(_) => return false,
            }
        }
        if self.vanished {
            return true;
        }
        let Some(fd) = &self.fd else { return false };
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll` is one valid pollfd for the duration of the call; a
        // zero timeout never blocks.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0 && poll.revents & (libc::POLLIN | libc::POLLHUP) != 0
    }

    fn open(&mut self, pid: i32) {
        // SAFETY: `pidfd_open` takes a process id and a flags word and returns
        // a new descriptor or -1; it touches no memory of ours.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw >= 0 {
            // SAFETY: a fresh descriptor returned to us, owned from here on.
            self.fd = Some(unsafe { OwnedFd::from_raw_fd(raw as i32) });
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            self.vanished = true;
        }
        // Other errors (ENOSYS before Linux 5.3, EMFILE, EINVAL for an id that
        // names a thread, not a process): the peer cannot be watched and
        // counts as alive; blocked calls still return on close or timeout.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_and_this_one_are_not_gone() {
        let (pid, ns) = own_identity();
        let mut watch = PeerWatch::new();
        assert!(!watch.gone(pid, ns), "this process");
        assert!(!watch.gone(0, ns), "unknown peer");
        if ns != 0 {
            let mut child = std::process::Command::new("sleep")
                .arg("5")
                .spawn()
                .unwrap();
            assert!(!watch.gone(child.id(), ns));
            child.kill().unwrap();
            // Killed but not yet reaped: a zombie is gone too.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !watch.gone(child.id(), ns) {
                assert!(std::time::Instant::now() < deadline, "kill not seen");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            child.wait().unwrap();
            assert!(watch.gone(child.id(), ns), "still gone once reaped");
            assert!(!watch.gone(child.id(), ns ^ 1), "another namespace");
        }
    }
}
