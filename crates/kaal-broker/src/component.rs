//! Components: building one as its own process with exactly its grants, and tearing it
//! down so that everything it held returns.

use alloc::vec::Vec;
use kaal_abi::{Error, rights};
use kaal_bootinfo::loader::Window;
use kaal_bootinfo::startup::{Grant, GrantKind, STARTUP_VADDR, StartupWriter};
use kaal_bootinfo::system::ComponentSpec;
use kaal_user::broker::ComponentState;
use kaal_user::cap::{self, Cap, Endpoint, Frame2M, Frame4K};
use kaal_user::process::{CHILD_OWN_SLOTS, CONSOLE_SLOT, FIRST_FREE_SLOT, Process, ProcessOptions};

use crate::broker::{Broker, DeviceId, FAULT_BADGE, Memory, SERVICE_BADGE};
use crate::devices::Owner;
use crate::error::BrokerError;
use crate::restart::RestartBudget;
use crate::vspace::VirtualRanges;
use kaal_user::slots::SlotAllocator;

/// Where a component's heap is mapped.
pub const HEAP_VADDR: u64 = 0x0000_0001_0000_0000;
/// Where channel rings, device registers and memory from the broker are mapped in a
/// component.
pub const GRANT_MAPPINGS: core::ops::Range<u64> = 0x0000_0002_0000_0000..0x0000_0030_0000_0000;
/// What the broker maps into a component after building it: no segment of its image may
/// touch these.
const COMPONENT_WINDOWS: [Window; 2] = [
    Window::new("heap", HEAP_VADDR, GRANT_MAPPINGS.start),
    Window::new("grant", GRANT_MAPPINGS.start, GRANT_MAPPINGS.end),
];
/// The CSpace size of a component (`2^8` slots).
const CNODE_RADIX: u8 = 8;
/// Most frame capabilities the memory a component asks for may take in the root CSpace
/// per life (its quota counts bytes; this bounds the broker's slots).
const MAX_GRANTED_FRAMES: usize = 512;
/// Most blocks of memory a component may ask for per life (each block may cost the
/// broker's untyped allocator a few slots for splits).
const MAX_EXTRA_BLOCKS: usize = 16;
/// The smallest block a request for memory gets.
const MIN_GRANT_BYTES: u64 = 64 * 1024;

/// A component: its description, state and the resources of its current life.
#[derive(Debug)]
pub struct Component {
    pub(crate) spec: ComponentSpec,
    pub(crate) id: u16,
    pub(crate) state: ComponentState,
    pub(crate) budget: RestartBudget,
    pub(crate) generation: u32,
    pub(crate) exit_code: Option<i32>,
    pub(crate) life: Option<Life>,
}

/// What one life of a component holds; all of it goes when the component is destroyed.
#[derive(Debug)]
pub(crate) struct Life {
    process: Process,
    /// The untyped block the process is made of.
    memory: Memory,
    /// Further blocks the component asked for.
    pub(crate) extra: Vec<Memory>,
    /// Copies of broker-owned frames mapped into the component, and frames of the extra
    /// blocks (slots of the root CNode).
    copies: Vec<Cap<Frame4K>>,
    /// 2 MiB frames of the extra blocks.
    large: Vec<Cap<Frame2M>>,
    /// This life's parents (slots of the root CNode) of every capability copied into
    /// the component: revoking them at the end of the life removes every copy the
    /// component holds or passed on.
    parents: Vec<u64>,
    /// Free slots of the component's CSpace.
    child_slots: SlotAllocator,
    /// Free addresses of the component's grant area.
    pub(crate) vspace: VirtualRanges,
}

impl Component {
    pub(crate) fn new(spec: ComponentSpec, index: usize) -> Result<Self, BrokerError> {
        let id = u16::try_from(index)
            .ok()
            .filter(|&id| id < u16::MAX)
            .ok_or(BrokerError::TooManyComponents)?;
        let policy = spec.restart;
        Ok(Self {
            spec,
            id,
            state: ComponentState::Created,
            budget: RestartBudget::new(policy),
            generation: 0,
            exit_code: None,
            life: None,
        })
    }

    /// Its description.
    pub fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its state.
    pub fn state(&self) -> ComponentState {
        self.state
    }

    /// How often it was restarted.
    pub fn restarts(&self) -> u32 {
        self.budget.restarts()
    }

    /// Its exit code, once it exited.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Slots of the root task's CSpace its current life holds (0 when it has none): its
    /// process's objects, its copies of broker frames and endpoints, its extra memory.
    pub fn root_slots(&self) -> usize {
        self.life.as_ref().map_or(0, |life| {
            life.process.slots().len() + life.copies.len() + life.large.len() + life.parents.len()
        })
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner(self.id)
    }

