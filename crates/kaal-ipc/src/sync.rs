//! Atomics and slot cells, swapped for loom's instrumented versions under
//! `cfg(loom)` so the model checker sees every access.

#[cfg(loom)]
pub use loom::sync::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{Ordering, fence};

#[cfg(not(loom))]
pub use core::sync::atomic::AtomicU32;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{Ordering, fence};

use core::mem::MaybeUninit;

#[cfg(loom)]
use loom::cell::UnsafeCell;

#[cfg(not(loom))]
use core::cell::UnsafeCell;

/// Defines a function that is `const` except under loom, whose atomics and
/// cells cannot be built in a constant context.
macro_rules! const_unless_loom {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$m])*
        $vis const fn $name($($args)*) -> $ret $body

        #[cfg(loom)]
        $(#[$m])*
        $vis fn $name($($args)*) -> $ret $body
    };
}
pub(crate) use const_unless_loom;

/// One element slot of the ring.
///
/// The slot is an `UnsafeCell`, so a shared reference to the ring never
/// asserts that slot contents are immutable: the two endpoints (and, in shared
/// memory, the peer process) write slots through raw pointers only.
#[repr(transparent)]
pub(crate) struct Slot<T>(UnsafeCell<MaybeUninit<T>>);

impl<T> Slot<T> {
    const_unless_loom! {
        pub(crate) fn new() -> Self {
            Self(UnsafeCell::new(MaybeUninit::uninit()))
        }
    }

    /// Writes `value` into the slot without dropping the previous contents.
    ///
    /// # Safety
    ///
    /// The caller must own the slot: no other access to it may happen
    /// concurrently (in this process).
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
        #[cfg(not(loom))]
        // SAFETY: the caller owns the slot; the pointer comes from the cell
        // and is valid and aligned for `T` (`MaybeUninit<T>` has `T`'s layout).
        unsafe {
            self.0.get().cast::<T>().write(value)
        };
        #[cfg(loom)]
        // SAFETY: as above; loom checks the ownership claim.
        self.0.with_mut(|p| unsafe { p.cast::<T>().write(value) });
    }

    /// Moves the value out of the slot.
    ///
    /// # Safety
    ///
    /// The caller must own the slot, and the slot must hold an initialised
    /// value that is not read again (unless `T: Copy`).
    #[inline(always)]
    pub(crate) unsafe fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: the caller owns the slot and guarantees it is initialised.
        let v = unsafe { self.0.get().cast::<T>().read() };
        #[cfg(loom)]
        // SAFETY: as above; loom checks the ownership claim.
        let v = self.0.with(|p| unsafe { p.cast::<T>().read() });
        v
    }

    /// Drops the value in the slot in place.
    ///
    /// # Safety
    ///
    /// Same as [`Slot::read`].
    #[inline]
    pub(crate) unsafe fn drop_in_place(&self) {
        // SAFETY: forwarded to the caller.
        drop(unsafe { self.read() });
    }
}
