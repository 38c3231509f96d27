//! Thread objects: creation by retype, configuration and register access.

use super::*;

impl Kernel {
    /// Writes a fresh TCB at `thread` and returns its number.
    ///
    /// # Safety
    /// `thread` must be memory for a TCB that nothing else uses.
    pub unsafe fn initialise_tcb(&mut self, thread: ThreadRef) -> u64 {
        let number = self.next_thread_number;
        self.next_thread_number += 1;
        // SAFETY: per the caller.
        unsafe { (phys_to_virt(thread) as *mut Tcb).write(Tcb::new(number)) };
        number
    }

    /// `untyped_retype`, restarted while it zeroes memory when an interrupt is pending
    /// ([`CapabilityCalls::retype`]).
    pub(crate) fn retype(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let ty = ObjectType::from_raw(args[1]);
        let count = args[4];
        if ty == Some(ObjectType::AddressSpace) && count > self.asids.free() as u64 {
            return Err(Error::OutOfResources);
        }
        let Some(address) = self
            .caps(cspace)
            .retype(args[0], args[1], args[2], args[3], args[4])?
        else {
            // Preempted with its progress recorded: the pending interrupt is taken on the
            // way out, and the call is issued again when the thread next runs.
            self.restart_syscall();
            return Ok((0, 0));
        };
        match ty {
            Some(ObjectType::Tcb) => {
                for index in 0..count {
                    let thread = address + (index << crate::capability::TCB_SIZE_BITS);
                    let number = self.next_thread_number;
                    self.next_thread_number += 1;
                    // SAFETY: retype just carved this TCB from untyped RAM, zeroed.
                    unsafe { Tcb::initialise_zeroed(phys_to_virt(thread) as *mut Tcb, number) };
                }
            }
            Some(ObjectType::AddressSpace) => {
                for index in 0..count {
                    let root = address + index * PAGE_SIZE;
                    let asid = self.asids.allocate(root).expect("checked above");
                    let slot = crate::objects::resolve(cspace, args[3] + index)
                        .expect("retype checked it");
                    // SAFETY: the slot was just filled by retype.
                    self.objects.slot_cap_mut(slot).extra = u64::from(asid);
                }
            }
            _ => {}
        }
        Ok((address, 0))
    }

    pub(crate) fn tcb_configure(&mut self, cspace: &Capability, args: [u64; 6]) -> SyscallResult {
        let [
            tcb_pointer,
            cnode,
            vspace,
            ipc_frame,
            ipc_vaddr,
            fault_endpoint,
        ] = args;
        let thread = self.lookup_tcb(cspace, tcb_pointer, Rights::WRITE)?;
        let slot = |pointer| crate::objects::resolve(cspace, pointer);
        let sources = [
            (CSPACE_SLOT, slot(cnode)?, ObjectType::CNode),
            (VSPACE_SLOT, slot(vspace)?, ObjectType::AddressSpace),
        ];
        for (index, source, ty) in sources {
            // A CSpace root allows every operation on its slots, an address space lets
            // the thread change its mappings' contents: both need the write right.
            self.lookup_with(cspace, u64::from(source.index), ty, Rights::WRITE)?;
            let _ = index;
        }
        let ipc = if ipc_frame != 0 {
            if ipc_vaddr % PAGE_SIZE != 0 || ipc_vaddr >= kaal_abi::layout::USER_END {
                return Err(Error::Alignment);
            }
            let frame = self.lookup(cspace, ipc_frame, ObjectType::Frame4K)?;
            // The kernel writes received messages into it, through the linear map.
            if !frame.rights.contains(Rights::READ_WRITE) {
                return Err(Error::MissingRights);
            }
            if !self.is_ram(frame.object) {
                return Err(Error::IllegalOperation);
            }
            Some(slot(ipc_frame)?)
        } else {
            None
        };
        // A thread another CPU runs is taken over first (the arguments checked: a call
        // that fails changes nothing); a call it made meanwhile is issued again, under
        // its new configuration.
        self.stall(thread, Some(VoidEntry::Restart));
        // Replace the thread's slots: delete what was there (tearing down whatever that
        // destroys before the next), copy the new capabilities.
        let mut cnode_destroyed = false;
        for index in [CSPACE_SLOT, VSPACE_SLOT, IPC_BUFFER_SLOT] {
            if let Ok(outcome) = CSpace::new(&mut self.objects).delete(tcb_slot(thread, index)) {
                cnode_destroyed |=
                    outcome.last_reference && outcome.cap.object_type == ObjectType::CNode;
                self.release(outcome);
            }
        }
        if cnode_destroyed || self.teardown_pending() {
            // Destroying the old CSpace root destroys what it held: maybe the thread
            // itself, the caller, or the sources' CNode; and the teardown may have
            // stopped part way for an interrupt. Nothing checked above still holds, so
            // the call is issued again and checked afresh (after the teardown ends);
            // the old slots are empty now, so the second issue deletes nothing. (An
            // address space or frame destroyed here destroys nothing else.)
            if self.current.is_some() {
                self.restart_syscall();
            }
            return Ok((0, 0));
        }
        let mut space = CSpace::new(&mut self.objects);
        for (index, source, _) in sources {
            space
                .derive(source, tcb_slot(thread, index), Rights::ALL, None)
                .map_err(abi_error)?;
        }
        if let Some(source) = ipc {
            space
                .derive(source, tcb_slot(thread, IPC_BUFFER_SLOT), Rights::ALL, None)
                .map_err(abi_error)?;
        }
        let t = self.objects.tcb_mut(thread);
        t.ipc_buffer_vaddr = if ipc.is_some() { ipc_vaddr } else { 0 };
        t.fault_endpoint = fault_endpoint;
        Ok((0, 0))
    }

    pub(crate) fn tcb_read_registers(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        buffer: u64,
    ) -> SyscallResult {
        let thread = self.lookup_tcb(cspace, pointer, Rights::READ)?;
        // Registers of a thread another CPU runs are read once it has saved them.
        self.stall(thread, None);
        let t = self.objects.tcb_mut(thread);
        let registers = UserRegisters {
            x: t.context.x,
            sp: t.context.sp,
            pc: t.context.pc,
        };
        self.copy_to_user(buffer, registers.as_bytes())?;
        Ok((0, 0))
    }

    pub(crate) fn tcb_write_registers(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        buffer: u64,
    ) -> SyscallResult {
        let thread = self.lookup_tcb(cspace, pointer, Rights::WRITE)?;
        if Some(thread) == self.current {
            return Err(Error::IllegalOperation);
        }
        let mut registers = UserRegisters::default();
        self.copy_from_user(buffer, registers.as_mut_bytes())?;
        // A thread another CPU runs is brought into the kernel first; a call it made
        // meanwhile is dropped (its pc is the new one).
        self.stall(thread, Some(VoidEntry::Drop));
        let t = self.objects.tcb_mut(thread);
        t.context.x = registers.x;
        t.context.sp = registers.sp;
        t.context.pc = registers.pc;
        // User space chooses registers, never the privilege level or interrupt masks.
        t.context.pstate = PSTATE_EL0;
        Ok((0, 0))
    }
}
