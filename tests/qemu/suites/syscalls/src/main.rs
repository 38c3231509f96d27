//! Every system call's success and error paths, with raw arguments a buggy or hostile
//! task could pass. The kernel must answer each with an error code and keep running.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kaal_abi::{Error, Syscall, layout};
use kaal_test_harness::{Suite, check};
use kaal_user::sys::{self, raw_syscall};
use kaal_user::{BootInfo, bootinfo};

kaal_user::entry!(main);

static READ_ONLY: [u8; 16] = *b"read-only data!\n";

fn expect_error(
    number: Syscall,
    args: [u64; 4],
    error: Error,
) -> Result<(), alloc::string::String> {
    let (status, _, _) = raw_syscall(number as u64, args);
    check!(
        status == error as u64,
        "{number:?}{args:x?} returned {status} ({:?}), expected {error:?}",
        Error::from_code(status)
    );
    Ok(())
}

fn expect_ok(number: Syscall, args: [u64; 4]) -> Result<u64, alloc::string::String> {
    let (status, value, _) = raw_syscall(number as u64, args);
    check!(
        status == 0,
        "{number:?}{args:x?} failed with {status} ({:?})",
        Error::from_code(status)
    );
    Ok(value)
}

extern "C" fn never_started(_: usize) -> ! {
    sys::thread_exit(0)
}

fn main(_boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("syscalls");
    let kernel_address = 0xffff_ff80_4008_0000u64;
    let unmapped = 0x7654_3000u64;
    let text = never_started as *const () as usize as u64;
    let rodata = READ_ONLY.as_ptr() as u64;
    let stack_probe = [0u8; 64];
    let stack = stack_probe.as_ptr() as u64;

    suite.run("unknown_numbers_are_refused", || {
        for number in [0u64, 1000, 0xffff, u64::MAX] {
            let (status, _, _) = raw_syscall(number, [0; 4]);
            check!(
                status == Error::UnknownSyscall as u64,
                "syscall {number} returned {status}"
            );
        }
        Ok(())
    });
    suite.run("console_write_succeeds", || {
        let written = expect_ok(
            Syscall::ConsoleWrite,
            [rodata, READ_ONLY.len() as u64, 0, 0],
        )?;
        check!(written == READ_ONLY.len() as u64, "wrote {written}");
        check!(
            expect_ok(Syscall::ConsoleWrite, [rodata, 0, 0, 0])? == 0,
            "empty write"
        );
        // Read-only boot info is readable, so it may be written to the console.
        expect_ok(Syscall::ConsoleWrite, [bootinfo::BOOT_INFO_VADDR, 8, 0, 0])?;
        Ok(())
    });
    suite.run("console_write_rejects_bad_buffers", || {
        expect_error(
            Syscall::ConsoleWrite,
            [kernel_address, 8, 0, 0],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ConsoleWrite,
            [unmapped, 8, 0, 0],
            Error::BadAddress,
        )?;
        expect_error(Syscall::ConsoleWrite, [0, 8, 0, 0], Error::BadAddress)?;
        expect_error(
            Syscall::ConsoleWrite,
            [u64::MAX - 2, 8, 0, 0],
            Error::BadAddress,
        )?;
        // Starts mapped, runs off the top of the stack into the unmapped page.
        expect_error(
            Syscall::ConsoleWrite,
            [layout::ROOT_STACK_TOP - 8, 16, 0, 0],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ConsoleWrite,
            [rodata, kaal_abi::CONSOLE_WRITE_MAX_BYTES as u64 + 1, 0, 0],
            Error::InvalidArgument,
        )?;
        expect_error(
            Syscall::ConsoleWrite,
            [rodata, u64::MAX, 0, 0],
            Error::InvalidArgument,
        )?;
        Ok(())
    });
    suite.run("thread_create_rejects_bad_arguments", || {
        let top = (stack + 64) & !15;
        expect_error(
            Syscall::ThreadCreate,
            [rodata, top, 0, 128],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [unmapped, top, 0, 128],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [kernel_address, top, 0, 128],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [text, top + 8, 0, 128],
            Error::InvalidArgument,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [text, unmapped, 0, 128],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [text, (rodata + 16) & !15, 0, 128],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [text, top, 0, 256],
            Error::InvalidArgument,
        )?;
        expect_error(
            Syscall::ThreadCreate,
            [text, top, 0, 129],
            Error::InvalidArgument,
        )?;
        expect_error(Syscall::ThreadCreate, [text, 0, 0, 128], Error::BadAddress)?;
        Ok(())
    });
    suite.run("thread_status_and_id", || {
        let me = expect_ok(Syscall::ThreadId, [0; 4])?;
        check!(me == sys::thread_id().0, "thread ids differ");
        let (status, state, _) = raw_syscall(Syscall::ThreadStatus as u64, [me, 0, 0, 0]);
        check!(
            status == 0 && state == kaal_abi::ThreadStatus::Alive as u64,
            "own status {status}/{state}"
        );
        expect_error(
            Syscall::ThreadStatus,
            [u64::MAX, 0, 0, 0],
            Error::NoSuchThread,
        )?;
        expect_error(
            Syscall::ThreadStatus,
            [1 << 20, 0, 0, 0],
            Error::NoSuchThread,
        )?;
        Ok(())
    });
    suite.run("yield_succeeds", || {
        expect_ok(Syscall::Yield, [u64::MAX; 4])?;
        Ok(())
    });
    suite.run("debug_exit_rejects_out_of_range_status", || {
        expect_error(
            Syscall::DebugExit,
            [1 << 32, 0, 0, 0],
            Error::InvalidArgument,
        )?;
        Ok(())
    });
    suite.run("kernel_survives_garbage_in_every_register", || {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            // Calls that do not end the thread or the machine.
            let calls = [
                Syscall::ConsoleWrite,
                Syscall::Yield,
                Syscall::ThreadStatus,
                Syscall::ThreadId,
            ];
            let call = calls[(next() % calls.len() as u64) as usize];
            let mut args = [next(), next(), next(), next()];
            if call == Syscall::ConsoleWrite && args[1] < 4096 && args[0] % 3 == 0 {
                args[0] = rodata; // some valid ones too
                args[1] %= 16;
            }
            let (status, _, _) = raw_syscall(call as u64, args);
            check!(
                status == 0 || Error::from_code(status).is_some(),
                "{call:?} returned unknown status {status}"
            );
        }
        Ok(())
    });
    suite.finish()
}
