//! `memfd` shared memory for rings between Linux processes.
//!
//! ```no_run
//! use kaal_ipc::{Futex, SharedRing, shm::SharedMemory};
//!
//! type Ring = SharedRing<u64, 4096>;
//! let mut mem = SharedMemory::create(c"ring", Ring::REGION_SIZE)?;
//! // Hand `mem.fd()` to the peer process (send it over a Unix socket, or
//! // let a child inherit it: `set_inheritable`); the peer maps it with
//! // `SharedMemory::from_fd` and calls `attach_ring`.
//! let mut tx = mem.init_ring::<u64, 4096>()?.into_producer(Futex)?;
//! tx.push(42).map_err(|e| e.into_inner()).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::CStr;
use std::io;
use std::num::NonZeroU64;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use core::marker::PhantomData;
use std::sync::Arc;

use crate::error::{AttachError, CorruptIndices};
use crate::notify::{DefaultNotify, Notify};
use crate::ring::{Attached, Endpoints, RingHandle, Sealed, SharedRing, Token, split_handles};
use crate::{Consumer, Producer};

/// A `MAP_SHARED` mapping of a memory file descriptor (usually a `memfd`).
#[derive(Debug)]
pub struct SharedMemory {
    fd: OwnedFd,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; it is unmapped
// only on drop. Access to its contents goes through rings, whose safety does
// not depend on the thread.
unsafe impl Send for SharedMemory {}
// SAFETY: every `&self` method only reads the descriptor, the pointer or the
// length; the memory behind the pointer is reached through rings, whose
// atomics and cells make shared access sound.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// Creates an anonymous memory file of `len` bytes (zero-filled) and maps
    /// it. The descriptor is close-on-exec, as every descriptor the standard
    /// library opens: a program that runs other programs does not hand them
    /// its rings. Send it to the peer over a Unix socket (`SCM_RIGHTS`), or,
    /// to let a child the caller spawns inherit it, call
    /// [`set_inheritable`](Self::set_inheritable) first; the peer maps it with
    /// [`from_fd`](Self::from_fd).
    ///
    /// The file is sealed at its size (`F_SEAL_SHRINK`, `F_SEAL_GROW`,
    /// `F_SEAL_SEAL`): a peer holding the descriptor cannot truncate it under
    /// this process's mapping, which would make the next access fault
    /// (`SIGBUS`) instead of giving an error.
    pub fn create(name: &CStr, len: usize) -> io::Result<Self> {
        // SAFETY: `name` is a valid C string; no flags that need arguments.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `memfd_create` returned a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size =
            libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `fd` is a valid descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: `fd` is a valid memfd created with sealing allowed.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Self::map(fd, len)
    }

    /// Maps an existing memory file descriptor, whole.
    ///
    /// A memfd must be sealed against shrinking (`F_SEAL_SHRINK`, as
    /// [`create`](Self::create) does); one that is not is refused with
    /// `InvalidInput`, since whoever else holds it could truncate it under the
    /// mapping and make the next access fault. Files that cannot carry seals
    /// (a `shm_open` object, a tmpfs file) are mapped as they are: only hand
    /// those to trusted peers.
    ///
    /// # Safety
    ///
    /// The file's memory must not be mapped elsewhere in this process while
    /// rings in this mapping are in use (another process may map it). Two
    /// mappings in one process would let two endpoints of the same role race
    /// on the same slots.
    pub unsafe fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: `fd` is a valid descriptor; F_GET_SEALS takes no argument.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals >= 0 && seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the memory file is not sealed against shrinking (F_SEAL_SHRINK): \
                 a peer could truncate it under the mapping; create it with \
                 SharedMemory::create or seal it",
            ));
        }
        let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `fd` is valid and `st` is writable storage for a `stat`.
        if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fstat` succeeded and initialised `st`.
        let size = unsafe { st.assume_init() }.st_size;
        let len = usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh shared mapping of `len` bytes of a valid descriptor;
        // the kernel chooses the address, so no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            ptr: ptr.cast(),
            len,
        })
    }

    /// The file descriptor, to hand to a peer process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether programs this process executes inherit the descriptor (clears
    /// or sets its close-on-exec flag). For a child spawned to be the peer,
    /// which then maps the descriptor by its number:
    ///
    /// ```no_run
    /// # use kaal_ipc::shm::SharedMemory;
    /// use std::os::fd::AsRawFd;
    /// let mem = SharedMemory::create(c"ring", 4096)?;
    /// mem.set_inheritable(true)?;
    /// let child = std::process::Command::new("peer")
    ///     .arg(mem.fd().as_raw_fd().to_string())
    ///     .spawn()?;
    /// mem.set_inheritable(false)?; // later children do not get it
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_inheritable(&self, inheritable: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: `fd` is a valid descriptor owned by `self`; F_GETFD takes no
        // argument.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if inheritable {
            flags & !libc::FD_CLOEXEC
        } else {
            flags | libc::FD_CLOEXEC
        };
        // SAFETY: as above; F_SETFD takes the flags as an `int`.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never true for a mapping that exists).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start of the mapping, for [`SharedRing::attach`] at an offset or
    /// for other shared data.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Writes a fresh ring header at the start of the mapping and attaches to
    /// it. Do this before the peer attaches.
    pub fn init_ring<T, const N: usize>(&mut self) -> Result<Attached<'_, T, N>, AttachError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        // SAFETY: the mapping is valid for `len` bytes while `self` lives,
        // which the returned borrow enforces; `&mut self` makes this the only
        // attachment through this mapping, and `from_fd`'s contract rules out
        // other mappings in this process. The peer attaches only after this
        // (documented), and is untrusted afterwards.
        unsafe { SharedRing::init_in(self.ptr, self.len) }
    }

    /// Attaches to a ring that the peer initialised at the start of the
    /// mapping, validating its header.
    pub fn attach_ring<T, const N: usize>(&mut self) -> Result<Attached<'_, T, N>, AttachError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        // SAFETY: as in `init_ring`.
        unsafe { SharedRing::attach(self.ptr, self.len) }
    }

    /// Like [`init_ring`](Self::init_ring) with a chosen item fingerprint
    /// (see [`SharedRing::init_in_tagged`]).
    pub fn init_ring_tagged<T, const N: usize>(
        &mut self,
        fingerprint: NonZeroU64,
    ) -> Result<Attached<'_, T, N>, AttachError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        // SAFETY: as in `init_ring`.
        unsafe { SharedRing::init_in_tagged(self.ptr, self.len, fingerprint) }
    }

    /// Like [`attach_ring`](Self::attach_ring) with a chosen item fingerprint.
    pub fn attach_ring_tagged<T, const N: usize>(
        &mut self,
        fingerprint: NonZeroU64,
    ) -> Result<Attached<'_, T, N>, AttachError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        // SAFETY: as in `init_ring`.
        unsafe { SharedRing::attach_tagged(self.ptr, self.len, fingerprint) }
    }
}

