//! Several CPUs under one lock: whose per-CPU state the kernel's fields hold, where a
//! thread runs, and what it takes to change a thread another CPU runs or to move a
//! thread between CPUs (`docs/smp.md`).
//!
//! A thread runs only on its affinity CPU ([`Tcb::affinity`], CPU 0 unless set with
//! `tcb_set_affinity`) and waits in that CPU's run queue. Another CPU's state changes
//! only under the lock; what lives in that CPU's registers (the running thread's user
//! registers, its translation table, the FP/SIMD registers it holds for a thread) only
//! that CPU can touch, so the lock holder asks it ([`crate::smp::request`]).

use super::*;
use crate::smp::{self, MAX_CPUS};

impl Kernel {
    /// Makes the per-CPU fields (`current`, `fp_owner`, `active_space`, `reschedule`)
    /// those of CPU `me`, which now holds the lock: the previous holder's go back to
    /// [`Kernel::cpus`]. Nothing to do while one CPU keeps taking the lock.
    #[inline]
    pub(crate) fn enter_cpu(&mut self, me: usize) {
        if me == self.cpu {
            return;
        }
        let old = &mut self.cpus[self.cpu];
        old.current = self.current;
        old.fp_owner = self.fp_owner;
        old.active_space = self.active_space;
        old.reschedule = self.reschedule;
        old.entry_taken = self.entry_taken;
        let new = self.cpus[me];
        self.current = new.current;
        self.fp_owner = new.fp_owner;
        self.active_space = new.active_space;
        self.reschedule = new.reschedule;
        // Only a holder other than `me` sets it, so it can be set only here, when
        // another CPU held the lock last.
        self.entry_taken = new.entry_taken;
        self.cpus[me].entry_taken = false;
        self.cpu = me;
        // Another CPU may have deleted the address space of this CPU's thread meanwhile
        // (a copy of the capability revoked, not a takeover): what it entered with is not
        // carried out, a system call is issued again if the thread is given a space and
        // resumed, and the scheduler stops it, as on one CPU.
        if let Some(current) = self.current
            && !self.entry_taken
            && !self.objects.tcb(current).has_address_space()
        {
            if smp::entered_with_syscall(me) {
                let context = &mut self.objects.tcb_mut(current).context;
                context.pc = context.pc.wrapping_sub(4);
            }
            self.entry_taken = true;
        }
    }

    /// The other CPU whose current thread `thread` is (it runs it, or returns to it),
    /// if any.
    pub(crate) fn running_elsewhere(&self, thread: ThreadRef) -> Option<usize> {
        (0..MAX_CPUS).find(|&cpu| cpu != self.cpu && self.cpus[cpu].current == Some(thread))
    }

    /// If another CPU runs `thread`, brings it out of user mode (its registers saved in
    /// its context): after this the caller may read the thread's registers as if it were
    /// not running. Returns the CPU.
    ///
    /// With `void`, the caller also takes the thread over, to change it: that CPU no
    /// longer runs it (it reschedules, and whatever it entered the kernel with from the
    /// thread is not carried out there: an interrupt is still taken), a system call the
    /// thread had entered is issued again (`Restart`) or dropped (`Drop`), and a running
    /// thread waits, ready, in its CPU's queue. So a thread is never current on one CPU
    /// while another changes, moves or runs it.
    pub(crate) fn stall(&mut self, thread: ThreadRef, void: Option<VoidEntry>) -> Option<usize> {
        let cpu = self.running_elsewhere(thread)?;
        smp::request(&self.services.gic, cpu, smp::STALL, 0);
        let Some(void) = void else {
            return Some(cpu);
        };
        self.cpus[cpu].reschedule = true;
        if void == VoidEntry::Restart && smp::entered_with_syscall(cpu) {
            // Its pc is past the `svc`: back to it, arguments untouched.
            let context = &mut self.objects.tcb_mut(thread).context;
            context.pc = context.pc.wrapping_sub(4);
        }
        let state = &mut self.cpus[cpu];
        state.current = None;
        state.entry_taken = true;
        let t = self.objects.tcb_mut(thread);
        if t.state == ThreadState::Running {
            t.state = ThreadState::Ready;
            t.queued = true;
            self.enqueue(thread, false);
        }
        Some(cpu)
    }

