//! Head-to-head benchmark of kaal-ipc against other SPSC queues.
//!
//! Run with `cargo bench -p kaal-ipc --features std`. Each case runs
//! `KAAL_BENCH_RUNS` times (default 7), interleaved with the other cases of
//! its section, with the producer pinned to CPU 0 and the consumer to CPU 1;
//! each thread times itself and the longer time counts. The median, best and
//! worst are printed, with the median as a ratio to a reference row (for
//! throughput, higher is better; for round trips, lower is better), and the
//! run ends with a table of kaal-ipc's goals, each a ratio of two medians of
//! the same run.
//!
//! * `KAAL_BENCH_ONLY=single,batch,pingpong,channel,blocking` selects
//!   sections (the channel goal also needs `single`);
//! * `KAAL_BENCH_CASE=kaal,rtrb` keeps only the cases whose name contains one
//!   of the given strings;
//! * `KAAL_BENCH_VERBOSE=1` prints every sample.
//!
//! Spinning single-item throughput on two cores is bistable: a consumer that
//! is faster than its producer catches up and then reads every cache line
//! while the producer is still writing it, and throughput drops several-fold
//! (rtrb 0.4.1 falls from about 390 to about 45 M items/s here when its
//! producer loop is made three instructions longer). Which side is faster
//! depends on a few instructions of each loop, so a queue's single-item
//! result says as much about that balance as about the queue; the spread
//! between best and worst shows when a case flips.

use std::hint::black_box;
use std::sync::mpsc::{TryRecvError, sync_channel};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use kaal_ipc::{Channel, Futex, PushError, SharedRing};

const CAP: usize = 1024;
const BATCH: usize = 256;

fn pin(cpu: usize) {
    // SAFETY: `set` is a plain bit set on the stack, passed with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `a` pinned to CPU 0 and `b` pinned to CPU 1 from a common start and
/// returns the longer of the two. Each thread reads the clock on its own
/// pinned CPU (the VM's TSC is not reliably synchronised across vCPUs).
fn pair(a: impl FnOnce() + Send, b: impl FnOnce() + Send) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let ta = s.spawn(|| {
            pin(0);
            barrier.wait();
            let start = Instant::now();
            a();
            start.elapsed()
        });
        let tb = s.spawn(|| {
            pin(1);
            barrier.wait();
            let start = Instant::now();
            b();
            start.elapsed()
        });
        ta.join().unwrap().max(tb.join().unwrap())
    })
}

fn expect_sum(sum: u64, n: u64) {
    assert_eq!(sum, n * (n - 1) / 2, "consumer saw wrong items");
}

// ---------------------------------------------------------------- single item

