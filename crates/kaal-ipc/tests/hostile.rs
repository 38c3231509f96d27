//! Rings in a byte region, with a simulated peer that writes garbage into the
//! header: every bad value must produce an error, never a panic or a wild
//! access.
#![cfg(not(loom))]

use std::alloc::{Layout, alloc_zeroed, dealloc};

use kaal_ipc::{
    AttachError, CorruptIndices, PeerState, PopError, PushError, RecvError, RingError, SendError,
    SharedRing, Spin, layout,
};
use proptest::prelude::*;

const N: usize = 8;
type Ring = SharedRing<u64, N>;

/// A zeroed, suitably aligned heap region standing in for shared memory.
struct Region {
    ptr: *mut u8,
    layout: Layout,
}

impl Region {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Self { ptr, layout }
    }

    /// What a peer process would do: write a header word with a plain
    /// atomic store.
    fn poke(&self, offset: usize, value: u32) {
        // SAFETY: in bounds, 4-byte aligned, and every header word is an
        // `AtomicU32` in the ring.
        unsafe {
            (*self.ptr.add(offset).cast::<std::sync::atomic::AtomicU32>())
                .store(value, std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn peek(&self, offset: usize) -> u32 {
        // SAFETY: as in `poke`.
        unsafe {
            (*self.ptr.add(offset).cast::<std::sync::atomic::AtomicU32>())
                .load(std::sync::atomic::Ordering::SeqCst)
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn region() -> Region {
    Region::new(Ring::REGION_SIZE + 4096)
}

#[test]
fn attach_validates_every_header_field() {
    let r = region();
    // SAFETY: `r` is valid for the ring's size and outlives every use below;
    // each attachment is dropped before the next.
    unsafe {
        assert!(matches!(
            Ring::attach(r.ptr, r.layout.size()),
            Err(AttachError::BadMagic {
                found: 0,
                expected: layout::MAGIC
            })
        ));
        Ring::init_in(r.ptr, r.layout.size()).unwrap();
        Ring::attach(r.ptr, r.layout.size()).unwrap();

        assert_eq!(
            Ring::attach(r.ptr, 100).unwrap_err(),
            AttachError::TooSmall {
                len: 100,
                required: Ring::REGION_SIZE
            }
        );
        let unaligned = r.ptr.add(8);
        assert!(matches!(
            Ring::attach(unaligned, r.layout.size() - 8),
            Err(AttachError::Misaligned { align: 128, .. })
        ));
        // Another element type or capacity over the same bytes.
        assert_eq!(
            SharedRing::<u64, 16>::attach(r.ptr, r.layout.size()).unwrap_err(),
            AttachError::Capacity {
                found: 8,
                expected: 16
            }
        );
        assert_eq!(
            SharedRing::<u32, 8>::attach(r.ptr, r.layout.size()).unwrap_err(),
            AttachError::ElementSize {
                found: 8,
                expected: 4
            }
        );
        assert_eq!(
            SharedRing::<[u32; 2], 8>::attach(r.ptr, r.layout.size()).unwrap_err(),
            AttachError::ElementAlign {
                found: 8,
                expected: 4
            }
        );

        r.poke(layout::ABI_OFFSET, 99);
        assert_eq!(
            Ring::attach(r.ptr, r.layout.size()).unwrap_err(),
            AttachError::AbiVersion {
                found: 99,
                expected: layout::ABI_VERSION
            }
        );
        r.poke(layout::ABI_OFFSET, layout::ABI_VERSION);
        r.poke(layout::SLOT_OFFSET_OFFSET, 64);
        assert_eq!(
            Ring::attach(r.ptr, r.layout.size()).unwrap_err(),
            AttachError::SlotOffset {
                found: 64,
                expected: layout::HEADER_SIZE as u32
            }
        );
        r.poke(layout::SLOT_OFFSET_OFFSET, layout::HEADER_SIZE as u32);
        r.poke(layout::TAIL_OFFSET, 100);
        assert_eq!(
            Ring::attach(r.ptr, r.layout.size()).unwrap_err(),
            AttachError::Corrupt(CorruptIndices {
                head: 0,
                tail: 100,
                capacity: 8
            })
        );
        r.poke(layout::TAIL_OFFSET, 0);
        Ring::attach(r.ptr, r.layout.size()).unwrap();
    }
}

#[test]
fn consumer_rejects_garbage_tail() {
    let r = region();
    // SAFETY: `r` outlives the attachment; nothing else uses it in-process.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();

    // The "producer" claims 9 items in an 8-slot ring.
    r.poke(layout::TAIL_OFFSET, 9);
    let corrupt = CorruptIndices {
        head: 0,
        tail: 9,
        capacity: 8,
    };
    assert_eq!(rx.try_pop(), Err(PopError::Corrupt(corrupt)));
    assert_eq!(rx.peek_copy(), Err(PopError::Corrupt(corrupt)));
    assert_eq!(rx.pop_slice(&mut [0; 4]), Err(RingError::Corrupt(corrupt)));
    assert_eq!(rx.read_chunk(4).unwrap_err(), RingError::Corrupt(corrupt));
    assert_eq!(rx.pop(), Err(RecvError::Corrupt(corrupt)));
    assert_eq!(rx.len(), N); // clamped snapshot

    // Tail moved behind head.
    r.poke(layout::TAIL_OFFSET, u32::MAX);
    assert!(matches!(rx.try_pop(), Err(PopError::Corrupt(_))));

    // A plausible tail is accepted again: items are whatever bytes the peer
    // left (zero here), which are valid `u64`s.
    r.poke(layout::TAIL_OFFSET, 3);
    assert_eq!(rx.try_pop(), Ok(0));
    assert_eq!(r.peek(layout::HEAD_OFFSET), 1);
}

#[test]
fn producer_rejects_garbage_head() {
    let r = region();
    // SAFETY: `r` outlives the attachment; nothing else uses it in-process.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut tx = ring.into_producer(Spin).unwrap();
    for i in 0..N as u64 {
        tx.try_push(i).unwrap();
    }
    // Full: the producer reloads head, which the "consumer" made absurd.
    r.poke(layout::HEAD_OFFSET, 1000);
    let corrupt = CorruptIndices {
        head: 1000,
        tail: 8,
        capacity: 8,
    };
    assert_eq!(tx.try_push(9), Err(PushError::Corrupt(9, corrupt)));
    assert_eq!(tx.push(9), Err(SendError::Corrupt(9, corrupt)));
    assert_eq!(tx.push_slice(&[1, 2]), Err(RingError::Corrupt(corrupt)));
    assert_eq!(tx.write_chunk(2).unwrap_err(), RingError::Corrupt(corrupt));
    // A hostile consumer cannot make the producer overwrite unread slots by
    // moving head backwards either: the producer keeps its own tail.
    r.poke(layout::HEAD_OFFSET, 0);
    r.poke(layout::TAIL_OFFSET, 0);
    assert_eq!(tx.try_push(9), Err(PushError::Full(9)));
    assert_eq!(r.peek(layout::TAIL_OFFSET), 0);
    r.poke(layout::HEAD_OFFSET, 2);
    assert_eq!(tx.try_push(9), Ok(()));
    assert_eq!(r.peek(layout::TAIL_OFFSET), 9);
}

#[test]
fn indices_wrap_around_u32() {
    let r = region();
    // SAFETY: `r` outlives the attachment; nothing else uses it in-process.
    unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let start = u32::MAX - 20;
    r.poke(layout::HEAD_OFFSET, start);
    r.poke(layout::TAIL_OFFSET, start);
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let (mut tx, mut rx) = ring.split(Spin).unwrap();
    let mut out = [0u64; 5];
    for i in 0..40u64 {
        assert_eq!(tx.push_slice(&[i, i + 1, i + 2, i + 3, i + 4]), Ok(5));
        assert_eq!(tx.try_push(i + 5), Ok(()));
        assert_eq!(rx.len(), 6);
        assert_eq!(rx.pop_slice(&mut out), Ok(5));
        assert_eq!(out, [i, i + 1, i + 2, i + 3, i + 4]);
        assert_eq!(rx.try_pop(), Ok(i + 5));
    }
    assert!(r.peek(layout::TAIL_OFFSET) < 1000, "the indices wrapped");
}

#[test]
fn restarted_peer_is_detected_by_generation() {
    let r = region();
    // SAFETY: `r` outlives every attachment; the roles are held one at a time
    // in this process, like two processes taking turns.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();
    assert_eq!(rx.peer_state(), PeerState::NeverAttached);
    {
        // SAFETY: as above.
        let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
        let mut tx = ring.into_producer(Spin).unwrap();
        tx.try_push(1).unwrap();
        assert_eq!(rx.peer_state(), PeerState::Connected);
        assert_eq!(tx.peer_state(), PeerState::Connected);
    } // producer "crashes" (here: closes)
    assert_eq!(rx.peer_state(), PeerState::Closed);
    assert_eq!(rx.try_pop(), Ok(1));
    assert_eq!(rx.try_pop(), Err(PopError::Closed));
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let mut tx = ring.into_producer(Spin).unwrap();
    assert_eq!(
        rx.peer_state(),
        PeerState::Restarted {
            seen: 1,
            current: 2
        }
    );
    rx.acknowledge_peer();
    assert_eq!(rx.peer_state(), PeerState::Connected);
    tx.try_push(2).unwrap();
    assert_eq!(rx.try_pop(), Ok(2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A peer that scribbles arbitrary values over the whole header between
    /// operations: every operation returns a value or an error.
    #[test]
    fn random_header_scribbles_never_panic(
        writes in prop::collection::vec((0usize..(layout::HEADER_SIZE / 4), any::<u32>()), 1..40),
        ops in prop::collection::vec(0u8..6, 1..40),
    ) {
        let r = region();
        // SAFETY: `r` outlives the attachment; nothing else uses it in-process.
        let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
        let (mut tx, mut rx) = ring.split(Spin).unwrap();
        for (i, op) in ops.iter().enumerate() {
            if let Some(&(word, value)) = writes.get(i) {
                r.poke(word * 4, value);
            }
            let mut buf = [0u64; 4];
            match op {
                0 => { let _ = tx.try_push(i as u64); }
                1 => { let _ = rx.try_pop(); }
                2 => { let _ = tx.push_slice(&[1, 2, 3]); }
                3 => { let _ = rx.pop_slice(&mut buf); }
                4 => {
                    if let Ok(mut c) = tx.write_chunk(3) { let _ = c.push(7); c.commit(); }
                }
                _ => {
                    if let Ok(c) = rx.read_chunk(3) {
                        let _ = c.copy_to_slice(&mut buf);
                        c.release_all();
                    }
                }
            }
            prop_assert!(tx.len() <= N && rx.len() <= N);
            // Scribbled generation and identity words are read too.
            let _ = (tx.peer_state(), rx.peer_state());
        }
        // Both sides repair, then the ring works again.
        tx.repair();
        rx.repair();
        while rx.try_pop().is_ok() {}
        prop_assert_eq!(tx.try_push(77), Ok(()));
        prop_assert_eq!(rx.try_pop(), Ok(77));
    }
}

/// The issue this guards against: a consumer that never asked about its peer
/// must still see a restarted producer as restarted.
#[test]
fn restart_is_seen_without_a_prior_peer_state_call() {
    let r = region();
    // SAFETY: `r` outlives every attachment; the roles are held one at a time
    // in this process, like two processes taking turns.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();
    for generation in 1..=2u64 {
        // SAFETY: as above.
        let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
        let tx = ring.into_producer(Spin).unwrap();
        let mut tx = std::mem::ManuallyDrop::new(tx); // killed: no close
        tx.try_push(generation).unwrap();
    }
    assert_eq!(
        rx.peer_state(),
        PeerState::Restarted {
            seen: 1,
            current: 2
        }
    );
    assert_eq!(rx.try_pop(), Ok(1));
    assert_eq!(rx.try_pop(), Ok(2));

    // A consumer attaching after the first producer accepts that one.
    let r = region();
    // SAFETY: as above.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let _tx = std::mem::ManuallyDrop::new(ring.into_producer(Spin).unwrap());
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let _tx2 = std::mem::ManuallyDrop::new(ring.into_producer(Spin).unwrap());
    assert_eq!(
        rx.peer_state(),
        PeerState::Restarted {
            seen: 1,
            current: 2
        }
    );
}

/// Two item types of equal size and alignment do not attach to each other's
/// ring; a chosen fingerprint overrides the derived one; a header written
/// from `Geometry` is stamped by the first endpoint.
#[test]
fn equal_layout_types_refuse_to_attach() {
    #[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
    #[repr(C)]
    struct Celsius(u64);

    let r = region();
    // SAFETY: `r` outlives the attachments, used one at a time.
    unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    for result in [
        // SAFETY: as above.
        unsafe { SharedRing::<i64, N>::attach(r.ptr, r.layout.size()) }.map(drop),
        // SAFETY: as above.
        unsafe { SharedRing::<Celsius, N>::attach(r.ptr, r.layout.size()) }.map(drop),
    ] {
        match result {
            Err(AttachError::TypeMismatch {
                found,
                expected,
                item,
            }) => {
                assert_eq!(found, kaal_ipc::type_fingerprint::<u64>().get());
                assert_ne!(found, expected);
                assert!(item.ends_with("i64") || item.ends_with("Celsius"), "{item}");
            }
            other => panic!("attached with another type: {:?}", other.err()),
        }
    }
    let message = format!(
        "{}",
        // SAFETY: as above.
        unsafe { SharedRing::<i64, N>::attach(r.ptr, r.layout.size()) }.unwrap_err()
    );
    assert!(
        message.contains("fingerprint") && message.contains("i64"),
        "{message}"
    );
    // SAFETY: as above.
    assert!(unsafe { Ring::attach(r.ptr, r.layout.size()) }.is_ok());

    // A tag both sides choose lets two differently named types meet.
    let tag = std::num::NonZeroU64::new(0x5eed).unwrap();
    // SAFETY: as above.
    unsafe { Ring::init_in_tagged(r.ptr, r.layout.size(), tag) }.unwrap();
    // SAFETY: as above.
    let tagged = unsafe { SharedRing::<Celsius, N>::attach_tagged(r.ptr, r.layout.size(), tag) };
    assert!(tagged.is_ok());
    // SAFETY: as above.
    let untagged = unsafe { SharedRing::<Celsius, N>::attach(r.ptr, r.layout.size()) };
    assert!(matches!(untagged, Err(AttachError::TypeMismatch { .. })));

    // A header laid out by a third party: the first attach stamps its type.
    let r = region();
    let geometry = layout::Geometry::new(N as u32, 8, 8).unwrap();
    for (offset, value) in geometry.header_words() {
        r.poke(offset, value);
    }
    // SAFETY: as above.
    unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    // SAFETY: as above.
    let other = unsafe { SharedRing::<i64, N>::attach(r.ptr, r.layout.size()) };
    assert!(matches!(other, Err(AttachError::TypeMismatch { .. })));
    // SAFETY: as above.
    assert!(unsafe { Ring::attach(r.ptr, r.layout.size()) }.is_ok());
}

/// After a peer scribbles over the header and stops, the honest consumer
/// repairs the ring, keeps what it received, and a restarted producer can
/// attach and deliver again.
#[test]
fn consumer_recovers_after_a_scribbler_stops() {
    let r = region();
    // SAFETY: `r` outlives the attachments, one role each, like two processes.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let mut tx = ring.into_producer(Spin).unwrap();
    let mut received = Vec::new();
    for i in 0..5 {
        tx.try_push(i).unwrap();
    }
    received.push(rx.try_pop().unwrap());
    received.push(rx.try_pop().unwrap());
    // The consumer's cached view still covers the three it has not taken.
    while let Ok(item) = rx.try_pop() {
        received.push(item);
    }
    // The producer turns hostile, scribbles, and is killed.
    std::mem::forget(tx);
    for offset in [
        layout::MAGIC_OFFSET,
        layout::CAPACITY_OFFSET,
        layout::ELEMENT_SIZE_OFFSET,
        layout::FINGERPRINT_OFFSET,
        layout::TAIL_OFFSET,
    ] {
        r.poke(offset, 0xdead_beef);
    }
    assert!(matches!(rx.try_pop(), Err(PopError::Corrupt(_))));
    // SAFETY: as above.
    let scribbled = unsafe { Ring::attach(r.ptr, r.layout.size()) };
    assert!(matches!(scribbled, Err(AttachError::BadMagic { .. })));

    let repair = rx.repair();
    assert!(
        repair.header_restored && repair.peer_index_reset,
        "{repair:?}"
    );
    assert_eq!(received, [0, 1, 2, 3, 4], "what was received is kept");
    assert_eq!(rx.try_pop(), Err(PopError::Empty));
    // The supervisor restarts the producer: it attaches and resumes.
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let mut tx = ring.into_producer(Spin).unwrap();
    assert_eq!(tx.position(), 5, "resumes from the consumer's index");
    tx.try_push(10).unwrap();
    assert_eq!(rx.try_pop(), Ok(10));
    assert!(
        !rx.repair().repaired_anything(),
        "a healthy ring needs nothing"
    );
}

/// The same from the producer's side: a consumer that scribbled its index.
#[test]
fn producer_recovers_after_a_scribbler_stops() {
    let r = region();
    // SAFETY: `r` outlives the attachments, one role each.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut tx = ring.into_producer(Spin).unwrap();
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let rx = ring.into_consumer(Spin).unwrap();
    for i in 0..N as u64 {
        tx.try_push(i).unwrap();
    }
    std::mem::forget(rx);
    r.poke(layout::HEAD_OFFSET, 12_345);
    r.poke(layout::ABI_OFFSET, 7);
    assert!(matches!(tx.try_push(99), Err(PushError::Corrupt(99, _))));
    let repair = tx.repair();
    assert!(repair.header_restored && repair.peer_index_reset);
    assert_eq!(tx.position(), N as u32, "the producer keeps its numbering");
    tx.try_push(99).unwrap();
    // SAFETY: as above.
    let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();
    assert_eq!(rx.try_pop(), Ok(99));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a peer scribbles over the header before it stops, the honest
    /// consumer's repair makes the ring attachable and working again.
    #[test]
    fn repair_recovers_from_any_scribble(
        writes in prop::collection::vec((0usize..(layout::HEADER_SIZE / 4), any::<u32>()), 1..40),
        pushed in 0u64..=N as u64,
    ) {
        let r = region();
        // SAFETY: `r` outlives the attachments, one role each.
        let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
        let mut rx = ring.into_consumer(Spin).unwrap();
        // SAFETY: as above.
        let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
        let mut tx = ring.into_producer(Spin).unwrap();
        for i in 0..pushed {
            tx.try_push(i).unwrap();
        }
        let first = rx.try_pop();
        std::mem::forget(tx);
        // The words a repair restores: geometry (offsets 0..24) and fingerprint.
        let judged: Vec<usize> = (0..layout::STATE_OFFSET)
            .step_by(4)
            .chain([layout::FINGERPRINT_OFFSET, layout::FINGERPRINT_OFFSET + 4])
            .collect();
        let before: Vec<u32> = judged.iter().map(|&o| r.peek(o)).collect();
        for (word, value) in writes {
            r.poke(word * 4, value);
        }
        let scribbled = judged.iter().zip(&before).any(|(&o, &b)| r.peek(o) != b);
        let repair = rx.repair();
        prop_assert_eq!(repair.header_restored, scribbled, "{:?}", repair);
        // SAFETY: as above.
        let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) };
        prop_assert!(ring.is_ok(), "{:?}", ring.err());
        let mut tx = ring.unwrap().into_producer(Spin).unwrap();
        // Whatever valid-looking items the scribbler left are drained, then
        // the new producer's items arrive in order.
        while rx.try_pop().is_ok() {}
        for marker in [1000u64, 1001, 1002] {
            prop_assert!(tx.try_push(marker).is_ok());
        }
        for marker in [1000u64, 1001, 1002] {
            prop_assert_eq!(rx.try_pop(), Ok(marker));
        }
        prop_assert_eq!(first.is_ok(), pushed > 0);
    }

    /// The same from the producer's side: whatever the consumer scribbled,
    /// the producer's repair keeps its numbering and a restarted consumer
    /// receives what it pushes next.
    #[test]
    fn producer_repair_recovers_from_any_scribble(
        writes in prop::collection::vec((0usize..(layout::HEADER_SIZE / 4), any::<u32>()), 1..40),
        pushed in 0u64..=N as u64,
    ) {
        let r = region();
        // SAFETY: `r` outlives the attachments, one role each.
        let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
        let mut tx = ring.into_producer(Spin).unwrap();
        // SAFETY: as above.
        let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
        let rx = ring.into_consumer(Spin).unwrap();
        for i in 0..pushed {
            tx.try_push(i).unwrap();
        }
        std::mem::forget(rx);
        for (word, value) in writes {
            r.poke(word * 4, value);
        }
        let tail_scribbled = r.peek(layout::TAIL_OFFSET) != pushed as u32;
        let repair = tx.repair();
        prop_assert_eq!(tx.position(), pushed as u32);
        prop_assert_eq!(repair.own_index_restored, tail_scribbled);
        prop_assert_eq!(r.peek(layout::TAIL_OFFSET), pushed as u32);
        // SAFETY: as above.
        let ring = unsafe { Ring::attach(r.ptr, r.layout.size()) };
        prop_assert!(ring.is_ok(), "{:?}", ring.err());
        let mut rx = ring.unwrap().into_consumer(Spin).unwrap();
        while rx.try_pop().is_ok() {}
        prop_assert_eq!(tx.try_push(500), Ok(()));
        prop_assert_eq!(rx.try_pop(), Ok(500));
    }
}

/// A ring whose type a supervisor vouches for attaches whatever its
/// fingerprint, still checking the layout.
#[test]
fn vouched_attach_checks_layout_only() {
    let r = region();
    // SAFETY: `r` outlives the attachments, used one at a time.
    unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    // SAFETY: as above.
    let vouched = unsafe { SharedRing::<i64, N>::attach_vouched(r.ptr, r.layout.size()) };
    assert!(vouched.is_ok());
    // SAFETY: as above.
    let wrong_size = unsafe { SharedRing::<u32, N>::attach_vouched(r.ptr, r.layout.size()) };
    assert!(matches!(wrong_size, Err(AttachError::ElementSize { .. })));
    let stamped = |r: &Region| {
        u64::from(r.peek(layout::FINGERPRINT_OFFSET))
            | u64::from(r.peek(layout::FINGERPRINT_OFFSET + 4)) << 32
    };
    assert_eq!(
        stamped(&r),
        kaal_ipc::type_fingerprint::<u64>().get(),
        "not restamped"
    );
    // A header without a fingerprint stays without one.
    let r = region();
    for (offset, value) in layout::Geometry::new(N as u32, 8, 8)
        .unwrap()
        .header_words()
    {
        r.poke(offset, value);
    }
    // SAFETY: as above.
    let vouched = unsafe { SharedRing::<i64, N>::attach_vouched(r.ptr, r.layout.size()) };
    assert!(vouched.is_ok());
    assert_eq!(stamped(&r), 0, "a vouched attach stamps nothing");
}

/// A peer that overwrites this side's identity words cannot make the next
/// peer take this live process for dead: every check rewrites them.
#[cfg(all(feature = "std", target_os = "linux"))]
#[test]
fn own_identity_words_are_restored_at_each_check() {
    let r = region();
    // SAFETY: `r` outlives the attachment; nothing else uses it in-process.
    let ring = unsafe { Ring::init_in(r.ptr, r.layout.size()) }.unwrap();
    let mut rx = ring.into_consumer(Spin).unwrap();
    assert_eq!(r.peek(layout::CONSUMER_PID_OFFSET), std::process::id());
    let ns = r.peek(layout::CONSUMER_PIDNS_OFFSET);
    let start = r.peek(layout::CONSUMER_START_OFFSET);
    r.poke(layout::CONSUMER_PID_OFFSET, 4_000_000);
    r.poke(layout::CONSUMER_START_OFFSET, 1);
    assert_eq!(rx.peer_state(), PeerState::NeverAttached);
    assert_eq!(r.peek(layout::CONSUMER_PID_OFFSET), std::process::id());
    assert_eq!(r.peek(layout::CONSUMER_PIDNS_OFFSET), ns);
    assert_eq!(r.peek(layout::CONSUMER_START_OFFSET), start);
}
