//! The broker's run-time services, as a component sees them: more memory (within its
//! quota), the list of components, and reporting its exit.
//!
//! The protocol is one `call` on the broker's service endpoint per request: the label
//! names the request ([`protocol`]), the reply's label is `0` or an
//! [`Error`](kaal_abi::Error) code. The broker checks every word; a component sending
//! garbage gets an error back.
//!
//! ```ignore
//! let broker = kaal_user::startup()?.broker()?;
//! let (vaddr, bytes) = broker.allocate_memory(64 * 1024)?;
//! for component in broker.components() { /* ... */ }
//! ```

use crate::cap::{Cap, Endpoint};
use crate::ipc::Message;
use kaal_abi::{Error, MessageInfo};

/// Request labels and reply layouts.
pub mod protocol {
    /// `allocate(bytes)` → `(vaddr, bytes, physical)`: maps fresh zeroed, physically
    /// contiguous memory into the caller, charged to its quota. Needs the `memory`
    /// service.
    pub const ALLOCATE: u64 = 1;
    /// `component(index)` → `(id | state << 32, priority | restarts << 32, memory_used,
    /// quota)`; `InvalidArgument` past the last. Needs the `processes` service.
    pub const COMPONENT: u64 = 2;
    /// `component_name(index, chunk)` → 32 bytes of the name from byte `32 * chunk`, zero
    /// padded, in the four words. Needs the `processes` service.
    pub const COMPONENT_NAME: u64 = 3;
    /// `exit(code)`: the caller is about to end with `code`.
    pub const EXIT: u64 = 4;
    /// `power_off()`: switches the machine off. Needs the `system-control` service.
    pub const POWER_OFF: u64 = 5;
    /// `debug_exit(code)`: ends the emulator with `code`. Needs `system-control`.
    pub const DEBUG_EXIT: u64 = 6;
    /// `memory()` → `(free, total, used by components, 0)` in bytes: the broker's
    /// unallocated memory, all memory it manages, and what its components hold. Needs
    /// the `processes` service.
    pub const MEMORY: u64 = 7;
    /// `device(index)` → `(base, size, irq | holder << 32, 0)` for the `index`th device
    /// of the system description; `irq` is `u32::MAX` for none, `holder` is the holding
    /// component's index + 1 or 0; `InvalidArgument` past the last. Needs `processes`.
    pub const DEVICE: u64 = 8;
    /// `channel(index)` → `(capacity | element_bytes << 32, producer + 1 | (consumer +
    /// 1) << 32, region_bytes, 0)` for the `index`th ring channel; `InvalidArgument` past the
    /// last. Needs `processes`.
    pub const CHANNEL: u64 = 9;
    /// `name(kind, index, chunk)` → 32 bytes of a name from byte `32 * chunk`, zero
    /// padded: kind [`NAME_DEVICE`] is a device's `name compatible`, [`NAME_CHANNEL`] a
    /// channel's `name element`. Needs `processes`.
    pub const NAME: u64 = 10;
    /// [`NAME`] kind: a device.
    pub const NAME_DEVICE: u64 = 1;
    /// [`NAME`] kind: a channel.
    pub const NAME_CHANNEL: u64 = 2;
    /// `inject_fault(index)`: makes component `index` fault now (its main thread
    /// continues at an unmapped address), so the broker handles it as any fault: the
    /// restart policy applies. A component whose main thread has already ended is taken
    /// as faulted at once. Needs `system-control`; not on the caller itself.
    pub const INJECT_FAULT: u64 = 11;
    /// Sent by the broker to a component serving an endpoint when the system shuts
    /// down: the component answers and ends (the driver kit's event loop runs the
    /// driver's `shutdown` hook).
    pub const SHUTDOWN: u64 = 0xffff;
}

/// A component's state, as the broker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ComponentState {
    /// Not started yet.
    Created = 0,
    /// Running (or blocked).
    Running = 1,
    /// Ended with an exit code.
    Exited = 2,
    /// Faulted and waiting to be restarted.
    Restarting = 3,
    /// Faulted past its restart budget, or under a `never` policy: stays down.
    Failed = 4,
}

impl ComponentState {
    /// The state numbered `raw`.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Exited,
            3 => Self::Restarting,
            4 => Self::Failed,
            _ => return None,
        })
    }
}

