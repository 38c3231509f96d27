//! What a component was granted, found by name.
//!
//! A component built by the broker finds its start-up record at
//! [`STARTUP_VADDR`](kaal_bootinfo::startup::STARTUP_VADDR) and looks its grants up by
//! the names of its system description:
//!
//! ```ignore
//! let startup = kaal_user::startup()?;
//! let mut samples = startup.producer::<u64, 1024>("samples")?;
//! let fs = startup.endpoint("fs")?;
//! let uart = startup.device("uart0")?;
//! samples.push(42)?;
//! ```
//!
//! Each lookup fails with a [`StartupError`] naming the grant when it is absent or of
//! another kind; a ring channel whose header does not match `T` and `N` fails with the
//! ring's [`AttachError`](kaal_ipc::AttachError).

use crate::cap::{Cap, Endpoint, IrqHandler, Notification};
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_bootinfo::startup::Grant;
pub use kaal_bootinfo::startup::GrantKind;
pub use kaal_bootinfo::startup::{StartupError, StartupInfo};
pub use kaal_ipc::PeerState;
use kaal_ipc::{Attached, Consumer, Notify, Producer, SharedRing};

/// A ring channel's producing end in a component.
pub type ChannelProducer<T, const N: usize> = Producer<T, N, Attached<'static, T, N>, KaalNotify>;
/// A ring channel's consuming end in a component.
pub type ChannelConsumer<T, const N: usize> = Consumer<T, N, Attached<'static, T, N>, KaalNotify>;

/// Why a channel end could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No such grant, or not a channel end of that direction.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The ring in the shared region does not match `T` and `N`.
    #[error("channel ring rejected: {0}")]
    Ring(#[from] kaal_ipc::AttachError),
    /// The ring's indices are corrupt.
    #[error("channel ring indices corrupt")]
    Corrupt,
    /// This end was already taken in this component.
    #[error("channel end already taken")]
    AlreadyTaken,
}

/// Blocking for `kaal-ipc` rings between KaaL components: a side that must wait sleeps
/// on its own notification in the kernel; the peer wakes it by signalling it. The
/// notification word is sticky, so a wake that comes before the sleep is not lost.
/// Timeouts are not supported (a timed wait sleeps until woken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KaalNotify {
    wait: Cap<Notification>,
    signal: Cap<Notification>,
}

impl KaalNotify {
    /// Waits on `wait`, wakes the peer through `signal`.
    pub const fn new(wait: Cap<Notification>, signal: Cap<Notification>) -> Self {
        Self { wait, signal }
    }
}

impl Notify for KaalNotify {
    const NEEDS_WAKE: bool = true;

    fn wait(
        &self,
        word: &kaal_ipc::AtomicU32,
        expected: u32,
        _timeout: Option<core::time::Duration>,
        _process_shared: bool,
    ) {
        if word.load(Ordering::Acquire) == expected {
            let _ = self.wait.wait();
        }
    }

    fn wake(&self, _word: &kaal_ipc::AtomicU32, _process_shared: bool) {
        let _ = self.signal.signal();
    }
}

/// A device's registers, mapped as device memory, read and written with volatile
/// 32-bit accesses inside the granted range.
#[derive(Debug)]
pub struct DeviceRegisters {
    vaddr: u64,
    bytes: u64,
    physical: u64,
}

impl DeviceRegisters {
    /// Size of the mapped range.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Where the registers are mapped in this component.
    pub fn address(&self) -> usize {
        self.vaddr as usize
    }

    /// Physical address of the registers.
    pub fn physical_address(&self) -> u64 {
        self.physical
    }

    fn register(&self, offset: usize) -> Option<*mut u32> {
        (offset.is_multiple_of(4) && (offset as u64).checked_add(4)? <= self.bytes)
            .then(|| (self.vaddr + offset as u64) as *mut u32)
    }

    /// Reads the 32-bit register at byte `offset`; `None` outside the device.
    pub fn read32(&self, offset: usize) -> Option<u32> {
        let register = self.register(offset)?;
        // SAFETY: the broker mapped `bytes` of device memory read-write at `vaddr` for
        // the component's life; the register is inside and aligned.
        Some(unsafe { register.read_volatile() })
    }

    /// Writes the 32-bit register at byte `offset`; `false` outside the device.
    pub fn write32(&self, offset: usize, value: u32) -> bool {
        let Some(register) = self.register(offset) else {
            return false;
        };
        // SAFETY: as in `read32`.
        unsafe { register.write_volatile(value) };
        true
    }
}

/// An interrupt line granted to the component.
#[derive(Clone, Copy, Debug)]
pub struct Irq {
    /// The line.
    pub line: u32,
    /// Its handler (to acknowledge).
    pub handler: Cap<IrqHandler>,
    /// The notification it signals.
    pub notification: Cap<Notification>,
}

impl Irq {
    /// Waits for the interrupt.
    pub fn wait(&self) -> Result<u64, kaal_abi::Error> {
        self.notification.wait()
    }

    /// Acknowledges it (unmasks the line) after the device was served.
    pub fn ack(&self) -> Result<(), kaal_abi::Error> {
        self.handler.ack()
    }
}

/// A device granted to the component: its registers and, if it has one, its IRQ.
#[derive(Debug)]
pub struct Device {
    /// The registers.
    pub registers: DeviceRegisters,
    /// The interrupt, if the device has one.
    pub irq: Option<Irq>,
}

/// The component's start-up record.
#[derive(Clone, Copy, Debug)]
pub struct Startup {
    info: StartupInfo<'static>,
}

