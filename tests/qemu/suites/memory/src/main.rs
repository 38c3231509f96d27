//! Address spaces built from user memory: page tables and frame mappings, every error
//! path of the mapping calls, unmapping by deletion, and placing capabilities into other
//! CNodes.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use kaal_abi::{Error, Syscall, layout, map_attributes, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::BootInfo;
use kaal_user::cap::{
    self, AddressSpace, CNode, Cap, Endpoint, Frame2M, Frame4K, PageTable, Tcb, Untyped,
    raw_syscall6,
};
use kaal_user::memory::MappedFrame;

kaal_user::entry!(main);

const RW: u64 = rights::READ | rights::WRITE;

fn err(error: Error) -> String {
    format!("{error:?}")
}

fn expect<T: core::fmt::Debug>(
    result: Result<T, Error>,
    error: Error,
    what: &str,
) -> Result<(), String> {
    match result {
        Err(got) if got == error => Ok(()),
        other => Err(format!("{what}: expected {error:?}, got {other:?}")),
    }
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("memory");
    let untyped: Cap<Untyped> = cap::largest_ram_untyped(boot).expect("RAM untyped");
    let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);

    suite.run("page_table_map_links_levels_in_order", || {
        let space: Cap<AddressSpace> = untyped.retype_one(0).map_err(err)?;
        let l2: Cap<PageTable> = untyped.retype_one(0).map_err(err)?;
        let l3: Cap<PageTable> = untyped.retype_one(0).map_err(err)?;
        let spare: Cap<PageTable> = untyped.retype_one(0).map_err(err)?;
        check!(
            l2.map(space, 0x40_0000) == Ok(2),
            "first table is not level 2"
        );
        expect(
            l2.map(space, 0x8000_0000),
            Error::AlreadyMapped,
            "a table mapped twice",
        )?;
        check!(
            l3.map(space, 0x40_0000) == Ok(3),
            "second table is not level 3"
        );
        expect(
            spare.map(space, 0x40_1000),
            Error::AlreadyMapped,
            "every level present",
        )?;
        expect(
            spare.map(space, layout::USER_END),
            Error::InvalidArgument,
            "kernel half",
        )?;
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        expect(
            Cap::<PageTable>::from_slot(endpoint.slot()).map(space, 0),
            Error::WrongObjectType,
            "an endpoint as table",
        )?;
        expect(
            spare.map(Cap::from_slot(endpoint.slot()), 0),
            Error::WrongObjectType,
            "an endpoint as address space",
        )?;
        Ok(())
    });

    suite.run("frame_map_error_paths", || {
        let space: Cap<AddressSpace> = untyped.retype_one(0).map_err(err)?;
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        expect(
            frame.map(space, 0x40_0000, RW, 0),
            Error::MissingPageTable,
            "no tables",
        )?;
        cap::map_with_tables(frame, space, 0x40_0000, RW, 0, untyped).map_err(err)?;
        expect(
            frame.map(space, 0x50_0000, RW, 0),
            Error::AlreadyMapped,
            "one capability maps once",
        )?;
        let copy = frame
            .copy(cap::allocate_slot().map_err(err)?, RW)
            .map_err(err)?;
        expect(
            copy.map(space, 0x40_0000, RW, 0),
            Error::AlreadyMapped,
            "an occupied page",
        )?;
        expect(
            copy.map(space, 0x40_0800, RW, 0),
            Error::Alignment,
            "misaligned address",
        )?;
        expect(
            copy.map(space, 0x40_1000, RW, map_attributes::EXECUTE),
            Error::IllegalOperation,
            "writable and executable",
        )?;
        expect(
            copy.map(space, 0x40_1000, RW | rights::GRANT, 0),
            Error::InvalidArgument,
            "grant is not a mapping right",
        )?;
        expect(
            copy.map(space, 0x40_1000, RW, 1 << 9),
            Error::InvalidArgument,
            "unknown attribute bit",
        )?;
        expect(
            copy.map(space, layout::USER_END - 4096 + 4096, RW, 0),
            Error::InvalidArgument,
            "past user space",
        )?;
        let read_only = frame
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        expect(
            read_only.map(space, 0x40_1000, RW, 0),
            Error::MissingRights,
            "write through a read-only capability",
        )?;
        read_only
            .map(space, 0x40_1000, rights::READ, 0)
            .map_err(|e| format!("read-only map: {e:?}"))?;
        let big: Cap<Frame2M> = untyped.retype_one(0).map_err(err)?;
        expect(
            big.map(space, 0x60_1000, RW, 0),
            Error::Alignment,
            "2 MiB frame at a 4 KiB boundary",
        )?;
        big.map(space, 0x60_0000, RW, 0)
            .map_err(|e| format!("2 MiB map: {e:?}"))?;
        expect(
            Cap::<Frame4K>::from_slot(space.slot()).map(space, 0x40_2000, RW, 0),
            Error::WrongObjectType,
            "an address space as frame",
        )?;
        expect(
            copy.unmap(),
            Error::NotMapped,
            "unmap an unmapped capability",
        )?;
        frame.unmap().map_err(err)?;
        expect(frame.unmap(), Error::NotMapped, "unmap twice")?;
        Ok(())
    });

    suite.run("unmapping_and_deleting_free_the_address", || {
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        let view = MappedFrame::new(frame, 0x31_0000_0000, untyped).map_err(err)?;
        view.write(3, 77);
        let frame = view.unmap().map_err(err)?;
        // The same frame elsewhere still holds what was written.
        let view = MappedFrame::new(frame, 0x31_0000_1000, untyped).map_err(err)?;
        check!(view.read(3) == Some(77), "frame contents lost");
        // Deleting a mapped copy unmaps it, so the address is free again.
        let copy = frame
            .copy(cap::allocate_slot().map_err(err)?, RW)
            .map_err(err)?;
        copy.map(own, 0x31_0000_2000, RW, 0).map_err(err)?;
        copy.delete().map_err(err)?;
        let other: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        other
            .map(own, 0x31_0000_2000, RW, 0)
            .map_err(|e| format!("address not freed by delete: {e:?}"))?;
        // Deleting the last capability to a page table unlinks it.
        let space: Cap<AddressSpace> = untyped.retype_one(0).map_err(err)?;
        let l2: Cap<PageTable> = untyped.retype_one(0).map_err(err)?;
        let l3: Cap<PageTable> = untyped.retype_one(0).map_err(err)?;
        l2.map(space, 0x40_0000).map_err(err)?;
        l3.map(space, 0x40_0000).map_err(err)?;
        l3.delete().map_err(err)?;
        let loose: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        expect(
            loose.map(space, 0x40_0000, RW, 0),
            Error::MissingPageTable,
            "a deleted table still linked",
        )?;
        Ok(())
    });

    suite.run("placing_capabilities_in_other_cnodes", || {
        let cnode: Cap<CNode> = untyped.retype_one(4).map_err(err)?;
        let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
        endpoint.copy_to(cnode, 3, rights::READ).map_err(err)?;
        expect(
            endpoint.copy_to(cnode, 3, rights::READ),
            Error::SlotOccupied,
            "occupied slot",
        )?;
        expect(
            endpoint.copy_to(cnode, 16, rights::READ),
            Error::InvalidCapability,
            "past the CNode",
        )?;
        expect(
            endpoint.copy_to(Cap::from_slot(endpoint.slot()), 0, rights::READ),
            Error::WrongObjectType,
            "an endpoint as CNode",
        )?;
        let read_only_cnode = cnode
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        expect(
            endpoint.copy_to(read_only_cnode, 4, rights::READ),
            Error::MissingRights,
            "CNode without write",
        )?;
        endpoint
            .mint_to(cnode, 4, rights::WRITE, 0x33)
            .map_err(err)?;
        let spare: Cap<Untyped> = untyped.retype_one(12).map_err(err)?;
        spare.move_to_cnode(cnode, 5).map_err(err)?;
        expect(
            cap::identify(spare.slot()),
            Error::InvalidCapability,
            "moved untyped still here",
        )?;
        let (status, _, _) =
            raw_syscall6(Syscall::CapMoveTo as u64, [4000, cnode.slot(), 6, 0, 0, 0]);
        check!(
            status == Error::InvalidCapability as u64,
            "move from an empty slot gave {status}"
        );
        // Deleting the CNode deletes what it holds: the endpoint survives through ours.
        cnode.delete().map_err(err)?;
        read_only_cnode.delete().map_err(err)?;
        check!(
            endpoint.identify().is_ok(),
            "our endpoint went with the CNode"
        );
        Ok(())
    });

    suite.run("review_findings_stay_fixed", || {
        // A page-table capability cannot be copied (a copy could outlive the link).
        let table: Cap<PageTable> = untyped.retype_one(0).map_err(err)?;
        expect(
            table.copy(cap::allocate_slot().map_err(err)?, rights::ALL),
            Error::IllegalOperation,
            "copy a page table",
        )?;
        // A thread's CSpace root needs a CNode capability with the write right, and
        // its IPC buffer a writable RAM frame.
        let tcb: Cap<Tcb> = untyped.retype_one(0).map_err(err)?;
        let cnode = Cap::<CNode>::from_slot(slots::ROOT_CNODE);
        let read_only_cnode = cnode
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        expect(
            tcb.configure(read_only_cnode, own, None, 0),
            Error::MissingRights,
            "read-only CSpace root",
        )?;
        let frame: Cap<Frame4K> = untyped.retype_one(0).map_err(err)?;
        let read_only_frame = frame
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(err)?;
        expect(
            tcb.configure(cnode, own, Some((read_only_frame, 0x32_0000_0000)), 0),
            Error::MissingRights,
            "read-only IPC buffer",
        )?;
        let caps = boot.caps();
        let device = Cap::<Untyped>::from_slot(u64::from(caps.device_untyped.start));
        let device_frame: Cap<Frame4K> = device.retype_one(0).map_err(err)?;
        expect(
            tcb.configure(cnode, own, Some((device_frame, 0x32_0000_0000)), 0),
            Error::IllegalOperation,
            "device IPC buffer",
        )?;
        // A user mapping of device memory is never read by the kernel for the thread.
        cap::map_with_tables(
            device_frame,
            own,
            0x32_0000_1000,
            rights::READ,
            map_attributes::DEVICE,
            untyped,
        )
        .map_err(err)?;
        let (status, _, _) = raw_syscall6(
            Syscall::ConsoleWrite as u64,
            [0x32_0000_1000, 4, 0, 0, 0, 0],
        );
        check!(
            status == Error::BadAddress as u64,
            "console_write from device memory gave {status}"
        );
        device_frame.unmap().map_err(err)?;
        tcb.delete().map_err(err)?;
        Ok(())
    });

    suite.run(
        "revoking_thousands_of_capabilities_needs_bounded_kernel_memory",
        || {
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err)?;
            let big: Cap<CNode> = untyped.retype_one(12).map_err(err)?;
            for index in 0..4096 {
                endpoint
                    .copy_to(big, index, rights::READ)
                    .map_err(|e| format!("copy {index}: {e:?}"))?;
            }
            let first = cap::allocate_slots(1500).map_err(err)?;
            for slot in first..first + 1500 {
                endpoint
                    .copy(slot, rights::WRITE)
                    .map_err(|e| format!("copy to {slot}: {e:?}"))?;
            }
            let removed = endpoint.revoke().map_err(err)?;
            check!(removed == 4096 + 1500, "revoke removed {removed}");
            check!(endpoint.identify().is_ok(), "the original survives");
            big.delete().map_err(err)?;
            Ok(())
        },
    );

    suite.finish()
}
