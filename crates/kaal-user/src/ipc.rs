//! Messages over endpoints and signals over notifications.

use crate::cap::{Cap, Endpoint, Notification, call};
use kaal_abi::{Error, MessageInfo, Syscall};

/// A message: its description and the four register message registers (further ones are
/// in the IPC buffer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Label, length, capabilities.
    pub info: MessageInfo,
    /// Message registers 0 to 3.
    pub words: [u64; 4],
}

impl Message {
    /// A message with `label` carrying `words` (length 4).
    pub const fn new(label: u64, words: [u64; 4]) -> Self {
        Self {
            info: MessageInfo::new(label, 4),
            words,
        }
    }
}

/// A received message and the badge of the capability it was sent through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The message.
    pub message: Message,
    /// The sender's badge, or the notification word for a notification.
    pub badge: u64,
}

/// The IPC system call: `x0`..`x5` in, `x0`..`x6` out.
#[inline]
fn ipc(number: Syscall, first: u64, message: &Message) -> Result<Received, Error> {
    #[cfg(target_os = "none")]
    {
        let (status, info, w0, w1, w2, w3, badge): (u64, u64, u64, u64, u64, u64, u64);
        // SAFETY: the kernel validates every argument and writes only x0..x6.
        unsafe {
            core::arch::asm!(
                "svc #0",
                inlateout("x0") first => status,
                inlateout("x1") message.info.to_raw() => info,
                inlateout("x2") message.words[0] => w0,
                inlateout("x3") message.words[1] => w1,
                inlateout("x4") message.words[2] => w2,
                inlateout("x5") message.words[3] => w3,
                lateout("x6") badge,
                in("x8") number as u64,
                options(nostack),
            );
        }
        if status != 0 {
            return Err(Error::from_code(status).unwrap_or(Error::InvalidArgument));
        }
        Ok(Received {
            message: Message {
                info: MessageInfo::from_raw(info),
                words: [w0, w1, w2, w3],
            },
            badge,
        })
    }
    #[cfg(not(target_os = "none"))]
    {
        let _ = (number, first, message);
        Err(Error::NotSupported)
    }
}

impl Cap<Endpoint> {
    /// Sends, waiting for a receiver.
    #[inline]
    pub fn send(&self, message: &Message) -> Result<(), Error> {
        ipc(Syscall::Send, self.slot(), message).map(|_| ())
    }

    /// Sends only if a receiver waits.
    #[inline]
    pub fn nb_send(&self, message: &Message) -> Result<(), Error> {
        ipc(Syscall::NbSend, self.slot(), message).map(|_| ())
    }

    /// Sends and waits for the reply.
    #[inline]
    pub fn call(&self, message: &Message) -> Result<Message, Error> {
        ipc(Syscall::Call, self.slot(), message).map(|r| r.message)
    }

    /// Waits for a message.
    #[inline]
    pub fn recv(&self) -> Result<Received, Error> {
        ipc(Syscall::Recv, self.slot(), &Message::default())
    }

    /// Receives only if a sender waits.
    #[inline]
    pub fn nb_recv(&self) -> Result<Received, Error> {
        ipc(Syscall::NbRecv, self.slot(), &Message::default())
    }

    /// Replies to the last call received, then waits for the next message.
    #[inline]
    pub fn reply_recv(&self, reply: &Message) -> Result<Received, Error> {
        ipc(Syscall::ReplyRecv, self.slot(), reply)
    }
}

/// Replies to the last call this thread received.
#[inline]
pub fn reply(message: &Message) -> Result<(), Error> {
    ipc(Syscall::Reply, 0, message).map(|_| ())
}

impl Cap<Notification> {
    /// ORs this capability's badge into the word and wakes a waiter.
    #[inline]
    pub fn signal(&self) -> Result<(), Error> {
        call(Syscall::Signal, [self.slot(), 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// Waits for a non-zero word; returns and clears it.
    #[inline]
    pub fn wait(&self) -> Result<u64, Error> {
        call(Syscall::Wait, [self.slot(), 0, 0, 0, 0, 0]).map(|(word, _)| word)
    }

    /// Returns and clears the word without waiting.
    #[inline]
    pub fn poll(&self) -> Result<u64, Error> {
        call(Syscall::Poll, [self.slot(), 0, 0, 0, 0, 0]).map(|(word, _)| word)
    }
}
