//! Stress on every CPU at once: two workers per CPU make random system calls (calls to
//! echo servers on every CPU, signal round trips with a partner on another CPU, retype,
//! copy, identify and delete of capabilities, map, write, read and unmap of a frame,
//! threads spawned on random CPUs and moved while they run, moves of the worker itself),
//! checking every result. The suite then checks that every worker finished within the
//! time bound (no panic, hang or lost wake-up) and that revoking each worker's memory
//! gives every byte back.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use kaal_abi::{Error, ObjectType, rights, slots};
use kaal_test_harness::{Suite, check};
use kaal_user::cap::{self, AddressSpace, Cap, Endpoint, Frame4K, Notification, Untyped};
use kaal_user::ipc::Message;
use kaal_user::sys::{self, ThreadState};
use kaal_user::thread::Builder;
use kaal_user::{BootInfo, println, time};

kaal_user::entry!(main);

/// The root thread's priority: `join` yields, which lets only this priority run.
const PRIORITY: u8 = 128;
/// Workers per CPU.
const WORKERS_PER_CPU: usize = 2;
/// Random operations per worker.
const ROUNDS: u64 = 1500;
/// Each worker's own memory: 1 MiB.
const WORKER_MEMORY_BITS: u8 = 20;
/// Where worker `n` maps its frame.
const MAP_BASE: u64 = 0x7000_0000;
const LABEL_STOP: u64 = 0x57;

fn hook_current_cpu() -> u64 {
    let cpu: u64;
    // SAFETY: a system-call trap; the test kernel's hook 8 writes only x0.
    unsafe {
        asm!(
            "svc #0x7e57",
            inout("x0") 8u64 => cpu,
            in("x8") u64::MAX,
            clobber_abi("C"),
            options(nostack),
        );
    }
    cpu
}

/// xorshift64*: a worker's own reproducible sequence.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// What the workers share, set before they start.
static CPUS: AtomicU64 = AtomicU64::new(1);
/// The echo server endpoint of each CPU.
static ECHO: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
/// Each worker's memory, ping and pong notifications.
static MEMORY: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static PING: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static PONG: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
/// Each worker's own TCB capability (published once spawned; a worker moves itself).
static WORKER_TCB: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
/// Per worker: 0 while running, then 1 + its result (0: all checks held).
static DONE: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
/// Operations done, by kind, over all workers.
static DONE_BY_KIND: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Answers calls with the first word plus one and its CPU, until `LABEL_STOP`.
fn echo_server(cpu: usize) -> u64 {
    let endpoint = Cap::<Endpoint>::from_slot(ECHO[cpu].load(Ordering::Acquire));
    let Ok(mut received) = endpoint.recv() else {
        return 1;
    };
    loop {
        if received.message.info.label == LABEL_STOP {
            let _ = kaal_user::ipc::reply(&Message::new(0, [0; 4]));
            return 0;
        }
        let reply = Message::new(0, [received.message.words[0] + 1, hook_current_cpu(), 0, 0]);
        received = match endpoint.reply_recv(&reply) {
            Ok(received) => received,
            Err(_) => return 2,
        };
    }
}

/// Answers each `PING[worker]` with `PONG[worker]` until pinged with bit 2.
fn ponger(worker: usize) -> u64 {
    let ping = Cap::<Notification>::from_slot(PING[worker].load(Ordering::Acquire));
    let pong = Cap::<Notification>::from_slot(PONG[worker].load(Ordering::Acquire));
    loop {
        match ping.wait() {
            Ok(word) if word & 2 != 0 => return 0,
            Ok(_) => {
                if pong.signal().is_err() {
                    return 2;
                }
            }
            Err(_) => return 1,
        }
    }
}

fn tripler(n: usize) -> u64 {
    sys::yield_now();
    n as u64 * 3
}

/// One worker: `ROUNDS` random operations; records 1 + the outcome in `DONE`.
fn worker(index: usize) -> u64 {
    let outcome = match work(index) {
        Ok(()) => 0,
        Err(reason) => {
            println!("worker {index}: {reason}");
            1
        }
    };
    DONE[index].store(1 + outcome, Ordering::Release);
    outcome
}

