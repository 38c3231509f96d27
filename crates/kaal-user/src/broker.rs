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
    /// quota)`; `NotFound` past the last. Needs the `processes` service.
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

    /// The status of component number `index` (0, 1, ... until `NotFound`).
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
