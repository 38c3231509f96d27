//! Address spaces built from user memory: page tables and frame mappings, every error
//! path of the mapping calls, unmapping by deletion, placing capabilities into other
//! CNodes, stale mapping records (after ASID reuse and after a page table is replaced),
//! ASID recycling over 10 000 address spaces, deleting, revoking and reconfiguring at a
//! scale of 100 000 capabilities with no kernel heap, and a thread that takes its own
//! address space away.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use kaal_abi::UserRegisters;
use kaal_abi::{Error, Syscall, layout, map_attributes, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::BootInfo;
use kaal_user::cap::{
    self, AddressSpace, CNode, Cap, Endpoint, Frame2M, Frame4K, PageTable, Tcb, Untyped,
    raw_syscall6,
};
use kaal_user::memory::MappedFrame;
use kaal_user::sys::{self, ThreadState};

kaal_user::entry!(main);

const RW: u64 = rights::READ | rights::WRITE;

/// The root task's priority: a reader thread at it runs when the root task yields.
const PRIORITY: u8 = 128;
/// Where a [`Lab`] space has the reader's code (its own level-3 table).
const CODE_VADDR: u64 = 0x40_0000;
/// Where a [`Lab`] space has the data the reader reads (another level-3 table).
const DATA_VADDR: u64 = 0x60_0000;
/// Where this task maps the frames it prepares for the other spaces.
const SCRATCH_VADDR: u64 = 0x34_0000_0000;

/// The reader thread's code: it exits with the word at the address in `x1` as its exit
/// code (`ldr x0, [x1]; mov x8, #thread_exit; svc #0`), so its exit code says what its
/// address space maps there.
fn reader_code() -> [u32; 3] {
    let exit = Syscall::ThreadExit as u32;
    [0xf940_0020, 0xd280_0008 | (exit << 5), 0xd400_0001]
}

/// An address space under test in fixed slots, its objects made from one untyped block
/// that [`Lab::clear`] revokes. Slots from `first`: the space, its level-2 table, the
/// level-3 tables for [`CODE_VADDR`] and [`DATA_VADDR`], a reader thread, the copy of the
/// code frame mapped in it.
#[derive(Clone, Copy)]
struct Lab {
    memory: Cap<Untyped>,
    first: u64,
}

/// Slots a [`Lab`] uses.
const LAB_SLOTS: u64 = 6;

impl Lab {
    fn new(untyped: Cap<Untyped>) -> Result<Self, Error> {
        Ok(Self {
            memory: untyped.retype_one(16)?,
            first: cap::allocate_slots(LAB_SLOTS)?,
        })
    }

    fn space(&self) -> Cap<AddressSpace> {
        Cap::from_slot(self.first)
    }

    fn table(&self, index: u64) -> Cap<PageTable> {
        Cap::from_slot(self.first + 1 + index)
    }

    fn thread(&self) -> Cap<Tcb> {
        Cap::from_slot(self.first + 4)
    }

    /// Creates the space with its tables and maps (a copy of) `code` at [`CODE_VADDR`].
    fn build(&self, code: Cap<Frame4K>) -> Result<Cap<AddressSpace>, String> {
        let step = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
        self.memory
            .retype::<AddressSpace>(0, self.first, 1)
            .map_err(step("address space"))?;
        self.memory
            .retype::<PageTable>(0, self.first + 1, 3)
            .map_err(step("tables"))?;
        let space = self.space();
        check!(
            self.table(0).map(space, CODE_VADDR) == Ok(2)
                && self.table(1).map(space, CODE_VADDR) == Ok(3)
                && self.table(2).map(space, DATA_VADDR) == Ok(3),
            "linking the tables"
        );
        code.copy(self.first + 5, rights::READ)
            .and_then(|copy| copy.map(space, CODE_VADDR, rights::READ, map_attributes::EXECUTE))
            .map_err(step("code"))?;
        Ok(space)
    }

    /// Runs a reader thread in the space: the word mapped at [`DATA_VADDR`] there.
    fn read(&self) -> Result<u64, String> {
        let step = |what: &'static str| move |e: Error| format!("reader {what}: {e:?}");
        let thread = self.thread();
        self.memory
            .retype::<Tcb>(0, thread.slot(), 1)
            .map_err(step("retype"))?;
        thread
            .configure(Cap::from_slot(slots::ROOT_CNODE), self.space(), None, 0)
            .map_err(step("configure"))?;
        thread.set_priority(PRIORITY).map_err(step("priority"))?;
        let mut registers = UserRegisters::default();
        registers.x[1] = DATA_VADDR;
        registers.pc = CODE_VADDR;
        thread
            .write_registers(&registers)
            .map_err(step("registers"))?;
        thread.resume().map_err(step("resume"))?;
        let result = loop {
            match thread.status().map_err(step("status"))? {
                ThreadState::Alive => sys::yield_now(),
                ThreadState::Exited(word) => break Ok(word),
                other => break Err(format!("the reader ended {other:?}")),
            }
        };
        thread.delete().map_err(step("delete"))?;
        result
    }

    /// Destroys the space and everything else made from the block.
    fn clear(&self) -> Result<(), String> {
        // The code copy first, while its mapping is still in place (deleting it later
        // would find a stale record, which is harmless too).
        Cap::<Frame4K>::from_slot(self.first + 5)
            .delete()
            .map_err(|e| format!("code copy: {e:?}"))?;
        self.memory
            .revoke()
            .map(|_| ())
            .map_err(|e| format!("revoke: {e:?}"))
    }
}

/// A frame holding the reader's code, and two data frames, mapped in this task at
/// [`SCRATCH_VADDR`] for it to write them.
struct Frames {
    code: Cap<Frame4K>,
    data: [Cap<Frame4K>; 2],
    views: [MappedFrame; 2],
}

impl Frames {
    fn new(untyped: Cap<Untyped>) -> Result<Self, Error> {
        let code_frame: Cap<Frame4K> = untyped.retype_one(0)?;
        let code = MappedFrame::new(code_frame, SCRATCH_VADDR, untyped)?;
        for (index, instruction) in reader_code().into_iter().enumerate() {
            code.write32(index * 4, instruction);
        }
        let data: [Cap<Frame4K>; 2] = [untyped.retype_one(0)?, untyped.retype_one(0)?];
        let views = [
            MappedFrame::new(data[0], SCRATCH_VADDR + 0x1000, untyped)?,
            MappedFrame::new(data[1], SCRATCH_VADDR + 0x2000, untyped)?,
        ];
        Ok(Self {
            code: code.unmap()?,
            data,
            views,
        })
    }

    /// Writes `value` as the first word of data frame `index`.
    fn set(&self, index: usize, value: u64) {
        self.views[index].write(0, value);
    }
}

/// Radix of the big CNodes of a [`Chain`]: the largest there is.
const BIG_RADIX: u8 = 12;
/// Big CNodes in a [`Chain`].
const CHAIN_LINKS: u64 = 25;
/// Small CNodes retyped at a time while building a [`Chain`].
const STAGING: u64 = 512;
/// Log2 of the block the scale tests build in: a [`Chain`] takes about 38 MiB.
const SCALE_BLOCK_BITS: u8 = 26;

/// A chain of [`CHAIN_LINKS`] radix-12 CNodes, each the only capability to its object:
/// CNode k holds CNode k + 1 in slot 1 and a radix-1 CNode (only capability too) in each
/// of its slots 2 to 4095. Deleting the head's capability destroys them all, more than
/// 100 000 CNodes, in one call.
struct Chain {
    /// This task's (only) capability to the first CNode.
    head: Cap<CNode>,
    /// How many capabilities the chain holds, the head's included.
    capabilities: u64,
}

impl Chain {
    /// Builds the chain from `block`, tail first: each big CNode is filled with small
    /// ones moved in one by one, then takes the previous big one into its slot 1.
    fn build(block: Cap<Untyped>) -> Result<Self, String> {
        let step = |what: &'static str| move |e: Error| format!("chain {what}: {e:?}");
        let current = cap::allocate_slot().map_err(step("slot"))?;
        let next = cap::allocate_slot().map_err(step("slot"))?;
        let staging = cap::allocate_slots(STAGING).map_err(step("staging slots"))?;
        let mut capabilities = 0;
        for link in 0..CHAIN_LINKS {
            let big = Cap::<CNode>::from_slot(next);
            block
                .retype::<CNode>(BIG_RADIX, next, 1)
                .map_err(step("big CNode"))?;
            capabilities += 1;
            let mut index = 2;
            while index < 1 << BIG_RADIX {
                let count = STAGING.min((1 << BIG_RADIX) - index);
                block
                    .retype::<CNode>(1, staging, count as u32)
                    .map_err(step("small CNodes"))?;
                for offset in 0..count {
                    Cap::<CNode>::from_slot(staging + offset)
                        .move_to_cnode(big, index + offset)
                        .map_err(step("move a small CNode"))?;
                }
                index += count;
                capabilities += count;
            }
            if link > 0 {
                Cap::<CNode>::from_slot(current)
                    .move_to_cnode(big, 1)
                    .map_err(step("link"))?;
            }
            big.move_to(current).map_err(step("keep"))?;
        }
        for slot in (staging..staging + STAGING).chain([next]) {
            cap::free_slot(slot).map_err(step("free a slot"))?;
        }
        Ok(Self {
            head: Cap::from_slot(current),
            capabilities,
        })
    }
}

/// Revokes `block` and retypes all of it (its two halves), which works only if every
/// object made from it is gone; leaves it empty again.
fn all_memory_back(block: Cap<Untyped>) -> Result<(), String> {
    block
        .revoke()
        .map_err(|e| format!("revoke the block: {e:?}"))?;
    let halves = cap::allocate_slots(2).map_err(err)?;
    block
        .retype::<Untyped>(SCALE_BLOCK_BITS - 1, halves, 2)
        .map_err(|e| format!("the block does not retype whole: {e:?}"))?;
    block.revoke().map_err(|e| format!("revoke again: {e:?}"))?;
    for slot in [halves, halves + 1] {
        cap::free_slot(slot).map_err(err)?;
    }
    Ok(())
}

/// A thread's code: `cap_revoke(slot)`, then `thread_exit` (which it never reaches when
/// the revoke takes its address space away).
fn revoker_code(slot: u64) -> [u32; 5] {
    let movz = |register: u32, value: u32| 0xd280_0000 | (value << 5) | register;
    let svc = 0xd400_0001;
    [
        movz(0, slot as u32),
        movz(8, Syscall::CapRevoke as u32),
        svc,
        movz(8, Syscall::ThreadExit as u32),
        svc,
    ]
}

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
            [kaal_abi::slots::CONSOLE, 0x32_0000_1000, 4, 0, 0, 0],
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
            // Every slot of the CNode but slot 0, which is never valid.
            for index in 1..4096 {
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
            // The count is of the last issue: a revoke this size is restarted for
            // interrupts part way.
            let removed = endpoint.revoke().map_err(err)?;
            check!(
                (1..=4095 + 1500).contains(&removed),
                "revoke removed {removed}"
            );
            check!(endpoint.identify().is_ok(), "the original survives");
            for slot in first..first + 1500 {
                expect(
                    cap::identify(slot),
                    Error::InvalidCapability,
                    "a copy after the revoke",
                )?;
            }
            // Every slot of the CNode is free again.
            for index in [1, 2048, 4095] {
                endpoint
                    .copy_to(big, index, rights::READ)
                    .map_err(|e| format!("copy {index} after the revoke: {e:?}"))?;
            }
            big.delete().map_err(err)?;
            Ok(())
        },
    );

    let frames = Frames::new(untyped).expect("the test frames");

    suite.run(
        "a_stale_record_after_asid_reuse_leaves_the_new_mapping_alone",
        || {
            let step = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
            frames.set(0, 0x5eed_0001);
            let old = Lab::new(untyped).map_err(step("lab"))?;
            let space = old.build(frames.code)?;
            let a = frames.data[0]
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(step("copy A"))?;
            a.map(space, DATA_VADDR, rights::READ, 0)
                .map_err(step("map A"))?;
            check!(old.read()? == 0x5eed_0001, "A's mapping reads wrong");
            // The space goes, A's record stays; the next space gets the freed ASID (the
            // kernel hands out the lowest free one), with the frame at the same address
            // through another capability.
            space.delete().map_err(step("delete the space"))?;
            let new = Lab::new(untyped).map_err(step("lab"))?;
            let space = new.build(frames.code)?;
            let b = frames.data[0]
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(step("copy B"))?;
            b.map(space, DATA_VADDR, rights::READ, 0)
                .map_err(step("map B"))?;
            a.unmap().map_err(step("unmap A"))?;
            let c = frames.data[1]
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(step("copy C"))?;
            expect(
                c.map(space, DATA_VADDR, rights::READ, 0),
                Error::AlreadyMapped,
                "B's mapping after A's stale unmap",
            )?;
            let read = new.read()?;
            check!(read == 0x5eed_0001, "B's mapping reads {read:#x}");
            b.unmap().map_err(step("unmap B"))?;
            c.map(space, DATA_VADDR, rights::READ, 0)
                .map_err(step("map C after B's unmap"))?;
            for copy in [a, b, c] {
                copy.delete().map_err(step("delete a copy"))?;
            }
            old.clear()?;
            new.clear()
        },
    );

    suite.run(
        "a_stale_record_after_a_table_is_replaced_leaves_the_new_mapping_alone",
        || {
            let step = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
            frames.set(0, 0x5eed_0002);
            let lab = Lab::new(untyped).map_err(step("lab"))?;
            let space = lab.build(frames.code)?;
            let a = frames.data[0]
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(step("copy A"))?;
            a.map(space, DATA_VADDR, rights::READ, 0)
                .map_err(step("map A"))?;
            // A's table goes (unlinked with A's entry, A's record stays); another takes
            // its place and the frame is mapped there through another capability.
            lab.table(2).delete().map_err(step("delete the table"))?;
            let table: Cap<PageTable> = lab.memory.retype_one(0).map_err(step("table"))?;
            check!(
                table.map(space, DATA_VADDR) == Ok(3),
                "the new table is not level 3"
            );
            let b = frames.data[0]
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(step("copy B"))?;
            b.map(space, DATA_VADDR, rights::READ, 0)
                .map_err(step("map B"))?;
            a.unmap().map_err(step("unmap A"))?;
            let c = frames.data[1]
                .copy(cap::allocate_slot().map_err(err)?, rights::READ)
                .map_err(step("copy C"))?;
            expect(
                c.map(space, DATA_VADDR, rights::READ, 0),
                Error::AlreadyMapped,
                "B's mapping after A's stale unmap",
            )?;
            let read = lab.read()?;
            check!(read == 0x5eed_0002, "B's mapping reads {read:#x}");
            // Deleting A (no longer mapped) and B's unmap through deletion.
            a.delete().map_err(step("delete A"))?;
            b.delete().map_err(step("delete B"))?;
            c.map(space, DATA_VADDR, rights::READ, 0)
                .map_err(step("map C after B's deletion"))?;
            c.delete().map_err(step("delete C"))?;
            lab.clear()
        },
    );

    suite.run("more_address_spaces_at_once_than_8_bit_asids_allow", || {
        // Every CPU the suite runs on has 16-bit ASIDs (the kernel says so at boot:
        // `expect.txt`), so 300 spaces fit at once, and one more still works.
        let step = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
        let block: Cap<Untyped> = untyped.retype_one(21).map_err(step("block"))?;
        let first = cap::allocate_slots(300).map_err(step("slots"))?;
        block
            .retype::<AddressSpace>(0, first, 300)
            .map_err(step("300 address spaces"))?;
        frames.set(1, 0x5eed_0003);
        let lab = Lab::new(untyped).map_err(step("lab"))?;
        let space = lab.build(frames.code)?;
        let data = frames.data[1]
            .copy(cap::allocate_slot().map_err(err)?, rights::READ)
            .map_err(step("copy"))?;
        data.map(space, DATA_VADDR, rights::READ, 0)
            .map_err(step("map"))?;
        let read = lab.read()?;
        check!(read == 0x5eed_0003, "the 301st space reads {read:#x}");
        data.delete().map_err(step("delete the copy"))?;
        lab.clear()?;
        block.revoke().map_err(step("revoke"))?;
        Ok(())
    });

    suite.run(
        "ten_thousand_address_spaces_recycle_asids_with_coherent_tlbs",
        || {
            // Each round builds a space (which gets the ASID the last round's freed),
            // maps the other data frame at the same address, with a new value in it, and
            // runs a thread there: a translation left over from the last round would
            // read last round's frame.
            let lab = Lab::new(untyped).map_err(|e| format!("lab: {e:?}"))?;
            let data = cap::allocate_slot().map_err(err)?;
            for round in 0..10_000u64 {
                let step = move |what: &'static str| {
                    move |e: Error| format!("round {round}, {what}: {e:?}")
                };
                let index = (round % 2) as usize;
                let value = 0xa5_1d00_0000 | round;
                frames.set(index, value);
                let space = lab
                    .build(frames.code)
                    .map_err(|e| format!("round {round}: {e}"))?;
                frames.data[index]
                    .copy(data, rights::READ)
                    .and_then(|copy| copy.map(space, DATA_VADDR, rights::READ, 0))
                    .map_err(step("data"))?;
                let read = lab.read().map_err(|e| format!("round {round}: {e}"))?;
                check!(
                    read == value,
                    "round {round}: the thread read {read:#x}, not {value:#x}"
                );
                Cap::<Frame4K>::from_slot(data)
                    .delete()
                    .map_err(step("delete the data copy"))?;
                lab.clear().map_err(|e| format!("round {round}: {e}"))?;
            }
            Ok(())
        },
    );

    // The kernel heap serves boot only: the QEMU test kernel refuses any allocation
    // after boot, so each of these would panic the kernel if its call used the heap.
    let scale = untyped
        .retype_one::<Untyped>(SCALE_BLOCK_BITS)
        .expect("a block for the scale tests");

    suite.run(
        "deleting_a_chain_of_a_hundred_thousand_nested_cnodes_needs_no_kernel_memory",
        || {
            let chain = Chain::build(scale)?;
            check!(
                chain.capabilities >= 100_000,
                "only {} capabilities",
                chain.capabilities
            );
            let slot = chain.head.slot();
            chain
                .head
                .delete()
                .map_err(|e| format!("delete the head: {e:?}"))?;
            cap::free_slot(slot).map_err(err)?;
            all_memory_back(scale)
        },
    );

    suite.run(
        "revoking_an_untyped_under_a_hundred_thousand_nested_cnodes_held_by_a_thread",
        || {
            let chain = Chain::build(scale)?;
            // The chain's only capability is a thread's CSpace root.
            let thread: Cap<Tcb> = scale.retype_one(0).map_err(err)?;
            thread
                .configure(chain.head, own, None, 0)
                .map_err(|e| format!("configure: {e:?}"))?;
            let slot = chain.head.slot();
            chain.head.delete().map_err(err)?;
            cap::free_slot(slot).map_err(err)?;
            // (Restarted for interrupts while it tears the chain down, it may count 0
            // in the issue that finishes.)
            scale.revoke().map_err(|e| format!("revoke: {e:?}"))?;
            expect(thread.identify(), Error::InvalidCapability, "the thread")?;
            cap::free_slot(thread.slot()).map_err(err)?;
            all_memory_back(scale)
        },
    );

    suite.run(
        "revoking_a_hundred_thousand_copies_needs_no_kernel_memory",
        || {
            let endpoint: Cap<Endpoint> = scale.retype_one(0).map_err(err)?;
            let first = cap::allocate_slots(CHAIN_LINKS).map_err(err)?;
            scale
                .retype::<CNode>(BIG_RADIX, first, CHAIN_LINKS as u32)
                .map_err(err)?;
            for cnode in first..first + CHAIN_LINKS {
                for index in 1..1 << BIG_RADIX {
                    endpoint
                        .copy_to(Cap::from_slot(cnode), index, rights::READ)
                        .map_err(|e| format!("copy {cnode}/{index}: {e:?}"))?;
                }
            }
            // The count is of the last issue: a revoke this size is restarted for
            // interrupts part way.
            let removed = endpoint.revoke().map_err(err)?;
            check!(
                (1..=CHAIN_LINKS * 4095).contains(&removed),
                "revoke removed {removed}"
            );
            check!(endpoint.identify().is_ok(), "the original survives");
            // Every slot is free again.
            for cnode in first..first + CHAIN_LINKS {
                for index in [1, 4095] {
                    endpoint
                        .copy_to(Cap::from_slot(cnode), index, rights::READ)
                        .map_err(|e| format!("copy {cnode}/{index} after the revoke: {e:?}"))?;
                }
            }
            for slot in (first..first + CHAIN_LINKS).chain([endpoint.slot()]) {
                Cap::<CNode>::from_slot(slot).delete().map_err(err)?;
                cap::free_slot(slot).map_err(err)?;
            }
            all_memory_back(scale)
        },
    );

    suite.run(
        "reconfiguring_a_thread_destroys_a_hundred_thousand_nested_cnodes",
        || {
            let chain = Chain::build(scale)?;
            let thread: Cap<Tcb> = scale.retype_one(0).map_err(err)?;
            thread
                .configure(chain.head, own, None, 0)
                .map_err(|e| format!("configure: {e:?}"))?;
            let slot = chain.head.slot();
            chain.head.delete().map_err(err)?;
            cap::free_slot(slot).map_err(err)?;
            // Replacing the CSpace root deletes the chain's last capability.
            thread
                .configure(Cap::from_slot(slots::ROOT_CNODE), own, None, 0)
                .map_err(|e| format!("reconfigure: {e:?}"))?;
            cap::free_slot(thread.slot()).map_err(err)?;
            all_memory_back(scale)?;
            // And so does destroying a thread whose CSpace root is the last one.
            let chain = Chain::build(scale)?;
            let thread: Cap<Tcb> = scale.retype_one(0).map_err(err)?;
            thread
                .configure(chain.head, own, None, 0)
                .map_err(|e| format!("configure again: {e:?}"))?;
            let slot = chain.head.slot();
            chain.head.delete().map_err(err)?;
            cap::free_slot(slot).map_err(err)?;
            thread.delete().map_err(err)?;
            cap::free_slot(thread.slot()).map_err(err)?;
            all_memory_back(scale)
        },
    );

    for (name, revoke_space) in [
        (
            "a_thread_that_destroys_its_own_address_space_stops_without_a_fault",
            false,
        ),
        (
            "a_thread_that_revokes_its_own_address_space_stops_without_a_fault",
            true,
        ),
    ] {
        suite.run(name, || {
            let step = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
            let lab = Lab::new(scale).map_err(step("lab"))?;
            // The thread revokes the block its address space was made from (which
            // destroys the space), or the space's capability (which deletes the copy in
            // the thread); either way it has no address space to return to.
            let target = if revoke_space {
                lab.space().slot()
            } else {
                lab.memory.slot()
            };
            let code: Cap<Frame4K> = scale.retype_one(0).map_err(step("code"))?;
            let view = MappedFrame::new(code, SCRATCH_VADDR + 0x3000, scale)
                .map_err(step("map the code"))?;
            for (index, instruction) in revoker_code(target).into_iter().enumerate() {
                view.write32(index * 4, instruction);
            }
            let code = view.unmap().map_err(step("unmap the code"))?;
            lab.build(code)?;
            let faults: Cap<Endpoint> = scale.retype_one(0).map_err(step("endpoint"))?;
            let thread: Cap<Tcb> = scale.retype_one(0).map_err(step("thread"))?;
            thread
                .configure(
                    Cap::from_slot(slots::ROOT_CNODE),
                    lab.space(),
                    None,
                    faults.slot(),
                )
                .map_err(step("configure"))?;
            thread.set_priority(PRIORITY).map_err(step("priority"))?;
            let registers = UserRegisters {
                pc: CODE_VADDR,
                ..UserRegisters::default()
            };
            thread
                .write_registers(&registers)
                .map_err(step("registers"))?;
            thread.resume().map_err(step("resume"))?;
            let mut state = ThreadState::Alive;
            for _ in 0..1000 {
                state = thread.status().map_err(step("status"))?;
                if state != ThreadState::Alive {
                    break;
                }
                sys::yield_now();
            }
            let fault = faults.nb_recv();
            check!(
                state == ThreadState::Inactive,
                "the thread is {state:?}, not inactive"
            );
            check!(fault.is_err(), "a fault was reported: {fault:?}");
            thread.delete().map_err(step("delete the thread"))?;
            faults.delete().map_err(step("delete the endpoint"))?;
            lab.clear()?;
            code.delete().map_err(step("delete the code"))?;
            all_memory_back(scale)
        });
    }

    suite.finish()
}