/// One line of the broker's component list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentStatus {
    /// Its id.
    pub id: u32,
    /// Its state.
    pub state: ComponentState,
    /// Its priority.
    pub priority: u8,
    /// How often it was restarted.
    pub restarts: u32,
    /// Memory charged to it, in bytes.
    pub memory_bytes: u64,
    /// Its quota, in bytes.
    pub quota_bytes: u64,
    /// Its name (up to 32 bytes).
    pub name: [u8; 32],
}

impl ComponentStatus {
    /// The name as text.
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(32);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// The broker's memory, as [`BrokerClient::memory`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStatus {
    /// Bytes not handed out.
    pub free_bytes: u64,
    /// Bytes the broker manages.
    pub total_bytes: u64,
    /// Bytes its components hold.
    pub components_bytes: u64,
}

/// A device of the system description, as [`BrokerClient::device`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Physical address of its registers.
    pub base: u64,
    /// Size of its register window.
    pub size_bytes: u64,
    /// Its interrupt line, if it has one.
    pub irq: Option<u32>,
    /// Index of the component holding it, if one does.
    pub holder: Option<u32>,
    /// `name compatible`, zero padded.
    pub text: [u8; 64],
}

/// A ring channel of the system, as [`BrokerClient::channel`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelStatus {
    /// Slots.
    pub capacity: u32,
    /// Bytes per element.
    pub element_bytes: u32,
    /// Index of the producing component.
    pub producer: Option<u32>,
    /// Index of the consuming component.
    pub consumer: Option<u32>,
    /// Bytes of shared memory (header and slots).
    pub region_bytes: u64,
    /// `name element`, zero padded.
    pub text: [u8; 64],
}

/// The text of a zero-padded name buffer.
pub fn padded_text(bytes: &[u8]) -> &str {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("?")
}

impl DeviceStatus {
    /// Its name in the system description.
    pub fn name(&self) -> &str {
        padded_text(&self.text).split(' ').next().unwrap_or("")
    }

    /// Its `compatible` string.
    pub fn compatible(&self) -> &str {
        padded_text(&self.text).split(' ').nth(1).unwrap_or("")
    }
}

impl ChannelStatus {
    /// Its name in the system description.
    pub fn name(&self) -> &str {
        padded_text(&self.text).split(' ').next().unwrap_or("")
    }

    /// Its element type's name.
    pub fn element(&self) -> &str {
        padded_text(&self.text).split(' ').nth(1).unwrap_or("")
    }
}

/// A component index + 1 (0: none) as an index.
const fn plus_one(raw: u64) -> Option<u32> {
    match raw as u32 {
        0 => None,
        n => Some(n - 1),
    }
}

/// A component's handle on the broker.
#[derive(Clone, Copy, Debug)]
pub struct BrokerClient {
    endpoint: Cap<Endpoint>,
    services: u32,
}

impl BrokerClient {
    pub(crate) const fn new(endpoint: Cap<Endpoint>, services: u32) -> Self {
        Self { endpoint, services }
    }

    /// The services the description lets this component use (`services::*` bits of
    /// `kaal_bootinfo::system`).
    pub fn services(&self) -> u32 {
        self.services
    }

    /// Sends request `label` with `words`; the reply's words or its error.
    pub fn request(&self, label: u64, words: [u64; 4]) -> Result<[u64; 4], Error> {
        let reply = self.endpoint.call(&Message::new(label, words))?;
        match reply.info.label {
            0 => Ok(reply.words),
            code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
        }
    }

    /// Asks for `bytes` of memory; returns where it is mapped and its size (rounded up
    /// to whole pages). Refused with `NotEnoughMemory` past the component's quota.
    pub fn allocate_memory(&self, bytes: u64) -> Result<(u64, u64), Error> {
        self.allocate_contiguous(bytes)
            .map(|(vaddr, size, _)| (vaddr, size))
    }

    /// As [`BrokerClient::allocate_memory`], also returning the memory's physical
    /// address: it is one physically contiguous block, usable for DMA.
    pub fn allocate_contiguous(&self, bytes: u64) -> Result<(u64, u64, u64), Error> {
        let [vaddr, size, physical, _] = self.request(protocol::ALLOCATE, [bytes, 0, 0, 0])?;
        Ok((vaddr, size, physical))
    }

    /// The status of component number `index` (0, 1, ... until `InvalidArgument`).
    pub fn component(&self, index: u32) -> Result<ComponentStatus, Error> {
        let [first, second, memory_bytes, quota_bytes] =
            self.request(protocol::COMPONENT, [u64::from(index), 0, 0, 0])?;
        let mut name = [0u8; 32];
        let words = self.request(protocol::COMPONENT_NAME, [u64::from(index), 0, 0, 0])?;
        for (chunk, word) in name.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Ok(ComponentStatus {
            id: first as u32,
            state: ComponentState::from_raw(first >> 32).ok_or(Error::InvalidArgument)?,
            priority: second as u8,
            restarts: (second >> 32) as u32,
            memory_bytes,
            quota_bytes,
            name,
        })
    }