/// Channel ends taken so far (bit per entry index; at most 64 channel entries tracked,
/// more are refused).
static TAKEN: AtomicU64 = AtomicU64::new(0);

impl Startup {
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub(crate) fn new(info: StartupInfo<'static>) -> Self {
        Self { info }
    }

    /// The validated record.
    pub fn info(&self) -> &StartupInfo<'static> {
        &self.info
    }

    /// The component's name in the system description.
    pub fn name(&self) -> &'static str {
        self.info.component_name()
    }

    /// How many times the component was started before this start.
    pub fn generation(&self) -> u32 {
        self.info.generation()
    }

    /// The start argument from the system description.
    pub fn argument(&self) -> u64 {
        self.info.argument()
    }

    fn find(&self, name: &str, kind: GrantKind) -> Result<Grant<'static>, StartupError> {
        self.info.find(name, kind)
    }

    /// A client capability to endpoint `name`.
    pub fn endpoint(&self, name: &str) -> Result<Cap<Endpoint>, StartupError> {
        Ok(Cap::from_slot(
            self.find(name, GrantKind::EndpointClient)?.slots[0],
        ))
    }

    /// The endpoint `name` this component serves.
    pub fn serve(&self, name: &str) -> Result<Cap<Endpoint>, StartupError> {
        Ok(Cap::from_slot(
            self.find(name, GrantKind::EndpointServer)?.slots[0],
        ))
    }

    /// The broker's service endpoint and the services this component may use.
    pub fn broker(&self) -> Result<crate::broker::BrokerClient, StartupError> {
        let grant = self.find("broker", GrantKind::Broker)?;
        Ok(crate::broker::BrokerClient::new(
            Cap::from_slot(grant.slots[0]),
            grant.values[0] as u32,
        ))
    }

    /// An interrupt line granted by name.
    pub fn irq(&self, name: &str) -> Result<Irq, StartupError> {
        let grant = self.find(name, GrantKind::Irq)?;
        Ok(Irq {
            line: grant.values[0] as u32,
            handler: Cap::from_slot(grant.slots[0]),
            notification: Cap::from_slot(grant.slots[1]),
        })
    }

    /// A device granted by name: its registers mapped and its IRQ.
    pub fn device(&self, name: &str) -> Result<Device, StartupError> {
        let grant = self.find(name, GrantKind::Device)?;
        let irq = (grant.values[3] != u64::MAX).then(|| Irq {
            line: grant.values[3] as u32,
            handler: Cap::from_slot(grant.slots[0]),
            notification: Cap::from_slot(grant.slots[1]),
        });
        Ok(Device {
            registers: DeviceRegisters {
                vaddr: grant.values[0],
                bytes: grant.values[1],
                physical: grant.values[2],
            },
            irq,
        })
    }

    fn take(
        &self,
        name: &str,
        kind: GrantKind,
    ) -> Result<(Grant<'static>, *mut u8, usize), ChannelError> {
        let grant = self.find(name, kind)?;
        let index = self
            .info
            .grants()
            .position(|g| g.name == name && g.kind == kind)
            .filter(|&i| i < 64)
            .ok_or(ChannelError::AlreadyTaken)?;
        if TAKEN.fetch_or(1 << index, Ordering::AcqRel) & (1 << index) != 0 {
            return Err(ChannelError::AlreadyTaken);
        }
        Ok((grant, grant.values[0] as *mut u8, grant.values[1] as usize))
    }

    fn notify(grant: &Grant<'_>) -> KaalNotify {
        KaalNotify::new(
            Cap::from_slot(grant.slots[0]),
            Cap::from_slot(grant.slots[1]),
        )
    }

    /// The producing end of channel `name`, carrying `T`s in `N` slots. Blocking pushes
    /// sleep on a notification until the consumer makes room.
    pub fn producer<T, const N: usize>(
        &self,
        name: &str,
    ) -> Result<ChannelProducer<T, N>, ChannelError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        let (grant, region, bytes) = self.take(name, GrantKind::ChannelProducer)?;
        // SAFETY: the broker mapped `bytes` of shared memory read-write at `region` for
        // the component's whole life; `take` hands each channel end out once per
        // component, so this is the one attachment to the mapping in this process. The
        // peer is not trusted: `attach_vouched` validates the header. It skips the
        // item-type fingerprint: the broker laid the ring out from the system
        // description, whose element type the typed accessors give both ends, and a
        // type's path differs between the two component crates that declare it.
        let attached = unsafe { SharedRing::<T, N>::attach_vouched(region, bytes) }?;
        let mut producer = attached
            .into_producer(Self::notify(&grant))
            .map_err(|_| ChannelError::Corrupt)?;
        producer.set_spin_limit(0);
        Ok(producer)
    }

    /// The consuming end of channel `name`. Blocking pops sleep on a notification until
    /// the producer commits items.
    pub fn consumer<T, const N: usize>(
        &self,
        name: &str,
    ) -> Result<ChannelConsumer<T, N>, ChannelError>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        let (grant, region, bytes) = self.take(name, GrantKind::ChannelConsumer)?;
        // SAFETY: as in `producer`.
        let attached = unsafe { SharedRing::<T, N>::attach_vouched(region, bytes) }?;
        let mut consumer = attached
            .into_consumer(Self::notify(&grant))
            .map_err(|_| ChannelError::Corrupt)?;
        consumer.set_spin_limit(0);
        Ok(consumer)
    }
}
