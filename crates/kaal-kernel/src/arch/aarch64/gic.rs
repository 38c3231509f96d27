//! The Arm Generic Interrupt Controller, versions 2 and 3, for one CPU.
//!
//! The memory-mapped frames (GICv2 distributor and CPU interface, GICv3 distributor
//! and redistributor) are `tock-registers` blocks, like the PL011's: offsets and the
//! fields the kernel uses are declared once, typed. The GICv3 CPU interface is system
//! registers (`ICC_*_EL1`), reached with `asm!`: `aarch64-cpu` has no accessors for the
//! EL1 ones the kernel uses (`ICC_SRE_EL1`, `ICC_PMR_EL1`, `ICC_BPR1_EL1`,
//! `ICC_IGRPEN0_EL1`, `ICC_IGRPEN1_EL1`, `ICC_IAR0_EL1`, `ICC_IAR1_EL1`,
//! `ICC_EOIR0_EL1`, `ICC_EOIR1_EL1`).

use core::arch::asm;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

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

register_bitfields! {u32,
    /// Distributor control register (single security state).
    pub(super) GICD_CTLR [
        /// Enables group 0 interrupts.
        EnableGrp0 OFFSET(0) NUMBITS(1) [],
        /// Enables group 1 interrupts.
        EnableGrp1 OFFSET(1) NUMBITS(1) [],
        /// GICv3: affinity routing enabled.
        ARE OFFSET(4) NUMBITS(1) [],
    ],
    /// Software generated interrupt register (GICv2).
    pub(super) GICD_SGIR [
        /// Which CPU interfaces the SGI goes to.
        TargetListFilter OFFSET(24) NUMBITS(2) [
            /// The CPU interfaces in `CPUTargetList`.
            TargetList = 0b00,
            /// Every CPU interface but the requesting one.
            AllOther = 0b01,
            /// Only the requesting CPU interface.
            ThisCpu = 0b10,
        ],
        /// The CPU interfaces the SGI goes to, one bit each (with `TargetList`).
        CPUTargetList OFFSET(16) NUMBITS(8) [],
        /// The SGI's interrupt id.
        SGIINTID OFFSET(0) NUMBITS(4) [],
    ],
    /// CPU interface control register (GICv2, single security state).
    pub(super) GICC_CTLR [
        /// Enables signalling of group 0 interrupts.
        EnableGrp0 OFFSET(0) NUMBITS(1) [],
        /// Group 0 interrupts are signalled as FIQ (the kernel leaves it clear).
        FIQEn OFFSET(3) NUMBITS(1) [],
    ],
    /// Interrupt priority mask register (GICv2).
    pub(super) GICC_PMR [
        /// Only interrupts of a higher priority (lower value) are signalled.
        Priority OFFSET(0) NUMBITS(8) [],
    ],
    /// Interrupt acknowledge register (GICv2).
    pub(super) GICC_IAR [
        /// The acknowledged interrupt's id.
        INTID OFFSET(0) NUMBITS(10) [],
        /// For an SGI, the CPU interface that sent it.
        CPUID OFFSET(10) NUMBITS(3) [],
    ],
    /// End of interrupt register (GICv2).
    pub(super) GICC_EOIR [
        /// The id of the interrupt whose handling ends.
        INTID OFFSET(0) NUMBITS(10) [],
        /// For an SGI, the sender, as the acknowledge read it.
        CPUID OFFSET(10) NUMBITS(3) [],
    ],
    /// Redistributor power management (GICv3).
    pub(super) GICR_WAKER [
        /// The redistributor treats its CPU interface as asleep.
        ProcessorSleep OFFSET(1) NUMBITS(1) [],
        /// The CPU interface is quiescent.
        ChildrenAsleep OFFSET(2) NUMBITS(1) [],
    ],
}

