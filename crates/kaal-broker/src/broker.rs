//! The broker: the root task's resources and the components it builds from them.

use alloc::string::String;
use alloc::vec::Vec;
use kaal_abi::{Error, rights, slots};
use kaal_bootinfo::system::{ChannelSpec, SystemDescription};
use kaal_user::cap::{
    self, AddressSpace, Cap, Endpoint, Frame4K, IrqControl, IrqHandler, Notification, Untyped,
};
use kaal_user::memory::MappedFrame;

use crate::accounts::Accounts;
use crate::component::Component;
use crate::devices::{DeviceError, DeviceRegistry, Owner};
use crate::error::BrokerError;
use crate::kernel::{DeviceFrames, KernelUntyped};
use crate::untyped::{Block, UntypedAllocator, size_bits_for};
use crate::vspace::VirtualRanges;

/// The broker's own owner id (memory and devices it uses itself).
pub const BROKER: Owner = Owner(u16::MAX);
/// Badge bit of the fault endpoint copies the broker hands its components (the low 16
/// bits are the component's index).
pub const FAULT_BADGE: u64 = 1 << 32;
/// Badge bit of the service endpoint copies the broker hands its components. Every
/// badge the broker mints is non-zero: an unbadged copy could be re-minted with any
/// badge by its holder.
pub const SERVICE_BADGE: u64 = 1 << 33;
/// Bytes of untyped memory the broker keeps for its own objects (endpoints,
/// notifications, page tables of its own mappings).
const OWN_MEMORY_BYTES: u64 = 4 << 20;
/// Where the broker maps things in its own address space.
const OWN_MAPPINGS: core::ops::Range<u64> = 0x20_0000_0000..0x30_0000_0000;

/// Which device: by `compatible` string and index among the compatible ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId<'a> {
    /// A `compatible` string of the device tree, e.g. `arm,pl031`.
    pub compatible: &'a str,
    /// Which of the compatible devices (0 = the first).
    pub index: u32,
}

impl<'a> DeviceId<'a> {
    /// The `index`-th device compatible with `compatible`.
    pub const fn new(compatible: &'a str, index: u32) -> Self {
        Self { compatible, index }
    }
}

/// A device handed out: frame capabilities of its registers (copies the receiver owns),
/// their physical range, and the handler and notification of its first IRQ.
#[derive(Debug)]
pub struct DeviceGrant {
    /// One frame per 4 KiB page of the registers, in address order.
    pub frames: Vec<Cap<Frame4K>>,
    /// Physical address of the registers.
    pub base: u64,
    /// Size of the registers in bytes.
    pub size_bytes: u64,
    /// The device's first interrupt, if it has one.
    pub irq: Option<IrqGrant>,
}

/// An interrupt line handed out: its handler, routed to a notification.
#[derive(Clone, Copy, Debug)]
pub struct IrqGrant {
    /// The line.
    pub line: u32,
    /// The handler (acknowledge through it).
    pub handler: Cap<IrqHandler>,
    /// The notification it signals.
    pub notification: Cap<Notification>,
}

/// A block of untyped memory handed out.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// The untyped capability.
    pub untyped: Cap<Untyped>,
    /// Its size in bytes (a power of two at least as large as asked).
    pub bytes: u64,
    /// Its physical address (the block is physically contiguous and naturally aligned).
    pub physical: u64,
    pub(crate) block: crate::untyped::BlockId,
}

/// A ring channel's shared memory and notifications, owned by the broker so that they
/// outlive a restart of either end.
#[derive(Debug)]
pub struct Channel {
    /// Its name in the description.
    pub name: String,
    /// The frames of the ring, in order.
    pub frames: Vec<Cap<Frame4K>>,
    /// Size of the ring region in bytes.
    pub region_bytes: u64,
    /// Slot count.
    pub capacity: u32,
    /// Element size and alignment.
    pub element: (u32, u32),
    /// Signalled by the producer when it commits items; the consumer waits on it.
    pub data: Cap<Notification>,
    /// Signalled by the consumer when it frees slots; the producer waits on it.
    pub space: Cap<Notification>,
    /// Producing component (index), if the channel joins components.
    pub producer: Option<usize>,
    /// Consuming component (index).
    pub consumer: Option<usize>,
}

