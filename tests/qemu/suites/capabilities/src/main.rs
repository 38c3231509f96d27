//! Capabilities and untyped memory: every call's success and error paths, derivation and
//! revocation, and exhausting untyped memory without harming the kernel.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_abi::{Error, ObjectType, Syscall, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{
    self, CNode, Cap, Endpoint, Frame2M, Frame4K, Notification, Tcb, Untyped, raw_syscall6,
};
use kaal_user::{BootInfo, println, thread};

kaal_user::entry!(main);

static WAKE: AtomicU64 = AtomicU64::new(0);

fn wait_for_signal(_: usize) -> u64 {
    Cap::<Notification>::from_slot(WAKE.load(Ordering::SeqCst))
        .wait()
        .unwrap_or(0)
}

fn err(error: Error) -> String {
    format!("{error:?}")
}

fn expect(
    result: Result<impl core::fmt::Debug, Error>,
    error: Error,
    what: &str,
) -> Result<(), String> {
    match result {
        Err(got) if got == error => Ok(()),
        other => Err(format!("{what}: expected {error:?}, got {other:?}")),
    }
}

/// A raw system call's status as a result.
fn raw(number: Syscall, args: [u64; 6]) -> Result<u64, Error> {
    match raw_syscall6(number as u64, args) {
        (0, value, _) => Ok(value),
        (code, _, _) => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("capabilities");
    let caps = boot.caps();
    // The largest RAM untyped is where objects come from.
    let (untyped, _) = boot
        .untyped()
        .enumerate()
        .take(caps.untyped.count as usize)
        .map(|(i, r)| {
            (
                Cap::<Untyped>::from_slot(u64::from(caps.untyped.start) + i as u64),
                r.size_bytes,
            )
        })
        .max_by_key(|&(_, size)| size)
        .expect("RAM untyped");

    suite.run("initial_capabilities", || {
        check!(
            cap::identify(slots::ROOT_CNODE) == Ok((ObjectType::CNode, rights::ALL)),
            "root CNode {:?}",
            cap::identify(slots::ROOT_CNODE)
        );
        check!(
            cap::identify(slots::IRQ_CONTROL).map(|c| c.0) == Ok(ObjectType::IrqControl),
            "IRQ control"
        );
        check!(
            caps.untyped.count > 0 && caps.device_untyped.count > 0,
            "untyped ranges {:?}",
            caps
        );
        for (i, region) in boot.untyped().enumerate() {
            let slot = u64::from(caps.untyped.start) + i as u64;
            check!(
                cap::identify(slot).map(|c| c.0) == Ok(ObjectType::Untyped),
                "slot {slot} is not untyped"
            );
            let device = i as u32 >= caps.untyped.count;
            check!(region.is_device == device, "region {i} device flag");
        }
        expect(
            cap::identify(u64::from(caps.first_free)),
            Error::InvalidCapability,
            "first free slot",
        )?;
        expect(
            cap::identify(1 << slots::ROOT_CNODE_RADIX),
            Error::InvalidCapability,
            "slot past the CNode",
        )?;
        expect(
            cap::identify(u64::MAX),
            Error::InvalidCapability,
            "huge slot",
        )?;
        Ok(())
    });

    suite.run("retype_every_object_type", || {
        let endpoint = untyped.retype_one::<Endpoint>(0).map_err(err)?;
        check!(
            endpoint.identify() == Ok((ObjectType::Endpoint, rights::ALL)),
            "endpoint {:?}",
            endpoint.identify()
        );
        let notification = untyped.retype_one::<Notification>(0).map_err(err)?;
        check!(
            notification.identify().map(|c| c.0) == Ok(ObjectType::Notification),
            "notification"
        );
        let cnode = untyped.retype_one::<CNode>(4).map_err(err)?;
        check!(
            cnode.identify().map(|c| c.0) == Ok(ObjectType::CNode),
            "cnode"
        );
        let tcb = untyped.retype_one::<Tcb>(0).map_err(err)?;
        check!(tcb.identify().map(|c| c.0) == Ok(ObjectType::Tcb), "tcb");
        let frame = untyped.retype_one::<Frame4K>(0).map_err(err)?;
        check!(
            frame.identify().map(|c| c.0) == Ok(ObjectType::Frame4K),
            "frame"
        );
        let first = cap::allocate_slots(3).map_err(err)?;
        untyped.retype::<Frame4K>(0, first, 3).map_err(err)?;
        for slot in first..first + 3 {
            check!(
                cap::identify(slot).map(|c| c.0) == Ok(ObjectType::Frame4K),
                "frame {slot}"
            );
        }
        Ok(())
    });

    suite.run("retype_errors", || {
        let free = cap::allocate_slot().map_err(err)?;
        let endpoint = untyped.retype_one::<Endpoint>(0).map_err(err)?;
        let not_untyped = Cap::<Untyped>::from_slot(endpoint.slot());
        expect(
            not_untyped.retype::<Frame4K>(0, free, 1),
            Error::WrongObjectType,
            "retype from an endpoint",
        )?;
        expect(
            untyped.retype::<Frame4K>(0, endpoint.slot(), 1),
            Error::SlotOccupied,
            "occupied destination",
        )?;
        expect(
            untyped.retype::<Frame4K>(0, free, 0),
            Error::IllegalOperation,
            "count 0",
        )?;
        expect(
            untyped.retype::<CNode>(0, free, 1),
            Error::InvalidArgument,
            "CNode radix 0",
        )?;
        expect(
            untyped.retype::<CNode>(13, free, 1),
            Error::InvalidArgument,
            "CNode radix 13",
        )?;
        expect(
            untyped.retype::<Untyped>(11, free, 1),
            Error::InvalidArgument,
            "untyped smaller than a page",
        )?;
        expect(
            untyped.retype::<Frame4K>(0, (1 << slots::ROOT_CNODE_RADIX) - 1, 2),
            Error::InvalidCapability,
            "range past the CNode",
        )?;
        let (status, _, _) = raw_syscall6(
            Syscall::UntypedRetype as u64,
            [untyped.slot(), 999, 0, free, 1, 0],
        );
        check!(
            status == Error::InvalidArgument as u64,
            "unknown type gave {status}"
        );
        let (status, _, _) = raw_syscall6(
            Syscall::UntypedRetype as u64,
            [untyped.slot(), ObjectType::IrqHandler as u64, 0, free, 1, 0],
        );
        check!(
            status == Error::IllegalOperation as u64,
            "IRQ handler from untyped gave {status}"
        );
        let device = Cap::<Untyped>::from_slot(u64::from(caps.device_untyped.start));
        expect(
            device.retype::<Tcb>(0, free, 1),
            Error::IllegalOperation,
            "TCB from device memory",
        )?;
        device
            .retype::<Frame4K>(0, free, 1)
            .map_err(|e| format!("device frame: {e:?}"))?;
        Ok(())
    });

    suite.run("retype_every_type_number", || {
        // Every number, reserved ones included: the kernel makes exactly the types the
        // ABI names as memory objects, and refuses the rest with the documented error.
        let free = cap::allocate_slot().map_err(err)?;
        for raw in 0..=16u64 {
            let ty = ObjectType::from_raw(raw);
            let size_bits = match ty {
                Some(ObjectType::CNode) => 4,
                Some(ObjectType::Untyped) => 12,
                _ => 0,
            };
            let (status, _, _) = raw_syscall6(
                Syscall::UntypedRetype as u64,
                [untyped.slot(), raw, size_bits, free, 1, 0],
            );
            let expected = match ty {
                None => Error::InvalidArgument as u64,
                Some(ty) if ty.is_memory() => 0,
                Some(_) => Error::IllegalOperation as u64,
            };
            check!(
                status == expected,
                "type {raw} ({ty:?}): status {status}, expected {expected}"
            );
            if status == 0 {
                check!(
                    cap::identify(free).map(|c| c.0) == Ok(ty.expect("made")),
                    "type {raw} made {:?}",
                    cap::identify(free)
                );
                Cap::<Untyped>::from_slot(free).delete().map_err(err)?;
            }
        }
        // 12 is reserved (reply objects): nothing is made.
        check!(ObjectType::from_raw(12).is_none(), "12 is a type");
        Ok(())
    });

    suite.run("retype_count_is_bounded", || {
        // One call creates at most RETYPE_MAX_COUNT objects (the creation step keeps
        // interrupts masked); the runtime splits larger counts, all or nothing.
        let max = kaal_abi::RETYPE_MAX_COUNT;
        let count = 2 * max + 88;
        let child = untyped
            .retype_one::<Untyped>(22)
            .map_err(|e| format!("child untyped: {e:?}"))?;
        let first = cap::allocate_slots(count).map_err(err)?;
        let (status, _, _) = raw_syscall6(
            Syscall::UntypedRetype as u64,
            [
                child.slot(),
                ObjectType::Frame4K as u64,
                0,
                first,
                max + 1,
                0,
            ],
        );
        check!(
            status == Error::InvalidArgument as u64,
            "a retype of {} objects gave {status}",
            max + 1
        );
        check!(
            cap::identify(first).is_err(),
            "the refused retype created something"
        );
        // Split by the runtime: contiguous objects, every slot filled.
        let base = child
            .retype::<Frame4K>(0, first, count as u32)
            .map_err(|e| format!("{count} frames: {e:?}"))?;
        for slot in first..first + count {
            check!(
                cap::identify(slot).map(|c| c.0) == Ok(ObjectType::Frame4K),
                "frame {slot}"
            );
        }
        child.revoke().map_err(err)?;
        // A split retype whose third call fails leaves no capability behind.
        let blocker = first + 2 * max + 5;
        child
            .retype::<Frame4K>(0, blocker, 1)
            .map_err(|e| format!("blocker: {e:?}"))?;
        expect(
            child.retype::<Frame4K>(0, first, count as u32),
            Error::SlotOccupied,
            "split retype into an occupied slot",
        )?;
        for slot in (first..first + count).filter(|&slot| slot != blocker) {
            check!(cap::identify(slot).is_err(), "slot {slot} left filled");
        }
        child.revoke().map_err(err)?;
        let again = child
            .retype::<Frame4K>(0, first, count as u32)
            .map_err(|e| format!("after revoke: {e:?}"))?;
        check!(again == base, "memory not reused: {again:#x} vs {base:#x}");
        child.revoke().map_err(err)?;
        Ok(())
    });

    suite.run("copy_mint_move_delete", || {
        let endpoint = untyped.retype_one::<Endpoint>(0).map_err(err)?;
        let reduced = endpoint
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        check!(
            reduced.identify() == Ok((ObjectType::Endpoint, rights::READ)),
            "copy rights {:?}",
            reduced.identify()
        );
        // Copying cannot add rights back.
        let again = reduced
            .copy(cap::allocate_slot().map_err(err)?, rights::ALL)
            .map_err(err)?;
        check!(
            again.identify() == Ok((ObjectType::Endpoint, rights::READ)),
            "rights grew: {:?}",
            again.identify()
        );
        let badged = endpoint
            .mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 0x42)
            .map_err(err)?;
        check!(
            badged.identify() == Ok((ObjectType::Endpoint, rights::WRITE)),
            "mint {:?}",
            badged.identify()
        );
        expect(
            badged.mint(cap::allocate_slot().map_err(err)?, rights::WRITE, 7),
            Error::IllegalOperation,
            "re-badging",
        )?;
        expect(
            untyped.mint(cap::allocate_slot().map_err(err)?, rights::ALL, 1),
            Error::IllegalOperation,
            "minting untyped",
        )?;
        expect(
            untyped.copy(cap::allocate_slot().map_err(err)?, rights::ALL),
            Error::IllegalOperation,
            "copying untyped",
        )?;
        expect(
            endpoint.copy(badged.slot(), rights::ALL),
            Error::SlotOccupied,
            "copy onto occupied",
        )?;
        expect(
            endpoint.copy(cap::allocate_slot().map_err(err)?, 1 << 9),
            Error::InvalidArgument,
            "unknown rights bit",
        )?;
        let target = cap::allocate_slot().map_err(err)?;
        let moved = again.move_to(target).map_err(err)?;
        expect(
            cap::identify(again.slot()),
            Error::InvalidCapability,
            "moved-from slot",
        )?;
        check!(
            moved.identify() == Ok((ObjectType::Endpoint, rights::READ)),
            "moved cap"
        );
        moved.delete().map_err(err)?;
        expect(moved.identify(), Error::InvalidCapability, "deleted slot")?;
        expect(
            moved.delete(),
            Error::InvalidCapability,
            "delete an empty slot",
        )?;
        expect(
            Cap::<Endpoint>::from_slot(0).delete(),
            Error::InvalidCapability,
            "delete slot 0",
        )?;
        Ok(())
    });

    suite.run("rights_bind_tcb_and_address_space_capabilities", || {
        let slot = || cap::allocate_slot().map_err(err);
        // (Untyped and page-table capabilities cannot be copied: they always carry
        // every right.)
        let small = untyped.retype_one::<Untyped>(16).map_err(err)?;
        expect(
            small.copy(slot()?, rights::READ),
            Error::IllegalOperation,
            "copying an untyped",
        )?;
        // TCB: writing needs the write right, observing the read right.
        let tcb = small.retype_one::<Tcb>(0).map_err(err)?;
        let observer = tcb.copy(slot()?, rights::READ).map_err(err)?;
        expect(
            observer.set_priority(1),
            Error::MissingRights,
            "set_priority",
        )?;
        expect(observer.resume(), Error::MissingRights, "resume")?;
        expect(observer.suspend(), Error::MissingRights, "suspend")?;
        expect(
            observer.write_registers(&kaal_abi::UserRegisters::default()),
            Error::MissingRights,
            "write_registers",
        )?;
        check!(observer.status().is_ok(), "status through a read-only TCB");
        check!(observer.read_registers().is_ok(), "read_registers");
        let controller = tcb.copy(slot()?, rights::WRITE).map_err(err)?;
        expect(
            controller.status(),
            Error::MissingRights,
            "status, write-only",
        )?;
        expect(
            controller.read_registers(),
            Error::MissingRights,
            "read_registers, write-only",
        )?;
        check!(
            controller.set_priority(1).is_ok(),
            "set_priority, write-only"
        );
        // Address space: mapping into it changes it.
        let space = small
            .retype_one::<kaal_user::cap::AddressSpace>(0)
            .map_err(err)?;
        let viewer = space.copy(slot()?, rights::READ).map_err(err)?;
        let table = small
            .retype_one::<kaal_user::cap::PageTable>(0)
            .map_err(err)?;
        expect(
            table.map(viewer, 0x40_0000),
            Error::MissingRights,
            "page table into a read-only address space",
        )?;
        let frame = small.retype_one::<Frame4K>(0).map_err(err)?;
        expect(
            frame.map(viewer, 0x40_0000, rights::READ, 0),
            Error::MissingRights,
            "frame into a read-only address space",
        )?;
        // Slot 0 is the null pointer: nothing goes into it.
        expect(
            raw(Syscall::CapCopy, [frame.slot(), 0, rights::ALL, 0, 0, 0]),
            Error::InvalidCapability,
            "copy into slot 0",
        )?;
        // The first page of an address space stays unmapped.
        table.map(space, 0).map_err(err)?;
        small
            .retype_one::<kaal_user::cap::PageTable>(0)
            .map_err(err)?
            .map(space, 0)
            .map_err(err)?;
        expect(
            frame.map(space, 0, rights::READ, 0),
            Error::InvalidArgument,
            "a frame at address 0",
        )?;
        check!(
            frame.map(space, 0x1000, rights::READ, 0).is_ok(),
            "at 0x1000"
        );
        small.revoke().map_err(err)?;
        Ok(())
    });
    suite.run("revoke_removes_all_derived_capabilities", || {
        let endpoint = untyped.retype_one::<Endpoint>(0).map_err(err)?;
        let a = endpoint
            .copy(cap::allocate_slot().map_err(err)?, rights::ALL)
            .map_err(err)?;
        let b = a
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        let c = endpoint
            .mint(cap::allocate_slot().map_err(err)?, rights::ALL, 9)
            .map_err(err)?;
        let removed = endpoint.revoke().map_err(err)?;
        check!(removed == 3, "revoke removed {removed}");
        for derived in [a, b, c] {
            expect(
                derived.identify(),
                Error::InvalidCapability,
                "derived after revoke",
            )?;
        }
        check!(
            endpoint.identify().is_ok(),
            "the revoked capability itself survives"
        );
        expect(
            Cap::<Endpoint>::from_slot(u64::from(caps.first_free) + 4000).revoke(),
            Error::InvalidCapability,
            "revoke empty",
        )?;
        Ok(())
    });

    suite.run("untyped_runs_out_and_revoke_reclaims", || {
        // A 64 KiB untyped holds exactly sixteen 4 KiB frames.
        let small = untyped.retype_one::<Untyped>(16).map_err(err)?;
        let first = cap::allocate_slots(17).map_err(err)?;
        let base = small.retype::<Frame4K>(0, first, 16).map_err(err)?;
        expect(
            small.retype::<Frame4K>(0, first + 16, 1),
            Error::NotEnoughMemory,
            "17th frame",
        )?;
        // The count is of the last issue, should the revoke have been restarted.
        let removed = small.revoke().map_err(err)?;
        check!((1..=16).contains(&removed), "revoke count {removed}");
        // All of it is back, at the same addresses.
        let again = small.retype::<Frame4K>(0, first, 16).map_err(err)?;
        check!(
            again == base,
            "reclaimed memory starts at {again:#x}, not {base:#x}"
        );
        Ok(())
    });

    suite.run("exhausting_all_ram_leaves_the_kernel_working", || {
        // A thread and a notification made beforehand must keep working.
        let notification: Cap<Notification> = untyped.retype_one(0).map_err(err)?;
        WAKE.store(notification.slot(), Ordering::SeqCst);
        let waiter = thread::spawn(wait_for_signal, 0, 128).map_err(|e| format!("spawn: {e:?}"))?;
        // Retype every RAM untyped into frames until each refuses.
        let mut frames = 0u64;
        let mut refused = 0;
        for i in 0..caps.untyped.count {
            let source = Cap::<Untyped>::from_slot(u64::from(caps.untyped.start + i));
            loop {
                let slot = cap::allocate_slot().map_err(err)?;
                let result = source
                    .retype::<Frame2M>(0, slot, 1)
                    .or_else(|_| source.retype::<Frame4K>(0, slot, 1));
                match result {
                    Ok(_) => frames += 1,
                    Err(Error::NotEnoughMemory) => {
                        refused += 1;
                        break;
                    }
                    Err(other) => return Err(format!("untyped {i}: {other:?}")),
                }
            }
        }
        check!(refused == caps.untyped.count, "every untyped refused");
        println!("[capabilities] retyped {frames} frames before running out");
        // No memory for another thread: a typed error, nothing else.
        let refused_spawn = thread::spawn(|n| n as u64, 0, 128);
        check!(
            refused_spawn.as_ref().err() == Some(&Error::NotEnoughMemory),
            "spawn without memory: {:?}",
            refused_spawn
        );
        // The existing thread still runs and is woken through its notification.
        notification.signal().map_err(err)?;
        check!(
            waiter.join() == kaal_user::sys::ThreadState::Exited(1),
            "waiter {:?}",
            waiter.state()
        );
        // And everything comes back.
        for i in 0..caps.untyped.count {
            Cap::<Untyped>::from_slot(u64::from(caps.untyped.start + i))
                .revoke()
                .map_err(err)?;
        }
        let worker = thread::spawn(|n| n as u64 * 3, 5, 128)
            .map_err(|e| format!("spawn after reclaim: {e:?}"))?;
        check!(
            worker.join() == kaal_user::sys::ThreadState::Exited(15),
            "thread after reclaim"
        );
        Ok(())
    });

    suite.finish()
}