register_structs! {
    /// The distributor registers the kernel uses (`GICD_*`, GICv2 and GICv3).
    pub(super) DistributorRegisters {
        (0x000 => pub(super) ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x004 => _reserved0),
        /// Group of each interrupt, one bit each.
        (0x080 => pub(super) igroupr: [ReadWrite<u32>; 32]),
        /// Writing a 1 bit enables that interrupt.
        (0x100 => pub(super) isenabler: [ReadWrite<u32>; 32]),
        /// Writing a 1 bit disables that interrupt.
        (0x180 => pub(super) icenabler: [ReadWrite<u32>; 32]),
        (0x200 => _reserved1),
        /// Priority of each interrupt, one byte each.
        (0x400 => pub(super) ipriorityr: [ReadWrite<u8>; 1020]),
        (0x7fc => _reserved2),
        /// GICv2: target CPU interfaces of each interrupt, one byte each (bit n: CPU n).
        (0x800 => pub(super) itargetsr: [ReadWrite<u8>; 1020]),
        (0xbfc => _reserved3),
        (0xf00 => pub(super) sgir: WriteOnly<u32, GICD_SGIR::Register>),
        (0xf04 => @END),
    }
}

register_structs! {
    /// The GICv2 CPU interface registers the kernel uses (`GICC_*`).
    pub(super) CpuInterfaceRegisters {
        (0x000 => pub(super) ctlr: ReadWrite<u32, GICC_CTLR::Register>),
        (0x004 => pub(super) pmr: ReadWrite<u32, GICC_PMR::Register>),
        (0x008 => _reserved0),
        (0x00c => pub(super) iar: ReadOnly<u32, GICC_IAR::Register>),
        (0x010 => pub(super) eoir: WriteOnly<u32, GICC_EOIR::Register>),
        (0x014 => @END),
    }
}

register_structs! {
    /// The GICv3 redistributor's RD_base frame registers the kernel uses (`GICR_*`).
    pub(super) RedistributorRegisters {
        (0x000 => _reserved0),
        /// Which CPU the redistributor serves (`Affinity_Value`, bits 32..64), whether
        /// it is the region's last (bit 4) and has virtual LPI frames (bit 1).
        (0x008 => pub(super) typer: ReadOnly<u64>),
        (0x010 => _reserved1),
        (0x014 => pub(super) waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x018 => @END),
    }
}

register_structs! {
    /// The GICv3 redistributor's SGI_base frame registers the kernel uses (`GICR_*`):
    /// SGIs and PPIs of this CPU.
    pub(super) SgiRegisters {
        (0x000 => _reserved0),
        /// Group of each SGI and PPI, one bit each.
        (0x080 => pub(super) igroupr0: ReadWrite<u32>),
        (0x084 => _reserved1),
        /// Writing a 1 bit enables that SGI or PPI.
        (0x100 => pub(super) isenabler0: ReadWrite<u32>),
        (0x104 => _reserved2),
        /// Writing a 1 bit disables that SGI or PPI.
        (0x180 => pub(super) icenabler0: ReadWrite<u32>),
        (0x184 => _reserved3),
        /// Priority of each SGI and PPI, one byte each.
        (0x400 => pub(super) ipriorityr: [ReadWrite<u8>; 32]),
        (0x420 => @END),
    }
}

/// Offset of a redistributor's SGI_base frame from its RD_base frame.
const GICR_SGI_BASE: usize = 0x1_0000;
/// `GICR_TYPER.Last`: the last redistributor of its region.
const GICR_TYPER_LAST: u64 = 1 << 4;
/// `GICR_TYPER.VLPIS`: the redistributor has two more 64 KiB frames (GICv4).
const GICR_TYPER_VLPIS: u64 = 1 << 1;

/// The SGI the kernel sends from one CPU to another.
pub const IPI_SGI: u32 = 1;
/// Interrupt ids from this value up are special (1020..1023: spurious and reserved).
pub const SPURIOUS_START: u32 = 1020;
const DEFAULT_PRIORITY: u8 = 0x80;
/// `ICC_IAR0_EL1`/`ICC_IAR1_EL1.INTID`: the acknowledged interrupt's id (24 bits).
const ICC_IAR_INTID: u64 = 0xff_ffff;

