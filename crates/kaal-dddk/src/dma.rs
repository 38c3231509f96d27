//! DMA buffers: physically contiguous memory from the broker, with its physical address.

#![allow(unsafe_code)]

/// A physically contiguous buffer, mapped in the driver, whose physical address a device
/// can be given. Memory comes from the broker (the component needs the `memory`
/// service) and counts against the component's quota.
#[derive(Debug)]
pub struct DmaBuffer {
    address: usize,
    bytes: usize,
    physical: u64,
}

/// Size of a data-cache line on the cores KaaL runs on (Cortex-A53/A72: 64 bytes).
const CACHE_LINE: usize = 64;

impl DmaBuffer {
    pub(crate) fn new(address: u64, bytes: u64, physical: u64) -> Self {
        Self {
            address: address as usize,
            bytes: bytes as usize,
            physical,
        }
    }

    /// Physical address of the first byte.
    pub fn physical_address(&self) -> u64 {
        self.physical
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the buffer is empty (never: the broker hands out at least 64 KiB).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The buffer's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the broker mapped `bytes` of memory read-write at `address` for this
        // component's whole life, and only this `DmaBuffer` (not `Clone`) refers to it.
        // A device writing it concurrently is the driver's protocol to order (after
        // `invalidate`); the bytes are plain `u8`s, valid for any value.
        unsafe { core::slice::from_raw_parts(self.address as *const u8, self.bytes) }
    }

    /// The buffer's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.address as *mut u8, self.bytes) }
    }

    /// Writes the buffer's cache lines back to memory, for a device that does not snoop
    /// the caches to read what the CPU wrote. (QEMU's devices are coherent; real ones
    /// may not be.)
    pub fn clean(&self) {
        clean_range(self.address, self.bytes);
    }

    /// Writes back and discards the buffer's cache lines, so that the CPU reads what a
    /// non-snooping device wrote (and no dirty line is evicted over it later).
    pub fn invalidate(&mut self) {
        clean_invalidate_range(self.address, self.bytes);
    }
}

/// Writes the cache lines of `[address, address + bytes)` (mapped in this component)
/// back to memory (`DC CVAC`), then waits for that to complete.
pub(crate) fn clean_range(address: usize, bytes: usize) {
    each_line(address, bytes, |line| {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `dc cvac` on an address this component has mapped only writes the
        // line back to memory; it changes no contents (the kernel lets EL0 use it).
        unsafe {
            core::arch::asm!("dc cvac, {line}", line = in(reg) line, options(nostack, preserves_flags))
        };
        let _ = line;
    });
}

/// Writes back and invalidates the cache lines of `[address, address + bytes)`
/// (`DC CIVAC`), then waits for that to complete.
pub(crate) fn clean_invalidate_range(address: usize, bytes: usize) {
    each_line(address, bytes, |line| {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `dc civac` on an address this component has mapped writes the line back
        // and drops it: memory then holds what the CPU or a device wrote last, which is
        // what the caller's protocol with the device asks for.
        unsafe {
            core::arch::asm!("dc civac, {line}", line = in(reg) line, options(nostack, preserves_flags))
        };
        let _ = line;
    });
}

fn each_line(address: usize, bytes: usize, mut operation: impl FnMut(usize)) {
    let mut line = address & !(CACHE_LINE - 1);
    while line < address.saturating_add(bytes) {
        operation(line);
        line += CACHE_LINE;
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier only orders memory accesses.
    unsafe {
        core::arch::asm!("dsb sy", options(nostack, preserves_flags))
    };
}
