//! # kaal-bootinfo: the KaaL boot-info ABI
//!
//! At boot the KaaL kernel describes the machine to the root task in a *boot-info
//! area*: RAM, the untyped memory regions it hands over, the devices found in the
//! device tree, the root task's initial capabilities, where the component archive is,
//! the kernel version and the command line. The kernel writes the area into a page
//! range with [`write_boot_info`] and maps it read-only into the root task at
//! [`BOOT_INFO_VADDR`] (also passed in `x0` at entry); the root task reads it with
//! [`BootInfo::from_bytes`].
//!
//! The crate is data only: `no_std`, no `unsafe`, no allocation (unless the `alloc`
//! feature is on, which adds `boot_info_to_vec` and `archive::ArchiveBuilder`).
//!
//! ## Layout
//!
//! A fixed [`layout::Header`] at offset 0 holds the magic, the version, the header and
//! total sizes, the fixed-size facts and three section descriptors (offset, count,
//! entry size): the untyped array, the device array and a string area that holds
//! strings and IRQ lists referenced by offset and length from the fixed-size entries.
//! Everything is little-endian, every field naturally aligned, every section 8-byte
//! aligned. The crate's `README.md` has the offset table; the [`layout`] module has
//! the structs.
//!
//! ## Versioning
//!
//! [`VERSION_MAJOR`] changes when the layout changes incompatibly; the parser rejects
//! any other major. A new [`VERSION_MINOR`] may only append fields: to the header
//! (growing `header_size`) or to array entries (growing `entry_size`). The parser
//! therefore accepts a larger header or entry size and ignores the unknown tail, and
//! rejects a smaller one.
//!
//! ## Validation
//!
//! [`BootInfo::from_bytes`] checks everything up front (magic, version, sizes, every
//! offset and length in bounds with overflow-free arithmetic, alignment, entry sizes,
//! counts, UTF-8 of every string) and returns a [`BootInfoError`] naming the problem
//! and the offending value. It never panics, whatever the input. Once it succeeds all
//! accessors are infallible.
//!
//! ## Example
//!
//! ```
//! use kaal_bootinfo::{
//!     ArchiveInfo, BootInfo, BootInfoInput, DeviceDesc, InitialCaps, SlotRange,
//!     SystemFacts, UntypedRegion, write_boot_info, BOOT_INFO_MAX_BYTES,
//! };
//!
//! // Kernel side: describe the machine and write it into the boot-info page(s).
//! let untyped = [
//!     UntypedRegion { base: 0x4100_0000, size_bytes: 0x0f00_0000, is_device: false },
//!     UntypedRegion { base: 0x0900_0000, size_bytes: 0x1000, is_device: true },
//! ];
//! let devices = [DeviceDesc {
//!     base: 0x0900_0000,
//!     size_bytes: 0x1000,
//!     irqs: &[33],
//!     compatible: "arm,pl011\0arm,primecell",
//! }];
//! let input = BootInfoInput {
//!     system: SystemFacts {
//!         ram_base: 0x4000_0000,
//!         ram_bytes: 0x1000_0000,
//!         cpu_count: 4,
//!         cpus_online: 4,
//!         timer_frequency_hz: 62_500_000,
//!     },
//!     kernel_version: "0.1.0",
//!     bootargs: "console=pl011",
//!     untyped: &untyped,
//!     devices: &devices,
//!     caps: InitialCaps {
//!         untyped: SlotRange { start: 16, count: 1 },
//!         device_untyped: SlotRange { start: 17, count: 1 },
//!         first_free: 18,
//!     },
//!     archive: ArchiveInfo { phys_base: 0x4800_0000, size_bytes: 8192, user_vaddr: 0 },
//! };
//! let mut page = [0u8; BOOT_INFO_MAX_BYTES];
//! let used = write_boot_info(&mut page, &input)?;
//!
//! // Root-task side: validate once, then read.
//! let info = BootInfo::from_bytes(&page)?;
//! assert_eq!(info.total_size(), used);
//! assert_eq!(info.version(), (1, 1));
//! assert_eq!(info.system().cpu_count, 4);
//! assert_eq!(info.bootargs(), "console=pl011");
//! assert_eq!(info.untyped().filter(|r| r.is_device).count(), 1);
//! let uart = info.find_device("arm,pl011").expect("UART present");
//! assert_eq!(uart.base, 0x0900_0000);
//! assert_eq!(uart.irqs().collect::<Vec<_>>(), [33]);
//! assert_eq!(uart.compatible_list().collect::<Vec<_>>(), ["arm,pl011", "arm,primecell"]);
//! assert_eq!(info.caps().first_free, 18);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod archive;
pub mod driver;
mod error;
pub mod layout;
pub mod loader;
mod parser;
pub mod startup;
#[cfg(feature = "alloc")]
pub mod system;
mod writer;