fn work(index: usize) -> Result<(), String> {
    let cpus = CPUS.load(Ordering::Acquire);
    let memory = Cap::<Untyped>::from_slot(MEMORY[index].load(Ordering::Acquire));
    let ping = Cap::<Notification>::from_slot(PING[index].load(Ordering::Acquire));
    let pong = Cap::<Notification>::from_slot(PONG[index].load(Ordering::Acquire));
    let own = Cap::<AddressSpace>::from_slot(slots::ROOT_ADDRESS_SPACE);
    let deadline = time::now_ticks() + time::ticks_per_second() * 10;
    while WORKER_TCB[index].load(Ordering::Acquire) == 0 {
        if time::now_ticks() > deadline {
            return Err(String::from("its TCB was never published"));
        }
        sys::yield_now();
    }
    let tcb = Cap::<kaal_user::cap::Tcb>::from_slot(WORKER_TCB[index].load(Ordering::Acquire));
    let frame: Cap<Frame4K> = memory.retype_one(0).map_err(|e| format!("frame: {e:?}"))?;
    let vaddr = MAP_BASE + index as u64 * 0x20_0000;
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) * 0x1000_0001));
    let mut mapped_once = false;
    for round in 0..ROUNDS {
        let kind = random.below(6) as usize;
        let at = |what: &str, e: Error| format!("round {round}, {what}: {e:?}");
        match kind {
            0 => {
                let cpu = random.below(cpus) as usize;
                let endpoint = Cap::<Endpoint>::from_slot(ECHO[cpu].load(Ordering::Acquire));
                let word = random.next() >> 1;
                let reply = endpoint
                    .call(&Message::new(1, [word, 0, 0, 0]))
                    .map_err(|e| at("call", e))?;
                check!(
                    reply.words[0] == word + 1 && reply.words[1] == cpu as u64,
                    "round {round}: echo from CPU {cpu} said {:#x} from CPU {}",
                    reply.words[0],
                    reply.words[1]
                );
            }
            1 => {
                ping.signal().map_err(|e| at("ping", e))?;
                let word = pong.wait().map_err(|e| at("pong", e))?;
                check!(word == 1, "round {round}: pong word {word:#x}");
            }
            2 => {
                let endpoint: Cap<Endpoint> = memory.retype_one(0).map_err(|e| at("retype", e))?;
                let slot = cap::allocate_slot().map_err(|e| at("slot", e))?;
                let copy = endpoint
                    .copy(slot, rights::READ)
                    .map_err(|e| at("copy", e))?;
                let (ty, bits) = copy.identify().map_err(|e| at("identify", e))?;
                check!(
                    ty == ObjectType::Endpoint && bits == rights::READ,
                    "round {round}: the copy is {ty:?} with rights {bits:#x}"
                );
                copy.delete().map_err(|e| at("delete the copy", e))?;
                cap::free_slot(slot).map_err(|e| at("free", e))?;
                let original = endpoint.slot();
                endpoint.delete().map_err(|e| at("delete", e))?;
                check!(
                    cap::identify(original) == Err(Error::InvalidCapability),
                    "round {round}: a deleted capability is still there"
                );
                cap::free_slot(original).map_err(|e| at("free", e))?;
            }
            3 => {
                if mapped_once {
                    frame
                        .map(own, vaddr, rights::READ | rights::WRITE, 0)
                        .map_err(|e| at("map", e))?;
                } else {
                    cap::map_with_tables(
                        frame,
                        own,
                        vaddr,
                        rights::READ | rights::WRITE,
                        0,
                        memory,
                    )
                    .map_err(|e| at("map", e))?;
                    mapped_once = true;
                }
                let value = random.next();
                let pointer = vaddr as *mut u64;
                // SAFETY: the frame is mapped writable at `vaddr` for this worker alone
                // (its own address range), and unmapped only below, after these accesses.
                let read = unsafe {
                    pointer.write_volatile(value);
                    pointer.read_volatile()
                };
                check!(
                    read == value,
                    "round {round}: wrote {value:#x}, read {read:#x}"
                );
                frame.unmap().map_err(|e| at("unmap", e))?;
            }
            4 => {
                if round % 8 == 0 {
                    let cpu = random.below(cpus) as usize;
                    let n = random.below(1000) as usize;
                    let child = Builder::new(PRIORITY)
                        .cpu(cpu)
                        .spawn(tripler, n)
                        .map_err(|e| at("spawn", e))?;
                    let _ = child.tcb().set_affinity(random.below(cpus) as usize);
                    let state = child.join();
                    check!(
                        state == ThreadState::Exited(n as u64 * 3),
                        "round {round}: child ended {state:?}"
                    );
                }
            }
            _ => {
                let target = random.below(cpus);
                tcb.set_affinity(target as usize)
                    .map_err(|e| at("move", e))?;
                let here = hook_current_cpu();
                check!(
                    here == target,
                    "round {round}: moved to CPU {target}, runs on {here}"
                );
            }
        }
        DONE_BY_KIND[kind].fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn main(boot: &BootInfo<'_>) -> i32 {
    let mut suite = Suite::new("stress");
    let cpus = (boot.system().cpus_online as usize).clamp(1, 8);
    CPUS.store(cpus as u64, Ordering::Release);
    let workers = cpus * WORKERS_PER_CPU;
    println!("{cpus} CPU(s), {workers} workers, {ROUNDS} random operations each");
    let untyped = cap::largest_ram_untyped(boot).expect("RAM untyped");

    suite.run("random_operations_on_every_cpu_at_once", || {
        let err = |what: &'static str| move |e: Error| format!("{what}: {e:?}");
        let mut servers = Vec::new();
        for (cpu, slot) in ECHO.iter().enumerate().take(cpus) {
            let endpoint: Cap<Endpoint> = untyped.retype_one(0).map_err(err("endpoint"))?;
            slot.store(endpoint.slot(), Ordering::Release);
            servers.push(
                Builder::new(PRIORITY)
                    .cpu(cpu)
                    .spawn(echo_server, cpu)
                    .map_err(err("echo server"))?,
            );
        }
        let mut threads = Vec::new();
        let mut pongers = Vec::new();
        for index in 0..workers {
            let memory: Cap<Untyped> = untyped
                .retype_one(WORKER_MEMORY_BITS)
                .map_err(err("worker memory"))?;
            MEMORY[index].store(memory.slot(), Ordering::Release);
            let ping: Cap<Notification> = untyped.retype_one(0).map_err(err("ping"))?;
            let pong: Cap<Notification> = untyped.retype_one(0).map_err(err("pong"))?;
            PING[index].store(ping.slot(), Ordering::Release);
            PONG[index].store(pong.slot(), Ordering::Release);
            DONE[index].store(0, Ordering::Release);
            WORKER_TCB[index].store(0, Ordering::Release);
            let cpu = index % cpus;
            pongers.push(
                Builder::new(PRIORITY)
                    .cpu((cpu + 1) % cpus)
                    .spawn(ponger, index)
                    .map_err(err("ponger"))?,
            );
            let thread = Builder::new(PRIORITY)
                .cpu(cpu)
                .spawn(worker, index)
                .map_err(err("worker"))?;
            WORKER_TCB[index].store(thread.tcb().slot(), Ordering::Release);
            threads.push(thread);
        }
        // Bounded: a hang or a lost wake-up shows as a worker that never finishes.
        let deadline = time::now_ticks() + time::ticks_per_second() * 120;
        while !(0..workers).all(|i| DONE[i].load(Ordering::Acquire) != 0) {
            if time::now_ticks() > deadline {
                let stuck: Vec<usize> = (0..workers)
                    .filter(|&i| DONE[i].load(Ordering::Acquire) == 0)
                    .collect();
                return Err(format!("workers {stuck:?} did not finish within 120 s"));
            }
            sys::yield_now();
        }
        for (index, thread) in threads.iter().enumerate() {
            check!(
                thread.join() == ThreadState::Exited(0),
                "worker {index} ended {:?}",
                thread.state()
            );
        }
        for (index, ponger) in pongers.iter().enumerate() {
            let stop_slot = cap::allocate_slot().map_err(err("slot"))?;
            Cap::<Notification>::from_slot(PING[index].load(Ordering::Acquire))
                .mint(stop_slot, rights::WRITE, 2)
                .and_then(|stop| stop.signal())
                .map_err(err("stop a ponger"))?;
            check!(
                ponger.join() == ThreadState::Exited(0),
                "ponger {index}: {:?}",
                ponger.state()
            );
        }
        for (cpu, server) in servers.iter().enumerate() {
            Cap::<Endpoint>::from_slot(ECHO[cpu].load(Ordering::Acquire))
                .call(&Message::new(LABEL_STOP, [0; 4]))
                .map_err(err("stop a server"))?;
            check!(
                server.join() == ThreadState::Exited(0),
                "server {cpu}: {:?}",
                server.state()
            );
        }
        let kinds: Vec<u64> = DONE_BY_KIND
            .iter()
            .map(|k| k.load(Ordering::Relaxed))
            .collect();
        println!("operations by kind (call, signal, capability, mapping, thread, move): {kinds:?}");
        check!(
            kinds.iter().sum::<u64>() == workers as u64 * ROUNDS,
            "{} operations counted, {} made",
            kinds.iter().sum::<u64>(),
            workers as u64 * ROUNDS
        );
        // Every byte of each worker's memory comes back: revoke it, retype it whole.
        for (index, slot) in MEMORY.iter().enumerate().take(workers) {
            let memory = Cap::<Untyped>::from_slot(slot.load(Ordering::Acquire));
            memory.revoke().map_err(err("revoke"))?;
            let halves = cap::allocate_slots(2).map_err(err("slots"))?;
            memory
                .retype::<Untyped>(WORKER_MEMORY_BITS - 1, halves, 2)
                .map_err(|e| format!("worker {index}'s memory does not retype whole: {e:?}"))?;
            memory.revoke().map_err(err("revoke the halves"))?;
            for slot in [halves, halves + 1] {
                cap::free_slot(slot).map_err(err("free"))?;
            }
        }
        Ok(())
    });
    suite.finish()
}
