//! Two threads in one program: a producer streams numbers through a blocking
//! channel, the consumer verifies and sums them; then the same with
//! zero-copy chunks on a plain ring.
//!
//! ```text
//! cargo run --release -p kaal-ipc --features std --example two_threads
//! ```

use std::time::Instant;

use kaal_ipc::{Channel, RecvError, SharedRing};

fn main() {
    const COUNT: u64 = 5_000_000;

    // A blocking channel (futex on Linux), endpoints owning an Arc.
    let (mut tx, mut rx) = Channel::<u64, 1024>::pair();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        for i in 0..COUNT {
            tx.send(i).expect("receiver alive");
        }
    });
    let mut sum = 0u64;
    let mut expect = 0u64;
    loop {
        match rx.recv() {
            Ok(v) => {
                assert_eq!(v, expect, "out of order");
                expect += 1;
                sum += v;
            }
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(expect, COUNT);
    assert_eq!(sum, COUNT * (COUNT - 1) / 2);
    println!("channel: {COUNT} items in {:?}", start.elapsed());

    // A ring borrowed by two scoped threads, written and read in place.
    let mut ring = SharedRing::<u64, 1024>::new();
    let (mut tx, mut rx) = ring.split();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut next = 0u64;
            while next < COUNT {
                let mut chunk = tx.write_chunk(256).expect("consumer alive");
                next += chunk.fill_from_iter(next..COUNT) as u64;
                chunk.commit();
            }
        });
        let mut expect = 0u64;
        while expect < COUNT {
            let chunk = rx.read_chunk(256).expect("producer alive or items left");
            for &v in chunk.iter() {
                assert_eq!(v, expect);
                expect += 1;
            }
            chunk.release_all();
        }
    });
    println!("chunks:  {COUNT} items in {:?}", start.elapsed());
}
