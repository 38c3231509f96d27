//! virtio devices on virtio-mmio transports, driven by the `virtio-drivers` crate.
//!
//! * [`KaalHal`] is the `virtio_drivers::Hal` of a KaaL driver: DMA pages and bounce
//!   buffers come from a pool of broker memory ([`add_dma_memory`], physically contiguous,
//!   with its physical address); device addresses translate through the regions the
//!   broker granted.
//! * [`mmio_transport`] checks a granted region, an `Mmio<`[`VirtioMmioHeader`]`>`
//!   (magic value, version, device ID), and builds the `MmioTransport` over it.
//! * [`VirtioBlk`] is a virtio block device served with its interrupt: submit, sleep on
//!   the IRQ line, complete. Its methods are safe; the submission/completion pairing that
//!   `virtio-drivers` leaves to `unsafe` callers is kept here.
//!
//! The buffers a driver passes (`&[u8]` anywhere in its memory, physical address
//! unknown) are copied through bounce buffers of the pool ([`Hal::share`] may do this,
//! says `virtio-drivers`). Bounce buffers are cache-line granular; their lines are
//! cleaned and invalidated before the device is told and after it is done (the kernel
//! lets EL0 do cache maintenance by address), so a device that does not snoop the caches
//! sees the CPU's data and the CPU the device's.
//!
//! ```ignore
//! #[derive(Driver)]
//! #[driver(name = "virtio-blk")]
//! #[platform(compatible = "virtio,mmio")]
//! struct Grants {
//!     #[mmio]
//!     registers: Mmio<VirtioMmioHeader>,
//!     #[irq]
//!     irq: IrqLine,
//!     #[dma(bytes = 65536)]
//!     dma: DmaBuffer,
//! }
//!
//! let grants = Grants::probe(&mut resources)?;
//! let mut disk = VirtioBlk::new(grants.registers, grants.irq, grants.dma)?;
//! let mut sector = [0u8; 512];
//! disk.read(0, &mut sector)?;
//! ```

#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use spin::Mutex;
use tock_registers::interfaces::Readable;
use tock_registers::registers::ReadOnly;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

pub use virtio_drivers;

use crate::{DmaBuffer, DriverError, IrqLine, Mmio, Resources};

crate::register_block! {
    /// A virtio-mmio transport's register header (virtio 1.2 §4.2.2): 0x100 bytes, the
    /// device's configuration follows. Claim a region as `Mmio<VirtioMmioHeader>` (with
    /// `#[mmio]` in a `#[derive(Driver)]` struct, or [`Resources::mmio`]) and hand it to
    /// [`mmio_transport`] or [`VirtioBlk::new`], which read its identification registers
    /// before `virtio-drivers` takes the region over.
    pub VirtioMmioHeader {
        (0x000 => magic: ReadOnly<u32>),
        (0x004 => version: ReadOnly<u32>),
        (0x008 => device_id: ReadOnly<u32>),
        (0x00c => vendor_id: ReadOnly<u32>),
        (0x010 => _registers),
        (0x100 => @END),
    }
}

/// `MagicValue` of a virtio-mmio transport: "virt" in little-endian ASCII.
const MAGIC: u32 = 0x7472_6976;
/// A page, as `virtio-drivers` counts them.
const PAGE: usize = virtio_drivers::PAGE_SIZE;
/// Allocation granule of the DMA pool: one cache line, so that no two allocations share
/// a line and cleaning or invalidating one never touches another.
const GRANULE: usize = 64;

/// One block of broker memory in the pool, with a bitmap of its granules in use.
struct Block {
    address: usize,
    physical: u64,
    granules: usize,
    used: Vec<u64>,
    /// Owns the memory for the component's life; never read through (the pool hands out
    /// pointers into it).
    _memory: DmaBuffer,
}

impl Block {
    fn is_used(&self, granule: usize) -> bool {
        self.used[granule / 64] & (1 << (granule % 64)) != 0
    }

    fn set(&mut self, first: usize, count: usize, used: bool) {
        for granule in first..first + count {
            if used {
                self.used[granule / 64] |= 1 << (granule % 64);
            } else {
                self.used[granule / 64] &= !(1 << (granule % 64));
            }
        }
    }

