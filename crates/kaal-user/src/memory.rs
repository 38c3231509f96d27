//! Frames mapped into the task's own address space, read and written with volatile
//! accesses: the primitive under shared memory between tasks.

use crate::cap::{AddressSpace, Cap, Frame4K, Untyped, map_with_tables};
use kaal_abi::{Error, rights, slots};

/// A 4 KiB frame mapped read-write in this task at a fixed address.
#[derive(Debug)]
pub struct MappedFrame {
    frame: Cap<Frame4K>,
    vaddr: u64,
}

impl MappedFrame {
    /// Maps `frame` read-write at `vaddr` (page aligned) in this task, creating page
    /// tables from `untyped` as needed.
    pub fn new(frame: Cap<Frame4K>, vaddr: u64, untyped: Cap<Untyped>) -> Result<Self, Error> {
        Self::with_attributes(frame, vaddr, untyped, 0)
    }

    /// Maps a frame of device registers (from device untyped memory) as device memory.
    pub fn device(frame: Cap<Frame4K>, vaddr: u64, untyped: Cap<Untyped>) -> Result<Self, Error> {
        Self::with_attributes(frame, vaddr, untyped, kaal_abi::map_attributes::DEVICE)
    }

    fn with_attributes(
        frame: Cap<Frame4K>,
        vaddr: u64,
        untyped: Cap<Untyped>,
        attributes: u64,
    ) -> Result<Self, Error> {
        let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
        map_with_tables(
            frame,
            own,
            vaddr,
            rights::READ | rights::WRITE,
            attributes,
            untyped,
        )?;
        Ok(Self { frame, vaddr })
    }

    /// Reads the 32-bit register at byte `offset` (4-byte aligned, inside the page).
    pub fn read32(&self, offset: usize) -> Option<u32> {
        let register = (offset.is_multiple_of(4) && offset < 4096)
            .then(|| (self.vaddr + offset as u64) as *const u32)?;
        // SAFETY: the frame is mapped read-write at `vaddr` while `self` lives; the
        // register is inside it and aligned; device registers need volatile accesses.
        Some(unsafe { register.read_volatile() })
    }

    /// Writes the 32-bit register at byte `offset`; `false` if out of range.
    pub fn write32(&self, offset: usize, value: u32) -> bool {
        if !offset.is_multiple_of(4) || offset >= 4096 {
            return false;
        }
        // SAFETY: as in `read32`.
        unsafe { ((self.vaddr + offset as u64) as *mut u32).write_volatile(value) };
        true
    }

    fn word(&self, index: usize) -> Option<*mut u64> {
        (index < 512).then(|| (self.vaddr + index as u64 * 8) as *mut u64)
    }

    /// Reads word `index` (0..512); `None` past the page.
    pub fn read(&self, index: usize) -> Option<u64> {
        // SAFETY: the frame is mapped read-write at `vaddr` while `self` lives; word
        // `index` is inside the page and aligned. Another task may write it at any time,
        // so the access is volatile and the value is a plain `u64` (valid for any bits).
        self.word(index).map(|word| unsafe { word.read_volatile() })
    }

    /// Writes word `index` (0..512); `false` past the page.
    pub fn write(&self, index: usize, value: u64) -> bool {
        // SAFETY: as in `read`.
        self.word(index)
            .map(|word| unsafe { word.write_volatile(value) })
            .is_some()
    }

    /// Unmaps the frame.
    pub fn unmap(self) -> Result<Cap<Frame4K>, Error> {
        self.frame.unmap()?;
        Ok(self.frame)
    }
}
