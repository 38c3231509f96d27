//! The current thread's memory as the kernel reaches it: translation through its
//! address space, checked copies, and the console write.

use super::*;

impl Kernel {
    /// The current thread's address-space root and ASID.
    pub(crate) fn current_space(&mut self) -> Option<(u64, u16)> {
        let cap = self.current_thread().slots[VSPACE_SLOT as usize].cap;
        (cap.object_type == ObjectType::AddressSpace).then_some((cap.object, cap.extra as u16))
    }

    /// Physical address of user address `va` in the current thread's address space, if
    /// mapped for user access (and writable if `write`).
    pub(crate) fn user_translate(&mut self, va: u64, write: bool) -> Option<u64> {
        // The tables are indexed by the low 39 bits of an address in either half: an
        // upper-half pointer would reach the user mapping its low bits name.
        if va >= kaal_abi::layout::USER_END {
            return None;
        }
        let (root, _) = self.current_space()?;
        let (physical, attrs) = TranslationTable::at(root).translate(&mut LinearTables, va)?;
        // Device frames may be mapped in user space but are not in the kernel's linear
        // map: the kernel never touches them on a thread's behalf.
        (attrs.user && (!write || attrs.write) && self.is_ram(physical)).then_some(physical)
    }

    /// Whether `physical` is RAM (and so reachable through the linear map).
    pub(crate) fn is_ram(&self, physical: u64) -> bool {
        self.services
            .ram
            .iter()
            .any(|r| r.start <= physical && physical < r.end)
    }

    /// Copies `buffer.len()` bytes from the current thread's memory at `pointer`.
    pub(crate) fn copy_from_user(&mut self, pointer: u64, buffer: &mut [u8]) -> Result<(), Error> {
        self.copy_user(pointer, buffer.len(), false, |offset, physical, length| {
            // SAFETY: `physical..+length` is one page of the caller's mapped RAM.
            let source =
                unsafe { core::slice::from_raw_parts(phys_to_virt(physical) as *const u8, length) };
            buffer[offset..offset + length].copy_from_slice(source);
        })
    }

    /// Copies `bytes` into the current thread's writable memory at `pointer`.
    pub(crate) fn copy_to_user(&mut self, pointer: u64, bytes: &[u8]) -> Result<(), Error> {
        self.copy_user(pointer, bytes.len(), true, |offset, physical, length| {
            // SAFETY: `physical..+length` is one page of the caller's writable RAM.
            let target = unsafe {
                core::slice::from_raw_parts_mut(phys_to_virt(physical) as *mut u8, length)
            };
            target.copy_from_slice(&bytes[offset..offset + length]);
        })
    }

    pub(crate) fn copy_user(
        &mut self,
        pointer: u64,
        length: usize,
        write: bool,
        mut each: impl FnMut(usize, u64, usize),
    ) -> Result<(), Error> {
        let end = pointer
            .checked_add(length as u64)
            .filter(|&end| end <= kaal_abi::layout::USER_END)
            .ok_or(Error::BadAddress)?;
        // Every address below is under `USER_END`, so the page steps cannot overflow.
        // Check every page before touching any, so a failed copy changes nothing.
        let mut at = pointer;
        while at < end {
            self.user_translate(at, write).ok_or(Error::BadAddress)?;
            at = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        }
        let mut at = pointer;
        while at < end {
            let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(end - at);
            let physical = self.user_translate(at, write).ok_or(Error::BadAddress)?;
            each((at - pointer) as usize, physical, chunk as usize);
            at += chunk;
        }
        Ok(())
    }

    /// Writes at most [`CONSOLE_WRITE_MAX_BYTES`] bytes of the caller's memory to the
    /// console (interrupts are masked meanwhile, so the bound bounds the time; a full
    /// UART FIFO ends the write early, see [`crate::console::write_user`]), marking
    /// lines that look like the kernel's (the caller's capability is checked already).
    /// Returns how many bytes were written.
    pub(crate) fn console_write(&mut self, pointer: u64, length: u64) -> SyscallResult {
        if length > CONSOLE_WRITE_MAX_BYTES as u64 {
            return Err(Error::InvalidArgument);
        }
        let mut buffer = [0u8; CONSOLE_WRITE_MAX_BYTES];
        self.copy_from_user(pointer, &mut buffer[..length as usize])?;
        let written = crate::console::write_user(&buffer[..length as usize]);
        Ok((written as u64, 0))
    }
}
