//! The Arm Generic Interrupt Controller, versions 2 and 3, for one CPU.

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};

/// Where a GIC's register frames are, as kernel virtual addresses.
#[derive(Clone, Copy, Debug)]
pub enum GicRegisters {
    /// GICv2: distributor and CPU interface frames.
    V2 {
        /// `GICD_*` frame.
        distributor: usize,
        /// `GICC_*` frame.
        cpu_interface: usize,
    },
    /// GICv3: distributor and this CPU's redistributor (CPU interface is system registers).
    V3 {
        /// `GICD_*` frame.
        distributor: usize,
        /// `GICR_*` frames (RD_base; SGI_base follows 64 KiB later).
        redistributor: usize,
    },
}

const GICD_CTLR: usize = 0x000;
const GICD_IGROUPR: usize = 0x080;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICC_CTLR: usize = 0x000;
/// `GICC_CTLR.FIQEn`: group 0 signalled as FIQ (the kernel leaves it clear).
const GICC_CTLR_FIQ_EN: u32 = 1 << 3;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00c;
const GICC_EOIR: usize = 0x010;
const GICR_WAKER: usize = 0x014;
const GICR_SGI_BASE: usize = 0x1_0000;
const GICR_IGROUPR0: usize = GICR_SGI_BASE + 0x080;
const GICR_ISENABLER0: usize = GICR_SGI_BASE + 0x100;
const GICR_ICENABLER0: usize = GICR_SGI_BASE + 0x180;
const GICR_IPRIORITYR: usize = GICR_SGI_BASE + 0x400;
/// Interrupt ids from this value up are special (1020..1023: spurious and reserved).
pub const SPURIOUS_START: u32 = 1020;
const DEFAULT_PRIORITY: u8 = 0x80;

/// An initialised GIC.
pub struct Gic {
    registers: GicRegisters,
}

fn read(address: usize) -> u32 {
    // SAFETY: only called with addresses inside GIC frames that `Gic::new`'s contract
    // guarantees are mapped as device memory.
    unsafe { read_volatile(address as *const u32) }
}

fn write(address: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { write_volatile(address as *mut u32, value) }
}

fn write_byte(address: usize, value: u8) {
    // SAFETY: as in `read`; priority and target registers are byte-accessible.
    unsafe { write_volatile(address as *mut u8, value) }
}

impl Gic {
    /// Initialises the distributor and this CPU's interface; all interrupts start disabled.
    ///
    /// # Safety
    /// The register frames must be mapped as device memory for the kernel's lifetime and
    /// used by nothing else. For GICv3, EL1 must be allowed to use the `ICC_*` registers.
    pub unsafe fn new(registers: GicRegisters) -> Self {
        match registers {
            GicRegisters::V2 {
                distributor,
                cpu_interface,
            } => {
                write(distributor + GICD_CTLR, 0);
                write(distributor + GICD_CTLR, 1);
                write(cpu_interface + GICC_PMR, 0xff);
                write(cpu_interface + GICC_CTLR, 1);
            }
            GicRegisters::V3 {
                distributor,
                redistributor,
            } => {
                // ARE, then enable group 0 and group 1 (single security state).
                write(distributor + GICD_CTLR, 1 << 4);
                write(distributor + GICD_CTLR, (1 << 4) | (1 << 1) | 1);
                let waker = read(redistributor + GICR_WAKER);
                write(redistributor + GICR_WAKER, waker & !(1 << 1));
                while read(redistributor + GICR_WAKER) & (1 << 2) != 0 {
                    core::hint::spin_loop();
                }
                write(redistributor + GICR_IGROUPR0, u32::MAX);
                // SAFETY: the caller guarantees EL1 may use the GICv3 CPU interface.
                unsafe {
                    asm!(
                        "mrs {t}, icc_sre_el1",
                        "orr {t}, {t}, #1",
                        "msr icc_sre_el1, {t}",
                        "isb",
                        "msr icc_pmr_el1, {pmr}",
                        "msr icc_bpr1_el1, xzr",
                        "msr icc_igrpen1_el1, {one}",
                        // Group 0 (signalled as FIQ) stays off: the kernel uses no FIQs.
                        "msr icc_igrpen0_el1, xzr",
                        "isb",
                        t = out(reg) _,
                        pmr = in(reg) 0xffu64,
                        one = in(reg) 1u64,
                        options(nostack),
                    );
                }
            }
        }
        Self { registers }
    }

    /// GIC version: 2 or 3.
    pub fn version(&self) -> u32 {
        match self.registers {
            GicRegisters::V2 { .. } => 2,
            GicRegisters::V3 { .. } => 3,
        }
    }

