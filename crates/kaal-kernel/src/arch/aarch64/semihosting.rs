//! Arm semihosting: how tests end QEMU with an exit status.

const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Ends the emulator with `status` through the semihosting `SYS_EXIT` call.
///
/// # Safety
/// The emulator must have semihosting enabled for EL1 (QEMU:
/// `-semihosting-config enable=on,target=native`); otherwise `HLT` is an undefined
/// instruction.
pub unsafe fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status)];
    // SAFETY: the caller guarantees semihosting is enabled; the parameter block lives on
    // this stack for the duration of the call.
    unsafe {
        core::arch::asm!(
            "hlt #0xf000",
            in("x0") SYS_EXIT,
            in("x1") block.as_ptr(),
            options(nostack),
        );
    }
    loop {
        super::wait_for_interrupt();
    }
}
