//! The broker's endpoint: faults of its components (supervision) and their requests
//! (memory, the component list, exit, power).

use kaal_abi::{Error, fault};
use kaal_bootinfo::system::services;
use kaal_user::broker::{ComponentState, protocol, reply_message};
use kaal_user::ipc::{self, Message, Received};

use crate::broker::{Broker, FAULT_BADGE, SERVICE_BADGE};
use crate::restart::RestartDecision;

/// Something that happened to a component while the broker served its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Component `index` reported its exit with `code`; its resources are returned.
    Exited {
        /// The component.
        index: usize,
        /// Its exit code.
        code: i32,
    },
    /// Component `index` faulted and was built and started again.
    Restarted {
        /// The component.
        index: usize,
        /// Restarts so far.
        restarts: u32,
    },
    /// Component `index` faulted past its restart budget (or its policy is `never`) and
    /// stays down.
    Failed {
        /// The component.
        index: usize,
        /// Restarts it had.
        restarts: u32,
    },
    /// A request was served (or refused).
    Served {
        /// The requesting component.
        index: usize,
        /// The request's label.
        label: u64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A message with a badge no component holds (ignored).
    Stray,
}

impl Broker {
    /// Serves the endpoint forever.
    pub fn serve(&mut self) -> ! {
        loop {
            self.serve_one();
        }
    }

    /// Serves the endpoint until `stop` returns `Some` for an event.
    pub fn serve_until<R>(&mut self, mut stop: impl FnMut(&Broker, &Event) -> Option<R>) -> R {
        loop {
            let event = self.serve_one();
            if let Some(result) = stop(self, &event) {
                return result;
            }
        }
    }

    /// Waits for one message on the endpoint and handles it.
    pub fn serve_one(&mut self) -> Event {
        let Ok(received) = self.endpoint.recv() else {
            return Event::Stray;
        };
        match received.badge & (FAULT_BADGE | SERVICE_BADGE) {
            FAULT_BADGE => self.on_fault(&received),
            SERVICE_BADGE => self.on_request(&received),
            _ => {
                // Only the root task itself holds an unbadged copy; nothing to serve.
                let _ = ipc::reply(&reply_message(Err(Error::InvalidArgument)));
                Event::Stray
            }
        }
    }

    /// The component a badge names, if the badge is of its current life.
    fn sender(&self, badge: u64) -> Option<usize> {
        let index = (badge & 0xffff) as usize;
        let generation = (badge >> 16) & 0xffff;
        let component = self.components.get(index)?;
        (component.life.is_some() && u64::from(component.generation) & 0xffff == generation)
            .then_some(index)
    }

    fn on_fault(&mut self, received: &Received) -> Event {
        // The faulting thread waits for a reply; stop it before it is destroyed.
        let _ = ipc::reply(&Message::new(fault::STOP, [0; 4]));
        let Some(index) = self.sender(received.badge) else {
            return Event::Stray;
        };
        let message = received.message;
        let kind = match message.info.label {
            fault::LABEL_MEMORY => "memory fault",
            fault::LABEL_UNDEFINED => "undefined instruction",
            _ => "fault",
        };
        self.handle_fault(
            index,
            kind,
            message.words[fault::PC],
            message.words[fault::ADDRESS],
        )
    }