fn single_kaal(n: u64) -> Duration {
    let mut ring = Box::new(SharedRing::<u64, CAP>::new());
    let (mut p, mut c) = ring.split();
    pair(
        move || {
            for i in 0..n {
                let mut v = i;
                while let Err(PushError::Full(back)) = p.try_push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < n {
                if let Ok(v) = c.try_pop() {
                    sum += v;
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            expect_sum(sum, n);
        },
    )
}

fn single_rtrb(n: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAP);
    pair(
        move || {
            for i in 0..n {
                while p.push(i).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < n {
                if let Ok(v) = c.pop() {
                    sum += v;
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            expect_sum(sum, n);
        },
    )
}

fn single_ringbuf(n: u64) -> Duration {
    use ringbuf::traits::{Consumer, Producer, Split};
    let (mut p, mut c) = ringbuf::HeapRb::<u64>::new(CAP).split();
    pair(
        move || {
            for i in 0..n {
                while p.try_push(i).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < n {
                if let Some(v) = c.try_pop() {
                    sum += v;
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            expect_sum(sum, n);
        },
    )
}

fn single_crossbeam(n: u64) -> Duration {
    let q = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAP));
    let q2 = q.clone();
    pair(
        move || {
            for i in 0..n {
                while q.push(i).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < n {
                if let Some(v) = q2.pop() {
                    sum += v;
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            expect_sum(sum, n);
        },
    )
}

fn single_heapless(n: u64) -> Duration {
    let mut q = Box::new(heapless::spsc::Queue::<u64, CAP>::new());
    let (mut p, mut c) = q.split();
    pair(
        move || {
            for i in 0..n {
                while p.enqueue(i).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < n {
                if let Some(v) = c.dequeue() {
                    sum += v;
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            expect_sum(sum, n);
        },
    )
}

fn single_std(n: u64) -> Duration {
    let (tx, rx) = sync_channel::<u64>(CAP);
    pair(
        move || {
            for i in 0..n {
                while tx.try_send(i).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < n {
                match rx.try_recv() {
                    Ok(v) => {
                        sum += v;
                        got += 1;
                    }
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
            expect_sum(sum, n);
        },
    )
}

// ---------------------------------------------------------------- batches

fn fill(buf: &mut [u64; BATCH], next: &mut u64, n: u64) -> usize {
    let k = ((n - *next) as usize).min(BATCH);
    for (j, slot) in buf[..k].iter_mut().enumerate() {
        *slot = *next + j as u64;
    }
    k
}

/// The producer side of every batch run: `n` items in batches of `BATCH` through
/// `push`, which copies as many of the items it is given as fit and says how many;
/// spinning while the ring is full.
fn push_batches(n: u64, mut push: impl FnMut(&[u64]) -> usize) {
    let mut buf = [0u64; BATCH];
    let mut next = 0;
    while next < n {
        let k = fill(&mut buf, &mut next, n);
        let mut off = 0;
        while off < k {
            let w = push(&buf[off..k]);
            if w == 0 {
                std::hint::spin_loop();
            }
            off += w;
        }
        next += k as u64;
    }
}

/// kaal-ipc's batch API: `push_slice` and `pop_slice`.
fn batch_kaal(n: u64) -> Duration {
    let mut ring = SharedRing::<u64, CAP>::new_boxed();
    let (mut p, mut c) = ring.split();
    pair(
        move || push_batches(n, |items| p.push_slice(items).unwrap()),
        move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            let mut out = [0u64; BATCH];
            while got < n {
                let k = c.pop_slice(&mut out).unwrap();
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                sum += out[..k].iter().sum::<u64>();
                got += k as u64;
            }
            expect_sum(sum, n);
        },
    )
}

/// kaal-ipc's `push_slice` with the consumer reading in place
/// (`read_chunk`), for reference: no copy out of the ring.
fn batch_kaal_in_place(n: u64) -> Duration {
    let mut ring = SharedRing::<u64, CAP>::new_boxed();
    let (mut p, mut c) = ring.split();
    pair(
        move || push_batches(n, |items| p.push_slice(items).unwrap()),
        move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < n {
                let chunk = c.read_chunk(BATCH).unwrap();
                let k = chunk.len();
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let (a, b) = chunk.as_slices();
                sum += a.iter().sum::<u64>() + b.iter().sum::<u64>();
                chunk.release_all();
                got += k as u64;
            }
            expect_sum(sum, n);
        },
    )
}

/// rtrb's slice API: `push_partial_slice` and `pop_partial_slice`.
fn batch_rtrb(n: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAP);
    pair(
        move || push_batches(n, |items| p.push_partial_slice(items).0.len()),
        move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            let mut out = [0u64; BATCH];
            while got < n {
                let (popped, _) = c.pop_partial_slice(&mut out);
                let k = popped.len();
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                sum += popped.iter().sum::<u64>();
                got += k as u64;
            }
            expect_sum(sum, n);
        },
    )
}

/// rtrb's chunk API, for reference: `write_chunk_uninit().fill_from_iter`
/// and `read_chunk` read in place.
fn batch_rtrb_chunks(n: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAP);
    pair(
        move || {
            let mut buf = [0u64; BATCH];
            let mut next = 0;
            while next < n {
                let k = fill(&mut buf, &mut next, n);
                let mut off = 0;
                while off < k {
                    let w = p.slots().min(k - off);
                    if w == 0 {
                        std::hint::spin_loop();
                        continue;
                    }
                    let chunk = p.write_chunk_uninit(w).unwrap();
                    off += chunk.fill_from_iter(buf[off..k].iter().copied());
                }
                next += k as u64;
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < n {
                let k = c.slots().min(BATCH);
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let chunk = c.read_chunk(k).unwrap();
                let (a, b) = chunk.as_slices();
                sum += a.iter().sum::<u64>() + b.iter().sum::<u64>();
                got += k as u64;
                chunk.commit_all();
            }
            expect_sum(sum, n);
        },
    )
}

fn batch_ringbuf(n: u64) -> Duration {
    use ringbuf::traits::{Consumer, Producer, Split};
    let (mut p, mut c) = ringbuf::HeapRb::<u64>::new(CAP).split();
    pair(
        move || push_batches(n, |items| p.push_slice(items)),
        move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            let mut out = [0u64; BATCH];
            while got < n {
                let k = c.pop_slice(&mut out);
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                sum += out[..k].iter().sum::<u64>();
                got += k as u64;
            }
            expect_sum(sum, n);
        },
    )
}

// ---------------------------------------------------------------- ping-pong

fn pingpong_kaal(rounds: u64) -> Duration {
    let mut ab = Box::new(SharedRing::<u64, CAP>::new());
    let mut ba = Box::new(SharedRing::<u64, CAP>::new());
    let (mut p1, mut c1) = ab.split();
    let (mut p2, mut c2) = ba.split();
    pair(
        move || {
            for i in 0..rounds {
                p1.try_push(i).unwrap();
                loop {
                    if let Ok(v) = c2.try_pop() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..rounds {
                let v = loop {
                    if let Ok(v) = c1.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                p2.try_push(v).unwrap();
            }
        },
    )
}

fn pingpong_rtrb(rounds: u64) -> Duration {
    let (mut p1, mut c1) = rtrb::RingBuffer::<u64>::new(CAP);
    let (mut p2, mut c2) = rtrb::RingBuffer::<u64>::new(CAP);
    pair(
        move || {
            for i in 0..rounds {
                p1.push(i).unwrap();
                loop {
                    if let Ok(v) = c2.pop() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..rounds {
                let v = loop {
                    if let Ok(v) = c1.pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                p2.push(v).unwrap();
            }
        },
    )
}

fn pingpong_ringbuf(rounds: u64) -> Duration {
    use ringbuf::traits::{Consumer, Producer, Split};
    let (mut p1, mut c1) = ringbuf::HeapRb::<u64>::new(CAP).split();
    let (mut p2, mut c2) = ringbuf::HeapRb::<u64>::new(CAP).split();
    pair(
        move || {
            for i in 0..rounds {
                p1.try_push(i).unwrap();
                loop {
                    if let Some(v) = c2.try_pop() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..rounds {
                let v = loop {
                    if let Some(v) = c1.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                p2.try_push(v).unwrap();
            }
        },
    )
}

fn pingpong_crossbeam(rounds: u64) -> Duration {
    let ab = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAP));
    let ba = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAP));
    let (ab2, ba2) = (ab.clone(), ba.clone());
    pair(
        move || {
            for i in 0..rounds {
                ab.push(i).unwrap();
                loop {
                    if let Some(v) = ba.pop() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..rounds {
                let v = loop {
                    if let Some(v) = ab2.pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                ba2.push(v).unwrap();
            }
        },
    )
}

fn pingpong_heapless(rounds: u64) -> Duration {
    let mut ab = Box::new(heapless::spsc::Queue::<u64, CAP>::new());
    let mut ba = Box::new(heapless::spsc::Queue::<u64, CAP>::new());
    let (mut p1, mut c1) = ab.split();
    let (mut p2, mut c2) = ba.split();
    pair(
        move || {
            for i in 0..rounds {
                p1.enqueue(i).unwrap();
                loop {
                    if let Some(v) = c2.dequeue() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..rounds {
                let v = loop {
                    if let Some(v) = c1.dequeue() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                p2.enqueue(v).unwrap();
            }
        },
    )
}

fn pingpong_std(rounds: u64) -> Duration {
    let (tx1, rx1) = sync_channel::<u64>(CAP);
    let (tx2, rx2) = sync_channel::<u64>(CAP);
    pair(
        move || {
            for i in 0..rounds {
                tx1.try_send(i).unwrap();
                loop {
                    if let Ok(v) = rx2.try_recv() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..rounds {
                let v = loop {
                    if let Ok(v) = rx1.try_recv() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                tx2.try_send(v).unwrap();
            }
        },
    )
}

// ---------------------------------------------------------------- channels

/// Items per second through kaal-ipc's blocking `Channel` (futex wake-ups,
/// default spin limit): `send`/`recv` for every item.
fn channel_kaal(n: u64) -> Duration {
    let (mut tx, mut rx) = Channel::<u64, CAP, Futex>::pair();
    pair(
        move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        },
        move || {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += rx.recv().unwrap();
            }
            expect_sum(sum, n);
        },
    )
}

fn channel_crossbeam(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAP);
    pair(
        move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        },
        move || {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += rx.recv().unwrap();
            }
            expect_sum(sum, n);
        },
    )
}

fn channel_std(n: u64) -> Duration {
    let (tx, rx) = sync_channel::<u64>(CAP);
    pair(
        move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        },
        move || {
            let mut sum = 0u64;
            for _ in 0..n {
                sum += rx.recv().unwrap();
            }
            expect_sum(sum, n);
        },
    )
}

// ---------------------------------------------------------------- blocking

fn blocking_kaal(rounds: u64, spin: u32) -> Duration {
    let (mut tx1, mut rx1) = Channel::<u64, CAP, Futex>::pair();
    let (mut tx2, mut rx2) = Channel::<u64, CAP, Futex>::pair();
    for s in [
        &mut *tx1 as &mut dyn SetSpin,
        &mut *rx1,
        &mut *tx2,
        &mut *rx2,
    ] {
        s.set(spin);
    }
    pair(
        move || {
            for i in 0..rounds {
                tx1.send(i).unwrap();
                assert_eq!(rx2.recv().unwrap(), i);
            }
        },
        move || {
            for _ in 0..rounds {
                let v = rx1.recv().unwrap();
                tx2.send(v).unwrap();
            }
        },
    )
}

trait SetSpin {
    fn set(&mut self, spin: u32);
}
impl<R: kaal_ipc::RingHandle<u64, CAP>> SetSpin for kaal_ipc::Producer<u64, CAP, R, Futex> {
    fn set(&mut self, spin: u32) {
        self.set_spin_limit(spin);
    }
}
impl<R: kaal_ipc::RingHandle<u64, CAP>> SetSpin for kaal_ipc::Consumer<u64, CAP, R, Futex> {
    fn set(&mut self, spin: u32) {
        self.set_spin_limit(spin);
    }
}

fn blocking_crossbeam(rounds: u64) -> Duration {
    let (tx1, rx1) = crossbeam_channel::bounded::<u64>(1);
    let (tx2, rx2) = crossbeam_channel::bounded::<u64>(1);
    pair(
        move || {
            for i in 0..rounds {
                tx1.send(i).unwrap();
                assert_eq!(rx2.recv().unwrap(), i);
            }
        },
        move || {
            for _ in 0..rounds {
                let v = rx1.recv().unwrap();
                tx2.send(v).unwrap();
            }
        },
    )
}

fn blocking_std(rounds: u64) -> Duration {
    let (tx1, rx1) = sync_channel::<u64>(1);
    let (tx2, rx2) = sync_channel::<u64>(1);
    pair(
        move || {
            for i in 0..rounds {
                tx1.send(i).unwrap();
                assert_eq!(rx2.recv().unwrap(), i);
            }
        },
        move || {
            for _ in 0..rounds {
                let v = rx1.recv().unwrap();
                tx2.send(v).unwrap();
            }
        },
    )
}

// ---------------------------------------------------------------- driver

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

type Case<'a> = (&'a str, Box<dyn FnMut() -> Duration + 'a>);

/// Runs every case once to warm up, then `runs` rounds in which each case
/// runs once, interleaved, so drifting load on the shared machine affects
/// all cases alike. `per` converts a run's duration into the reported unit.
fn measure(
    runs: usize,
    mut cases: Vec<Case<'_>>,
    per: impl Fn(Duration) -> f64,
) -> Vec<(String, Stats)> {
    // KAAL_BENCH_CASE=a,b keeps only the cases whose name contains a or b.
    let keep = std::env::var("KAAL_BENCH_CASE").unwrap_or_default();
    cases.retain(|(name, _)| keep.is_empty() || keep.split(',').any(|k| name.contains(k)));
    let verbose = std::env::var_os("KAAL_BENCH_VERBOSE").is_some();
    for (_, f) in cases.iter_mut() {
        black_box(f());
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            samples[i].push(per(f()));
        }
    }
    if verbose {
        for ((name, _), v) in cases.iter().zip(&samples) {
            let v: Vec<String> = v.iter().map(|x| format!("{x:.1}")).collect();
            println!("  {name}: {}", v.join(" "));
        }
    }
    cases
        .iter()
        .zip(samples)
        .map(|((name, _), mut v)| {
            v.sort_by(f64::total_cmp);
            let stats = Stats {
                median: v[v.len() / 2],
                min: v[0],
                max: v[v.len() - 1],
            };
            (name.to_string(), stats)
        })
        .collect()
}

/// Prints one section's table; the ratio column is to `base` (a row name).
fn report(title: &str, unit: &str, higher_is_better: bool, base: &str, rows: &[(String, Stats)]) {
    let better = if higher_is_better { "higher" } else { "lower" };
    println!("\n## {title} ({unit}; {better} is better)");
    println!(
        "{:<40} {:>10} {:>10} {:>10}   {:>14}",
        "",
        "median",
        "best",
        "worst",
        format!("median/{}", base.split(' ').next().unwrap_or(base))
    );
    // Best is the maximum for throughput and the minimum for latency.
    let best = |s: &Stats| if higher_is_better { s.max } else { s.min };
    let worst = |s: &Stats| if higher_is_better { s.min } else { s.max };
    let base = median(rows, base);
    for (name, s) in rows {
        let ratio = base.map_or(String::from("-"), |m| format!("{:.2}x", s.median / m));
        println!(
            "{name:<40} {:>10.2} {:>10.2} {:>10.2}   {ratio:>14}",
            s.median,
            best(s),
            worst(s)
        );
    }
}

fn median(rows: &[(String, Stats)], name: &str) -> Option<f64> {
    rows.iter().find(|(n, _)| n == name).map(|(_, s)| s.median)
}

/// One goal of the table: a ratio of two medians measured in this run.
struct Goal {
    what: &'static str,
    ratio: Option<f64>,
    /// The bound and whether the ratio must be at least (true) or at most it.
    bound: f64,
    at_least: bool,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("KAAL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    // KAAL_BENCH_ONLY=single,batch,pingpong,channel,blocking selects sections.
    let only = std::env::var("KAAL_BENCH_ONLY").unwrap_or_default();
    let want = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "# kaal-ipc against rtrb 0.4.1, ringbuf 0.6, heapless 0.9, crossbeam, std: \
         {runs} interleaved runs per case, {cpus} CPUs, capacity {CAP}, u64 items"
    );
    let mut goals = Vec::new();

    let n: u64 = 4_000_000;
    let mut spinning_ring = None;
    if want("single") || want("channel") {
        // std's channel is far slower; it moves a quarter of the items and its
        // rate is scaled accordingly.
        let rows = measure(
            runs,
            vec![
                ("kaal-ipc", Box::new(|| single_kaal(n))),
                ("rtrb", Box::new(|| single_rtrb(n))),
                ("ringbuf", Box::new(|| single_ringbuf(n))),
                ("crossbeam ArrayQueue", Box::new(|| single_crossbeam(n))),
                ("heapless spsc", Box::new(|| single_heapless(n))),
                ("std sync_channel", Box::new(|| single_std(n / 4) * 4)),
            ],
            |d| n as f64 / d.as_secs_f64() / 1e6,
        );
        report("single-item throughput", "M items/s", true, "rtrb", &rows);
        goals.push(Goal {
            what: "single-item try_push/try_pop throughput / rtrb",
            ratio: median(&rows, "kaal-ipc")
                .zip(median(&rows, "rtrb"))
                .map(|(k, r)| k / r),
            bound: 1.2,
            at_least: true,
        });
        spinning_ring = median(&rows, "kaal-ipc");
    }

    if want("batch") {
        let nb: u64 = 16_000_000;
        let rows = measure(
            runs,
            vec![
                ("kaal-ipc push_slice/pop_slice", Box::new(|| batch_kaal(nb))),
                (
                    "kaal-ipc push_slice/read_chunk in place",
                    Box::new(|| batch_kaal_in_place(nb)),
                ),
                (
                    "rtrb push_partial_slice/pop_partial_slice",
                    Box::new(|| batch_rtrb(nb)),
                ),
                (
                    "rtrb write_chunk_uninit/read_chunk",
                    Box::new(|| batch_rtrb_chunks(nb)),
                ),
                (
                    "ringbuf push_slice/pop_slice",
                    Box::new(|| batch_ringbuf(nb)),
                ),
            ],
            |d| nb as f64 / d.as_secs_f64() / 1e6,
        );
        let base = "rtrb push_partial_slice/pop_partial_slice";
        report("256-item batch throughput", "M items/s", true, base, &rows);
        // The goal is against rtrb's slice API, the same copying contract as
        // `push_slice`/`pop_slice`; rtrb's chunks (read in place) are shown
        // beside kaal-ipc's own in-place row.
        goals.push(Goal {
            what: "256-item batch throughput / rtrb slices",
            ratio: median(&rows, "kaal-ipc push_slice/pop_slice")
                .zip(median(&rows, base))
                .map(|(k, r)| k / r),
            bound: 1.2,
            at_least: true,
        });
    }

    if want("pingpong") {
        let rounds: u64 = 200_000;
        let rows = measure(
            runs,
            vec![
                ("kaal-ipc", Box::new(|| pingpong_kaal(rounds))),
                ("rtrb", Box::new(|| pingpong_rtrb(rounds))),
                ("ringbuf", Box::new(|| pingpong_ringbuf(rounds))),
                (
                    "crossbeam ArrayQueue",
                    Box::new(|| pingpong_crossbeam(rounds)),
                ),
                ("heapless spsc", Box::new(|| pingpong_heapless(rounds))),
                ("std sync_channel", Box::new(|| pingpong_std(rounds))),
            ],
            |d| d.as_nanos() as f64 / rounds as f64,
        );
        report(
            "ping-pong round trip (spinning)",
            "ns",
            false,
            "rtrb",
            &rows,
        );
        goals.push(Goal {
            what: "spinning ping-pong round trip / rtrb",
            ratio: median(&rows, "kaal-ipc")
                .zip(median(&rows, "rtrb"))
                .map(|(k, r)| k / r),
            bound: 0.9,
            at_least: false,
        });
    }

    if want("channel") {
        let nc: u64 = 4_000_000;
        let rows = measure(
            runs,
            vec![
                ("kaal-ipc Channel (futex)", Box::new(|| channel_kaal(nc))),
                (
                    "crossbeam-channel bounded",
                    Box::new(|| channel_crossbeam(nc)),
                ),
                ("std sync_channel", Box::new(|| channel_std(nc))),
            ],
            |d| nc as f64 / d.as_secs_f64() / 1e6,
        );
        report(
            "blocking channel throughput, send/recv per item",
            "M items/s",
            true,
            "crossbeam-channel bounded",
            &rows,
        );
        goals.push(Goal {
            what: "futex Channel throughput / spinning ring (same run)",
            ratio: median(&rows, "kaal-ipc Channel (futex)")
                .zip(spinning_ring)
                .map(|(c, r)| c / r),
            bound: 0.5,
            at_least: true,
        });
    }

    if want("blocking") {
        let br: u64 = 5_000;
        let rows = measure(
            runs,
            vec![
                (
                    "kaal-ipc futex, no spinning",
                    Box::new(|| blocking_kaal(br, 0)),
                ),
                (
                    "kaal-ipc futex, default spin",
                    Box::new(|| blocking_kaal(br, kaal_ipc::DEFAULT_SPIN_LIMIT)),
                ),
                (
                    "crossbeam-channel bounded(1)",
                    Box::new(|| blocking_crossbeam(br)),
                ),
                ("std sync_channel(1)", Box::new(|| blocking_std(br))),
            ],
            |d| d.as_secs_f64() * 1e6 / br as f64,
        );
        report(
            "blocking round trip through wake-ups",
            "us",
            false,
            "std sync_channel(1)",
            &rows,
        );
    }

    println!("\n## goals (medians of this run)");
    println!("{:<54} {:>9} {:>8}   result", "", "measured", "goal");
    let mut met = 0;
    for goal in &goals {
        let (sign, ok) = match goal.ratio {
            Some(r) if goal.at_least => (">=", r >= goal.bound),
            Some(r) => ("<=", r <= goal.bound),
            None => (if goal.at_least { ">=" } else { "<=" }, false),
        };
        met += usize::from(ok);
        println!(
            "{:<54} {:>9} {:>8}   {}",
            goal.what,
            goal.ratio.map_or(String::from("-"), |r| format!("{r:.2}x")),
            format!("{sign} {:.1}x", goal.bound),
            if ok { "met" } else { "NOT MET" }
        );
    }
    println!("{met} of {} goals met", goals.len());
}