    /// The thread its current life started in, if it has a life.
    pub(crate) fn main_thread(&self) -> Option<kaal_user::cap::Cap<kaal_user::cap::Tcb>> {
        self.life.as_ref().map(|life| life.process.tcb())
    }
}

/// Estimated bytes a process needs for `image` with this description: its pages, stack,
/// heap, IPC buffer, start-up page, page tables, CSpace, thread and address space.
fn footprint(image: &[u8], spec: &ComponentSpec) -> Result<u64, BrokerError> {
    use kaal_bootinfo::loader::{Rules, plan};
    // The planner `Process::build` uses, without its windows: it refuses a malformed
    // image (with no arithmetic that could overflow here) before anything is charged.
    let bytes = plan(
        image,
        &Rules {
            user_start: kaal_abi::layout::USER_START,
            user_end: kaal_abi::layout::USER_END,
            reserved: &[],
            max_bytes: kaal_user::process::MAX_IMAGE_BYTES,
        },
    )
    .map_err(|_| BrokerError::BadImage {
        name: spec.image.clone(),
    })?
    .memory_bytes();
    // Stack, heap, IPC buffer and start-up page; 24 page tables (8 KiB each: the table
    // and its mapping tags); CNode (32-byte slots), TCB and address space; slack for the
    // allocator's natural alignment of objects.
    Ok(bytes
        .saturating_add(spec.stack_bytes)
        .saturating_add(spec.heap_bytes)
        .saturating_add(2 * 4096 + 24 * 8192 + (32 << CNODE_RADIX) + 4096 + 4096 + 8192))
}

impl Broker {
    /// Builds and starts component `index` with its grants.
    pub(crate) fn build(&mut self, index: usize) -> Result<(), BrokerError> {
        let spec = self.components[index].spec.clone();
        let owner = self.components[index].owner();
        let archive = kaal_user::components().map_err(|_| BrokerError::NoImage {
            name: spec.image.clone(),
        })?;
        let image = archive.get(&spec.image).ok_or(BrokerError::NoImage {
            name: spec.image.clone(),
        })?;
        let memory = self.allocate_for(owner, footprint(image, &spec)?)?;
        let options = ProcessOptions {
            cnode_radix: CNODE_RADIX,
            stack_bytes: spec.stack_bytes,
            scratch: Some(self.own.untyped),
            reserved: &COMPONENT_WINDOWS,
            // Given in `grant_all`, through a parent of this life.
            console: None,
            ..ProcessOptions::default()
        };
        let process = match Process::build(memory.untyped, image, &options) {
            Ok(process) => process,
            Err(error) => {
                let _ = self.free_for(owner, memory);
                return Err(BrokerError::Process(error));
            }
        };
        let mut life = Life {
            process,
            memory,
            extra: Vec::new(),
            copies: Vec::new(),
            large: Vec::new(),
            parents: Vec::new(),
            child_slots: SlotAllocator::new(FIRST_FREE_SLOT, CHILD_OWN_SLOTS.start),
            vspace: VirtualRanges::new(GRANT_MAPPINGS.start, GRANT_MAPPINGS.end),
        };
        let result = self.grant_all(index, &mut life);
        let log = self.log;
        let result = result.and_then(|length| {
            place_on_core(&life.process, &spec, log)?;
            life.process
                .start_with(STARTUP_VADDR, length as u64, spec.priority)
                .map_err(BrokerError::from)
        });
        let component = &mut self.components[index];
        component.life = Some(life);
        match result {
            Ok(()) => {
                component.state = ComponentState::Running;
                component.exit_code = None;
                Ok(())
            }
            Err(error) => {
                self.destroy(index);
                self.components[index].state = ComponentState::Failed;
                Err(error)
            }
        }
    }