    /// The first free run of `count` granules starting at a multiple of `align`.
    fn find(&self, count: usize, align: usize) -> Option<usize> {
        let mut start = 0;
        while start + count <= self.granules {
            match (start..start + count).find(|&g| self.is_used(g)) {
                None => return Some(start),
                Some(taken) => start = (taken + 1).next_multiple_of(align),
            }
        }
        None
    }

    /// The granule `physical` starts, if it lies in this block.
    fn granule_of(&self, physical: u64) -> Option<usize> {
        let offset = usize::try_from(physical.checked_sub(self.physical)?).ok()?;
        (offset < self.granules * GRANULE && offset.is_multiple_of(GRANULE))
            .then_some(offset / GRANULE)
    }
}

/// The component's DMA memory: blocks from the broker, handed out in granules.
struct Pool {
    blocks: Vec<Block>,
}

impl Pool {
    /// Takes `buffer` (whole pages, page-aligned) into the pool.
    fn add(&mut self, mut buffer: DmaBuffer) -> Result<(), DriverError> {
        let address = buffer.as_mut_slice().as_mut_ptr() as usize;
        let physical = buffer.physical_address();
        let bytes = buffer.len();
        if !address.is_multiple_of(PAGE) || !physical.is_multiple_of(PAGE as u64) || bytes < PAGE {
            return Err(DriverError::Device(
                "DMA memory for virtio is not whole pages",
            ));
        }
        let granules = bytes / GRANULE;
        self.blocks.push(Block {
            address,
            physical,
            granules,
            used: vec![0; granules.div_ceil(64)],
            _memory: buffer,
        });
        Ok(())
    }

    /// `bytes` (rounded up to granules) aligned to `align` bytes: physical address and
    /// where it is mapped.
    fn allocate(&mut self, bytes: usize, align: usize) -> Option<(u64, usize)> {
        let count = bytes.div_ceil(GRANULE).max(1);
        let align = (align / GRANULE).max(1);
        self.blocks.iter_mut().find_map(|block| {
            let first = block.find(count, align)?;
            block.set(first, count, true);
            Some((
                block.physical + (first * GRANULE) as u64,
                block.address + first * GRANULE,
            ))
        })
    }

    /// Where the allocation at `physical` is mapped.
    fn address_of(&self, physical: u64) -> Option<usize> {
        self.blocks.iter().find_map(|block| {
            let granule = block.granule_of(physical)?;
            block
                .is_used(granule)
                .then_some(block.address + granule * GRANULE)
        })
    }

    /// Returns the `bytes` at `physical`; false if they were not all allocated.
    fn free(&mut self, physical: u64, bytes: usize) -> bool {
        let count = bytes.div_ceil(GRANULE).max(1);
        for block in &mut self.blocks {
            if let Some(first) = block.granule_of(physical) {
                if first + count > block.granules
                    || (first..first + count).any(|g| !block.is_used(g))
                {
                    return false;
                }
                block.set(first, count, false);
                return true;
            }
        }
        false
    }

    fn free_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|block| (0..block.granules).filter(|&g| !block.is_used(g)).count() * GRANULE)
            .sum()
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool { blocks: Vec::new() });

/// A device region granted to this component, for [`Hal::mmio_phys_to_virt`].
#[derive(Clone, Copy)]
struct Region {
    physical: u64,
    address: usize,
    bytes: usize,
}

static REGIONS: Mutex<Vec<Region>> = Mutex::new(Vec::new());

/// Gives DMA memory from the broker (a [`Resources::dma`] buffer) to the pool that
/// [`KaalHal`] allocates virtqueues and bounce buffers from. The buffer stays the pool's
/// for the rest of the component's life.
pub fn add_dma_memory(buffer: DmaBuffer) -> Result<(), DriverError> {
    POOL.lock().add(buffer)
}

/// Bytes of the DMA pool not allocated now (diagnostics: after every request completed,
/// only the virtqueues are left allocated).
pub fn dma_free_bytes() -> usize {
    POOL.lock().free_bytes()
}