pub use error::{BootInfoError, BuildError, Part};
pub use parser::{BootInfo, CompatibleList, Device, Devices, Irqs, UntypedRegions};
#[cfg(feature = "alloc")]
pub use writer::boot_info_to_vec;
pub use writer::{boot_info_size, write_boot_info};

/// The examples of `README.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The first eight bytes of a boot-info area: `KAALBOOT`, read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"KAALBOOT");
/// Major version of the layout. A different major is incompatible.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version of the layout. A newer minor only appends fields, or gives a word
/// written as zero a meaning in which zero stays harmless (1.1: `cpus_online`).
pub const VERSION_MINOR: u16 = 1;
/// Where the kernel maps boot info in the root task (read-only). Also passed in x0.
pub const BOOT_INFO_VADDR: u64 = 0x0000_0000_1000_0000;
/// Max size of the boot-info area the kernel maps (bytes).
pub const BOOT_INFO_MAX_BYTES: usize = 16 * 4096;

/// Most untyped regions one boot-info area may list.
pub const MAX_UNTYPED_REGIONS: u32 = 1024;
/// Most devices one boot-info area may list.
pub const MAX_DEVICES: u32 = 512;
/// Most IRQs one device may list.
pub const MAX_IRQS_PER_DEVICE: u32 = 128;
/// Longest kernel version string the writer accepts (bytes).
pub const MAX_KERNEL_VERSION_BYTES: usize = 256;
/// Longest command line the writer accepts (bytes).
pub const MAX_BOOTARGS_BYTES: usize = 4096;
/// Longest `compatible` list of one device the writer accepts (bytes).
pub const MAX_COMPATIBLE_BYTES: usize = 512;

/// A region of physical memory handed to the root task as an untyped capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct UntypedRegion {
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size_bytes: u64,
    /// `true` for device memory (MMIO), `false` for RAM.
    pub is_device: bool,
}

/// A device as the kernel describes it to [`write_boot_info`].
///
/// The root task reads it back as a [`Device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DeviceDesc<'a> {
    /// Physical base address of the register window.
    pub base: u64,
    /// Size of the register window in bytes.
    pub size_bytes: u64,
    /// Interrupt numbers (GIC INTIDs).
    pub irqs: &'a [u32],
    /// The device-tree `compatible` property as stored there: a NUL-separated list,
    /// most specific first (a trailing NUL is allowed).
    pub compatible: &'a str,
}

/// A range of capability slots in the root task's CNode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SlotRange {
    /// First slot.
    pub start: u32,
    /// Number of slots; 0 means none.
    pub count: u32,
}

/// Where the kernel put the root task's initial capabilities.
///
/// Zero counts mean "none yet".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct InitialCaps {
    /// Slots holding the RAM untyped capabilities, in [`BootInfo::untyped`] order.
    pub untyped: SlotRange,
    /// Slots holding the device untyped capabilities, in [`BootInfo::untyped`] order.
    pub device_untyped: SlotRange,
    /// First free slot.
    pub first_free: u32,
}

/// Where the component archive (see [`archive`]) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ArchiveInfo {
    /// Physical base address.
    pub phys_base: u64,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Virtual address of the archive in the root task, or 0 if it is not mapped.
    pub user_vaddr: u64,
}

impl ArchiveInfo {
    /// Whether the kernel mapped the archive into the root task.
    pub const fn is_mapped(&self) -> bool {
        self.user_vaddr != 0
    }
}

/// Facts about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SystemFacts {
    /// Physical base of RAM.
    pub ram_base: u64,
    /// Size of RAM in bytes.
    pub ram_bytes: u64,
    /// Number of CPUs the device tree describes.
    pub cpu_count: u32,
    /// Number of CPUs the kernel started, the boot CPU included (a CPU that failed to
    /// start is left out); 0 from a kernel of boot-info version 1.0, which did not say.
    pub cpus_online: u32,
    /// Frequency of the generic timer (`CNTFRQ_EL0`) in Hz.
    pub timer_frequency_hz: u64,
}

/// Everything [`write_boot_info`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BootInfoInput<'a> {
    /// Machine facts.
    pub system: SystemFacts,
    /// Kernel version string, at most [`MAX_KERNEL_VERSION_BYTES`].
    pub kernel_version: &'a str,
    /// Kernel command line, at most [`MAX_BOOTARGS_BYTES`].
    pub bootargs: &'a str,
    /// Untyped regions, at most [`MAX_UNTYPED_REGIONS`].
    pub untyped: &'a [UntypedRegion],
    /// Devices, at most [`MAX_DEVICES`].
    pub devices: &'a [DeviceDesc<'a>],
    /// The root task's initial capabilities.
    pub caps: InitialCaps,
    /// Where the component archive is.
    pub archive: ArchiveInfo,
}
