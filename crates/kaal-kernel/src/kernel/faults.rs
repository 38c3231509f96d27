//! User faults (to the thread's fault endpoint, or reported) and interrupts taken
//! from user space.

use super::*;

impl Kernel {
    /// Sends the current thread's fault to its fault endpoint as a call, if it has a
    /// usable one; returns whether it did.
    pub(crate) fn send_fault(&mut self, esr: u64, far: u64, pc: u64) -> bool {
        let thread = self.current.expect("a fault has a current thread");
        let (pointer, cspace) = {
            let t = self.current_thread();
            (t.fault_endpoint, t.slots[CSPACE_SLOT as usize].cap)
        };
        if pointer == 0 {
            return false;
        }
        let Ok(cap) = self.lookup(&cspace, pointer, ObjectType::Endpoint) else {
            return false;
        };
        if !cap.rights.contains(Rights::WRITE) {
            return false;
        }
        let class = ExceptionClass::from_esr(esr);
        let (label, detail) = if class.is_abort() {
            let detail = if class == ExceptionClass::DataAbortLower {
                if esr::is_write(esr) { 2 } else { 0 }
            } else {
                1
            };
            (kaal_abi::fault::LABEL_MEMORY, detail)
        } else if class == ExceptionClass::UndefinedInstruction {
            (kaal_abi::fault::LABEL_UNDEFINED, 0)
        } else {
            // Everything else, SErrors (asynchronous aborts: ESR EC 0x2f, address 0)
            // included.
            (kaal_abi::fault::LABEL_OTHER, 0)
        };
        let t = self.current_thread();
        t.fault_message = [
            kaal_abi::MessageInfo::new(label, 4).to_raw(),
            far,
            pc,
            esr,
            detail,
        ];
        t.in_fault = true;
        let _ = self.send_from(thread, &cap, true, true);
        true
    }

    pub(crate) fn user_fault(&mut self, esr: u64, far: u64, pc: u64) {
        if self.send_fault(esr, far, pc) {
            return;
        }
        let thread = self.current.expect("a fault has a current thread");
        let number = self.current_thread().number;
        let class = ExceptionClass::from_esr(esr);
        if class.is_abort() {
            let (status, level) = esr::fault_status(esr);
            let access = if class == ExceptionClass::DataAbortLower {
                if esr::is_write(esr) {
                    " on write"
                } else {
                    " on read"
                }
            } else {
                " on instruction fetch"
            };
            match level {
                Some(level) => kprintln!(
                    "[kaal] user fault: thread {number} {}: {status} at level {level}{access}, address {far:#x}, pc {pc:#x}, ESR {esr:#x}; thread stopped",
                    class.name()
                ),
                None => kprintln!(
                    "[kaal] user fault: thread {number} {}: {status}{access}, address {far:#x}, pc {pc:#x}, ESR {esr:#x}; thread stopped",
                    class.name()
                ),
            }
        } else if class == ExceptionClass::SError {
            kprintln!(
                "[kaal] user fault: thread {number} SError (asynchronous abort, e.g. a bad device access) taken at pc {pc:#x}, ESR {esr:#x}; thread stopped"
            );
        } else {
            kprintln!(
                "[kaal] user fault: thread {number} {} at pc {pc:#x}, ESR {esr:#x}; thread stopped",
                class.name()
            );
        }
        let context = &self.current_thread().context;
        crate::console::print_registers(&context.x, context.sp, crate::console::print);
        self.stop(thread, ThreadState::Faulted);
    }

    pub(crate) fn interrupt(&mut self) {
        loop {
            let id = self.services.gic.acknowledge();
            if id >= SPURIOUS_START {
                break;
            }
            if id == self.services.timer_irq {
                timer::arm(self.services.tick_period);
                self.ticks += 1;
                self.reschedule = true;
            } else if id == crate::arch::gic::IPI_SGI {
                // Another CPU made a thread ready here (and set this CPU's reschedule
                // flag if it outranks the running one), or asked for something this CPU
                // served while it waited for the lock. Nothing else to do: the way back
                // to user mode looks at the queue. (No round robin here: another CPU's
                // reads of a thread's registers must not push it down its queue.)
            } else if !self.deliver_interrupt(id) {
                kprintln!("[kaal] unexpected interrupt {id}: disabled");
                self.services.gic.disable(id);
            }
            self.services.gic.end_of_interrupt(id);
        }
    }
}