/// A GIC's register frames as register blocks.
pub(super) enum Frames<'a> {
    /// GICv2.
    V2 {
        distributor: &'a DistributorRegisters,
        cpu_interface: &'a CpuInterfaceRegisters,
    },
    /// GICv3 (the CPU interface is system registers).
    V3 {
        distributor: &'a DistributorRegisters,
        redistributor: &'a RedistributorRegisters,
        sgi: &'a SgiRegisters,
    },
}

impl GicRegisters {
    /// The same GIC's frames as the CPU with affinity `affinity` (`MPIDR_EL1`
    /// `Aff3..Aff0`, Aff3 in bits 32..40) reaches them: GICv2's are banked (the same
    /// addresses); GICv3's redistributor is that CPU's own, found by walking the
    /// redistributor region (`region_bytes` from `self`'s redistributor) for the frame
    /// whose `GICR_TYPER` names the CPU. `None` if the region has none for it.
    ///
    /// # Safety
    /// As for [`Gic::new`]: the whole redistributor region is mapped as device memory.
    pub unsafe fn for_cpu(self, affinity: u64, region_bytes: usize) -> Option<Self> {
        let Self::V3 {
            distributor,
            redistributor,
        } = self
        else {
            return Some(self);
        };
        let wanted = (((affinity >> 32) & 0xff) << 24) | (affinity & 0xff_ffff);
        let mut frame = redistributor;
        // Two 64 KiB frames at least per redistributor, inside the mapped region.
        while frame + 2 * GICR_SGI_BASE <= redistributor + region_bytes {
            // SAFETY: the frame lies inside the mapped region (checked above).
            let typer = unsafe { &*(frame as *const RedistributorRegisters) }
                .typer
                .get();
            if typer >> 32 == wanted {
                return Some(Self::V3 {
                    distributor,
                    redistributor: frame,
                });
            }
            if typer & GICR_TYPER_LAST != 0 {
                break;
            }
            frame += if typer & GICR_TYPER_VLPIS != 0 { 4 } else { 2 } * GICR_SGI_BASE;
        }
        None
    }

    /// The frames as register blocks.
    ///
    /// # Safety
    /// The frames must be mapped as device memory for as long as the blocks are used
    /// (the kernel maps the GIC for good).
    pub(super) unsafe fn frames<'a>(self) -> Frames<'a> {
        // SAFETY: the caller's contract: every address is the start of its mapped frame;
        // the register blocks are volatile cells, aligned like them, that only ever read
        // and write them.
        unsafe {
            match self {
                Self::V2 {
                    distributor,
                    cpu_interface,
                } => Frames::V2 {
                    distributor: &*(distributor as *const DistributorRegisters),
                    cpu_interface: &*(cpu_interface as *const CpuInterfaceRegisters),
                },
                Self::V3 {
                    distributor,
                    redistributor,
                } => Frames::V3 {
                    distributor: &*(distributor as *const DistributorRegisters),
                    redistributor: &*(redistributor as *const RedistributorRegisters),
                    sgi: &*((redistributor + GICR_SGI_BASE) as *const SgiRegisters),
                },
            }
        }
    }
}

/// An initialised GIC.
pub struct Gic {
    registers: GicRegisters,
    /// GICv2: the sender of the SGI acknowledged last (`GICC_IAR.CPUID`), which its end
    /// of interrupt must name. (The kernel ends each interrupt before it acknowledges
    /// the next, under its lock.)
    sgi_source: u32,
}

