//! Property tests: the allocators against simple models.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kaal_broker::slots::{SlotAllocator, SlotError};
use kaal_broker::untyped::{Block, BlockId, UntypedAllocator, UntypedBackend, UntypedError};
use kaal_broker::vspace::{PAGE_BYTES, VirtualError, VirtualRanges};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// Untyped buddy allocator against a fake kernel.

/// An untyped capability in the fake kernel.
#[derive(Clone, Copy, Debug)]
struct Cap {
    base: u64,
    size_bits: u8,
    children: Option<[u32; 2]>,
}

/// Checks every retype and revoke like the kernel would, and fails on demand.
#[derive(Debug, Default)]
struct FakeKernel {
    caps: HashMap<u32, Cap>,
    next_handle: u32,
    /// Fail the call after this many more successful calls.
    fail_after: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FakeError {
    Injected,
}

impl FakeKernel {
    fn add_root(&mut self, base: u64, size_bits: u8) -> u32 {
        self.new_cap(base, size_bits)
    }

    fn new_cap(&mut self, base: u64, size_bits: u8) -> u32 {
        self.next_handle += 1;
        let cap = Cap {
            base,
            size_bits,
            children: None,
        };
        self.caps.insert(self.next_handle, cap);
        self.next_handle
    }

    fn inject(&mut self) -> Result<(), FakeError> {
        match self.fail_after {
            Some(0) => {
                self.fail_after = None;
                Err(FakeError::Injected)
            }
            Some(n) => {
                self.fail_after = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn leaf(&self, handle: u32) -> Cap {
        let cap = *self.caps.get(&handle).expect("live capability");
        assert_eq!(cap.children, None, "capability {handle} has children");
        cap
    }
}

impl UntypedBackend for FakeKernel {
    type Handle = u32;
    type Error = FakeError;

    fn split(&mut self, parent: u32, child_size_bits: u8) -> Result<[u32; 2], FakeError> {
        self.inject()?;
        let cap = self.leaf(parent);
        assert_eq!(child_size_bits + 1, cap.size_bits, "split size");
        let lower = self.new_cap(cap.base, child_size_bits);
        let upper = self.new_cap(cap.base + (1 << child_size_bits), child_size_bits);
        self.caps.get_mut(&parent).unwrap().children = Some([lower, upper]);
        Ok([lower, upper])
    }

    fn merge(&mut self, parent: u32, halves: [u32; 2]) -> Result<(), FakeError> {
        self.inject()?;
        let cap = *self.caps.get(&parent).expect("live parent");
        assert_eq!(cap.children, Some(halves), "merge of foreign halves");
        for half in halves {
            self.leaf(half);
            self.caps.remove(&half);
        }
        self.caps.get_mut(&parent).unwrap().children = None;
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum UntypedOp {
    Allocate(u8),
    Free(usize),
    DoubleFree(usize),
    FailAfter(u32),
    Coalesce,
}

fn untyped_op() -> impl Strategy<Value = UntypedOp> {
    prop_oneof![
        6 => (10u8..=23).prop_map(UntypedOp::Allocate),
        5 => any::<usize>().prop_map(UntypedOp::Free),
        1 => any::<usize>().prop_map(UntypedOp::DoubleFree),
        1 => (0u32..4).prop_map(UntypedOp::FailAfter),
        1 => Just(UntypedOp::Coalesce),
    ]
}

fn end(base: u64, size_bits: u8) -> u64 {
    base + (1 << size_bits)
}

/// Everything the allocator holds agrees with the fake kernel and with itself.
fn check_untyped(
    untyped: &UntypedAllocator<u32>,
    kernel: &FakeKernel,
    live: &[Block<u32>],
    total: u64,
    merged_fully: bool,
) -> Result<(), TestCaseError> {
    let free: Vec<Block<u32>> = untyped.free_blocks().collect();
    prop_assert_eq!(untyped.free_bytes() + untyped.allocated_bytes(), total);
    let allocated: u64 = live.iter().map(Block::bytes).sum();
    prop_assert_eq!(untyped.allocated_bytes(), allocated);
    prop_assert_eq!(
        free.iter().map(Block::bytes).sum::<u64>(),
        untyped.free_bytes()
    );
    prop_assert_eq!(
        untyped.largest_free_size_bits(),
        free.iter().map(|b| b.size_bits).max()
    );
    // Leaves of the kernel's tree are exactly the allocator's free and allocated blocks.
    let mut leaves: Vec<u32> = kernel
        .caps
        .iter()
        .filter(|(_, cap)| cap.children.is_none())
        .map(|(&handle, _)| handle)
        .collect();
    let mut blocks: Vec<Block<u32>> = free.iter().chain(live).copied().collect();
    leaves.sort_unstable();
    let mut handles: Vec<u32> = blocks.iter().map(|b| b.handle).collect();
    handles.sort_unstable();
    prop_assert_eq!(leaves, handles);
    for block in &blocks {
        prop_assert_eq!(untyped.block(block.id), Some(*block));
        let cap = kernel.leaf(block.handle);
        prop_assert_eq!((cap.base, cap.size_bits), (block.base, block.size_bits));
        prop_assert_eq!(block.base % block.bytes(), 0, "naturally aligned");
    }
    blocks.sort_by_key(|b| b.base);
    for pair in blocks.windows(2) {
        prop_assert!(
            end(pair[0].base, pair[0].size_bits) <= pair[1].base,
            "overlap"
        );
    }
    if merged_fully {
        // No two free buddies (regions sit in separate 16 MiB slots, so blocks of one
        // size at `base` and `base ^ size` are siblings).
        let free_set: BTreeSet<(u8, u64)> = free.iter().map(|b| (b.size_bits, b.base)).collect();
        for &(size_bits, base) in &free_set {
            prop_assert!(!free_set.contains(&(size_bits, base ^ (1 << size_bits))));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn untyped_matches_buddy_model(
        regions in prop::collection::vec(12u8..=22, 1..4),
        ops in prop::collection::vec(untyped_op(), 1..120),
    ) {
        let mut kernel = FakeKernel::default();
        let mut untyped = UntypedAllocator::new();
        let mut originals = Vec::new();
        let mut total = 0;
        for (i, &size_bits) in regions.iter().enumerate() {
            let base = (i as u64 + 1) << 24;
            let handle = kernel.add_root(base, size_bits);
            let id = untyped.add_region(handle, base, size_bits);
            originals.push(Block { id, handle, base, size_bits });
            total += 1u64 << size_bits;
        }
        let mut live: Vec<Block<u32>> = Vec::new();
        let mut freed: Vec<BlockId> = Vec::new();
        let mut merged_fully = true;
        check_untyped(&untyped, &kernel, &live, total, merged_fully)?;

        for op in ops {
            match op {
                UntypedOp::Allocate(size_bits) => {
                    let best = untyped
                        .free_blocks()
                        .filter(|b| b.size_bits >= size_bits)
                        .min_by_key(|b| (b.size_bits, b.base));
                    let splits = best.map_or(0, |b| u32::from(b.size_bits - size_bits));
                    let will_fail = kernel.fail_after.is_some_and(|n| splits > n);
                    let valid = (12..=47).contains(&size_bits);
                    let before = (untyped.free_bytes(), untyped.allocated_bytes());
                    match untyped.allocate(&mut kernel, size_bits) {
                        Ok(block) => {
                            prop_assert!(valid && !will_fail);
                            prop_assert_eq!(block.size_bits, size_bits);
                            prop_assert_eq!(Some(block.base), best.map(|b| b.base), "best fit");
                            live.push(block);
                        }
                        Err(UntypedError::InvalidSize { size_bits: s }) => {
                            prop_assert!(!valid);
                            prop_assert_eq!(s, size_bits);
                        }
                        Err(UntypedError::OutOfMemory { size_bits: s }) => {
                            prop_assert!(valid && best.is_none());
                            prop_assert_eq!(s, size_bits);
                        }
                        Err(UntypedError::Backend(FakeError::Injected)) => {
                            prop_assert!(valid && will_fail);
                            // The splits of this call were merged back.
                            prop_assert_eq!(before, (untyped.free_bytes(), untyped.allocated_bytes()));
                        }
                        Err(other) => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                UntypedOp::Free(pick) => {
                    if live.is_empty() {
                        continue;
                    }
                    let block = live.swap_remove(pick % live.len());
                    match untyped.free(&mut kernel, block.id) {
                        Ok(()) => {}
                        Err(UntypedError::Backend(FakeError::Injected)) => merged_fully = false,
                        Err(other) => prop_assert!(false, "unexpected {:?}", other),
                    }
                    freed.push(block.id);
                }
                UntypedOp::DoubleFree(pick) => {
                    if freed.is_empty() {
                        continue;
                    }
                    let id = freed[pick % freed.len()];
                    if live.iter().any(|b| b.id == id) {
                        continue; // The same block, allocated again.
                    }
                    let before: Vec<_> = untyped.free_blocks().collect();
                    let result = untyped.free(&mut kernel, id);
                    prop_assert!(
                        result == Err(UntypedError::UnknownBlock(id))
                            || result == Err(UntypedError::NotAllocated(id)),
                        "double free gave {:?}", result
                    );
                    prop_assert_eq!(before, untyped.free_blocks().collect::<Vec<_>>());
                }
                UntypedOp::FailAfter(calls) => kernel.fail_after = Some(calls),
                UntypedOp::Coalesce => {
                    merged_fully = untyped.coalesce(&mut kernel).is_ok();
                }
            }
            check_untyped(&untyped, &kernel, &live, total, merged_fully)?;
        }

        // Free everything: back to the original regions, the kernel without children.
        kernel.fail_after = None;
        for block in live.drain(..) {
            prop_assert_eq!(untyped.free(&mut kernel, block.id), Ok(()));
        }
        prop_assert_eq!(untyped.coalesce(&mut kernel), Ok(()));
        check_untyped(&untyped, &kernel, &live, total, true)?;
        let mut free: Vec<_> = untyped.free_blocks().collect();
        free.sort_by_key(|b| b.base);
        prop_assert_eq!(free, originals.clone());
        prop_assert_eq!(kernel.caps.len(), originals.len());
        prop_assert_eq!(untyped.allocated_bytes(), 0);
        for original in &originals {
            prop_assert_eq!(untyped.block(original.id), Some(*original));
        }
    }
}

// ---------------------------------------------------------------------------------
// Slot allocator against a set of allocated slots.

#[derive(Clone, Debug)]
enum SlotOp {
    Allocate,
    AllocateRange(u64),
    Free(u64),
    FreeRange(u64, u64),
}

fn slot_op() -> impl Strategy<Value = SlotOp> {
    prop_oneof![
        4 => Just(SlotOp::Allocate),
        2 => (0u64..80).prop_map(SlotOp::AllocateRange),
        3 => (0u64..310).prop_map(SlotOp::Free),
        1 => (0u64..310, 0u64..20).prop_map(|(at, count)| SlotOp::FreeRange(at, count)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slots_match_set(
        first in 0u64..200,
        len in 0u64..300,
        ops in prop::collection::vec(slot_op(), 1..200),
    ) {
        let end = first + len;
        let mut slots = SlotAllocator::new(first, end);
        let mut model = BTreeSet::new();
        let is_free = |model: &BTreeSet<u64>, slot: u64| !model.contains(&slot);
        for op in ops {
            match op {
                SlotOp::Allocate => {
                    let expected = (first..end)
                        .find(|&s| is_free(&model, s))
                        .ok_or(SlotError::OutOfSlots);
                    prop_assert_eq!(slots.allocate(), expected);
                    if let Ok(slot) = expected {
                        model.insert(slot);
                    }
                }
                SlotOp::AllocateRange(count) => {
                    let expected = if count == 0 {
                        Err(SlotError::ZeroCount)
                    } else {
                        (first..end)
                            .find(|&s| s + count <= end && (s..s + count).all(|x| is_free(&model, x)))
                            .ok_or(SlotError::OutOfSlots)
                    };
                    prop_assert_eq!(slots.allocate_range(count), expected);
                    if let Ok(start) = expected {
                        model.extend(start..start + count);
                    }
                }
                SlotOp::Free(at) => {
                    let slot = (first + at).saturating_sub(3);
                    let expected = if model.remove(&slot) {
                        Ok(())
                    } else {
                        Err(SlotError::NotAllocated(slot))
                    };
                    prop_assert_eq!(slots.free(slot), expected);
                }
                SlotOp::FreeRange(at, count) => {
                    let start = (first + at).saturating_sub(3);
                    let expected = match (start..start + count).find(|s| !model.contains(s)) {
                        Some(slot) => Err(SlotError::NotAllocated(slot)),
                        None => Ok(()),
                    };
                    if expected.is_ok() {
                        for slot in start..start + count {
                            model.remove(&slot);
                        }
                    }
                    prop_assert_eq!(slots.free_range(start, count), expected);
                }
            }
            prop_assert_eq!(slots.free_count(), len - model.len() as u64);
            for slot in first.saturating_sub(2)..end + 2 {
                prop_assert_eq!(slots.is_allocated(slot), model.contains(&slot));
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Virtual ranges against a set of taken pages.

#[derive(Clone, Debug)]
enum VirtualOp {
    Allocate { bytes: u64, align: u64 },
    Reserve { page: u64, offset: u64, bytes: u64 },
    FreeLive { pick: usize },
    FreeAny { page: u64, bytes: u64 },
}

fn virtual_op() -> impl Strategy<Value = VirtualOp> {
    let align = prop_oneof![
        8 => (12u32..17).prop_map(|shift| 1u64 << shift),
        1 => Just(2048u64),
        1 => Just(3 * 4096u64),
    ];
    prop_oneof![
        4 => (0u64..20 * 4096, align).prop_map(|(bytes, align)| VirtualOp::Allocate { bytes, align }),
        2 => (0u64..90, prop_oneof![9 => Just(0u64), 1 => 1u64..4096], 0u64..12 * 4096)
            .prop_map(|(page, offset, bytes)| VirtualOp::Reserve { page, offset, bytes }),
        3 => any::<usize>().prop_map(|pick| VirtualOp::FreeLive { pick }),
        1 => (0u64..90, 0u64..8 * 4096).prop_map(|(page, bytes)| VirtualOp::FreeAny { page, bytes }),
    ]
}

fn pages_of(base: u64, size: u64) -> impl Iterator<Item = u64> {
    (base / PAGE_BYTES)..(base + size) / PAGE_BYTES
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn vspace_matches_pages(
        start_page in 0u64..16,
        page_count in 0u64..64,
        ops in prop::collection::vec(virtual_op(), 1..120),
    ) {
        let (start, end) = (start_page * PAGE_BYTES, (start_page + page_count) * PAGE_BYTES);
        let mut space = VirtualRanges::new(start, end);
        let mut taken: BTreeSet<u64> = BTreeSet::new();
        let mut ranges: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // base -> (bytes, size)
        let round = |bytes: u64| bytes.next_multiple_of(PAGE_BYTES);
        for op in ops {
            match op {
                VirtualOp::Allocate { bytes, align } => {
                    let size = round(bytes);
                    let expected = if size == 0 {
                        Err(VirtualError::ZeroSize)
                    } else if !align.is_power_of_two() || align < PAGE_BYTES {
                        Err(VirtualError::InvalidAlignment { align })
                    } else {
                        (start.next_multiple_of(align)..)
                            .step_by(align as usize)
                            .take_while(|&b| b + size <= end)
                            .find(|&b| pages_of(b, size).all(|p| !taken.contains(&p)))
                            .ok_or(VirtualError::Exhausted { bytes })
                    };
                    prop_assert_eq!(space.allocate(bytes, align), expected);
                    if let Ok(base) = expected {
                        taken.extend(pages_of(base, size));
                        ranges.insert(base, (bytes, size));
                    }
                }
                VirtualOp::Reserve { page, offset, bytes } => {
                    let base = page * PAGE_BYTES + offset;
                    let size = round(bytes);
                    let expected = if size == 0 {
                        Err(VirtualError::ZeroSize)
                    } else if offset != 0 {
                        Err(VirtualError::Misaligned { value: base })
                    } else if base < start || base + size > end {
                        Err(VirtualError::OutOfRange { base, bytes })
                    } else if pages_of(base, size).any(|p| taken.contains(&p)) {
                        Err(VirtualError::Overlap { base, bytes })
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(space.reserve(base, bytes), expected);
                    if expected.is_ok() {
                        taken.extend(pages_of(base, size));
                        ranges.insert(base, (bytes, size));
                    }
                }
                VirtualOp::FreeLive { pick } => {
                    if ranges.is_empty() {
                        continue;
                    }
                    let (&base, &(bytes, size)) = ranges.iter().nth(pick % ranges.len()).unwrap();
                    prop_assert_eq!(space.free(base, bytes), Ok(()));
                    ranges.remove(&base);
                    for page in pages_of(base, size) {
                        taken.remove(&page);
                    }
                }
                VirtualOp::FreeAny { page, bytes } => {
                    let base = page * PAGE_BYTES;
                    let size = round(bytes);
                    let expected = if size == 0 {
                        Err(VirtualError::ZeroSize)
                    } else {
                        match ranges.get(&base) {
                            None => Err(VirtualError::NotAllocated { base }),
                            Some(&(_, allocated_bytes)) if allocated_bytes != size => {
                                Err(VirtualError::WrongSize { base, bytes, allocated_bytes })
                            }
                            Some(_) => Ok(()),
                        }
                    };
                    prop_assert_eq!(space.free(base, bytes), expected);
                    if expected.is_ok() {
                        ranges.remove(&base);
                        for page in pages_of(base, size) {
                            taken.remove(&page);
                        }
                    }
                }
            }
            prop_assert_eq!(space.free_bytes(), end - start - taken.len() as u64 * PAGE_BYTES);
        }
        // Everything freed: one whole range again.
        for (base, (bytes, _)) in std::mem::take(&mut ranges) {
            prop_assert_eq!(space.free(base, bytes), Ok(()));
        }
        prop_assert_eq!(space.free_bytes(), end - start);
        if end > start {
            prop_assert_eq!(space.allocate(end - start, PAGE_BYTES), Ok(start));
        }
    }
}

#[test]
fn size_bits_for_rounds_up() {
    use kaal_broker::untyped::{MAX_SIZE_BITS, size_bits_for};
    assert_eq!(size_bits_for(0), Some(12));
    assert_eq!(size_bits_for(4096), Some(12));
    assert_eq!(size_bits_for(4097), Some(13));
    assert_eq!(size_bits_for(1 << 47), Some(MAX_SIZE_BITS));
    assert_eq!(size_bits_for((1 << 47) + 1), None);
}