    /// Puts every grant of component `index` into its CSpace and address space and
    /// writes its start-up record; returns the record's length.
    fn grant_all(&mut self, index: usize, life: &mut Life) -> Result<usize, BrokerError> {
        let spec = self.components[index].spec.clone();
        let id = self.components[index].id;
        let generation = self.components[index].generation;
        let mut page = [0u8; 4096];
        let mut writer = StartupWriter::new(&mut page, &spec.name, u32::from(id), generation)?;
        writer.argument(spec.arguments);

        // Fault endpoint and broker services: the broker's endpoint, badged, send only,
        // copied from parents of this life.
        // The badge carries the life's generation, so a message queued by a previous
        // life (with a copy it passed on) is not taken for this one.
        let identity = u64::from(id) | (u64::from(generation) & 0xffff) << 16;
        let fault_slot = Self::give(
            life,
            self.endpoint,
            rights::WRITE,
            Some(FAULT_BADGE | identity),
        )?;
        life.process.set_fault_endpoint(fault_slot)?;
        let service_slot = Self::give(
            life,
            self.endpoint,
            rights::WRITE,
            Some(SERVICE_BADGE | identity),
        )?;
        writer.push(
            &Grant::new("broker", GrantKind::Broker)
                .slots([service_slot, 0, 0, 0])
                .values([u64::from(spec.services), 0, 0, 0]),
        )?;

        // The console (write only), in the slot the runtime looks in.
        Self::give_console(life)?;

        if spec.heap_bytes > 0 {
            life.process
                .map_new(HEAP_VADDR, spec.heap_bytes, rights::READ | rights::WRITE)?;
            writer.heap(HEAP_VADDR, spec.heap_bytes);
        }

        for endpoint in &self.endpoints {
            let (kind, access, badge) = if endpoint.server == Some(index) {
                (GrantKind::EndpointServer, rights::READ, 0)
            } else if endpoint.clients.contains(&index) {
                (
                    GrantKind::EndpointClient,
                    rights::WRITE | rights::GRANT,
                    u64::from(id) + 1,
                )
            } else {
                continue;
            };
            let slot = Self::give(
                life,
                endpoint.endpoint,
                access,
                (badge != 0).then_some(badge),
            )?;
            writer.push(&Grant::new(&endpoint.name, kind).slots([slot, 0, 0, 0]))?;
        }

        for channel_index in 0..self.channels.len() {
            let channel = &self.channels[channel_index];
            let (kind, wait, signal) = if channel.producer == Some(index) {
                (GrantKind::ChannelProducer, channel.space, channel.data)
            } else if channel.consumer == Some(index) {
                (GrantKind::ChannelConsumer, channel.data, channel.space)
            } else {
                continue;
            };
            let frames = channel.frames.clone();
            let (region_bytes, capacity, element) =
                (channel.region_bytes, channel.capacity, channel.element);
            let name = channel.name.clone();
            let vaddr = life.vspace.allocate(region_bytes, 4096)?;
            Self::map_copies(life, &frames, vaddr, 0)?;
            let wait_slot = Self::give(life, wait, rights::READ, None)?;
            let signal_slot = Self::give(life, signal, rights::WRITE, None)?;
            writer.push(
                &Grant::new(&name, kind)
                    .slots([wait_slot, signal_slot, 0, 0])
                    .values([
                        vaddr,
                        region_bytes,
                        u64::from(capacity),
                        u64::from(element.0) | u64::from(element.1) << 32,
                    ]),
            )?;
        }

        for device_name in &spec.devices {
            let device = self.description.device(device_name).cloned().ok_or(
                BrokerError::UnknownDevice {
                    name: device_name.clone(),
                },
            )?;
            // A description checked by `kaal-build` never asks this; one made another way
            // is held to the same rule.
            if kaal_bootinfo::system::is_dma_capable(&device.compatible)
                && spec.services & kaal_bootinfo::system::services::DMA == 0
            {
                return Err(BrokerError::DmaNotTrusted {
                    component: spec.name.clone(),
                    device: device_name.clone(),
                });
            }
            let grant =
                self.device_for(DeviceId::new(&device.compatible, device.index), Owner(id))?;
            // The frames in the grant are copies already: keep them all (so that they go
            // with the life even if a step fails), then map them.
            life.copies.extend(grant.frames.iter().copied());
            let vaddr = life
                .vspace
                .allocate(grant.frames.len() as u64 * 4096, 4096)?;
            for (i, frame) in grant.frames.iter().enumerate() {
                life.process.map(
                    *frame,
                    vaddr + i as u64 * 4096,
                    rights::READ | rights::WRITE,
                    kaal_abi::map_attributes::DEVICE,
                )?;
            }
            let (handler_slot, notification_slot, line) = match grant.irq {
                Some(irq) => {
                    let (h, n) = self.give_irq(life, irq)?;
                    (h, n, u64::from(irq.line))
                }
                None => (0, 0, u64::MAX),
            };
            writer.push(
                &Grant::new(&device.name, GrantKind::Device)
                    .slots([handler_slot, notification_slot, 0, 0])
                    .values([
                        vaddr + (grant.base & 0xfff),
                        grant.size_bytes,
                        grant.base,
                        line,
                    ]),
            )?;
        }

        for &line in &spec.irqs {
            self.devices.claim_irq(line, Owner(id))?;
            let irq = self.irq(line)?;
            let (handler, notification) = self.give_irq(life, irq)?;
            let name = alloc::format!("irq{line}");
            writer.push(
                &Grant::new(&name, GrantKind::Irq)
                    .slots([handler, notification, 0, 0])
                    .values([u64::from(line), 0, 0, 0]),
            )?;
        }

        let length = writer.finish();
        let startup: Cap<Frame4K> = life.process.retype(0)?;
        kaal_user::process::write_frame(startup, 0, &page[..length], self.own.untyped)?;
        life.process.map(startup, STARTUP_VADDR, rights::READ, 0)?;
        Ok(length)
    }