/// Makes the CPU's writes to `[address, address + bytes)` visible to a device before it
/// is told about them: the lines are cleaned and invalidated (`dc civac`), for a device
/// that does not snoop the caches (QEMU's are coherent; then this costs a little time),
/// and so that no dirty line is evicted over what the device writes there later.
fn sync_for_device(address: usize, bytes: usize) {
    crate::dma::clean_invalidate_range(address, bytes);
}

/// Makes what a device wrote to `[address, address + bytes)` visible to the CPU: the
/// lines the CPU may have fetched meanwhile are dropped (`dc civac`).
fn sync_for_cpu(address: usize, bytes: usize) {
    crate::dma::clean_invalidate_range(address, bytes);
}

/// The driver kit's `virtio_drivers::Hal`: virtqueue pages and bounce buffers from the
/// pool filled by [`add_dma_memory`], device addresses from the regions granted to the
/// component.
#[derive(Clone, Copy, Debug)]
pub struct KaalHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed ranges of pool memory (broker memory
// mapped read-write for the component's whole life, physically contiguous at the
// physical address the broker reported) that the pool keeps reserved until
// `dma_dealloc`, so they alias nothing else. `mmio_phys_to_virt` only translates into
// regions the broker mapped for the component. `share` copies into pool memory reserved
// likewise until `unshare`, which copies back what the device wrote.
unsafe impl Hal for KaalHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let bytes = pages * PAGE;
        let Some((physical, address)) = POOL.lock().allocate(bytes, PAGE) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: the pool reserved `[address, address + bytes)` for this allocation
        // alone, inside a block mapped read-write for the component's life.
        unsafe { core::ptr::write_bytes(address as *mut u8, 0, bytes) };
        sync_for_device(address, bytes);
        match NonNull::new(address as *mut u8) {
            Some(pointer) => (physical, pointer),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        if POOL.lock().free(paddr, pages * PAGE) {
            0
        } else {
            -1
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let found = REGIONS.lock().iter().find_map(|region| {
            let offset = usize::try_from(paddr.checked_sub(region.physical)?).ok()?;
            (offset.checked_add(size)? <= region.bytes).then_some(region.address + offset)
        });
        match found.and_then(|address| NonNull::new(address as *mut u8)) {
            Some(pointer) => pointer,
            None => panic!(
                "virtio: {paddr:#x} (+{size:#x}) is not in a device region granted to this component"
            ),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let bytes = buffer.len();
        let Some((physical, address)) = POOL.lock().allocate(bytes, GRANULE) else {
            panic!("virtio: DMA pool exhausted sharing {bytes} bytes with a device");
        };
        // Copied in every direction: bytes the device does not write come back unchanged
        // in `unshare`.
        // SAFETY: the caller guarantees `buffer` is valid and not accessed by anyone else
        // during this call; the bounce range was reserved for this share alone and does
        // not overlap the caller's buffer (it is pool memory, which no caller holds).
        unsafe {
            core::ptr::copy_nonoverlapping(buffer.as_ptr().cast::<u8>(), address as *mut u8, bytes)
        };
        sync_for_device(address, bytes);
        physical
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let bytes = buffer.len();
        let mut pool = POOL.lock();
        let Some(address) = pool.address_of(paddr) else {
            panic!("virtio: unshare of {paddr:#x}, which is not a shared buffer");
        };
        if direction != BufferDirection::DriverToDevice {
            sync_for_cpu(address, bytes);
            // SAFETY: the bounce range is still reserved for this share (freed below);
            // the caller guarantees `buffer` is valid for writes of `bytes` and not
            // accessed by anyone else during this call.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    address as *const u8,
                    buffer.as_ptr().cast::<u8>(),
                    bytes,
                )
            };
        }
        pool.free(paddr, bytes);
    }
}

