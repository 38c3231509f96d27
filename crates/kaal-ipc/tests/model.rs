//! Property tests: random operation sequences against a `VecDeque` model.
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use kaal_ipc::{PopError, PushError, SharedRing};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    Pop,
    PeekCopy,
    Peek,
    PushSlice(Vec<u32>),
    PopSlice(usize),
    WriteChunk {
        max: usize,
        write: usize,
        commit: bool,
    },
    ReadChunk {
        max: usize,
        release: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Push),
        4 => Just(Op::Pop),
        1 => Just(Op::PeekCopy),
        1 => Just(Op::Peek),
        2 => prop::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushSlice),
        2 => (0usize..12).prop_map(Op::PopSlice),
        2 => (0usize..12, 0usize..12, any::<bool>())
            .prop_map(|(max, write, commit)| Op::WriteChunk { max, write, commit }),
        2 => (0usize..12, 0usize..12).prop_map(|(max, release)| Op::ReadChunk { max, release }),
    ]
}

const N: usize = 8;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_vecdeque(ops in prop::collection::vec(op(), 1..200)) {
        let mut ring = SharedRing::<u32, N>::new();
        let (mut tx, mut rx) = ring.split();
        let mut model = VecDeque::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                Op::Push(v) => {
                    let r = tx.try_push(v);
                    if model.len() < N {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(r, Err(PushError::Full(v)));
                    }
                }
                Op::Pop => match model.pop_front() {
                    Some(v) => prop_assert_eq!(rx.try_pop(), Ok(v)),
                    None => prop_assert_eq!(rx.try_pop(), Err(PopError::Empty)),
                },
                Op::PeekCopy => match model.front() {
                    Some(&v) => prop_assert_eq!(rx.peek_copy(), Ok(v)),
                    None => prop_assert_eq!(rx.peek_copy(), Err(PopError::Empty)),
                },
                Op::Peek => match model.front() {
                    Some(v) => prop_assert_eq!(rx.peek(), Ok(v)),
                    None => prop_assert_eq!(rx.peek(), Err(PopError::Empty)),
                },
                Op::PushSlice(items) => {
                    let n = tx.push_slice(&items).unwrap();
                    prop_assert_eq!(n, items.len().min(N - model.len()));
                    model.extend(&items[..n]);
                }
                Op::PopSlice(k) => {
                    let mut out = vec![0; k];
                    let n = rx.pop_slice(&mut out).unwrap();
                    prop_assert_eq!(n, k.min(model.len()));
                    let expected: Vec<u32> = model.drain(..n).collect();
                    prop_assert_eq!(&out[..n], &expected[..]);
                }
                Op::WriteChunk { max, write, commit } => {
                    let mut chunk = tx.write_chunk(max).unwrap();
                    prop_assert_eq!(chunk.len(), max.min(N - model.len()));
                    let mut written = Vec::new();
                    for _ in 0..write {
                        match chunk.push(next) {
                            Ok(()) => written.push(next),
                            Err(v) => prop_assert_eq!(v, next),
                        }
                        next = next.wrapping_add(1);
                    }
                    prop_assert_eq!(chunk.written(), written.len());
                    if commit {
                        chunk.commit();
                        model.extend(written);
                    }
                }
                Op::ReadChunk { max, release } => {
                    let chunk = rx.read_chunk(max).unwrap();
                    prop_assert_eq!(chunk.len(), max.min(model.len()));
                    let seen: Vec<u32> = chunk.iter().copied().collect();
                    let (a, b) = chunk.as_slices();
                    prop_assert_eq!([a, b].concat(), seen.clone());
                    for (i, v) in seen.iter().enumerate() {
                        prop_assert_eq!(chunk.get(i), Some(*v));
                    }
                    let expected: Vec<u32> = model.iter().take(seen.len()).copied().collect();
                    prop_assert_eq!(&seen, &expected);
                    let n = release.min(chunk.len());
                    chunk.release(release);
                    model.drain(..n);
                }
            }
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(rx.is_empty(), model.is_empty());
            prop_assert_eq!(tx.is_full(), model.len() == N);
        }
    }

    #[test]
    fn drops_every_item_exactly_once(pushes in 0usize..40, pops in 0usize..40, chunk in 0usize..10) {
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        struct Tracked;
        impl Tracked {
            fn new() -> Self {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Tracked
            }
        }
        impl Drop for Tracked {
            fn drop(&mut self) {
                LIVE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        LIVE.store(0, Ordering::SeqCst);
        {
            let mut ring = SharedRing::<Tracked, 16>::new();
            let (mut tx, mut rx) = ring.split();
            for _ in 0..pushes {
                let _ = tx.try_push(Tracked::new());
            }
            for _ in 0..pops {
                let _ = rx.try_pop();
            }
            let mut w = tx.write_chunk(chunk).unwrap();
            while w.push(Tracked::new()).is_ok() {}
            drop(w); // uncommitted items are dropped
            rx.read_chunk(chunk).unwrap().release(chunk / 2);
            prop_assert!(LIVE.load(Ordering::SeqCst) <= 16);
            drop((tx, rx));
        } // the ring drops what is left
        prop_assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    }
}

/// An item with padding bytes, aligned beyond a word.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
struct Padded {
    a: u8,
    b: u64,
}

/// Slice copies move items in 32-byte blocks, words and single bytes: round
/// trips of items of 1, 3, 8, 10, 33 and 40 bytes, a padded over-aligned item
/// and a zero-sized one, in batches that wrap the ring at every offset,
/// against a model.
fn slices_round_trip<T, const N: usize>(
    make: impl Fn(u32) -> T,
    ops: &[(usize, usize)],
) -> Result<(), TestCaseError>
where
    T: Copy + PartialEq + core::fmt::Debug,
{
    let mut ring = SharedRing::<T, N>::new_boxed();
    let (mut tx, mut rx) = ring.split();
    let mut model = VecDeque::new();
    let mut next = 0u32;
    for &(push, pop) in ops {
        let items: Vec<T> = (0..push)
            .map(|i| make(next.wrapping_add(i as u32)))
            .collect();
        let n = tx.push_slice(&items).unwrap();
        prop_assert_eq!(n, push.min(N - model.len()));
        model.extend(&items[..n]);
        next = next.wrapping_add(n as u32);
        let mut out = vec![make(0); pop];
        let k = rx.pop_slice(&mut out).unwrap();
        prop_assert_eq!(k, pop.min(model.len()));
        let expected: Vec<T> = model.drain(..k).collect();
        prop_assert_eq!(&out[..k], &expected[..]);
    }
    Ok(())
}

proptest! {
    #[test]
    fn slices_of_any_item_size_round_trip(
        // Fewer and shorter batches under Miri, which interprets every byte copy.
        ops in prop::collection::vec(
            (0usize..80, 0usize..80),
            1..if cfg!(miri) { 6 } else { 40 },
        )
    ) {
        slices_round_trip::<u8, 64>(|i| i as u8, &ops)?;
        slices_round_trip::<[u8; 3], 64>(|i| [i as u8, (i >> 8) as u8, 0x5a], &ops)?;
        slices_round_trip::<u64, 64>(|i| u64::from(i) * 0x0101_0101_0101, &ops)?;
        slices_round_trip::<[u16; 5], 32>(|i| [i as u16, 1, 2, 3, (i >> 16) as u16], &ops)?;
        slices_round_trip::<[u8; 33], 16>(|i| [i as u8; 33], &ops)?;
        slices_round_trip::<[u64; 5], 16>(|i| [u64::from(i), 1, 2, 3, !u64::from(i)], &ops)?;
        slices_round_trip::<Padded, 16>(|i| Padded { a: i as u8, b: u64::from(i) << 3 }, &ops)?;
        slices_round_trip::<(), 64>(|_| (), &ops)?;
    }
}
