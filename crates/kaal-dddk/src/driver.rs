//! The driver lifecycle and its event loop.

use kaal_abi::Error;
use kaal_user::broker::reply_message;
use kaal_user::cap::{Cap, Endpoint, Tcb};
use kaal_user::ipc::{self, Message};
use kaal_user::startup::GrantKind;

use crate::{DriverError, Probe, Resources};

/// Label of the request that asks a driver to shut down (the broker sends it when the
/// system powers off): its `shutdown` hook runs, the request is answered, and the
/// driver's component exits.
pub const SHUTDOWN: u64 = kaal_user::broker::protocol::SHUTDOWN;
/// Label of the fault-injection request: the driver faults on purpose (its supervisor
/// restarts it as its policy says). Honoured only when the component's start argument
/// has [`FAULT_INJECTION`] set; otherwise refused with `NotSupported`.
pub const CRASH: u64 = 0xfffe;
/// Bit of a driver component's start argument (`arguments` in `system.toml`) that lets
/// clients crash it on purpose with [`CRASH`], for restart tests.
pub const FAULT_INJECTION: u64 = 1 << 63;

/// A request from a client: its label, four words and the badge the client calls with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub label: u64,
    /// Its arguments.
    pub words: [u64; 4],
    /// The client's badge (which client it is).
    pub badge: u64,
}

/// A driver's lifecycle hooks; `#[derive(Driver)]` provides [`Probe`], the driver
/// implements these (each has a default).
pub trait Driver: Probe {
    /// Called once after probe, before serving.
    fn init(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Called when one of the driver's IRQ lines fired; the event loop acknowledges the
    /// line afterwards.
    fn interrupt(&mut self) {}

    /// Serves a client's request; the reply carries four words or an error.
    fn request(&mut self, request: &Request) -> Result<[u64; 4], Error> {
        let _ = request;
        Err(Error::NotSupported)
    }

    /// Called before the driver exits on a [`SHUTDOWN`] request.
    fn shutdown(&mut self) {}
}

/// Probes driver `D` from this component's grants, initialises it, and serves: requests
/// on the endpoint the component serves (the first one its description makes it the
/// server of), interrupts from its IRQ lines (bound to its thread, so both arrive at the
/// one receive). Returns the component's exit code: 0 after a [`SHUTDOWN`] request, an
/// error's number if probe or init fail.
///
/// ```ignore
/// kaal_user::component!(main);
/// fn main(_: u64) -> i32 {
///     kaal_dddk::run::<Pl031>()
/// }
/// ```
pub fn run<D: Driver>() -> i32 {
    match serve::<D>() {
        Ok(()) => 0,
        Err(error) => {
            kaal_user::println!("[{}] {error}", D::METADATA.name);
            1
        }
    }
}

fn serve<D: Driver>() -> Result<(), DriverError> {
    let startup = kaal_user::startup().map_err(DriverError::NoStartup)?;
    let fault_injection = startup.argument() & FAULT_INJECTION != 0;
    let mut resources = Resources::from_startup(startup);
    let mut driver = D::probe(&mut resources)?;
    driver.init()?;
    let irqs: alloc::vec::Vec<_> = resources.taken_irqs().collect();
    let endpoint = resources
        .startup()
        .info()
        .grants()
        .find(|g| g.kind == GrantKind::EndpointServer)
        .map(|g| Cap::<Endpoint>::from_slot(g.slots[0]));
    let Some(endpoint) = endpoint else {
        // Interrupts only.
        let Some(irq) = irqs.first() else {
            return Ok(());
        };
        loop {
            irq.wait()?;
            driver.interrupt();
            irq.ack()?;
        }
    };
    // One notification can be bound; a driver with more lines polls the others on each
    // wake-up.
    if let Some(irq) = irqs.first() {
        Cap::<Tcb>::from_slot(kaal_abi::slots::ROOT_TCB).bind_notification(irq.notification)?;
    }
    let mut received = endpoint.recv()?;
    loop {
        if received.message.info.notification {
            driver.interrupt();
            for irq in &irqs {
                let _ = irq.ack();
            }
            received = endpoint.recv()?;
            continue;
        }
        let request = Request {
            label: received.message.info.label,
            words: received.message.words,
            badge: received.badge,
        };
        if request.label == CRASH {
            if fault_injection {
                kaal_user::sys::raise_memory_fault();
            }
            received = endpoint.reply_recv(&reply_message(Err(Error::NotSupported)))?;
            continue;
        }
        // Only the broker (its unbadged copy; clients' copies are badged) shuts a driver
        // down: a client asking would end the driver for every other client.
        if request.label == SHUTDOWN && request.badge == 0 {
            driver.shutdown();
            let _ = ipc::reply(&reply_message(Ok([0; 4])));
            return Ok(());
        }
        let reply: Message = reply_message(driver.request(&request));
        received = endpoint.reply_recv(&reply)?;
    }
}