impl Gic {
    /// Initialises the distributor and this CPU's interface; all interrupts start disabled.
    ///
    /// # Safety
    /// The register frames must be mapped as device memory for the kernel's lifetime and
    /// used by nothing else. For GICv3, EL1 must be allowed to use the `ICC_*` registers.
    pub unsafe fn new(registers: GicRegisters) -> Self {
        let gic = Self {
            registers,
            sgi_source: 0,
        };
        match gic.frames() {
            Frames::V2 { distributor, .. } => {
                distributor.ctlr.set(0);
                distributor.ctlr.write(GICD_CTLR::EnableGrp0::SET);
            }
            Frames::V3 { distributor, .. } => {
                // ARE, then enable group 0 and group 1 (single security state).
                distributor.ctlr.write(GICD_CTLR::ARE::SET);
                distributor.ctlr.write(
                    GICD_CTLR::ARE::SET + GICD_CTLR::EnableGrp1::SET + GICD_CTLR::EnableGrp0::SET,
                );
            }
        }
        gic.init_this_cpu();
        gic
    }

    /// This CPU's interface (and GICv3 redistributor) on a CPU other than the boot CPU,
    /// whose [`Gic::new`] set up the distributor. `registers` are this CPU's
    /// ([`GicRegisters::for_cpu`]); its SGIs and PPIs start disabled.
    ///
    /// # Safety
    /// As for [`Gic::new`]; the boot CPU's `new` ran first.
    pub unsafe fn new_secondary(registers: GicRegisters) -> Self {
        let gic = Self {
            registers,
            sgi_source: 0,
        };
        gic.init_this_cpu();
        gic
    }