    /// Component `index` faulted (or is taken as faulted): destroys its life, then
    /// rebuilds it or keeps it down as its restart policy says.
    fn handle_fault(&mut self, index: usize, kind: &str, pc: u64, address: u64) -> Event {
        let now = self.now_ms();
        let component = &mut self.components[index];
        let decision = component.budget.on_fault(now);
        if self.log {
            let outcome = match decision {
                RestartDecision::Restart { restarts } => alloc::format!("restart {restarts}"),
                RestartDecision::GiveUp { .. } => alloc::string::String::from("no restart left"),
            };
            kaal_user::println!(
                "[broker] {}: {kind} at pc {pc:#x}, address {address:#x}; {outcome}",
                component.spec.name,
            );
        }
        self.destroy(index);
        match decision {
            RestartDecision::Restart { restarts } => {
                let component = &mut self.components[index];
                component.generation = component.generation.wrapping_add(1);
                component.state = ComponentState::Restarting;
                match self.build(index) {
                    Ok(()) => Event::Restarted { index, restarts },
                    Err(error) => {
                        if self.log {
                            kaal_user::println!(
                                "[broker] restarting {} failed: {error}; it stays down",
                                self.components[index].spec.name
                            );
                        }
                        self.components[index].state = ComponentState::Failed;
                        Event::Failed { index, restarts }
                    }
                }
            }
            RestartDecision::GiveUp { restarts } => {
                self.components[index].state = ComponentState::Failed;
                if self.log {
                    kaal_user::println!(
                        "[broker] {} exceeded its restart budget after {restarts} restarts; it stays down",
                        self.components[index].spec.name
                    );
                }
                Event::Failed { index, restarts }
            }
        }
    }

    fn on_request(&mut self, received: &Received) -> Event {
        let label = received.message.info.label;
        let Some(index) = self.sender(received.badge) else {
            let _ = ipc::reply(&reply_message(Err(Error::InvalidArgument)));
            return Event::Stray;
        };
        let words = received.message.words;
        let allowed = self.components[index].spec.services;
        let need = |service: u32| {
            if allowed & service != 0 {
                Ok(())
            } else {
                Err(Error::MissingRights)
            }
        };
        let mut exited = None;
        let mut power_off = false;
        let result: Result<[u64; 4], Error> = match label {
            protocol::ALLOCATE => need(services::MEMORY).and_then(|()| {
                self.grant_memory(index, words[0])
                    .map(|(vaddr, bytes, physical)| [vaddr, bytes, physical, 0])
                    .map_err(|e| e.code())
            }),
            protocol::COMPONENT => need(services::PROCESSES).and_then(|()| self.status(words[0])),
            protocol::COMPONENT_NAME => {
                need(services::PROCESSES).and_then(|()| self.status_name(words[0]))
            }
            protocol::MEMORY => need(services::PROCESSES).map(|()| self.memory_status()),
            protocol::DEVICE => {
                need(services::PROCESSES).and_then(|()| self.device_status(words[0]))
            }
            protocol::CHANNEL => {
                need(services::PROCESSES).and_then(|()| self.channel_status(words[0]))
            }
            protocol::NAME => need(services::PROCESSES)
                .and_then(|()| self.name_text(words[0], words[1], words[2])),
            protocol::INJECT_FAULT => {
                need(services::SYSTEM_CONTROL).and_then(|()| self.inject_fault(index, words[0]))
            }
            protocol::EXIT => {
                exited = Some(words[0] as u32 as i32);
                Ok([0; 4])
            }
            protocol::POWER_OFF => need(services::SYSTEM_CONTROL).map(|()| {
                power_off = true;
                [0; 4]
            }),
            protocol::DEBUG_EXIT => need(services::SYSTEM_CONTROL).and_then(|()| {
                let code = u32::try_from(words[0]).map_err(|_| Error::InvalidArgument)?;
                Err(kaal_user::sys::debug_exit(code))
            }),
            _ => Err(Error::InvalidArgument),
        };
        let ok = result.is_ok();
        let _ = ipc::reply(&reply_message(result));
        if power_off {
            let name = self.components[index].spec.name.clone();
            self.power_off(&name);
        }
        if let Some(code) = exited {
            self.destroy(index);
            let component = &mut self.components[index];
            component.state = ComponentState::Exited;
            component.exit_code = Some(code);
            return Event::Exited { index, code };
        }
        Event::Served { index, label, ok }
    }