/// Checks that `registers` (a granted region) is a virtio-mmio transport of a device of
/// type `expected` and builds the transport over it. The magic value, the version (1,
/// legacy, or 2) and the device ID must be right, else the driver fails to probe with a
/// [`DriverError::Device`] that names the problem (the values read are printed).
pub fn mmio_transport(
    registers: Mmio<VirtioMmioHeader>,
    expected: DeviceType,
) -> Result<MmioTransport<'static>, DriverError> {
    let header = registers;
    let physical = header.physical_address();
    let magic = header.magic.get();
    if magic != MAGIC {
        kaal_user::println!(
            "[virtio] transport at {physical:#x}: magic value {magic:#010x}, expected {MAGIC:#010x}"
        );
        return Err(DriverError::Device(
            "not a virtio-mmio transport (wrong magic value)",
        ));
    }
    let version = header.version.get();
    if version != 1 && version != 2 {
        kaal_user::println!("[virtio] transport at {physical:#x}: virtio-mmio version {version}");
        return Err(DriverError::Device(
            "unsupported virtio-mmio version (neither 1 nor 2)",
        ));
    }
    let device_id = header.device_id.get();
    if device_id == 0 {
        kaal_user::println!("[virtio] transport at {physical:#x}: no device (device ID 0)");
        return Err(DriverError::Device(
            "no device behind this virtio-mmio transport (device ID 0)",
        ));
    }
    if DeviceType::try_from(device_id) != Ok(expected) {
        kaal_user::println!(
            "[virtio] transport at {physical:#x}: device ID {device_id} (vendor {:#x}), expected {expected:?}",
            header.vendor_id.get()
        );
        return Err(DriverError::Device(
            "virtio-mmio transport holds another type of device",
        ));
    }
    let address = core::ptr::from_ref::<VirtioMmioHeader>(&header) as usize;
    let bytes = usize::try_from(header.bytes()).unwrap_or(0);
    REGIONS.lock().push(Region {
        physical,
        address,
        bytes,
    });
    let pointer = NonNull::new(address as *mut VirtIOHeader).ok_or(DriverError::Device(
        "virtio-mmio region mapped at address 0",
    ))?;
    // SAFETY: `Mmio::new` checked that the granted region is mapped (as device
    // memory, read-write, for the component's whole life, hence `'static`) at a
    // 4-byte-aligned address with at least the 0x100 bytes of the header; `bytes` is the
    // granted size, so the configuration space after the header is inside it too. The
    // `Mmio` handle is consumed here: the region is read through it only before this
    // point.
    unsafe { MmioTransport::new(pointer, bytes) }.map_err(|error| {
        kaal_user::println!("[virtio] transport at {physical:#x}: {error}");
        DriverError::Device("virtio-mmio transport refused by virtio-drivers")
    })
}

/// A virtio block device on a virtio-mmio transport, served with its interrupt: each
/// request is submitted, the driver sleeps on its IRQ line until the device used it,
/// then it is completed. One request is in flight at a time.
pub struct VirtioBlk {
    device: VirtIOBlk<KaalHal, MmioTransport<'static>>,
    irq: IrqLine,
    physical: u64,
    interrupts: u64,
}

impl core::fmt::Debug for VirtioBlk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioBlk")
            .field("physical", &self.physical)
            .field("irq", &self.irq.line())
            .field("capacity", &self.device.capacity())
            .field("interrupts", &self.interrupts)
            .finish()
    }
}

impl VirtioBlk {
    /// Bytes of a sector.
    pub const SECTOR_BYTES: usize = virtio_drivers::device::blk::SECTOR_SIZE;
    /// DMA memory [`VirtioBlk::probe`] asks the broker for (the component needs the
    /// `memory` service): the virtqueue and the bounce buffers of a request.
    pub const DMA_BYTES: u64 = 64 * 1024;

    /// The block device on the transport `registers`, with its interrupt line `irq` and
    /// `dma` (at least [`VirtioBlk::DMA_BYTES`]) for the pool: checks the transport
    /// ([`mmio_transport`]), resets and initialises the device (feature negotiation, the
    /// virtqueue) and unmasks its line.
    pub fn new(
        registers: Mmio<VirtioMmioHeader>,
        irq: IrqLine,
        dma: DmaBuffer,
    ) -> Result<Self, DriverError> {
        let physical = registers.physical_address();
        let transport = mmio_transport(registers, DeviceType::Block)?;
        add_dma_memory(dma)?;
        let mut device = VirtIOBlk::<KaalHal, _>::new(transport).map_err(|error| {
            kaal_user::println!("[virtio] block device at {physical:#x}: {error}");
            DriverError::Device("virtio-blk device did not initialise")
        })?;
        device.enable_interrupts();
        let _ = device.ack_interrupt();
        // A previous life of the driver may have left the line masked.
        irq.ack()?;
        Ok(Self {
            device,
            irq,
            physical,
            interrupts: 0,
        })
    }