    /// The broker's memory: free, total, held by components. Needs `processes`.
    pub fn memory(&self) -> Result<MemoryStatus, Error> {
        let [free_bytes, total_bytes, components_bytes, _] =
            self.request(protocol::MEMORY, [0; 4])?;
        Ok(MemoryStatus {
            free_bytes,
            total_bytes,
            components_bytes,
        })
    }

    /// 64 bytes of name text of kind `kind` (a `protocol::NAME_*`) for `index`.
    fn name_text(&self, kind: u64, index: u32) -> Result<[u8; 64], Error> {
        let mut text = [0u8; 64];
        for (chunk, part) in text.chunks_exact_mut(32).enumerate() {
            let words = self.request(protocol::NAME, [kind, u64::from(index), chunk as u64, 0])?;
            for (bytes, word) in part.chunks_exact_mut(8).zip(words) {
                bytes.copy_from_slice(&word.to_le_bytes());
            }
        }
        Ok(text)
    }

    /// Device number `index` of the system description (0, 1, ... until `InvalidArgument`).
    /// Needs `processes`.
    pub fn device(&self, index: u32) -> Result<DeviceStatus, Error> {
        let [base, size_bytes, third, _] =
            self.request(protocol::DEVICE, [u64::from(index), 0, 0, 0])?;
        Ok(DeviceStatus {
            base,
            size_bytes,
            irq: Some(third as u32).filter(|&line| line != u32::MAX),
            holder: plus_one(third >> 32),
            text: self.name_text(protocol::NAME_DEVICE, index)?,
        })
    }

    /// Every device of the system description.
    pub fn devices(&self) -> impl Iterator<Item = DeviceStatus> + '_ {
        (0..).map_while(move |index| self.device(index).ok())
    }

    /// Ring channel number `index` (0, 1, ... until `InvalidArgument`). Needs `processes`.
    pub fn channel(&self, index: u32) -> Result<ChannelStatus, Error> {
        let [first, ends, region_bytes, _] =
            self.request(protocol::CHANNEL, [u64::from(index), 0, 0, 0])?;
        Ok(ChannelStatus {
            capacity: first as u32,
            element_bytes: (first >> 32) as u32,
            producer: plus_one(ends & 0xffff_ffff),
            consumer: plus_one(ends >> 32),
            region_bytes,
            text: self.name_text(protocol::NAME_CHANNEL, index)?,
        })
    }

    /// Every ring channel of the system.
    pub fn channels(&self) -> impl Iterator<Item = ChannelStatus> + '_ {
        (0..).map_while(move |index| self.channel(index).ok())
    }

    /// Makes component `index` fault now; the broker then restarts it per its policy
    /// (or leaves it down). Needs `system-control`.
    pub fn inject_fault(&self, index: u32) -> Result<(), Error> {
        self.request(protocol::INJECT_FAULT, [u64::from(index), 0, 0, 0])
            .map(|_| ())
    }

    /// Every component's status.
    pub fn components(&self) -> impl Iterator<Item = ComponentStatus> + '_ {
        (0..).map_while(move |index| self.component(index).ok())
    }

    /// Tells the broker this component ends with `code` (the runtime does this when a
    /// component's `main` returns).
    pub fn exit(&self, code: i32) -> Result<(), Error> {
        self.request(protocol::EXIT, [code as u32 as u64, 0, 0, 0])
            .map(|_| ())
    }

    /// Switches the machine off (needs the `system-control` service).
    pub fn power_off(&self) -> Result<(), Error> {
        self.request(protocol::POWER_OFF, [0; 4]).map(|_| ())
    }

    /// Ends the emulator with `code` (needs the `system-control` service).
    pub fn debug_exit(&self, code: u32) -> Result<(), Error> {
        self.request(protocol::DEBUG_EXIT, [u64::from(code), 0, 0, 0])
            .map(|_| ())
    }
}

/// Builds a reply: label 0 and `words`, or the error's code.
pub fn reply_message(result: Result<[u64; 4], Error>) -> Message {
    match result {
        Ok(words) => Message::new(0, words),
        Err(error) => Message {
            info: MessageInfo::new(error as u64, 0),
            words: [0; 4],
        },
    }
}