    /// Copies the broker's console capability into the component's [`CONSOLE_SLOT`]
    /// (write right only), through a parent made for this life. A broker without one
    /// gives none.
    fn give_console(life: &mut Life) -> Result<(), BrokerError> {
        let console = kaal_user::sys::console();
        if !matches!(console.identify(), Ok((kaal_abi::ObjectType::Console, _))) {
            return Ok(());
        }
        let slot = cap::allocate_slot()?;
        let parent = match console.copy(slot, rights::WRITE) {
            Ok(parent) => parent,
            Err(error) => {
                let _ = cap::free_slot(slot);
                return Err(error.into());
            }
        };
        life.parents.push(slot);
        parent.copy_to(life.process.cnode(), CONSOLE_SLOT, rights::WRITE)?;
        Ok(())
    }

    /// Copies `source` into a free slot of the component's CSpace with `access` (and
    /// `badge`), through a parent made for this life; returns the slot.
    fn give<T: kaal_user::cap::ObjectKind>(
        life: &mut Life,
        source: Cap<T>,
        access: u64,
        badge: Option<u64>,
    ) -> Result<u64, BrokerError> {
        let slot = cap::allocate_slot()?;
        let parent = match badge {
            Some(badge) => source.mint(slot, access, badge),
            None => source.copy(slot, access),
        };
        let parent = match parent {
            Ok(parent) => parent,
            Err(error) => {
                let _ = cap::free_slot(slot);
                return Err(error.into());
            }
        };
        life.parents.push(slot);
        let child = life.child_slots.allocate()?;
        parent.copy_to(life.process.cnode(), child, access)?;
        Ok(child)
    }

    /// Copies the broker's IRQ handler (acknowledge only) and notification (wait only)
    /// into the component; the line was routed back to the broker's notification and
    /// unmasked when the broker handed it out.
    fn give_irq(
        &mut self,
        life: &mut Life,
        irq: crate::broker::IrqGrant,
    ) -> Result<(u64, u64), BrokerError> {
        let handler = Self::give(life, irq.handler, rights::READ, None)?;
        let notification = Self::give(life, irq.notification, rights::READ, None)?;
        Ok((handler, notification))
    }

    /// Maps copies of broker-owned `frames` at `vaddr` in the component.
    fn map_copies(
        life: &mut Life,
        frames: &[Cap<Frame4K>],
        vaddr: u64,
        attributes: u64,
    ) -> Result<(), BrokerError> {
        for (i, frame) in frames.iter().enumerate() {
            let slot = cap::allocate_slot()?;
            let copy = match frame.copy(slot, rights::READ | rights::WRITE) {
                Ok(copy) => copy,
                Err(error) => {
                    let _ = cap::free_slot(slot);
                    return Err(error.into());
                }
            };
            life.copies.push(copy);
            life.process.map(
                copy,
                vaddr + i as u64 * 4096,
                rights::READ | rights::WRITE,
                attributes,
            )?;
        }
        Ok(())
    }

