//! Test support: a hash-map slot store and a full check of the tree invariants.

use super::{
    CSpace, CapError, Capability, ObjectType, Slot, SlotRef, SlotStore, UntypedState, size_bits,
    untyped,
};
use std::collections::{HashMap, HashSet};
use std::vec::Vec;

/// Slots of a few CNodes in a hash map; a missing key is a missing slot.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TestStore {
    pub slots: HashMap<SlotRef, Slot>,
}

impl TestStore {
    /// CNodes `0..cnodes`, each with `slots` empty slots.
    pub fn new(cnodes: u64, slots: u32) -> Self {
        let mut s = Self::default();
        for c in 0..cnodes {
            for i in 0..slots {
                s.slots.insert(SlotRef::new(c, i), Slot::EMPTY);
            }
        }
        s
    }

    /// The occupied slots.
    pub fn occupied(&self) -> impl Iterator<Item = (&SlotRef, &Slot)> {
        self.slots.iter().filter(|(_, s)| !s.cap.is_null())
    }
}

impl SlotStore for TestStore {
    fn slot(&self, at: SlotRef) -> Option<&Slot> {
        self.slots.get(&at)
    }
    fn slot_mut(&mut self, at: SlotRef) -> Option<&mut Slot> {
        self.slots.get_mut(&at)
    }
}

/// Shorthand for slot `i` of CNode 0.
pub fn s(i: u32) -> SlotRef {
    SlotRef::new(0, i)
}

/// A store with an untyped of 1 MiB at 1 GiB in slot 0 of a CNode with `slots` slots.
pub fn with_untyped(slots: u32) -> TestStore {
    let mut store = TestStore::new(1, slots);
    let u = UntypedState::new(0x4000_0000, 20, false).unwrap();
    CSpace::new(&mut store)
        .insert_root(s(0), u.capability())
        .unwrap();
    store
}

/// Runs `op` and checks that it failed with `err` and changed nothing.
#[track_caller]
pub fn fails_unchanged<T: core::fmt::Debug>(
    store: &mut TestStore,
    err: CapError,
    op: impl FnOnce(&mut CSpace<'_, TestStore>) -> Result<T, CapError>,
) {
    let before = store.clone();
    let result = op(&mut CSpace::new(store));
    assert_eq!(result.unwrap_err(), err);
    assert_eq!(*store, before);
}

/// The memory an object occupies, `[start, end)`, or `None` for IRQ objects.
pub fn object_range(cap: &Capability) -> Option<(u64, u64)> {
    let user = match cap.object_type {
        ObjectType::Untyped => untyped::extra_size_bits(cap.extra),
        ObjectType::CNode => cap.extra as u8,
        _ => 0,
    };
    let bits = size_bits(cap.object_type, user).ok()?;
    Some((cap.object, cap.object + (1 << bits)))
}

/// The slots in the subtree below `at` (not `at`), found without recursion.
pub fn descendants(store: &TestStore, at: SlotRef) -> HashSet<SlotRef> {
    let mut out = HashSet::new();
    let mut stack: Vec<SlotRef> = store.slots[&at].first_child.into_iter().collect();
    while let Some(n) = stack.pop() {
        assert!(out.insert(n), "{n:?} reached twice below {at:?}");
        let slot = &store.slots[&n];
        stack.extend(slot.first_child);
        stack.extend(slot.next_sibling);
    }
    out
}

/// Panics unless every structural invariant of the derivation tree holds.
pub fn check_invariants(store: &TestStore) {
    let get = |r: SlotRef| -> &Slot {
        let slot = store
            .slots
            .get(&r)
            .unwrap_or_else(|| panic!("link to missing {r:?}"));
        assert!(!slot.cap.is_null(), "link to empty {r:?}");
        slot
    };
    let mut heads = Vec::new();
    for (&at, slot) in &store.slots {
        if slot.cap.is_null() {
            assert_eq!(*slot, Slot::EMPTY, "empty slot {at:?} has links");
            continue;
        }
        if let Some(p) = slot.parent {
            assert_ne!(p, at);
            let parent = get(p);
            if slot.prev_sibling.is_none() {
                assert_eq!(
                    parent.first_child,
                    Some(at),
                    "{at:?} heads a list its parent lost"
                );
            }
            // Below a derivable capability there are only copies; below untyped and
            // IRQ control, only other objects.
            assert_eq!(
                parent.cap.same_object(&slot.cap),
                !parent.cap.object_type.issues_children(),
                "{at:?} under {p:?}"
            );
            if parent.cap.same_object(&slot.cap) {
                assert!(
                    parent.cap.rights.contains(slot.cap.rights),
                    "rights grew at {at:?}"
                );
                // (A frame's `badge` is its mapping's tag, which copies do not take.)
                if parent.cap.badge != 0 && parent.cap.object_type.is_badgeable() {
                    assert_eq!(parent.cap.badge, slot.cap.badge, "badge changed at {at:?}");
                }
            }
        } else if slot.prev_sibling.is_none() {
            heads.push(at);
        }
        if let Some(prev) = slot.prev_sibling {
            let prev_slot = get(prev);
            assert_eq!(
                prev_slot.next_sibling,
                Some(at),
                "asymmetric siblings at {at:?}"
            );
            assert_eq!(prev_slot.parent, slot.parent, "sibling {prev:?} of {at:?}");
        }
        if let Some(next) = slot.next_sibling {
            let next_slot = get(next);
            assert_eq!(
                next_slot.prev_sibling,
                Some(at),
                "asymmetric siblings at {at:?}"
            );
            assert_eq!(next_slot.parent, slot.parent, "sibling {next:?} of {at:?}");
        }
        if let Some(c) = slot.first_child {
            let child = get(c);
            assert_eq!(child.parent, Some(at));
            assert_eq!(child.prev_sibling, None);
        }
    }
    // Every capability is reached exactly once from the parentless lists: a forest.
    let mut seen = HashSet::new();
    let mut stack = heads;
    while let Some(n) = stack.pop() {
        assert!(seen.insert(n), "cycle or shared node at {n:?}");
        let slot = get(n);
        stack.extend(slot.first_child);
        stack.extend(slot.next_sibling);
    }
    assert_eq!(
        seen.len(),
        store.occupied().count(),
        "unreachable capabilities"
    );
    // The capabilities to one object: the topmost ones form one run of siblings.
    let mut tops: HashMap<(ObjectType, u64, u64), Vec<SlotRef>> = HashMap::new();
    for (&at, slot) in store.occupied() {
        let top = slot
            .parent
            .is_none_or(|p| !get(p).cap.same_object(&slot.cap));
        if top {
            let size = object_range(&slot.cap).map_or(0, |r| r.1);
            tops.entry((slot.cap.object_type, slot.cap.object, size))
                .or_default()
                .push(at);
        }
    }
    for (key, members) in tops {
        let start = members
            .iter()
            .copied()
            .find(|&m| {
                get(m)
                    .prev_sibling
                    .is_none_or(|p| !get(p).cap.same_object(&get(m).cap))
            })
            .unwrap_or_else(|| panic!("no start of run for {key:?}"));
        let (mut run, mut at) = (1, start);
        while let Some(next) = get(at)
            .next_sibling
            .filter(|&n| get(n).cap.same_object(&get(at).cap))
        {
            run += 1;
            at = next;
        }
        assert_eq!(
            run,
            members.len(),
            "capabilities to {key:?} are not one run"
        );
    }
}