    /// Enables this CPU's interface: every priority passes, group 1 (GICv3) or group 0
    /// as IRQ (GICv2) signalled; a GICv3 redistributor is woken first.
    fn init_this_cpu(&self) {
        match self.frames() {
            Frames::V2 { cpu_interface, .. } => {
                cpu_interface.pmr.write(GICC_PMR::Priority.val(0xff));
                cpu_interface.ctlr.write(GICC_CTLR::EnableGrp0::SET);
            }
            Frames::V3 {
                redistributor, sgi, ..
            } => {
                redistributor
                    .waker
                    .modify(GICR_WAKER::ProcessorSleep::CLEAR);
                while redistributor.waker.is_set(GICR_WAKER::ChildrenAsleep) {
                    core::hint::spin_loop();
                }
                sgi.igroupr0.set(u32::MAX);
                // SAFETY: the caller guarantees EL1 may use the GICv3 CPU interface.
                // `asm!`: `aarch64-cpu` has no accessors for these `ICC_*_EL1` registers.
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
    }

    /// What [`Gic::send_sgi`] needs to reach this CPU: its CPU interface's bit (GICv2,
    /// as the banked `GICD_ITARGETSR0` reads on it) or its affinity (GICv3).
    pub fn this_cpu_target(&self) -> u64 {
        match self.frames() {
            Frames::V2 { distributor, .. } => u64::from(distributor.itargetsr[0].get()),
            Frames::V3 { .. } => {
                use aarch64_cpu::registers::{MPIDR_EL1, Readable};
                MPIDR_EL1.get() & 0xff_00ff_ffff
            }
        }
    }

    /// Sends SGI `id` (below 16) to the CPU that [`Gic::this_cpu_target`] returned
    /// `target` on, after this CPU's earlier stores are visible to it.
    pub fn send_sgi(&self, id: u32, target: u64) {
        // The receiver reads what was written before the interrupt.
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISH);
        match self.frames() {
            Frames::V2 { distributor, .. } => distributor.sgir.write(
                GICD_SGIR::TargetListFilter::TargetList
                    + GICD_SGIR::CPUTargetList.val(target as u32 & 0xff)
                    + GICD_SGIR::SGIINTID.val(id),
            ),
            Frames::V3 { .. } => {
                let aff0 = target & 0xff;
                let value = (1 << (aff0 % 16))
                    | (((target >> 8) & 0xff) << 16)
                    | (u64::from(id & 0xf) << 24)
                    | (((target >> 16) & 0xff) << 32)
                    | ((aff0 / 16) << 44)
                    | (((target >> 32) & 0xff) << 48);
                // SAFETY: writing ICC_SGI1R_EL1 raises a group-1 SGI at the CPU named;
                // no memory access. `asm!`: `aarch64-cpu` has no accessor for it.
                unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack)) };
            }
        }
    }

    /// Where this GIC's frames are (this CPU's view).
    pub fn registers(&self) -> GicRegisters {
        self.registers
    }

    /// The register frames.
    fn frames(&self) -> Frames<'_> {
        // SAFETY: `new`'s contract: the frames stay mapped as device memory for the
        // kernel's lifetime.
        unsafe { self.registers.frames() }
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
        let (word, bit) = ((id / 32) as usize, 1u32 << (id % 32));
        match self.frames() {
            Frames::V2 { distributor, .. } => {
                distributor.ipriorityr[id as usize].set(DEFAULT_PRIORITY);
                if id >= 32 {
                    // CPU interface 0.
                    distributor.itargetsr[id as usize].set(1);
                }
                distributor.isenabler[word].set(bit);
            }
            Frames::V3 {
                distributor, sgi, ..
            } => {
                if id < 32 {
                    sgi.ipriorityr[id as usize].set(DEFAULT_PRIORITY);
                    sgi.isenabler0.set(bit);
                } else {
                    distributor.ipriorityr[id as usize].set(DEFAULT_PRIORITY);
                    let group = &distributor.igroupr[word];
                    group.set(group.get() | bit);
                    distributor.isenabler[word].set(bit);
                }
            }
        }
    }

    /// Disables interrupt `id`.
    pub fn disable(&mut self, id: u32) {
        let (word, bit) = ((id / 32) as usize, 1u32 << (id % 32));
        match self.frames() {
            Frames::V2 { distributor, .. } => distributor.icenabler[word].set(bit),
            Frames::V3 {
                distributor, sgi, ..
            } => {
                if id < 32 {
                    sgi.icenabler0.set(bit);
                } else {
                    distributor.icenabler[word].set(bit);
                }
            }
        }
    }

    /// Acknowledges the highest-priority pending interrupt and returns its id
    /// (`>= SPURIOUS_START` if none was pending).
    pub fn acknowledge(&mut self) -> u32 {
        match self.frames() {
            Frames::V2 { cpu_interface, .. } => {
                let iar = cpu_interface.iar.extract();
                self.sgi_source = iar.read(GICC_IAR::CPUID);
                iar.read(GICC_IAR::INTID)
            }
            Frames::V3 { .. } => {
                let id: u64;
                // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt; no memory access.
                // `asm!`: `aarch64-cpu` has no accessor for it.
                unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) id, options(nostack)) };
                (id & ICC_IAR_INTID) as u32
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
        match self.frames() {
            Frames::V2 { cpu_interface, .. } => {
                cpu_interface.ctlr.modify(GICC_CTLR::FIQEn::CLEAR);
                None
            }
            Frames::V3 { .. } => {
                // `asm!` below: `aarch64-cpu` has no accessors for the `ICC_*_EL1`
                // registers.
                let mut first = None;
                loop {
                    let id: u64;
                    // SAFETY: reading ICC_IAR0_EL1 acknowledges a group-0 interrupt; no
                    // memory access.
                    unsafe { asm!("mrs {}, icc_iar0_el1", out(reg) id, options(nostack)) };
                    let id = (id & ICC_IAR_INTID) as u32;
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
        match self.frames() {
            Frames::V2 { cpu_interface, .. } => {
                // An SGI's end names its sender too, or the CPU interface keeps its
                // running priority raised (QEMU does not check; hardware does).
                let source = if id < 16 { self.sgi_source } else { 0 };
                cpu_interface
                    .eoir
                    .write(GICC_EOIR::INTID.val(id) + GICC_EOIR::CPUID.val(source));
            }
            Frames::V3 { .. } => {
                // SAFETY: writing ICC_EOIR1_EL1 drops the running priority; no memory access.
                // `asm!`: `aarch64-cpu` has no accessor for it.
                unsafe {
                    asm!("msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(id), options(nostack))
                };
            }
        }
    }
}