/// A named endpoint of the description.
#[derive(Debug)]
pub struct NamedEndpoint {
    /// Its name.
    pub name: String,
    /// The endpoint.
    pub endpoint: Cap<Endpoint>,
    /// The serving component.
    pub server: Option<usize>,
    /// The components that may call it.
    pub clients: Vec<usize>,
}

/// The broker: the root task's untyped memory, CSpace slots, devices and IRQ lines, and
/// the components built from them.
///
/// ```ignore
/// kaal_user::entry!(main);
/// fn main(boot: &BootInfo<'_>) -> i32 {
///     let mut broker = Broker::new(boot).expect("broker");
///     broker.start_system().expect("system");
///     broker.serve()
/// }
/// ```
pub struct Broker {
    pub(crate) untyped: UntypedAllocator<Cap<Untyped>>,
    pub(crate) backend: KernelUntyped,
    pub(crate) accounts: Accounts,
    pub(crate) devices: DeviceRegistry,
    pub(crate) device_frames: DeviceFrames,
    pub(crate) own: Memory,
    pub(crate) own_mappings: VirtualRanges,
    pub(crate) irq_handlers: Vec<IrqGrant>,
    pub(crate) endpoint: Cap<Endpoint>,
    pub(crate) description: SystemDescription,
    pub(crate) components: Vec<Component>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) endpoints: Vec<NamedEndpoint>,
    pub(crate) ticks_per_ms: u64,
    pub(crate) log: bool,
}