    /// Shuts the system down in order and switches the machine off: components in the
    /// reverse of their start order, each that serves an endpoint first told with a
    /// `SHUTDOWN` request (it answers and ends: a driver built with the kit runs its
    /// `shutdown` hook), then destroyed.
    ///
    /// Before each `SHUTDOWN`, messages waiting on the broker's endpoint are answered
    /// (refused), so a server blocked calling the broker can take the request. A
    /// component that serves an endpoint is trusted to answer it then; one that faults
    /// instead is seen as `Aborted`.
    pub fn power_off(&mut self, requested_by: &str) -> ! {
        if self.log {
            kaal_user::println!(
                "[broker] power off requested by {requested_by}; stopping the system"
            );
        }
        for index in (0..self.components.len()).rev() {
            if self.components[index].life.is_none() {
                continue;
            }
            let served: alloc::vec::Vec<_> = self
                .endpoints
                .iter()
                .filter(|e| e.server == Some(index))
                .map(|e| e.endpoint)
                .collect();
            if !served.is_empty() {
                // A server blocked on a ring whose other end was stopped before it would
                // wait forever, and never take its `SHUTDOWN`: close those ends.
                self.close_stopped_peers(index);
            }
            for endpoint in served {
                // A server blocked calling the broker could not receive the request and
                // the broker would wait for it forever: answer whatever is waiting first.
                self.refuse_pending();
                let _ = endpoint.call(&Message::new(protocol::SHUTDOWN, [0; 4]));
            }
            self.destroy(index);
            self.components[index].state = ComponentState::Exited;
            if self.log {
                kaal_user::println!("[broker] stopped {}", self.components[index].spec.name);
            }
        }
        if self.log {
            kaal_user::println!("[broker] system stopped; switching off");
        }
        let error = kaal_user::sys::power_off();
        kaal_user::println!("[broker] could not switch off: {error}");
        loop {
            kaal_user::sys::yield_now();
        }
    }

    /// Marks closed, in every ring channel component `index` is an end of, the other
    /// end if its component has no life any more (stopped, exited or failed), and wakes
    /// `index` on that ring. A ring end is only marked closed when its holder drops it,
    /// which a destroyed component never does: without this, a server waiting to pop
    /// from (or push to) a ring whose peer was stopped first sleeps forever. Best effort:
    /// the system is shutting down.
    fn close_stopped_peers(&mut self, index: usize) {
        let gone = |end: usize| self.components.get(end).is_some_and(|c| c.life.is_none());
        let work: alloc::vec::Vec<_> = self
            .channels
            .iter()
            .filter_map(|channel| {
                let flags = ends_to_close(channel.producer, channel.consumer, index, gone);
                (flags != 0).then(|| {
                    (
                        channel.frames.first().copied(),
                        flags,
                        channel.data,
                        channel.space,
                    )
                })
            })
            .collect();
        for (header, flags, data, space) in work {
            let Some(header) = header else { continue };
            if self.set_ring_state(header, flags).is_err() {
                continue;
            }
            if flags & PRODUCER_CLOSED != 0 {
                let _ = data.signal();
            }
            if flags & CONSUMER_CLOSED != 0 {
                let _ = space.signal();
            }
        }
    }

    /// ORs `flags` into the state word of the ring whose header is in `header`.
    fn set_ring_state(
        &mut self,
        header: kaal_user::cap::Cap<kaal_user::cap::Frame4K>,
        flags: u32,
    ) -> Result<(), crate::error::BrokerError> {
        use kaal_ipc::layout::STATE_OFFSET;
        let scratch = header.copy(kaal_user::cap::allocate_slot()?, kaal_abi::rights::ALL)?;
        let vaddr = self.own_mappings.allocate(4096, 4096)?;
        let page = kaal_user::memory::MappedFrame::new(scratch, vaddr, self.own.untyped)?;
        // The broker runs above every component on the one CPU: no end changes the
        // word between this read and write.
        let state = page.read32(STATE_OFFSET).unwrap_or(0);
        page.write32(STATE_OFFSET, state | flags);
        let scratch = page.unmap()?;
        scratch.delete()?;
        self.own_mappings.free(vaddr, 4096)?;
        Ok(())
    }

