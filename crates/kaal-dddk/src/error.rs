//! The driver kit's errors.

use kaal_user::startup::StartupError;

/// Why a driver could not get a resource or start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The component was not started by the broker (no start-up record).
    #[error("not started by the broker: {0}")]
    NoStartup(StartupError),
    /// The description grants the driver fewer register regions than it declares.
    #[error("register region {index} not granted (the driver has {granted})")]
    MmioNotGranted {
        /// The region asked for.
        index: usize,
        /// How many are granted.
        granted: usize,
    },
    /// A granted region is smaller than the register block the driver declares.
    #[error("register region {index} has {granted} bytes, the register block needs {needed}")]
    MmioTooSmall {
        /// The region.
        index: usize,
        /// Bytes granted.
        granted: u64,
        /// Bytes the register block spans.
        needed: u64,
    },
    /// A granted region is not aligned for the register block.
    #[error("register region {index} at {address:#x} is not aligned to {align}")]
    MmioMisaligned {
        /// The region.
        index: usize,
        /// Where it is mapped.
        address: usize,
        /// Alignment the block needs.
        align: usize,
    },
    /// The description grants no IRQ line at that index.
    #[error("IRQ {index} not granted (the driver has {granted})")]
    IrqNotGranted {
        /// The line asked for (by position).
        index: usize,
        /// How many are granted.
        granted: usize,
    },
    /// The resource was handed out already in this process: a region or line has one
    /// owner.
    #[error("{what} {index} was handed out already")]
    Taken {
        /// `register region` or `IRQ line`.
        what: &'static str,
        /// Its index.
        index: usize,
    },
    /// DMA memory was refused by the broker (no `memory` service, or past the quota).
    #[error("DMA buffer of {bytes} bytes refused: {error}")]
    Dma {
        /// Bytes asked for.
        bytes: u64,
        /// The broker's answer.
        error: kaal_abi::Error,
    },
    /// A system call failed.
    #[error("kernel refused: {0}")]
    Kernel(kaal_abi::Error),
    /// The driver's own initialisation failed (the device did not answer as expected).
    #[error("device not ready: {0}")]
    Device(&'static str),
}

impl From<kaal_abi::Error> for DriverError {
    fn from(error: kaal_abi::Error) -> Self {
        Self::Kernel(error)
    }
}
