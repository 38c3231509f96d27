//! Interrupts delivered to user space: IRQ control hands out one handler capability per
//! interrupt line; a handler binds its line to a notification; the kernel masks the line
//! when it fires and signals the notification; the driver acknowledges to unmask it.

use crate::arch::gic::SPURIOUS_START;
use crate::capability::{CSpace, Capability, ObjectType, Rights};
use crate::kernel::{Kernel, SyscallResult};
use crate::objects::{abi_error, resolve};
use kaal_abi::Error;

/// Interrupt ids the table covers.
pub const INTERRUPTS: usize = SPURIOUS_START as usize;
/// First interrupt id user space may handle (shared peripheral interrupts).
pub const FIRST_USER_INTERRUPT: u32 = 32;

/// Where one interrupt line goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct IrqBinding {
    /// A handler capability exists for the line.
    pub issued: bool,
    /// Notification signalled when the line fires (0 for none).
    pub notification: u64,
    /// Badge ORed into it.
    pub badge: u64,
}

impl Kernel {
    /// The line of the handler capability at `pointer`, which must carry `right`:
    /// write to route the line, read to acknowledge it. A driver given a read-only
    /// handler can serve its line but not send it elsewhere.
    fn irq_handler(&self, cspace: &Capability, pointer: u64, right: Rights) -> Result<u32, Error> {
        let cap = self.lookup(cspace, pointer, ObjectType::IrqHandler)?;
        if !cap.rights.contains(right) {
            return Err(Error::MissingRights);
        }
        Ok(cap.object as u32)
    }

    /// `irq_control_get`.
    pub(crate) fn irq_control_get(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let [control, irq, destination, ..] = args;
        self.lookup(cspace, control, ObjectType::IrqControl)?;
        if irq < u64::from(FIRST_USER_INTERRUPT)
            || irq >= INTERRUPTS as u64
            || irq == u64::from(self.services.timer_irq)
        {
            return Err(Error::InvalidArgument);
        }
        if self.irqs[irq as usize].issued {
            return Err(Error::IllegalOperation);
        }
        let (parent, to) = (resolve(cspace, control)?, resolve(cspace, destination)?);
        let handler = Capability::new(ObjectType::IrqHandler, irq, Rights::ALL);
        CSpace::new(&mut self.objects)
            .insert_child(parent, to, handler)
            .map_err(abi_error)?;
        self.irqs[irq as usize] = IrqBinding {
            issued: true,
            notification: 0,
            badge: 0,
        };
        Ok((0, 0))
    }

    /// `irq_handler_set_notification`.
    pub(crate) fn irq_set_notification(
        &mut self,
        cspace: &Capability,
        handler: u64,
        notification: u64,
    ) -> SyscallResult {
        let irq = self.irq_handler(cspace, handler, Rights::WRITE)?;
        let cap = self.lookup(cspace, notification, ObjectType::Notification)?;
        if !cap.rights.contains(Rights::WRITE) {
            return Err(Error::MissingRights);
        }
        let badge = if cap.badge == 0 { 1 } else { cap.badge };
        self.irqs[irq as usize].notification = cap.object;
        self.irqs[irq as usize].badge = badge;
        self.services.gic.enable(irq);
        Ok((0, 0))
    }

    /// `irq_handler_ack`.
    pub(crate) fn irq_ack(&mut self, cspace: &Capability, handler: u64) -> SyscallResult {
        let irq = self.irq_handler(cspace, handler, Rights::READ)?;
        if self.irqs[irq as usize].notification != 0 {
            self.services.gic.enable(irq);
        }
        Ok((0, 0))
    }

    /// Routes a device interrupt: mask it and signal its notification. Returns false if
    /// nobody handles it.
    pub(crate) fn deliver_interrupt(&mut self, irq: u32) -> bool {
        let Some(binding) = self.irqs.get(irq as usize).copied() else {
            return false;
        };
        if binding.notification == 0 {
            return false;
        }
        self.services.gic.disable(irq);
        self.signal_object(binding.notification, binding.badge);
        true
    }

    /// The last handler capability of `irq` went: the line is free and masked again.
    pub(crate) fn release_interrupt(&mut self, irq: u64) {
        if let Some(binding) = self.irqs.get_mut(irq as usize) {
            *binding = IrqBinding::default();
            self.services.gic.disable(irq as u32);
        }
    }

    /// A notification went: lines signalling it stop doing so (and stay masked).
    pub(crate) fn unbind_interrupts_of(&mut self, notification: u64) {
        for (irq, binding) in self.irqs.iter_mut().enumerate() {
            if binding.notification == notification {
                binding.notification = 0;
                self.services.gic.disable(irq as u32);
            }
        }
    }
}