impl SharedMemory {
    /// Like [`init_ring`](Self::init_ring), giving the mapping to the ring:
    /// the endpoints made from the result own the mapping (`'static`, so
    /// they can move into a spawned thread), and it is unmapped when the last
    /// of them is dropped.
    ///
    /// ```no_run
    /// use kaal_ipc::{Futex, SharedRing, shm::SharedMemory};
    ///
    /// let mem = SharedMemory::create(c"ring", SharedRing::<u64, 1024>::REGION_SIZE)?;
    /// let fd = mem.fd().try_clone_to_owned()?; // for the peer process
    /// let mut tx = mem.into_init_ring::<u64, 1024>()?.into_producer(Futex)?;
    /// std::thread::spawn(move || tx.push(7));
    /// # drop(fd);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_init_ring<T, const N: usize>(mut self) -> Result<OwnedRing<T, N>, AttachError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        let fingerprint = self.init_ring::<T, N>()?.checked_fingerprint();
        Ok(OwnedRing::new(self, fingerprint))
    }

    /// Like [`attach_ring`](Self::attach_ring), giving the mapping to the
    /// ring (see [`into_init_ring`](Self::into_init_ring)).
    pub fn into_attached_ring<T, const N: usize>(mut self) -> Result<OwnedRing<T, N>, AttachError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        let fingerprint = self.attach_ring::<T, N>()?.checked_fingerprint();
        Ok(OwnedRing::new(self, fingerprint))
    }
}

/// A validated ring in a mapping it owns, from
/// [`SharedMemory::into_init_ring`] or [`SharedMemory::into_attached_ring`].
/// Like [`Attached`], but its endpoints keep the mapping alive and borrow
/// nothing.
pub struct OwnedRing<T, const N: usize> {
    mem: Arc<SharedMemory>,
    fingerprint: u64,
    _item: PhantomData<fn(T) -> T>,
    _not_sync: PhantomData<*const ()>,
}

/// The producer of an [`OwnedRing`].
pub type OwnedProducer<T, const N: usize, W = DefaultNotify> = Producer<T, N, OwnedRing<T, N>, W>;
/// The consumer of an [`OwnedRing`].
pub type OwnedConsumer<T, const N: usize, W = DefaultNotify> = Consumer<T, N, OwnedRing<T, N>, W>;

// SAFETY: an `OwnedRing` is this process's one attachment to a mapping whose
// items are plain bytes; moving it to another thread moves that capability,
// as for `Attached`.
unsafe impl<T: Send, const N: usize> Send for OwnedRing<T, N> {}

impl<T, const N: usize> OwnedRing<T, N> {
    fn new(mem: SharedMemory, fingerprint: u64) -> Self {
        Self {
            mem: Arc::new(mem),
            fingerprint,
            _item: PhantomData,
            _not_sync: PhantomData,
        }
    }

    /// Becomes this process's producer endpoint (see
    /// [`Attached::into_producer`]).
    pub fn into_producer<W: Notify>(
        self,
        notify: W,
    ) -> Result<Producer<T, N, Self, W>, CorruptIndices> {
        Producer::attach(self, notify)
    }

