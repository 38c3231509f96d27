//! The broker's errors.

use alloc::string::String;

use crate::accounts::QuotaError;
use crate::devices::DeviceError;
use crate::untyped::UntypedError;
use crate::vspace::VirtualError;
use kaal_user::slots::SlotError;

/// Why the broker refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A system call failed.
    #[error("kernel refused: {0}")]
    Kernel(kaal_abi::Error),
    /// Building a component's process failed.
    #[error("building the process failed: {0}")]
    Process(kaal_user::process::ProcessError),
    /// The system description in the archive is malformed.
    #[error("system description rejected: {0}")]
    Description(#[from] kaal_bootinfo::system::SystemError),
    /// The archive has no image of that name.
    #[error("no image `{name}` in the component archive")]
    NoImage {
        /// The image name.
        name: String,
    },
    /// The image is not a loadable ELF file.
    #[error("image `{name}` is not a loadable ELF file")]
    BadImage {
        /// The image name.
        name: String,
    },
    /// No component of that name.
    #[error("no component `{name}`")]
    UnknownComponent {
        /// The name.
        name: String,
    },
    /// No device of that name in the description.
    #[error("no device `{name}` in the description")]
    UnknownDevice {
        /// The name.
        name: String,
    },
    /// A DMA-capable device was to go to a component its description does not trust with
    /// DMA (`dma = true`): without an IOMMU the device could read and write all memory.
    #[error(
        "device `{device}` can read and write all memory by DMA, and component `{component}` is not trusted with that (`dma = true`)"
    )]
    DmaNotTrusted {
        /// The component.
        component: String,
        /// The device.
        device: String,
    },
    /// A channel's shape is invalid.
    #[error("channel `{name}` has an invalid capacity or element type")]
    BadChannel {
        /// The channel.
        name: String,
    },
    /// More memory than any block can hold.
    #[error("{bytes} bytes is more than one block can hold")]
    TooLarge {
        /// Bytes asked for.
        bytes: u64,
    },
    /// More components than the broker can number.
    #[error("too many components")]
    TooManyComponents,
    /// A quota was exceeded.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// Untyped memory ran out or a block was misused.
    #[error(transparent)]
    Untyped(#[from] UntypedError<kaal_abi::Error>),
    /// A device or IRQ could not be granted.
    #[error(transparent)]
    Device(DeviceError),
    /// A component's CSpace is full.
    #[error(transparent)]
    Slots(#[from] SlotError),
    /// A component's address space has no room left.
    #[error(transparent)]
    Virtual(#[from] VirtualError),
    /// The start-up record is full.
    #[error(transparent)]
    Startup(#[from] kaal_bootinfo::startup::StartupError),
}

impl From<kaal_abi::Error> for BrokerError {
    fn from(error: kaal_abi::Error) -> Self {
        Self::Kernel(error)
    }
}

impl BrokerError {
    /// The error code a component gets for this error over the service endpoint.
    pub fn code(&self) -> kaal_abi::Error {
        use kaal_abi::Error;
        match self {
            Self::Kernel(error) => *error,
            Self::Process(kaal_user::process::ProcessError::Kernel(error)) => *error,
            Self::Quota(_) | Self::Untyped(_) | Self::TooLarge { .. } => Error::NotEnoughMemory,
            Self::Device(_) => Error::IllegalOperation,
            Self::DmaNotTrusted { .. } => Error::MissingRights,
            Self::Slots(_) | Self::Virtual(_) | Self::TooManyComponents => Error::OutOfResources,
            _ => Error::InvalidArgument,
        }
    }
}