    /// [`VirtioBlk::new`] over register region `region` and IRQ line `irq` of the
    /// driver's grants (indices), with [`VirtioBlk::DMA_BYTES`] of DMA memory from the
    /// broker (the component needs the `memory` service).
    pub fn probe(
        resources: &mut Resources,
        region: usize,
        irq: usize,
    ) -> Result<Self, DriverError> {
        Self::new(
            resources.mmio(region)?,
            resources.irq(irq)?,
            resources.dma(Self::DMA_BYTES)?,
        )
    }

    /// Capacity in sectors of [`VirtioBlk::SECTOR_BYTES`].
    pub fn capacity(&self) -> u64 {
        self.device.capacity()
    }

    /// Whether the device refuses writes.
    pub fn read_only(&self) -> bool {
        self.device.readonly()
    }

    /// Physical address of the transport's registers.
    pub fn physical_address(&self) -> u64 {
        self.physical
    }

    /// The device's interrupt line.
    pub fn irq_line(&self) -> u32 {
        self.irq.line()
    }

    /// Interrupts taken so far.
    pub fn interrupts(&self) -> u64 {
        self.interrupts
    }

    fn check(&self, sector: u64, bytes: usize) -> Result<usize, virtio_drivers::Error> {
        let sectors = (bytes / Self::SECTOR_BYTES) as u64;
        if bytes == 0 || !bytes.is_multiple_of(Self::SECTOR_BYTES) {
            return Err(virtio_drivers::Error::InvalidParam);
        }
        match sector.checked_add(sectors) {
            Some(end) if end <= self.capacity() => {
                usize::try_from(sector).map_err(|_| virtio_drivers::Error::InvalidParam)
            }
            _ => Err(virtio_drivers::Error::InvalidParam),
        }
    }

    /// Sleeps on the IRQ line until the device has used the request `token`.
    fn wait(&mut self, token: u16) {
        loop {
            match self.device.peek_used() {
                Some(used) if used == token => return,
                Some(used) => {
                    panic!("virtio-blk: the device used request {used}, only {token} is in flight")
                }
                None => {}
            }
            if self.irq.wait().is_ok() {
                self.interrupts += 1;
                let _ = self.device.ack_interrupt();
                let _ = self.irq.ack();
            } else {
                core::hint::spin_loop();
            }
        }
    }