    /// Becomes this process's consumer endpoint (see
    /// [`Attached::into_consumer`]).
    pub fn into_consumer<W: Notify>(
        self,
        notify: W,
    ) -> Result<Consumer<T, N, Self, W>, CorruptIndices> {
        Consumer::attach(self, notify)
    }

    /// Takes both roles in this process (see [`Attached::split`]).
    pub fn split<W: Notify + Clone>(
        self,
        notify: W,
    ) -> Result<Endpoints<T, N, Self, W>, CorruptIndices> {
        let other = Self {
            mem: self.mem.clone(),
            fingerprint: self.fingerprint,
            _item: PhantomData,
            _not_sync: PhantomData,
        };
        split_handles(self, other, notify)
    }

    /// The mapping the ring lives in (its descriptor, for the peer).
    pub fn memory(&self) -> &SharedMemory {
        &self.mem
    }
}

impl<T, const N: usize> core::fmt::Debug for OwnedRing<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnedRing")
            .field("memory", &self.mem)
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize> Sealed for OwnedRing<T, N> {}
impl<T, const N: usize> RingHandle<T, N> for OwnedRing<T, N> {
    const PROCESS_SHARED: bool = true;
    #[inline(always)]
    fn ring(&self, _: Token) -> &SharedRing<T, N> {
        // SAFETY: the mapping lives as long as `self.mem`, which `self` holds;
        // its start held a validated ring of this type when `self` was made
        // (`into_init_ring`/`into_attached_ring`), it is `REGION_ALIGN`-aligned
        // and large enough (checked then), and every field of the ring is an
        // atomic or an `UnsafeCell`, so the peer's writes never invalidate a
        // shared reference. The mapping was consumed, so no other attachment
        // to it exists in this process.
        unsafe { &*self.mem.as_ptr().cast::<SharedRing<T, N>>() }
    }
    fn fingerprint(&self, _: Token) -> u64 {
        self.fingerprint
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping created in `map`; every
        // borrow of it (attached rings) has ended, as they borrow `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "memfd_create and mmap of a file: not available under Miri"
    )]
    fn an_owned_ring_moves_into_a_thread_and_unmaps_when_done() {
        let mem = SharedMemory::create(c"owned", SharedRing::<u64, 64>::REGION_SIZE).unwrap();
        let (mut tx, mut rx) = mem
            .into_init_ring::<u64, 64>()
            .unwrap()
            .split(crate::Futex)
            .unwrap();
        let sender = std::thread::spawn(move || {
            for i in 0..10_000 {
                tx.push(i).unwrap();
            }
        });
        for i in 0..10_000 {
            assert_eq!(rx.pop(), Ok(i));
        }
        sender.join().unwrap();
        assert_eq!(rx.pop(), Err(crate::RecvError::Closed));
        assert_eq!(rx.peer_state(), crate::PeerState::Closed);
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and fcntl: not available under Miri")]
    fn created_memory_is_close_on_exec_unless_made_inheritable() {
        let close_on_exec = |mem: &SharedMemory| {
            // SAFETY: a valid descriptor; F_GETFD takes no argument.
            let flags = unsafe { libc::fcntl(mem.fd().as_raw_fd(), libc::F_GETFD) };
            assert!(flags >= 0);
            flags & libc::FD_CLOEXEC != 0
        };
        let mem = SharedMemory::create(c"cloexec", 4096).unwrap();
        assert!(close_on_exec(&mem));
        mem.set_inheritable(true).unwrap();
        assert!(!close_on_exec(&mem));
        mem.set_inheritable(false).unwrap();
        assert!(close_on_exec(&mem));
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and file seals: not available under Miri")]
    fn created_memory_cannot_be_resized_and_unsealed_memory_is_refused() {
        let mem = SharedMemory::create(c"sealed", 8192).unwrap();
        // SAFETY: a valid descriptor; the call fails because of the seals.
        assert_ne!(unsafe { libc::ftruncate(mem.fd().as_raw_fd(), 4096) }, 0);
        // SAFETY: as above.
        assert_ne!(unsafe { libc::ftruncate(mem.fd().as_raw_fd(), 16384) }, 0);
        let again = mem.fd().try_clone_to_owned().unwrap();
        // SAFETY: mapped a second time only to check it is accepted; no ring
        // is used through either mapping.
        assert!(unsafe { SharedMemory::from_fd(again) }.is_ok());

        // SAFETY: a valid C string, no flags.
        let raw = unsafe { libc::memfd_create(c"unsealed".as_ptr(), 0) };
        assert!(raw >= 0);
        // SAFETY: a fresh descriptor, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a valid descriptor.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 4096) }, 0);
        // SAFETY: not mapped elsewhere.
        let refused = unsafe { SharedMemory::from_fd(fd) }.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
        assert!(
            std::format!("{refused}").contains("F_SEAL_SHRINK"),
            "{refused}"
        );
    }
}
