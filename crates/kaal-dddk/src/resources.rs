//! What a driver was granted, handed out once each: register regions, IRQ lines, DMA.

use alloc::vec::Vec;
use kaal_user::startup::{DeviceRegisters, GrantKind, Irq, Startup};

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{DmaBuffer, DriverError, IrqLine, Mmio, RegisterBlock};

/// Register regions handed out in this process (bit per region): each once.
static REGIONS_TAKEN: AtomicU64 = AtomicU64::new(0);
/// IRQ lines handed out in this process (bit per line index): each once.
static IRQS_TAKEN: AtomicU64 = AtomicU64::new(0);

/// Claims bit `index` of `taken`; `false` if it was claimed before (or is past 63).
fn claim(taken: &AtomicU64, index: usize) -> bool {
    index < 64 && taken.fetch_or(1 << index, Ordering::AcqRel) & (1 << index) == 0
}

/// What `#[derive(Driver)]` records about a driver, and `kaal-build` reads from its
/// binary without running it: its name and the devices it drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverMetadata {
    /// `#[driver(name = "...")]`: what `system.toml` names in `driver = "..."`.
    pub name: &'static str,
    /// `#[platform(compatible = "...")]` strings: device-tree devices it drives.
    pub compatible: &'static [&'static str],
    /// `#[pci(vendor = .., device = ..)]` ids.
    pub pci: &'static [(u16, u16)],
    /// Register regions it needs.
    pub mmio: u8,
    /// IRQ lines it needs.
    pub irqs: u8,
    /// Sizes of the DMA buffers it needs.
    pub dma: &'static [u64],
}

/// Building a driver from its grants: what `#[derive(Driver)]` implements.
pub trait Probe: Sized {
    /// The driver's metadata.
    const METADATA: DriverMetadata;

    /// Claims the driver's resources and builds it.
    fn probe(resources: &mut Resources) -> Result<Self, DriverError>;
}

/// The resources the broker granted this component, for a driver's probe: the register
/// regions and IRQ lines of its devices (in description order, then its bare IRQ lines),
/// and DMA memory from the broker.
#[derive(Debug)]
pub struct Resources {
    startup: Startup,
    regions: Vec<DeviceRegisters>,
    irqs: Vec<Irq>,
    taken_irqs: u64,
}

impl Resources {
    /// The grants of the component's start-up record.
    pub fn from_startup(startup: Startup) -> Self {
        let mut regions = Vec::new();
        let mut irqs = Vec::new();
        for grant in startup.info().grants() {
            match grant.kind {
                GrantKind::Device => {
                    if let Ok(device) = startup.device(grant.name) {
                        if let Some(irq) = device.irq {
                            irqs.push(irq);
                        }
                        regions.push(device.registers);
                    }
                }
                GrantKind::Irq => {
                    if let Ok(irq) = startup.irq(grant.name) {
                        irqs.push(irq);
                    }
                }
                _ => {}
            }
        }
        Self {
            startup,
            regions,
            irqs,
            taken_irqs: 0,
        }
    }

    /// The component's start-up record (for grants beyond a driver's own: endpoints,
    /// channels).
    pub fn startup(&self) -> &Startup {
        &self.startup
    }

    /// Register region `index` as the register block `R`.
    pub fn mmio<R: RegisterBlock>(&mut self, index: usize) -> Result<Mmio<R>, DriverError> {
        let region = self.regions.get(index).ok_or(DriverError::MmioNotGranted {
            index,
            granted: self.regions.len(),
        })?;
        let mmio = Mmio::new(region, index)?;
        if !claim(&REGIONS_TAKEN, index) {
            return Err(DriverError::Taken {
                what: "register region",
                index,
            });
        }
        Ok(mmio)
    }

    /// IRQ line `index` (the devices' lines first, then bare lines).
    pub fn irq(&mut self, index: usize) -> Result<IrqLine, DriverError> {
        let irq = *self.irqs.get(index).ok_or(DriverError::IrqNotGranted {
            index,
            granted: self.irqs.len(),
        })?;
        if !claim(&IRQS_TAKEN, index) {
            return Err(DriverError::Taken {
                what: "IRQ line",
                index,
            });
        }
        self.taken_irqs |= 1 << index.min(63);
        Ok(IrqLine::new(irq))
    }

    /// A physically contiguous DMA buffer of at least `bytes` from the broker.
    pub fn dma(&mut self, bytes: u64) -> Result<DmaBuffer, DriverError> {
        let broker = self.startup.broker().map_err(DriverError::NoStartup)?;
        let (address, size, physical) = broker
            .allocate_contiguous(bytes)
            .map_err(|error| DriverError::Dma { bytes, error })?;
        Ok(DmaBuffer::new(address, size, physical))
    }

    /// The IRQ lines a probe took, for the event loop to wait on.
    pub(crate) fn taken_irqs(&self) -> impl Iterator<Item = Irq> + '_ {
        self.irqs
            .iter()
            .enumerate()
            .filter(|(i, _)| self.taken_irqs & (1 << (*i).min(63)) != 0)
            .map(|(_, irq)| *irq)
    }
}
