//! Interrupt lines granted to a driver.

use kaal_user::startup::Irq;

/// An interrupt line the broker granted: wait for it, acknowledge it. Holding one
/// proves the line was granted; the handler can acknowledge but not re-route it.
#[derive(Debug)]
pub struct IrqLine {
    irq: Irq,
}

impl IrqLine {
    pub(crate) fn new(irq: Irq) -> Self {
        Self { irq }
    }

    /// The line number.
    pub fn line(&self) -> u32 {
        self.irq.line
    }

    /// Waits until the line fires (it is masked from then until [`IrqLine::ack`]).
    pub fn wait(&self) -> Result<(), kaal_abi::Error> {
        self.irq.wait().map(|_| ())
    }

    /// Whether it fired since the last wait, without waiting.
    pub fn pending(&self) -> Result<bool, kaal_abi::Error> {
        self.irq.notification.poll().map(|word| word != 0)
    }

    /// Unmasks the line after the device was served.
    pub fn ack(&self) -> Result<(), kaal_abi::Error> {
        self.irq.ack()
    }
}