    /// Answers every message waiting on the broker's endpoint without serving it (the
    /// system is shutting down): faults with `STOP`, requests with `Aborted`.
    fn refuse_pending(&mut self) {
        while let Ok(received) = self.endpoint.nb_recv() {
            let answer = if received.badge & FAULT_BADGE != 0 {
                Message::new(fault::STOP, [0; 4])
            } else {
                reply_message(Err(Error::Aborted))
            };
            let _ = ipc::reply(&answer);
        }
    }

    fn status(&self, index: u64) -> Result<[u64; 4], Error> {
        let component = usize::try_from(index)
            .ok()
            .and_then(|i| self.components.get(i))
            .ok_or(Error::InvalidArgument)?;
        let owner = component.owner();
        Ok([
            u64::from(component.id) | (component.state as u64) << 32,
            u64::from(component.spec.priority) | u64::from(component.budget.restarts()) << 32,
            self.accounts.used(owner),
            self.accounts.quota(owner).unwrap_or(0),
        ])
    }

    fn status_name(&self, index: u64) -> Result<[u64; 4], Error> {
        let component = usize::try_from(index)
            .ok()
            .and_then(|i| self.components.get(i))
            .ok_or(Error::InvalidArgument)?;
        Ok(text_chunk(component.spec.name.as_bytes(), 0))
    }

    fn memory_status(&self) -> [u64; 4] {
        let components: u64 = self
            .components
            .iter()
            .map(|c| self.accounts.used(c.owner()))
            .sum();
        [
            self.free_bytes(),
            self.untyped.free_bytes() + self.untyped.allocated_bytes(),
            components,
            0,
        ]
    }

    fn device_status(&self, index: u64) -> Result<[u64; 4], Error> {
        let spec = usize::try_from(index)
            .ok()
            .and_then(|i| self.description.devices.get(i))
            .ok_or(Error::InvalidArgument)?;
        let (_, record) = self
            .devices
            .find(&spec.compatible, spec.index)
            .ok_or(Error::InvalidArgument)?;
        let irq = record.irqs.first().copied().unwrap_or(u32::MAX);
        let holder = self
            .devices
            .owner_of_device(&spec.compatible, spec.index)
            .and_then(|owner| self.components.iter().position(|c| c.owner() == owner))
            .map_or(0, |i| i as u64 + 1);
        Ok([
            record.base,
            record.size_bytes,
            u64::from(irq) | holder << 32,
            0,
        ])
    }

    fn channel_status(&self, index: u64) -> Result<[u64; 4], Error> {
        let channel = usize::try_from(index)
            .ok()
            .and_then(|i| self.channels.get(i))
            .ok_or(Error::InvalidArgument)?;
        let end = |i: Option<usize>| i.map_or(0, |i| i as u64 + 1);
        Ok([
            u64::from(channel.capacity) | u64::from(channel.element.0) << 32,
            end(channel.producer) | end(channel.consumer) << 32,
            channel.region_bytes,
            0,
        ])
    }

    fn name_text(&self, kind: u64, index: u64, chunk: u64) -> Result<[u64; 4], Error> {
        let index = usize::try_from(index).map_err(|_| Error::InvalidArgument)?;
        let text = match kind {
            protocol::NAME_DEVICE => {
                let spec = self
                    .description
                    .devices
                    .get(index)
                    .ok_or(Error::InvalidArgument)?;
                alloc::format!("{} {}", spec.name, spec.compatible)
            }
            protocol::NAME_CHANNEL => {
                let channel = self.channels.get(index).ok_or(Error::InvalidArgument)?;
                let element = self
                    .description
                    .channels
                    .iter()
                    .find(|c| c.name == channel.name)
                    .map_or("?", |c| c.element.as_str());
                alloc::format!("{} {element}", channel.name)
            }
            _ => return Err(Error::InvalidArgument),
        };
        let chunk = usize::try_from(chunk).map_err(|_| Error::InvalidArgument)?;
        Ok(text_chunk(text.as_bytes(), chunk))
    }

