//! Every system call's success and error paths, with raw arguments a buggy or hostile
//! task could pass. The kernel must answer each with an error code and keep running.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use kaal_abi::slots;
use kaal_abi::{Error, Syscall, layout, rights};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{Cap, Console, Endpoint, Frame4K, Tcb, raw_syscall6};
use kaal_user::sys::{self, raw_syscall};
use kaal_user::{BootInfo, bootinfo, println};

kaal_user::entry!(main);

static READ_ONLY: [u8; 16] = *b"read-only data!\n";
/// The root task's console capability.
const CONSOLE: u64 = slots::CONSOLE;
/// One byte more than one `console_write` takes, ending in a line end.
static TOO_LONG: [u8; kaal_abi::CONSOLE_WRITE_MAX_BYTES + 1] = {
    let mut line = [b'.'; kaal_abi::CONSOLE_WRITE_MAX_BYTES + 1];
    line[kaal_abi::CONSOLE_WRITE_MAX_BYTES - 1] = b'\n';
    line[kaal_abi::CONSOLE_WRITE_MAX_BYTES] = b'\n';
    line
};

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

fn raw6(number: Syscall, args: [u64; 6]) -> u64 {
    raw_syscall6(number as u64, args).0
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("syscalls");
    let kernel_address = 0xffff_ff80_4008_0000u64;
    let unmapped = 0x7654_3000u64;
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
            [CONSOLE, rodata, READ_ONLY.len() as u64, 0],
        )?;
        check!(written == READ_ONLY.len() as u64, "wrote {written}");
        check!(
            expect_ok(Syscall::ConsoleWrite, [CONSOLE, rodata, 0, 0])? == 0,
            "empty write"
        );
        // Read-only boot info is readable, so it may be written to the console.
        expect_ok(
            Syscall::ConsoleWrite,
            [CONSOLE, bootinfo::BOOT_INFO_VADDR, 8, 0],
        )?;
        Ok(())
    });
    suite.run("console_write_rejects_bad_buffers", || {
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, kernel_address, 8, 0],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, unmapped, 8, 0],
            Error::BadAddress,
        )?;
        expect_error(Syscall::ConsoleWrite, [CONSOLE, 0, 8, 0], Error::BadAddress)?;
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, u64::MAX - 2, 8, 0],
            Error::BadAddress,
        )?;
        // Starts mapped, runs off the top of the stack into the unmapped page.
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, layout::ROOT_STACK_TOP - 8, 16, 0],
            Error::BadAddress,
        )?;
        expect_error(
            Syscall::ConsoleWrite,
            [
                CONSOLE,
                rodata,
                kaal_abi::CONSOLE_WRITE_MAX_BYTES as u64 + 1,
                0,
            ],
            Error::InvalidArgument,
        )?;
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, rodata, u64::MAX, 0],
            Error::InvalidArgument,
        )?;
        Ok(())
    });
    suite.run("console_write_needs_the_console_capability", || {
        let identified = kaal_user::cap::identify(CONSOLE);
        check!(
            identified == Ok((kaal_abi::ObjectType::Console, rights::ALL)),
            "slot {CONSOLE}: {identified:?}"
        );
        let line = b"written through the console capability\n";
        let (pointer, length) = (line.as_ptr() as u64, line.len() as u64);
        for (slot, error) in [
            (0, Error::InvalidCapability),
            (4000, Error::InvalidCapability),
            (u64::MAX, Error::InvalidCapability),
            (slots::ROOT_CNODE, Error::WrongObjectType),
            (slots::SYSTEM_CONTROL, Error::WrongObjectType),
        ] {
            expect_error(Syscall::ConsoleWrite, [slot, pointer, length, 0], error)?;
        }
        let console = Cap::<Console>::from_slot(CONSOLE);
        let read_only = kaal_user::cap::allocate_slot().map_err(|e| format!("{e:?}"))?;
        let writer = kaal_user::cap::allocate_slot().map_err(|e| format!("{e:?}"))?;
        let badged = kaal_user::cap::allocate_slot().map_err(|e| format!("{e:?}"))?;
        let result = (|| {
            console
                .copy(read_only, rights::READ | rights::GRANT)
                .map_err(|e| format!("read-only copy: {e:?}"))?;
            expect_error(
                Syscall::ConsoleWrite,
                [read_only, pointer, length, 0],
                Error::MissingRights,
            )?;
            console
                .copy(writer, rights::WRITE)
                .map_err(|e| format!("write-only copy: {e:?}"))?;
            check!(
                expect_ok(Syscall::ConsoleWrite, [writer, pointer, length, 0])? == length,
                "write through a write-only copy"
            );
            // Console capabilities carry no badge.
            let minted = console.mint(badged, rights::WRITE, 7);
            check!(
                minted == Err(Error::IllegalOperation),
                "minting a badge: {minted:?}"
            );
            Ok(())
        })();
        for slot in [read_only, writer, badged] {
            let _ = Cap::<Console>::from_slot(slot).delete();
            let _ = kaal_user::cap::free_slot(slot);
        }
        result
    });
    suite.run("console_write_is_bounded", || {
        let max = kaal_abi::CONSOLE_WRITE_MAX_BYTES as u64;
        check!(max <= 256, "one call may write {max} bytes");
        let pointer = TOO_LONG.as_ptr() as u64;
        check!(
            expect_ok(Syscall::ConsoleWrite, [CONSOLE, pointer, max, 0])? == max,
            "the maximum"
        );
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, pointer, max + 1, 0],
            Error::InvalidArgument,
        )?;
        // The runtime splits longer writes.
        let long = [TOO_LONG.as_slice(), &TOO_LONG, &TOO_LONG].concat();
        let written = sys::console_write(&long).map_err(|e| format!("{e:?}"))?;
        check!(written == long.len(), "wrote {written} of {}", long.len());
        Ok(())
    });
    suite.run("user_lines_cannot_pass_for_kernel_lines", || {
        // `expect.txt` checks these come out after `[user] `.
        for pieces in [
            &[b"[kaal] forged by the syscalls suite\n".as_slice()][..],
            &[b"[ka", b"al] forged in two writes by the syscalls suite\n"],
            &[b"x\r[kaal] forged after a carriage return by the syscalls suite\n"],
            &[b"x\x08[kaal] forged after a backspace by the syscalls suite\n"],
            &[b"\xc2\x9b2J C1 control shown, not obeyed, by the syscalls suite\n"],
        ] {
            for piece in pieces {
                let (pointer, length) = (piece.as_ptr() as u64, piece.len() as u64);
                expect_ok(Syscall::ConsoleWrite, [CONSOLE, pointer, length, 0])?;
            }
        }
        Ok(())
    });
    suite.run("user_pointers_beyond_user_space_are_refused", || {
        // The upper-half alias of mapped read-only data: the tables are indexed by the
        // low 39 bits, which name `rodata`; the pointer is not a user address.
        expect_error(
            Syscall::ConsoleWrite,
            [CONSOLE, rodata | !(layout::USER_END - 1), 8, 0],
            Error::BadAddress,
        )?;
        // A frame in the last page of user space.
        let untyped = kaal_user::cap::largest_ram_untyped(boot).ok_or("no RAM untyped")?;
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let page = kaal_user::memory::MappedFrame::new(frame, layout::USER_END - 4096, untyped)
            .map_err(|e| format!("mapping the last user page: {e:?}"))?;
        check!(page.write32(0x800, u32::from_le_bytes(*b"top\n")), "write");
        let last = layout::USER_END - 2048;
        let result = (|| {
            check!(
                expect_ok(Syscall::ConsoleWrite, [CONSOLE, last, 4, 0])? == 4,
                "the last user page is usable"
            );
            // Runs past the end of user space.
            expect_error(
                Syscall::ConsoleWrite,
                [CONSOLE, layout::USER_END - 8, 16, 0],
                Error::BadAddress,
            )?;
            // The same page's alias in the last page of the address space: stepping to
            // the next page from there overflows.
            expect_error(
                Syscall::ConsoleWrite,
                [CONSOLE, last | !(layout::USER_END - 1), 256, 0],
                Error::BadAddress,
            )
        })();
        let frame = page.unmap().map_err(|e| format!("unmap: {e:?}"))?;
        frame.delete().map_err(|e| format!("delete: {e:?}"))?;
        result
    });
    suite.run("tcb_calls_reject_bad_arguments", || {
        let untyped = kaal_user::cap::largest_ram_untyped(boot).ok_or("no RAM untyped")?;
        let tcb: Cap<Tcb> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(|e| format!("{e:?}"))?;
        let cnode = slots::ROOT_CNODE;
        let space = slots::ROOT_ADDRESS_SPACE;
        let t = tcb.slot();
        let configure = |args: [u64; 5]| {
            raw6(
                Syscall::TcbConfigure,
                [t, args[0], args[1], args[2], args[3], args[4]],
            )
        };
        check!(
            configure([endpoint.slot(), space, 0, 0, 0]) == Error::WrongObjectType as u64,
            "CSpace not a CNode"
        );
        check!(
            configure([4000, space, 0, 0, 0]) == Error::InvalidCapability as u64,
            "CSpace slot empty"
        );
        check!(
            configure([cnode, cnode, 0, 0, 0]) == Error::WrongObjectType as u64,
            "address space not one"
        );
        check!(
            configure([cnode, space, frame.slot(), 0x1234, 0]) == Error::Alignment as u64,
            "IPC buffer misaligned"
        );
        check!(
            configure([cnode, space, endpoint.slot(), 0x5000_0000, 0])
                == Error::WrongObjectType as u64,
            "IPC buffer not a frame"
        );
        check!(
            raw6(
                Syscall::TcbConfigure,
                [endpoint.slot(), cnode, space, 0, 0, 0]
            ) == Error::WrongObjectType as u64,
            "configure a non-TCB"
        );
        check!(
            raw6(Syscall::TcbResume, [t, 0, 0, 0, 0, 0]) == Error::IllegalOperation as u64,
            "resume unconfigured"
        );
        check!(
            raw6(Syscall::TcbWriteRegisters, [t, kernel_address, 0, 0, 0, 0])
                == Error::BadAddress as u64,
            "registers from kernel memory"
        );
        check!(
            raw6(Syscall::TcbWriteRegisters, [t, unmapped, 0, 0, 0, 0]) == Error::BadAddress as u64,
            "registers from unmapped memory"
        );
        // The safe raw entry point refuses the one call that writes caller memory at a
        // chosen address (the kernel's own check is in the faults suite).
        check!(
            raw6(Syscall::TcbReadRegisters, [t, rodata, 0, 0, 0, 0])
                == Error::InvalidArgument as u64,
            "raw tcb_read_registers not refused"
        );
        check!(
            raw6(
                Syscall::TcbWriteRegisters,
                [slots::ROOT_TCB, stack, 0, 0, 0, 0]
            ) == Error::IllegalOperation as u64,
            "write own registers"
        );
        check!(
            raw6(Syscall::TcbSetPriority, [t, 256, 0, 0, 0, 0]) == Error::InvalidArgument as u64,
            "priority 256"
        );
        check!(
            raw6(Syscall::TcbSetPriority, [t, 129, 0, 0, 0, 0]) == Error::InvalidArgument as u64,
            "priority above the caller"
        );
        check!(
            raw6(Syscall::TcbStatus, [endpoint.slot(), 0, 0, 0, 0, 0])
                == Error::WrongObjectType as u64,
            "status of a non-TCB"
        );
        // Registers written are read back, and a new thread is inactive.
        let mut registers = kaal_abi::UserRegisters {
            sp: 0x1230,
            pc: 0x40_0000,
            ..Default::default()
        };
        registers.x[7] = 77;
        tcb.write_registers(&registers)
            .map_err(|e| format!("write: {e:?}"))?;
        check!(
            tcb.read_registers() == Ok(registers),
            "registers read back differ"
        );
        check!(
            tcb.status() == Ok(kaal_user::sys::ThreadState::Inactive),
            "new thread {:?}",
            tcb.status()
        );
        check!(
            configure([cnode, space, frame.slot(), 0x5000_0000, 0]) == 0,
            "valid configure"
        );
        tcb.delete().map_err(|e| format!("{e:?}"))?;
        Ok(())
    });
    suite.run("thread_id", || {
        let me = expect_ok(Syscall::ThreadId, [0; 4])?;
        check!(me != 0 && me == sys::thread_id().0, "thread ids differ");
        Ok(())
    });
    suite.run("yield_succeeds", || {
        expect_ok(Syscall::Yield, [u64::MAX; 4])?;
        Ok(())
    });
    suite.run(
        "power_off_and_debug_exit_need_the_system_control_capability",
        || {
            let control = kaal_abi::slots::SYSTEM_CONTROL;
            check!(
                raw6(Syscall::DebugExit, [control, 1 << 32, 0, 0, 0, 0])
                    == Error::InvalidArgument as u64,
                "out-of-range status"
            );
            check!(
                raw6(Syscall::DebugExit, [slots::ROOT_CNODE, 0, 0, 0, 0, 0])
                    == Error::WrongObjectType as u64,
                "debug_exit through a CNode"
            );
            check!(
                raw6(Syscall::DebugExit, [4000, 0, 0, 0, 0, 0]) == Error::InvalidCapability as u64,
                "debug_exit through an empty slot"
            );
            check!(
                raw6(Syscall::PowerOff, [slots::ROOT_TCB, 0, 0, 0, 0, 0])
                    == Error::WrongObjectType as u64,
                "power_off through a TCB"
            );
            check!(
                raw6(Syscall::PowerOff, [0, 0, 0, 0, 0, 0]) == Error::InvalidCapability as u64,
                "power_off through slot 0"
            );
            let identified = kaal_user::cap::identify(control);
            check!(
                identified.map(|c| c.0) == Ok(kaal_abi::ObjectType::SystemControl),
                "slot {control}: {identified:?}"
            );
            Ok(())
        },
    );
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
                Syscall::TcbStatus,
                Syscall::ThreadId,
            ];
            let call = calls[(next() % calls.len() as u64) as usize];
            let mut args = [next(), next(), next(), next()];
            if call == Syscall::ConsoleWrite && args[2] < 4096 && args[1] % 3 == 0 {
                // Some valid ones too.
                args[0] = CONSOLE;
                args[1] = rodata;
                args[2] %= 16;
            }
            let (status, _, _) = raw_syscall(call as u64, args);
            check!(
                status == 0 || Error::from_code(status).is_some(),
                "{call:?} returned unknown status {status}"
            );
        }
        Ok(())
    });
    suite.run("every_call_survives_garbage_against_live_objects", || {
        // Objects of every type in slots the fuzzer may touch (and destroy).
        let untyped = kaal_user::cap::largest_ram_untyped(boot).ok_or("no RAM untyped")?;
        let pool_start = kaal_user::cap::allocate_slots(64).map_err(|e| format!("{e:?}"))?;
        let types = [2u64, 3, 4, 5, 6, 8, 9, 1];
        for (i, ty) in types.iter().enumerate() {
            let size = match ty {
                5 => 3,
                1 => 14,
                _ => 0,
            };
            let (status, _, _) = raw_syscall6(
                Syscall::UntypedRetype as u64,
                [untyped.slot(), *ty, size, pool_start + i as u64, 1, 0],
            );
            check!(status == 0, "retype type {ty}: {status}");
        }
        let mut seed = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Calls that neither end nor block this thread, nor change its own set-up.
        let calls = [
            Syscall::Yield,
            Syscall::ThreadId,
            Syscall::CapCopy,
            Syscall::CapMint,
            Syscall::CapMove,
            Syscall::CapDelete,
            Syscall::CapRevoke,
            Syscall::CapIdentify,
            Syscall::UntypedRetype,
            Syscall::TcbReadRegisters,
            Syscall::TcbWriteRegisters,
            Syscall::TcbResume,
            Syscall::TcbStatus,
            Syscall::NbSend,
            Syscall::NbRecv,
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
            Syscall::Reply,
        ];
        let mut outcomes = [0u32; 18];
        for _ in 0..6000 {
            let call = calls[(next() % calls.len() as u64) as usize];
            let mut args = [0u64; 6];
            for arg in &mut args {
                *arg = match next() % 6 {
                    0 => next(),
                    1 => next() % 8,
                    2 => pool_start + next() % 64,
                    3 => kernel_address + (next() % 0x1000),
                    4 => [0, 1, u64::MAX, 1 << 39, 4096, 0x1000_0000][(next() % 6) as usize],
                    _ => pool_start + next() % 8,
                };
            }
            // Never hand the fuzzer this task's own slots for destructive calls.
            if matches!(
                call,
                Syscall::CapMove | Syscall::CapDelete | Syscall::CapRevoke | Syscall::CapMoveTo
            ) && args[0] < pool_start
            {
                args[0] = pool_start + args[0] % 64;
            }
            if call == Syscall::TcbResume || call == Syscall::TcbWriteRegisters {
                // Resuming or rewriting a TCB that is not ours would start garbage:
                // only the pool's never-configured TCB is fair game (resume refuses it).
                args[0] = pool_start;
            }
            let (status, _, _) = raw_syscall6(call as u64, args);
            check!(
                status == 0 || Error::from_code(status).is_some(),
                "{call:?}{args:x?} returned unknown status {status}"
            );
            outcomes[(status as usize).min(17)] += 1;
        }
        let successes = outcomes[0];
        check!(
            successes > 100,
            "only {successes} calls succeeded: the fuzzer is not reaching real paths"
        );
        println!("[syscalls] garbage outcomes by status: {outcomes:?}");
        Ok(())
    });
    suite.finish()
}