    /// Maps `bytes` of fresh memory, charged to component `index`, into it; returns the
    /// address, size and physical address (the block is physically contiguous: usable
    /// for DMA). Blocks of 2 MiB and more are mapped as 2 MiB frames.
    pub(crate) fn grant_memory(
        &mut self,
        index: usize,
        bytes: u64,
    ) -> Result<(u64, u64, u64), BrokerError> {
        if bytes == 0 || bytes > 1 << 40 {
            return Err(BrokerError::Kernel(Error::InvalidArgument));
        }
        let owner = self.components[index].owner();
        let Some(life) = self.components[index].life.as_ref() else {
            return Err(BrokerError::Kernel(Error::InvalidArgument));
        };
        if life.extra.len() >= MAX_EXTRA_BLOCKS {
            return Err(BrokerError::Kernel(Error::OutOfResources));
        }
        let size_bits = crate::untyped::size_bits_for(bytes.max(MIN_GRANT_BYTES))
            .ok_or(BrokerError::TooLarge { bytes })?;
        let (frame_bits, frames) = if size_bits >= 21 {
            (21u8, 1usize << (size_bits - 21))
        } else {
            (12u8, 1usize << (size_bits - 12))
        };
        let over_limit = life.copies.len() + life.large.len() + frames > MAX_GRANTED_FRAMES;
        // The quota is checked first, so that a request past it is named as such.
        let memory = self.allocate_for(owner, 1 << size_bits)?;
        if over_limit {
            let _ = self.free_for(owner, memory);
            return Err(BrokerError::Kernel(Error::OutOfResources));
        }
        let Some(life) = self.components[index].life.as_mut() else {
            let _ = self.free_for(owner, memory);
            return Err(BrokerError::Kernel(Error::InvalidArgument));
        };
        let step = 1u64 << frame_bits;
        let mut made: Vec<u64> = Vec::new();
        let mapped = (|| {
            let vaddr = life.vspace.allocate(memory.bytes, step)?;
            for page in 0..frames as u64 {
                let slot = cap::allocate_slot()?;
                let retyped = if frame_bits == 21 {
                    memory.untyped.retype::<Frame2M>(0, slot, 1)
                } else {
                    memory.untyped.retype::<Frame4K>(0, slot, 1)
                };
                if let Err(error) = retyped {
                    let _ = cap::free_slot(slot);
                    return Err(error.into());
                }
                made.push(slot);
                let at = vaddr + page * step;
                let access = rights::READ | rights::WRITE;
                if frame_bits == 21 {
                    life.process
                        .map(Cap::<Frame2M>::from_slot(slot), at, access, 0)?;
                } else {
                    life.process
                        .map(Cap::<Frame4K>::from_slot(slot), at, access, 0)?;
                }
            }
            Ok::<_, BrokerError>(vaddr)
        })();
        match mapped {
            Ok(vaddr) => {
                for slot in made {
                    if frame_bits == 21 {
                        life.large.push(Cap::from_slot(slot));
                    } else {
                        life.copies.push(Cap::from_slot(slot));
                    }
                }
                life.extra.push(memory);
                Ok((vaddr, memory.bytes, memory.physical))
            }
            Err(error) => {
                // The revoke in `free_for` deletes the frames; their slots return here.
                let _ = self.free_for(owner, memory);
                for slot in made {
                    let _ = cap::free_slot(slot);
                }
                Err(error)
            }
        }
    }

    /// Destroys component `index`'s current life: its process and every object, slot,
    /// mapping, device and IRQ line it held return to the broker.
    pub(crate) fn destroy(&mut self, index: usize) {
        let owner = self.components[index].owner();
        let Some(life) = self.components[index].life.take() else {
            return;
        };
        let _ = life.process.tcb().suspend();
        // Frames made from the extra blocks are deleted with them; copies of broker
        // frames are deleted one by one.
        for copy in &life.copies {
            // Copies the component may have made of it (and passed on) go too.
            let _ = copy.revoke();
            let _ = copy.unmap();
            let slot = copy.slot();
            if copy.delete().is_ok() || cap::identify(slot).is_err() {
                let _ = cap::free_slot(slot);
            }
        }
        for frame in &life.large {
            let _ = frame.unmap();
            let slot = frame.slot();
            if frame.delete().is_ok() || cap::identify(slot).is_err() {
                let _ = cap::free_slot(slot);
            }
        }
        for &slot in &life.parents {
            // Every copy the component held or made of what it was given goes. Revoke
            // and delete act on any capability; the type parameter does not matter.
            let parent = Cap::<Endpoint>::from_slot(slot);
            let _ = parent.revoke();
            if parent.delete().is_ok() {
                let _ = cap::free_slot(slot);
            }
        }
        for memory in life.extra {
            let _ = self.free_for(owner, memory);
        }
        let _ = life.memory.untyped.revoke();
        life.process.release_slots();
        let _ = self.free_for(owner, life.memory);
        self.devices.release_owner(owner);
    }
}

/// Places the component's thread on its `core` before it first runs. A core this machine
/// does not have leaves it on CPU 0 (said on the console when the broker logs): a system
/// described for more cores still runs on fewer.
fn place_on_core(process: &Process, spec: &ComponentSpec, log: bool) -> Result<(), BrokerError> {
    if spec.core == 0 {
        return Ok(());
    }
    match process.tcb().set_affinity(usize::from(spec.core)) {
        Ok(()) => Ok(()),
        Err(Error::InvalidArgument) => {
            if log {
                kaal_user::println!(
                    "[broker] {}: core {} is not online here; it runs on CPU 0",
                    spec.name,
                    spec.core
                );
            }
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}