    /// Reads `buffer.len() / 512` sectors from `sector` into `buffer` (a non-zero
    /// multiple of [`VirtioBlk::SECTOR_BYTES`]); `InvalidParam` past the end of the disk.
    pub fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), virtio_drivers::Error> {
        let block = self.check(sector, buffer.len())?;
        let mut request = BlkReq::default();
        let mut response = BlkResp::default();
        // SAFETY: `request`, `buffer` and `response` stay borrowed by this call until
        // `complete_read_blocks` below takes them back from the queue: `wait` returns
        // only once the device used this request (it panics otherwise), and nothing
        // returns in between.
        let token = unsafe {
            self.device
                .read_blocks_nb(block, &mut request, buffer, &mut response)
        }?;
        self.wait(token);
        // SAFETY: the buffers submitted with `token`, which the device has used.
        unsafe {
            self.device
                .complete_read_blocks(token, &request, buffer, &mut response)
        }
    }

    /// Writes `buffer` to the disk from `sector`; returns once the device reports the
    /// write done (durable across power loss only after [`VirtioBlk::flush`]).
    pub fn write(&mut self, sector: u64, buffer: &[u8]) -> Result<(), virtio_drivers::Error> {
        let block = self.check(sector, buffer.len())?;
        let mut request = BlkReq::default();
        let mut response = BlkResp::default();
        // SAFETY: as in `read`.
        let token = unsafe {
            self.device
                .write_blocks_nb(block, &mut request, buffer, &mut response)
        }?;
        self.wait(token);
        // SAFETY: the buffers submitted with `token`, which the device has used.
        unsafe {
            self.device
                .complete_write_blocks(token, &request, buffer, &mut response)
        }
    }

    /// Asks the device to make every completed write durable (a no-op for a device
    /// without a volatile write cache). Polls for the completion: `virtio-drivers` has
    /// no split form of this request.
    pub fn flush(&mut self) -> Result<(), virtio_drivers::Error> {
        self.device.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    #[repr(C, align(4096))]
    struct Page([u8; PAGE]);

    /// `pages` of page-aligned host memory posing as DMA memory at `physical`.
    fn memory(pages: usize, physical: u64) -> DmaBuffer {
        let pages: &'static mut [Page] = vec![Page([0; PAGE]); pages].leak();
        DmaBuffer::new(
            pages.as_mut_ptr() as u64,
            (pages.len() * PAGE) as u64,
            physical,
        )
    }

    #[test]
    fn pool_hands_out_aligned_disjoint_granules_and_takes_them_back() {
        let mut pool = Pool { blocks: Vec::new() };
        pool.add(memory(2, 0x4000_0000)).unwrap();
        assert_eq!(pool.free_bytes(), 2 * PAGE);
        let (small, small_address) = pool.allocate(16, GRANULE).unwrap();
        assert_eq!(small, 0x4000_0000);
        let (sector, _) = pool.allocate(512, GRANULE).unwrap();
        assert_eq!(
            sector,
            0x4000_0000 + GRANULE as u64,
            "one granule for 16 bytes"
        );
        // A page allocation skips to the next page boundary.
        let (page, page_address) = pool.allocate(PAGE, PAGE).unwrap();
        assert_eq!(page, 0x4000_1000);
        assert_eq!(page_address - small_address, PAGE);
        assert_eq!(pool.allocate(PAGE, PAGE), None, "no second free page");
        assert_eq!(pool.address_of(page), Some(page_address));
        assert!(pool.free(page, PAGE));
        assert!(!pool.free(page, PAGE), "freed twice");
        assert_eq!(pool.address_of(page), None);
        assert!(pool.free(sector, 512) && pool.free(small, 16));
        assert_eq!(pool.free_bytes(), 2 * PAGE);
        assert!(!pool.free(0x5000_0000, 64), "not pool memory");
        assert!(
            pool.add(memory(1, 0x4000_0800)).is_err(),
            "physical address not page-aligned"
        );
    }

    #[test]
    fn hal_zeroes_pages_and_bounces_buffers_both_ways() {
        add_dma_memory(memory(4, 0x8000_0000)).unwrap();
        let free = dma_free_bytes();
        let (physical, pointer) = KaalHal::dma_alloc(2, BufferDirection::Both);
        assert!(physical >= 0x8000_0000 && physical.is_multiple_of(PAGE as u64));
        assert_eq!(dma_free_bytes(), free - 2 * PAGE);
        // SAFETY: the pool handed out two pages at `pointer`.
        let page = unsafe { core::slice::from_raw_parts(pointer.as_ptr(), 2 * PAGE) };
        assert!(page.iter().all(|&b| b == 0));

        let mut data = [7u8; 100];
        let shared = NonNull::from(&mut data[..]);
        // SAFETY: `data` is valid and not otherwise used until `unshare`.
        let device = unsafe { KaalHal::share(shared, BufferDirection::Both) };
        let bounce = POOL.lock().address_of(device).unwrap() as *mut u8;
        // SAFETY: the bounce buffer of this share, 100 bytes; the "device" reads and
        // writes it.
        unsafe {
            assert_eq!(bounce.read(), 7, "copied to the device");
            bounce.write(9);
        }
        // SAFETY: as for `share`.
        unsafe { KaalHal::unshare(device, shared, BufferDirection::Both) };
        assert_eq!((data[0], data[1]), (9, 7), "copied back");

        // SAFETY: the allocation made above, once.
        assert_eq!(unsafe { KaalHal::dma_dealloc(physical, pointer, 2) }, 0);
        assert_eq!(dma_free_bytes(), free);
    }
}