impl core::fmt::Debug for Broker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Broker")
            .field("components", &self.components.len())
            .field("channels", &self.channels.len())
            .field("free_bytes", &self.untyped.free_bytes())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Takes over the root task's RAM untyped memory, device memory and IRQ control as
    /// the boot info describes them, and reads the system description from the
    /// component archive (entry `system`; an empty description if there is none).
    ///
    /// The root task must not retype the boot untyped capabilities itself afterwards.
    pub fn new(boot: &kaal_bootinfo::BootInfo<'_>) -> Result<Self, BrokerError> {
        let description = match kaal_user::components()
            .ok()
            .and_then(|archive| archive.get(kaal_bootinfo::system::SYSTEM_ENTRY))
        {
            Some(bytes) => SystemDescription::decode(bytes)?,
            None => SystemDescription::default(),
        };
        Self::with_description(boot, description)
    }

    /// As [`Broker::new`], with a description given by the caller.
    pub fn with_description(
        boot: &kaal_bootinfo::BootInfo<'_>,
        description: SystemDescription,
    ) -> Result<Self, BrokerError> {
        let caps = boot.caps();
        let mut untyped = UntypedAllocator::new();
        for (index, region) in boot.untyped().take(caps.untyped.count as usize).enumerate() {
            let size_bits = region.size_bytes.trailing_zeros() as u8;
            if region.size_bytes.is_power_of_two() && size_bits >= 12 {
                let handle = Cap::from_slot(u64::from(caps.untyped.start) + index as u64);
                untyped.add_region(handle, region.base, size_bits);
            }
        }
        let mut backend = KernelUntyped;
        let own_bits = size_bits_for(OWN_MEMORY_BYTES).unwrap_or(22);
        let own_block = untyped.allocate(&mut backend, own_bits)?;
        let own = Memory {
            untyped: own_block.handle,
            bytes: own_block.bytes(),
            physical: own_block.base,
            block: own_block.id,
        };
        // Threads the root task spawns from now on take their memory here.
        kaal_user::thread::set_thread_memory(own.untyped);
        let endpoint: Cap<Endpoint> = own.untyped.retype_one(0)?;
        let mut broker = Self {
            untyped,
            backend,
            accounts: Accounts::new(),
            devices: DeviceRegistry::from_boot_info(boot),
            device_frames: DeviceFrames::from_boot_info(boot),
            own,
            own_mappings: VirtualRanges::new(OWN_MAPPINGS.start, OWN_MAPPINGS.end),
            irq_handlers: Vec::new(),
            endpoint,
            description: SystemDescription::default(),
            components: Vec::new(),
            channels: Vec::new(),
            endpoints: Vec::new(),
            ticks_per_ms: (kaal_user::time::ticks_per_second() / 1000).max(1),
            log: true,
        };
        broker.accounts.set_quota(BROKER, u64::MAX);
        broker.description = description;
        Ok(broker)
    }

    /// The system description the broker builds.
    pub fn description(&self) -> &SystemDescription {
        &self.description
    }

    /// Whether the broker prints what it does (`[broker] ...` lines); on by default.
    pub fn set_logging(&mut self, on: bool) {
        self.log = on;
    }

    /// Free untyped memory left, in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.untyped.free_bytes()
    }

    /// Root CSpace slots holding untyped blocks split off the boot regions.
    pub fn untyped_slots(&self) -> usize {
        self.untyped.split_blocks()
    }

    /// The broker's service and fault endpoint.
    pub fn endpoint(&self) -> Cap<Endpoint> {
        self.endpoint
    }

    /// A block of at least `bytes` of untyped memory for the root task itself.
    pub fn allocate_memory(&mut self, bytes: u64) -> Result<Memory, BrokerError> {
        self.allocate_for(BROKER, bytes)
    }

    /// Returns a block from [`Broker::allocate_memory`]; everything made from it is
    /// destroyed.
    pub fn free_memory(&mut self, memory: Memory) -> Result<(), BrokerError> {
        self.free_for(BROKER, memory)
    }

    pub(crate) fn allocate_for(&mut self, owner: Owner, bytes: u64) -> Result<Memory, BrokerError> {
        let size_bits = size_bits_for(bytes).ok_or(BrokerError::TooLarge { bytes })?;
        self.accounts.charge(owner, 1 << size_bits)?;
        match self.untyped.allocate(&mut self.backend, size_bits) {
            Ok(Block {
                id, handle, base, ..
            }) => Ok(Memory {
                untyped: handle,
                bytes: 1 << size_bits,
                physical: base,
                block: id,
            }),
            Err(error) => {
                self.accounts.release(owner, 1 << size_bits);
                Err(error.into())
            }
        }
    }

    pub(crate) fn free_for(&mut self, owner: Owner, memory: Memory) -> Result<(), BrokerError> {
        memory.untyped.revoke()?;
        self.untyped.free(&mut self.backend, memory.block)?;
        self.accounts.release(owner, memory.bytes);
        Ok(())
    }

    /// A new endpoint (from the broker's own memory).
    pub fn create_endpoint(&mut self) -> Result<Cap<Endpoint>, BrokerError> {
        Ok(self.own.untyped.retype_one(0)?)
    }

    /// A new notification (from the broker's own memory).
    pub fn create_notification(&mut self) -> Result<Cap<Notification>, BrokerError> {
        Ok(self.own.untyped.retype_one(0)?)
    }

    /// The handler of interrupt `line`, routed to a new notification. A line is handed
    /// out once: a second request fails with [`DeviceError::IrqAlreadyGranted`].
    pub fn request_irq(&mut self, line: u32) -> Result<IrqGrant, BrokerError> {
        self.devices.claim_irq(line, BROKER)?;
        self.irq(line).inspect_err(|_| {
            self.devices.release_irq(line, BROKER);
        })
    }

    /// The broker-held handler of `line` (made once, kept across component restarts).
    /// Every hand-out routes the line back to the broker's notification and unmasks
    /// it: a previous holder may have routed it elsewhere or left it masked.
    pub(crate) fn irq(&mut self, line: u32) -> Result<IrqGrant, BrokerError> {
        if let Some(grant) = self.irq_handlers.iter().find(|g| g.line == line).copied() {
            // Copies a previous holder made of the handler go first.
            let _ = grant.handler.revoke();
            grant.handler.set_notification(grant.notification)?;
            let _ = grant.handler.ack();
            return Ok(grant);
        }
        let control = Cap::<IrqControl>::from_slot(slots::IRQ_CONTROL);
        let slot = cap::allocate_slot()?;
        let handler = match control.get(line, slot) {
            Ok(handler) => handler,
            Err(error) => {
                let _ = cap::free_slot(slot);
                return Err(error.into());
            }
        };
        // Kept from here on, even if routing fails, so that the line can be asked for
        // again (a second `get` of the same line is refused).
        let notification = match self.create_notification() {
            Ok(notification) => notification,
            Err(error) => {
                let _ = handler.delete();
                let _ = cap::free_slot(slot);
                return Err(error);
            }
        };
        handler.set_notification(notification)?;
        let grant = IrqGrant {
            line,
            handler,
            notification,
        };
        self.irq_handlers.push(grant);
        Ok(grant)
    }

    /// A device for the root task itself: frame copies of its registers and its IRQ.
    /// A device is handed out once: a second request fails with
    /// [`DeviceError::AlreadyGranted`].
    pub fn request_device(&mut self, device: DeviceId<'_>) -> Result<DeviceGrant, BrokerError> {
        self.device_for(device, BROKER)
    }

    /// As [`Broker::request_device`], for the device the description names `name`
    /// (a `[devices.NAME]` table).
    pub fn request_named_device(&mut self, name: &str) -> Result<DeviceGrant, BrokerError> {
        let device = self
            .description
            .device(name)
            .cloned()
            .ok_or(BrokerError::UnknownDevice { name: name.into() })?;
        self.device_for(DeviceId::new(&device.compatible, device.index), BROKER)
    }

    pub(crate) fn device_for(
        &mut self,
        device: DeviceId<'_>,
        owner: Owner,
    ) -> Result<DeviceGrant, BrokerError> {
        let record = self
            .devices
            .claim_device(device.compatible, device.index, owner)?;
        let mut frames = Vec::new();
        let grant = (|| {
            let first = record.base & !0xfff;
            let end = record
                .base
                .checked_add(record.size_bytes.max(1))
                .ok_or(Error::InvalidArgument)?;
            let mut page = first;
            while page < end {
                let frame = self.device_frames.frame(page)?;
                let slot = cap::allocate_slot()?;
                match frame.copy(slot, rights::READ | rights::WRITE) {
                    Ok(copy) => frames.push(copy),
                    Err(error) => {
                        let _ = cap::free_slot(slot);
                        return Err(error.into());
                    }
                }
                page += 4096;
            }
            let irq = match record.irqs.first() {
                Some(&line) => Some(self.irq(line)?),
                None => None,
            };
            Ok::<_, BrokerError>(DeviceGrant {
                frames: core::mem::take(&mut frames),
                base: record.base,
                size_bytes: record.size_bytes,
                irq,
            })
        })();
        if grant.is_err() {
            for frame in frames {
                let slot = frame.slot();
                if frame.delete().is_ok() {
                    let _ = cap::free_slot(slot);
                }
            }
            let _ = self
                .devices
                .release_device(device.compatible, device.index, owner);
        }
        grant
    }

    /// Maps `frames` into the root task's own address space; returns the address.
    pub fn map_own(&mut self, frames: &[Cap<Frame4K>], device: bool) -> Result<u64, BrokerError> {
        let bytes = frames.len() as u64 * 4096;
        let vaddr = self.own_mappings.allocate(bytes, 4096)?;
        let space = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
        let attributes = if device {
            kaal_abi::map_attributes::DEVICE
        } else {
            0
        };
        for (i, frame) in frames.iter().enumerate() {
            cap::map_with_tables(
                *frame,
                space,
                vaddr + i as u64 * 4096,
                rights::READ | rights::WRITE,
                attributes,
                self.own.untyped,
            )?;
        }
        Ok(vaddr)
    }

    /// A ring channel of `N` slots of `T` between components `producer` and `consumer`
    /// (indices into [`Broker::components`]): shared frames with an initialised ring
    /// header and one notification per direction. Built components get it when they
    /// are (re)started; normally the description declares channels instead.
    pub fn create_channel<T, const N: usize>(
        &mut self,
        name: &str,
        producer: usize,
        consumer: usize,
    ) -> Result<usize, BrokerError> {
        let spec = ChannelSpec {
            name: name.into(),
            element: String::from(core::any::type_name::<T>()),
            element_bytes: size_of::<T>() as u32,
            element_align: align_of::<T>() as u32,
            capacity: N as u32,
            producer: self.component_name(producer)?.into(),
            consumer: self.component_name(consumer)?.into(),
        };
        self.add_channel(&spec, Some(producer), Some(consumer))
    }

    fn component_name(&self, index: usize) -> Result<&str, BrokerError> {
        self.components
            .get(index)
            .map(|c| c.spec.name.as_str())
            .ok_or(BrokerError::UnknownComponent {
                name: alloc::format!("#{index}"),
            })
    }

    pub(crate) fn add_channel(
        &mut self,
        spec: &ChannelSpec,
        producer: Option<usize>,
        consumer: Option<usize>,
    ) -> Result<usize, BrokerError> {
        let geometry =
            kaal_ipc::layout::Geometry::new(spec.capacity, spec.element_bytes, spec.element_align)
                .ok_or(BrokerError::BadChannel {
                    name: spec.name.clone(),
                })?;
        let region_bytes = (geometry.region_bytes() as u64).next_multiple_of(4096);
        let memory = self.allocate_for(BROKER, region_bytes)?;
        let pages = region_bytes / 4096;
        let first = cap::allocate_slots(pages)?;
        memory.untyped.retype::<Frame4K>(0, first, pages as u32)?;
        let frames: Vec<Cap<Frame4K>> = (0..pages).map(|i| Cap::from_slot(first + i)).collect();
        // The header lives in the first page; the frames are fresh (zeroed).
        let scratch = frames[0].copy(cap::allocate_slot()?, rights::ALL)?;
        let vaddr = self.own_mappings.allocate(4096, 4096)?;
        let page = MappedFrame::new(scratch, vaddr, self.own.untyped)?;
        for (offset, value) in geometry.header_words() {
            page.write32(offset, value);
        }
        let scratch = page.unmap()?;
        scratch.delete()?;
        self.own_mappings.free(vaddr, 4096)?;
        let data = self.create_notification()?;
        let space = self.create_notification()?;
        self.channels.push(Channel {
            name: spec.name.clone(),
            frames,
            region_bytes,
            capacity: spec.capacity,
            element: (spec.element_bytes, spec.element_align),
            data,
            space,
            producer,
            consumer,
        });
        Ok(self.channels.len() - 1)
    }

    /// Creates the description's channels and endpoints and builds and starts every
    /// component.
    pub fn start_system(&mut self) -> Result<(), BrokerError> {
        let description = self.description.clone();
        for spec in &description.components {
            self.components
                .push(Component::new(spec.clone(), self.components.len())?);
            let owner = self.components[self.components.len() - 1].owner();
            self.accounts.set_quota(owner, spec.memory_quota_bytes);
        }
        let index_of = |name: &str| description.components.iter().position(|c| c.name == name);
        for spec in &description.channels {
            let producer = index_of(&spec.producer);
            let consumer = index_of(&spec.consumer);
            self.add_channel(spec, producer, consumer)?;
        }
        for spec in &description.endpoints {
            let endpoint = self.create_endpoint()?;
            self.endpoints.push(NamedEndpoint {
                name: spec.name.clone(),
                endpoint,
                server: index_of(&spec.server),
                clients: spec.clients.iter().filter_map(|c| index_of(c)).collect(),
            });
        }
        for index in 0..self.components.len() {
            if let Err(error) = self.build(index) {
                if self.log {
                    kaal_user::println!(
                        "[broker] could not start {}: {error}",
                        self.components[index].spec.name
                    );
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// The components, in description order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The component named `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.spec.name == name)
    }

    /// The endpoint the description names `name` (the broker's own capability, unbadged):
    /// for the root task to call a component's service itself.
    pub fn endpoint_named(&self, name: &str) -> Option<Cap<Endpoint>> {
        self.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.endpoint)
    }

    /// The channels.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The device registry: every device and who holds it.
    pub fn devices(&self) -> &DeviceRegistry {
        &self.devices
    }

    pub(crate) fn now_ms(&self) -> u64 {
        kaal_user::time::now_ticks() / self.ticks_per_ms
    }
}

impl From<DeviceError> for BrokerError {
    fn from(error: DeviceError) -> Self {
        Self::Device(error)
    }
}