    /// Moves `thread`'s FP/SIMD state out of whichever CPU's registers hold it, into its
    /// context (before the thread moves to another CPU).
    pub(crate) fn flush_fp(&mut self, thread: ThreadRef) {
        if self.fp_owner == Some(thread) {
            save_fp(&mut self.objects.tcb_mut(thread).context.fp);
            self.fp_owner = None;
            trap_user_fp(true);
            return;
        }
        let holder =
            (0..MAX_CPUS).find(|&cpu| cpu != self.cpu && self.cpus[cpu].fp_owner == Some(thread));
        if let Some(cpu) = holder {
            let target = &raw mut self.objects.tcb_mut(thread).context.fp;
            smp::request(&self.services.gic, cpu, smp::SAVE_FP, target as u64);
            self.cpus[cpu].fp_owner = None;
        }
    }

    /// Takes address space `space` out of every other CPU's translation registers
    /// (it is being destroyed): none can walk its tables afterwards.
    pub(crate) fn drop_space_elsewhere(&mut self, space: u64) {
        for cpu in 0..MAX_CPUS {
            if cpu != self.cpu && self.cpus[cpu].active_space == Some(space) {
                smp::request(&self.services.gic, cpu, smp::EMPTY_TABLE, 0);
                self.cpus[cpu].active_space = None;
            }
        }
    }

    /// After `thread` was destroyed: no other CPU runs it or holds its FP/SIMD state
    /// (the caller stalled the CPU that ran it first).
    pub(crate) fn forget_thread(&mut self, thread: ThreadRef) {
        let me = self.cpu;
        // (This CPU's entry is a stale copy while it holds the lock: its live fields
        // are the caller's business.)
        for (_, state) in self
            .cpus
            .iter_mut()
            .enumerate()
            .filter(|(cpu, _)| *cpu != me)
        {
            if state.current == Some(thread) {
                state.current = None;
                state.entry_taken = true;
            }
            if state.fp_owner == Some(thread) {
                state.fp_owner = None;
            }
        }
    }

    /// Puts `thread` (ready, in no queue) into its CPU's run queue, at the front or the
    /// back; another CPU is interrupted if the thread outranks what it runs (or it
    /// idles). Returns whether the thread's CPU is this one.
    #[inline]
    pub(crate) fn enqueue(&mut self, thread: ThreadRef, front: bool) -> bool {
        let t = self.objects.tcb(thread);
        let (cpu, priority) = (t.affinity as usize, t.priority);
        if front {
            self.queues[cpu].push_front(&mut self.objects, thread, priority);
        } else {
            self.queues[cpu].push_back(&mut self.objects, thread, priority);
        }
        if cpu == self.cpu {
            return true;
        }
        self.tell(cpu, priority);
        false
    }

    /// A thread of `priority` was queued on CPU `cpu`, not this one: that CPU is
    /// interrupted if the thread outranks what it runs (or it idles).
    #[cold]
    #[inline(never)]
    fn tell(&mut self, cpu: usize, priority: u8) {
        let theirs = self.cpus[cpu]
            .current
            .map(|current| self.objects.tcb(current).priority);
        if theirs.is_none_or(|p| p < priority) {
            self.cpus[cpu].reschedule = true;
            smp::poke(&self.services.gic, cpu);
        }
    }

    /// `tcb_set_affinity(tcb, cpu)`: the thread runs on `cpu` from now on. A ready
    /// thread moves to that CPU's queue; a running one (here or elsewhere) moves at its
    /// CPU's next pass through the scheduler; its FP/SIMD state is saved first wherever
    /// it is live.
    pub(crate) fn tcb_set_affinity(
        &mut self,
        cspace: &Capability,
        pointer: u64,
        cpu: u64,
    ) -> SyscallResult {
        let thread = self.lookup_tcb(cspace, pointer, Rights::WRITE)?;
        let cpu = usize::try_from(cpu)
            .ok()
            .filter(|&cpu| smp::is_online(cpu))
            .ok_or(Error::InvalidArgument)?;
        if self.objects.tcb(thread).affinity as usize == cpu {
            return Ok((0, 0));
        }
        // Taken over from the CPU that runs it (a call it entered there is issued again
        // here), its FP/SIMD registers in its context.
        self.stall(thread, Some(VoidEntry::Restart));
        self.flush_fp(thread);
        let t = self.objects.tcb(thread);
        let queued = t.queued && t.state == ThreadState::Ready;
        self.unready(thread);
        self.objects.tcb_mut(thread).affinity = cpu as u8;
        if queued {
            let t = self.objects.tcb_mut(thread);
            t.queued = true;
            self.enqueue(thread, false);
        } else if self.current == Some(thread) {
            // It moves when this CPU's scheduler runs, right after this call.
            self.reschedule = true;
        }
        Ok((0, 0))
    }
}
