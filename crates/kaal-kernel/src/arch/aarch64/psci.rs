//! PSCI calls to firmware (or to QEMU, which implements PSCI itself).

use crate::platform::PsciConduit;

const SYSTEM_OFF: u64 = 0x8400_0008;

/// Switches the machine off. Returns only if the firmware refused.
pub fn system_off(conduit: PsciConduit) {
    // SAFETY: PSCI SYSTEM_OFF either powers down or returns an error code; it touches no
    // memory of ours. SMCCC lets the call clobber x0..x3.
    unsafe {
        match conduit {
            PsciConduit::Hvc => {
                core::arch::asm!("hvc #0", inout("x0") SYSTEM_OFF => _, out("x1") _, out("x2") _, out("x3") _, options(nostack))
            }
            PsciConduit::Smc => {
                core::arch::asm!("smc #0", inout("x0") SYSTEM_OFF => _, out("x1") _, out("x2") _, out("x3") _, options(nostack))
            }
        }
    }
}