    /// Enables interrupt `id` (SGI/PPI < 32 or SPI) at the default priority, to this CPU.
    pub fn enable(&mut self, id: u32) {
        let (word, bit) = ((id / 32) as usize * 4, 1u32 << (id % 32));
        match self.registers {
            GicRegisters::V2 { distributor, .. } => {
                write_byte(
                    distributor + GICD_IPRIORITYR + id as usize,
                    DEFAULT_PRIORITY,
                );
                if id >= 32 {
                    write_byte(distributor + GICD_ITARGETSR + id as usize, 1);
                }
                write(distributor + GICD_ISENABLER + word, bit);
            }
            GicRegisters::V3 {
                distributor,
                redistributor,
            } => {
                if id < 32 {
                    write_byte(
                        redistributor + GICR_IPRIORITYR + id as usize,
                        DEFAULT_PRIORITY,
                    );
                    write(redistributor + GICR_ISENABLER0, bit);
                } else {
                    write_byte(
                        distributor + GICD_IPRIORITYR + id as usize,
                        DEFAULT_PRIORITY,
                    );
                    let group = distributor + GICD_IGROUPR + word;
                    write(group, read(group) | bit);
                    write(distributor + GICD_ISENABLER + word, bit);
                }
            }
        }
    }

    /// Disables interrupt `id`.
    pub fn disable(&mut self, id: u32) {
        let (word, bit) = ((id / 32) as usize * 4, 1u32 << (id % 32));
        match self.registers {
            GicRegisters::V2 { distributor, .. } => write(distributor + GICD_ICENABLER + word, bit),
            GicRegisters::V3 {
                distributor,
                redistributor,
            } => {
                if id < 32 {
                    write(redistributor + GICR_ICENABLER0, bit);
                } else {
                    write(distributor + GICD_ICENABLER + word, bit);
                }
            }
        }
    }

    /// Acknowledges the highest-priority pending interrupt and returns its id
    /// (`>= SPURIOUS_START` if none was pending).
    pub fn acknowledge(&mut self) -> u32 {
        match self.registers {
            GicRegisters::V2 { cpu_interface, .. } => read(cpu_interface + GICC_IAR) & 0x3ff,
            GicRegisters::V3 { .. } => {
                let id: u64;
                // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt; no memory access.
                unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) id, options(nostack)) };
                (id & 0xff_ffff) as u32
            }
        }
    }

    /// Turns off FIQ signalling after a stray FIQ (the kernel uses none) and returns the
    /// group-0 interrupt that was pending, if the GIC had one to acknowledge.
    ///
    /// GICv3 signals group 0 as FIQ: every pending group-0 interrupt is acknowledged
    /// (`ICC_IAR0_EL1`), disabled and ended, and group 0 is disabled at this CPU interface
    /// (`ICC_IGRPEN0_EL1`). GICv2 signals group 0 as FIQ only with `GICC_CTLR.FIQEn`
    /// set: it is cleared, so that any pending interrupt arrives as an IRQ instead.
    pub fn quiesce_fiq(&mut self) -> Option<u32> {
        match self.registers {
            GicRegisters::V2 { cpu_interface, .. } => {
                let ctlr = read(cpu_interface + GICC_CTLR);
                write(cpu_interface + GICC_CTLR, ctlr & !GICC_CTLR_FIQ_EN);
                None
            }
            GicRegisters::V3 { .. } => {
                let mut first = None;
                loop {
                    let id: u64;
                    // SAFETY: reading ICC_IAR0_EL1 acknowledges a group-0 interrupt; no
                    // memory access.
                    unsafe { asm!("mrs {}, icc_iar0_el1", out(reg) id, options(nostack)) };
                    let id = (id & 0xff_ffff) as u32;
                    if id >= SPURIOUS_START {
                        break;
                    }
                    first.get_or_insert(id);
                    self.disable(id);
                    // SAFETY: writing ICC_EOIR0_EL1 ends the interrupt just acknowledged.
                    unsafe {
                        asm!("msr icc_eoir0_el1, {}", "isb", in(reg) u64::from(id), options(nostack))
                    };
                }
                // SAFETY: disabling group 0 at this CPU interface only stops FIQs.
                unsafe { asm!("msr icc_igrpen0_el1, xzr", "isb", options(nostack)) };
                first
            }
        }
    }

    /// Signals the end of handling interrupt `id`.
    pub fn end_of_interrupt(&mut self, id: u32) {
        match self.registers {
            GicRegisters::V2 { cpu_interface, .. } => write(cpu_interface + GICC_EOIR, id),
            GicRegisters::V3 { .. } => {
                // SAFETY: writing ICC_EOIR1_EL1 drops the running priority; no memory access.
                unsafe {
                    asm!("msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(id), options(nostack))
                };
            }
        }
    }
}
