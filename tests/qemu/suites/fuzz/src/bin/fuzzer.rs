//! The fuzzer: an unprivileged process that makes random system calls. It holds one
//! capability of each type a component can hold (slots 8 to 16: untyped, endpoint,
//! notification, TCB, CNode, 4 KiB frame, page table, address space, IRQ handler), the
//! console capability every process gets (slot 2) and nothing of its own: it first deletes the capabilities to its own CSpace, TCB and
//! address space, so that no random call ends or rearranges it. Arguments are slot
//! numbers, boundary values (0, all ones, the top bit, the end of user space), hostile
//! pointers (kernel addresses, the top page, unaligned, unmapped, read-only) and random
//! words. Calls that would block it for good (`send`, `call`, `recv`, `reply_recv`,
//! `wait`) or end it (`thread_exit`) are left out; every other call is in, unknown
//! numbers too. At the end it reports over the endpoint in slot 255, which no argument
//! ever names: `[calls, succeeded, statuses that are no error code, 0]`.
#![no_std]
#![no_main]

use core::sync::atomic::AtomicU64;

use kaal_abi::{Error, Syscall, layout, slots};
use kaal_user::cap::{Cap, Endpoint, raw_syscall6_unchecked};
use kaal_user::ipc::Message;

kaal_user::component!(main);

/// Slot of the report endpoint.
const REPORT_SLOT: u64 = 255;
/// Slot of the fault endpoint the root task set for this thread.
const FAULT_SLOT: u64 = 254;

/// Read-only bytes, for pointers the kernel may read but never write.
static READ_ONLY: [u8; 64] = [0x5a; 64];
/// Where `tcb_read_registers` may write: atomics, so the kernel writing them behind the
/// compiler's back is like a device doing so.
static SCRATCH: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// The calls made: all but those that block for good or end the caller.
const CALLS: &[Syscall] = &[
    Syscall::ConsoleWrite,
    Syscall::Yield,
    Syscall::PowerOff,
    Syscall::DebugExit,
    Syscall::ThreadId,
    Syscall::CapCopy,
    Syscall::CapMint,
    Syscall::CapMove,
    Syscall::CapDelete,
    Syscall::CapRevoke,
    Syscall::CapIdentify,
    Syscall::UntypedRetype,
    Syscall::TcbConfigure,
    Syscall::TcbSetPriority,
    Syscall::TcbReadRegisters,
    Syscall::TcbWriteRegisters,
    Syscall::TcbResume,
    Syscall::TcbSuspend,
    Syscall::TcbStatus,
    Syscall::NbSend,
    Syscall::NbRecv,
    Syscall::Reply,
    Syscall::Signal,
    Syscall::Poll,
    Syscall::TcbBindNotification,
    Syscall::PageTableMap,
    Syscall::FrameMap,
    Syscall::FrameUnmap,
    Syscall::CapCopyTo,
    Syscall::CapMintTo,
    Syscall::CapMoveTo,
    Syscall::IrqControlGet,
    Syscall::IrqHandlerSetNotification,
    Syscall::IrqHandlerAck,
];

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A pointer: hostile or harmless, never into this program's own writable memory
    /// other than [`SCRATCH`].
    fn pointer(&mut self) -> u64 {
        let scratch = SCRATCH.as_ptr() as u64;
        let read_only = READ_ONLY.as_ptr() as u64;
        match self.next() % 10 {
            0 => 0,
            1 => 0xffff_ff80_4000_0000 + (self.next() % 0x10_0000) * 8,
            2 => u64::MAX - (self.next() % 4096),
            3 => layout::USER_END - 1 - (self.next() % 512),
            4 => scratch + self.next() % 8,
            5 => read_only + self.next() % 64,
            6 => 0x7654_3000 + (self.next() % 4096),
            7 => scratch | !(layout::USER_END - 1),
            8 => scratch,
            _ => self.next(),
        }
    }

    /// An argument.
    fn argument(&mut self) -> u64 {
        let value = match self.next() % 16 {
            0..=5 => self.next() % 24,
            6 => 0,
            7 => u64::MAX,
            8 => 1 << 63,
            9 => layout::USER_END,
            10 => self.next() % 4096,
            11 => self.pointer(),
            12 => 1 << (self.next() % 64),
            13 => (self.next() % 64).wrapping_sub(32),
            _ => self.next(),
        };
        // The report and fault endpoints stay out of reach.
        if value == REPORT_SLOT || value == FAULT_SLOT {
            0
        } else {
            value
        }
    }
}

fn main(argument: u64) -> i32 {
    let seed = argument & 0xffff_ffff;
    let calls = argument >> 32;
    for slot in [
        slots::ROOT_CNODE,
        slots::ROOT_TCB,
        slots::ROOT_ADDRESS_SPACE,
    ] {
        let _ = kaal_user::cap::raw_syscall6(Syscall::CapDelete as u64, [slot, 0, 0, 0, 0, 0]);
    }
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut succeeded = 0u64;
    let mut unknown_status = 0u64;
    let mut made = 0u64;
    while made < calls {
        let number = if rng.next().is_multiple_of(64) {
            // Unknown numbers too.
            rng.next() % 256
        } else {
            CALLS[(rng.next() % CALLS.len() as u64) as usize] as u64
        };
        // Blocking or ending calls stay out, whatever the number.
        if [
            Syscall::ThreadExit,
            Syscall::Send,
            Syscall::Call,
            Syscall::Recv,
            Syscall::ReplyRecv,
            Syscall::Wait,
        ]
        .iter()
        .any(|&c| c as u64 == number)
        {
            continue;
        }
        let mut args = [0u64; 6];
        for arg in &mut args {
            *arg = rng.argument();
        }
        if number == Syscall::TcbReadRegisters as u64 && args[1] < layout::USER_END {
            // The only call that writes this program's memory where it says: into
            // `SCRATCH`, or somewhere the kernel must refuse.
            let scratch = SCRATCH.as_ptr() as u64;
            if args[1].wrapping_sub(scratch) > 8 {
                args[1] = scratch + args[1] % 8;
            }
        }
        if number == Syscall::ConsoleWrite as u64 && args[1] < layout::USER_END {
            // Its capability and pointer checks are what matters; a readable buffer
            // would print this program's memory.
            args[2] = 0;
        }
        // SAFETY: the kernel writes this program's memory through a pointer argument
        // only in `tcb_read_registers`, whose pointer is `SCRATCH` (atomics, 512 bytes,
        // room for the 264-byte register file at any of the 8 offsets used) or outside
        // user space; IPC writes go to the kernel-managed IPC buffer only.
        let (status, _, _) = unsafe { raw_syscall6_unchecked(number, args) };
        made += 1;
        if status == 0 {
            succeeded += 1;
        } else if Error::from_code(status).is_none() {
            unknown_status += 1;
        }
    }
    let report = Cap::<Endpoint>::from_slot(REPORT_SLOT);
    let _ = report.call(&Message::new(1, [made, succeeded, unknown_status, 0]));
    0
}
