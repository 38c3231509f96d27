//! What the CPUs share besides the kernel lock: which CPUs run, how one interrupts
//! another, and the requests a CPU that holds the lock makes of another.
//!
//! The kernel is one object behind one lock (`docs/smp.md` has the design and its
//! measured cost). A CPU holding it sometimes needs another CPU to do something only
//! that CPU can: leave user mode so that the thread it runs can be changed safely, drop
//! an address space from its translation registers, or save the FP/SIMD registers it
//! holds for a thread that moves away. It sets request bits for that CPU, sends it an
//! SGI, and waits until the CPU has served them. The CPU serves them while it waits for
//! the lock ([`serve`]): the SGI brings it from user mode into the kernel, its entry
//! saves the thread's registers, and its first attempt at the lock finds it taken. As
//! seL4 does with its big lock, a CPU waiting for the lock keeps serving, so the holder's
//! wait cannot deadlock: the lock is held by the one waiting for the answer, never by
//! the CPU that gives it. When the lock is free, no request is pending.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub use crate::platform::MAX_CPUS;

/// The CPUs that run the kernel and answer interrupts: bit `n` for CPU `n`.
static ONLINE: AtomicU64 = AtomicU64::new(1);

/// What `Gic::send_sgi` needs to reach each CPU, published by the CPU itself when it
/// starts.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) static SGI_TARGETS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The all-invalid user table a CPU installs when asked to drop an address space.
static EMPTY_USER_TABLE: AtomicU64 = AtomicU64::new(0);

/// Request: leave user mode (the thread's registers saved) and wait for the lock.
/// Serving needs nothing more than being in the kernel, waiting.
pub(crate) const STALL: u32 = 1;
/// Request: install the empty user table (the address space is being destroyed).
pub(crate) const EMPTY_TABLE: u32 = 1 << 1;
/// Request: save the FP/SIMD registers into the state at [`FP_TARGET`] and trap FP/SIMD
/// again (their owner moves to another CPU).
pub(crate) const SAVE_FP: u32 = 1 << 2;

/// Whether each CPU entered the kernel from user mode with a system call (rather than a
/// fault or an interrupt) for the entry it is handling or waits for the lock with:
/// written by the CPU before it takes the lock, read by a lock holder that took its
/// thread over (after the CPU served a `STALL`, which orders the two).
static ENTERED_WITH_SYSCALL: [core::sync::atomic::AtomicBool; MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_CPUS];

/// Records what `cpu` (this CPU) enters the kernel with from user mode.
#[cfg(target_os = "none")]
#[inline]
pub(crate) fn note_entry(cpu: usize, syscall: bool) {
    ENTERED_WITH_SYSCALL[cpu].store(syscall, Ordering::Relaxed);
}

/// Whether `cpu`'s pending entry from user mode is a system call ([`note_entry`]).
#[cfg(target_os = "none")]
pub(crate) fn entered_with_syscall(cpu: usize) -> bool {
    ENTERED_WITH_SYSCALL[cpu].load(Ordering::Relaxed)
}

/// A host test plays the CPUs on one thread: the note lives in its `Machine`, so that
/// tests running in parallel do not see each other's.
#[cfg(not(target_os = "none"))]
pub(crate) fn note_entry(cpu: usize, syscall: bool) {
    let _ = &ENTERED_WITH_SYSCALL;
    crate::arch::machine(|m| m.entered_with_syscall[cpu % MAX_CPUS] = syscall);
}

/// As on the hardware, from the test's `Machine`.
#[cfg(not(target_os = "none"))]
pub(crate) fn entered_with_syscall(cpu: usize) -> bool {
    crate::arch::machine(|m| m.entered_with_syscall[cpu % MAX_CPUS])
}

/// Pending requests of each CPU.
static REQUESTS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Where a [`SAVE_FP`] request saves to: the kernel address of an `FpState`.
static FP_TARGET: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// How long a CPU holding the lock waits for another to serve a request before it
/// declares that CPU dead (host time under an emulator: generous).
#[cfg(target_os = "none")]
const REQUEST_TIMEOUT_MS: u64 = 2000;

/// The online CPUs: bit `n` for CPU `n`.
#[cfg(target_os = "none")]
pub fn online_mask() -> u64 {
    ONLINE.load(Ordering::Acquire)
}

/// The online CPUs as the host test plays them (`Machine::online_cpus`; CPU 0 alone by
/// default).
#[cfg(not(target_os = "none"))]
pub fn online_mask() -> u64 {
    let _ = &ONLINE;
    crate::arch::machine(|m| m.online_cpus) | 1
}

/// Whether CPU `cpu` runs the kernel.
pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && online_mask() & (1 << cpu) != 0
}

