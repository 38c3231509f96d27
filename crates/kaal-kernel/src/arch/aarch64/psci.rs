//! PSCI calls to firmware (or to QEMU, which implements PSCI itself).

use crate::platform::PsciConduit;

const SYSTEM_OFF: u64 = 0x8400_0008;
/// Makes a PSCI call: function `function` with arguments `x1..x3`; returns `x0`.
fn call(conduit: PsciConduit, function: u64, arguments: [u64; 3]) -> i64 {
    let result: u64;
    // One SMCCC call through `hvc` or `smc`: the function in x0, the arguments in x1..x3.
    macro_rules! smccc {
        ($instruction:literal) => {
            core::arch::asm!(
                $instruction,
                inout("x0") function => result,
                inout("x1") arguments[0] => _,
                inout("x2") arguments[1] => _,
                inout("x3") arguments[2] => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
                out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                out("x14") _, out("x15") _, out("x16") _, out("x17") _,
                options(nostack)
            )
        };
    }
    // SAFETY: a PSCI call either does what the function says (SYSTEM_OFF powers down,
    // CPU_ON starts another CPU at the entry point it is given) or returns an error code;
    // it touches no memory of ours. SMCCC lets the call clobber x0..x17.
    unsafe {
        match conduit {
            PsciConduit::Hvc => smccc!("hvc #0"),
            PsciConduit::Smc => smccc!("smc #0"),
        }
    }
    // PSCI returns a 32-bit signed value.
    result as i32 as i64
}

/// Switches the machine off. Returns only if the firmware refused.
pub fn system_off(conduit: PsciConduit) {
    call(conduit, SYSTEM_OFF, [0; 3]);
}

/// Starts the CPU with affinity `target` (`MPIDR_EL1` `Aff3..Aff0`) at the physical
/// address `entry`, with the MMU off and `x0` = `context`, through PSCI function
/// `function` (`CPU_ON`'s id: see [`crate::platform::Platform::psci_cpu_on`]). `Err`
/// holds PSCI's error code (`-2`: no such CPU; `-4`: already on; `-5`: already being
/// started; `-9`: a bad entry point).
pub fn cpu_on(
    conduit: PsciConduit,
    function: u32,
    target: u64,
    entry: u64,
    context: u64,
) -> Result<(), i64> {
    match call(conduit, u64::from(function), [target, entry, context]) {
        0 => Ok(()),
        error => Err(error),
    }
}