    /// Makes component `target` fault: its main thread is stopped and continues at an
    /// address nothing maps, so the kernel reports an instruction abort to the broker's
    /// fault endpoint and the component's restart policy decides what follows.
    fn inject_fault(&mut self, caller: usize, target: u64) -> Result<[u64; 4], Error> {
        let target = usize::try_from(target)
            .ok()
            .filter(|&t| t != caller)
            .ok_or(Error::InvalidArgument)?;
        let component = self.components.get(target).ok_or(Error::InvalidArgument)?;
        let tcb = component.main_thread().ok_or(Error::InvalidArgument)?;
        tcb.suspend()?;
        // A main thread that has already ended (it called `thread_exit` without telling
        // the broker, or faulted with its fault endpoint slot emptied) ignores suspend and
        // resume: it would never fault, and the component would stay "running" holding
        // its memory. Take it as faulted now instead.
        if matches!(
            tcb.status(),
            Ok(kaal_user::sys::ThreadState::Exited(_) | kaal_user::sys::ThreadState::Faulted)
        ) {
            self.handle_fault(target, "injected fault (its thread had ended)", 0, 0);
            return Ok([0; 4]);
        }
        let mut registers = tcb.read_registers()?;
        registers.pc = UNMAPPED_PC;
        tcb.write_registers(&registers)?;
        tcb.resume()?;
        Ok([0; 4])
    }
}

use kaal_ipc::layout::{CONSUMER_CLOSED, PRODUCER_CLOSED};

/// The state flags to set in a ring between `producer` and `consumer` before component
/// `index` is asked to stop: the far end of each side `index` holds, if it is `gone`.
fn ends_to_close(
    producer: Option<usize>,
    consumer: Option<usize>,
    index: usize,
    gone: impl Fn(usize) -> bool,
) -> u32 {
    let mut flags = 0;
    if consumer == Some(index) && producer.is_some_and(&gone) {
        flags |= PRODUCER_CLOSED;
    }
    if producer == Some(index) && consumer.is_some_and(&gone) {
        flags |= CONSUMER_CLOSED;
    }
    flags
}

/// Where an injected fault sends a component: the first page, never mapped.
const UNMAPPED_PC: u64 = 0x10;

/// 32 bytes of `text` from byte `32 * chunk` (zero padded) as four little-endian words.
fn text_chunk(text: &[u8], chunk: usize) -> [u64; 4] {
    let mut bytes = [0u8; 32];
    let start = chunk.saturating_mul(32).min(text.len());
    let part = &text[start..text.len().min(start + 32)];
    bytes[..part.len()].copy_from_slice(part);
    let mut words = [0u64; 4];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(chunk);
        *word = u64::from_le_bytes(raw);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_past_the_end_are_zero() {
        let text = b"0123456789abcdefghijklmnopqrstuvwxyz";
        assert_eq!(text_chunk(text, 0)[0], u64::from_le_bytes(*b"01234567"));
        assert_eq!(
            text_chunk(text, 1),
            [u64::from_le_bytes(*b"wxyz\0\0\0\0"), 0, 0, 0]
        );
        for chunk in [2, 3, usize::MAX / 32, usize::MAX / 32 + 1, usize::MAX] {
            assert_eq!(text_chunk(text, chunk), [0; 4]);
        }
        assert_eq!(text_chunk(b"", usize::MAX), [0; 4]);
    }

    #[test]
    fn only_far_ends_of_stopped_peers_close() {
        let gone = |i: usize| i == 7;
        // The server consumes from a stopped producer, produces to a stopped consumer.
        assert_eq!(ends_to_close(Some(7), Some(3), 3, gone), PRODUCER_CLOSED);
        assert_eq!(ends_to_close(Some(3), Some(7), 3, gone), CONSUMER_CLOSED);
        // A live peer, a ring the server is no end of, an end no component holds.
        assert_eq!(ends_to_close(Some(5), Some(3), 3, gone), 0);
        assert_eq!(ends_to_close(Some(7), Some(5), 3, gone), 0);
        assert_eq!(ends_to_close(None, Some(3), 3, gone), 0);
        // Both ends the server's own: nothing to close.
        assert_eq!(ends_to_close(Some(3), Some(3), 3, gone), 0);
    }
}