/// Records the CPUs that came up (boot) and the empty user table.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_online(mask: u64, empty_user_table: u64) {
    EMPTY_USER_TABLE.store(empty_user_table, Ordering::Relaxed);
    ONLINE.store(mask | 1, Ordering::Release);
}

/// The CPU this code runs on: 0 for the boot CPU, 1.. for the others.
#[cfg(target_os = "none")]
#[inline]
pub fn this_cpu() -> usize {
    // CONTEXTIDR_EL1 holds the CPU's number, written where each CPU starts (the boot
    // stub); nothing else writes it.
    (crate::arch::read_sysreg!("contextidr_el1") as usize) % MAX_CPUS
}

/// The CPU this code runs on: a host test is CPU 0 (tests of other CPUs tell the kernel
/// which CPU they play, see `Kernel::enter_cpu`).
#[cfg(not(target_os = "none"))]
pub fn this_cpu() -> usize {
    0
}

/// A pause in a loop that waits for another CPU: `yield`, the architecture's hint for
/// it, which also lets an emulator that runs the CPUs in turn (QEMU with `-icount`)
/// switch to the CPU being waited for; `core::hint::spin_loop` (an `isb` on AArch64)
/// does not.
#[inline]
pub fn relax() {
    #[cfg(target_os = "none")]
    // SAFETY: `yield` is a hint: no memory access, no register or flag changed.
    unsafe {
        core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(target_os = "none"))]
    core::hint::spin_loop();
}

/// Interrupts `cpu` (SGI [`crate::arch::gic::IPI_SGI`]): it enters the kernel and looks
/// at its run queue.
pub(crate) fn poke(gic: &crate::arch::gic::Gic, cpu: usize) {
    #[cfg(target_os = "none")]
    gic.send_sgi(
        crate::arch::gic::IPI_SGI,
        SGI_TARGETS[cpu].load(Ordering::Acquire),
    );
    #[cfg(not(target_os = "none"))]
    {
        let _ = gic;
        crate::arch::machine(|m| m.pokes.push(cpu));
    }
}

/// Asks `cpu` to serve `bits` (with `fp_target` for [`SAVE_FP`]) and waits until it
/// has. The caller holds the kernel lock and is not `cpu`.
///
/// # Panics
/// If `cpu` does not answer within [`REQUEST_TIMEOUT_MS`]: it stopped taking
/// interrupts, and the kernel cannot change what that CPU runs.
#[cfg(target_os = "none")]
pub(crate) fn request(gic: &crate::arch::gic::Gic, cpu: usize, bits: u32, fp_target: u64) {
    use crate::arch::timer;
    debug_assert_ne!(cpu, this_cpu());
    FP_TARGET[cpu].store(fp_target, Ordering::Relaxed);
    REQUESTS[cpu].fetch_or(bits, Ordering::Release);
    poke(gic, cpu);
    let deadline = timer::counter() + timer::frequency_hz() * REQUEST_TIMEOUT_MS / 1000;
    while REQUESTS[cpu].load(Ordering::Acquire) & bits != 0 {
        if timer::counter() > deadline {
            panic!(
                "CPU {cpu} did not answer the kernel's request {bits:#x} within {REQUEST_TIMEOUT_MS} ms"
            );
        }
        relax();
    }
}

/// A host test has no other CPU: the request is recorded (and counts as served).
#[cfg(not(target_os = "none"))]
pub(crate) fn request(gic: &crate::arch::gic::Gic, cpu: usize, bits: u32, fp_target: u64) {
    let _ = (gic, fp_target);
    crate::arch::machine(|m| m.requests.push((cpu, bits)));
}

/// Serves the requests made of `cpu`; called by `cpu` itself while it waits for the
/// kernel lock (so never while it holds it).
pub(crate) fn serve(cpu: usize) {
    let bits = REQUESTS[cpu].load(Ordering::Acquire);
    if bits == 0 {
        return;
    }
    if bits & EMPTY_TABLE != 0 {
        // SAFETY: the empty table maps nothing; the kernel runs in the high half, and this
        // CPU reaches user memory only for a thread under the lock, which it does not hold.
        unsafe {
            crate::arch::mmu::install_user_table(EMPTY_USER_TABLE.load(Ordering::Relaxed), 0)
        };
    }
    if bits & SAVE_FP != 0 {
        let target = FP_TARGET[cpu].load(Ordering::Relaxed) as *mut crate::arch::context::FpState;
        // SAFETY: the requester holds the kernel lock and waits for this answer; the
        // state belongs to a thread that runs nowhere (this CPU is in the kernel, the
        // thread's affinity is elsewhere and it is not scheduled before the answer), so
        // nothing else touches it until the release below.
        crate::arch::save_fp(unsafe { &mut *target });
        crate::arch::trap_user_fp(true);
    }
    REQUESTS[cpu].fetch_and(!bits, Ordering::Release);
}
