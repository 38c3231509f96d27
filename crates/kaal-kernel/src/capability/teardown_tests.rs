//! Tests of tearing down nested CNodes through [`DyingCNodes`] and of revoking one step
//! at a time, as the kernel does: every deletion's outcome is handled before the next,
//! and the only memory used is the CNodes' own.

use super::testing::{TestStore, check_invariants, s};
use super::*;
use std::vec::Vec;

fn ep(addr: u64) -> Capability {
    Capability::new(ObjectType::Endpoint, addr, Rights::ALL)
}

/// CNode `key` of the test store (its object is the store's key), with `radix`.
fn cnode(key: u64, radix: u8) -> Capability {
    Capability::new(ObjectType::CNode, key, Rights::ALL).with_extra(u64::from(radix))
}

fn untyped(base: u64, bits: u8) -> Capability {
    UntypedState::new(base, bits, false).unwrap().capability()
}

/// What the kernel does with a deletion's outcome: a CNode whose last capability went
/// is pushed, to be emptied; returns how many CNodes it destroyed.
fn handle(cs: &mut CSpace<'_, TestStore>, dying: &mut DyingCNodes, outcome: DeleteOutcome) {
    if outcome.last_reference && outcome.cap.object_type == ObjectType::CNode {
        dying.push(cs, outcome.cap);
    }
}

/// Empties every dying CNode, handling each outcome at once; returns how many CNodes
/// were emptied.
fn empty_dying(cs: &mut CSpace<'_, TestStore>, dying: &mut DyingCNodes) -> usize {
    let mut emptied = 0;
    while let Some(cnode) = dying.pop(cs) {
        emptied += 1;
        for index in 1..1u32 << cnode.extra {
            if let Ok(outcome) = cs.delete(SlotRef::new(cnode.object, index)) {
                handle(cs, dying, outcome);
            }
        }
    }
    emptied
}

#[test]
fn dying_cnodes_are_a_stack_through_slot_zero() {
    let mut store = TestStore::new(4, 4);
    let mut cs = CSpace::new(&mut store);
    let mut dying = DyingCNodes::new();
    assert!(dying.is_empty());
    assert_eq!(dying.pop(&mut cs), None);
    for key in 1..4 {
        dying.push(&mut cs, cnode(key, 2));
    }
    assert!(!dying.is_empty());
    // Each slot 0 names the CNode below it; the bottom one holds nothing.
    assert_eq!(cs.store().slots[&SlotRef::new(3, 0)].cap, cnode(2, 2));
    assert_eq!(cs.store().slots[&SlotRef::new(2, 0)].cap, cnode(1, 2));
    assert_eq!(cs.store().slots[&SlotRef::new(1, 0)].cap, Capability::NULL);
    for key in (1..4).rev() {
        assert_eq!(dying.pop(&mut cs), Some(cnode(key, 2)));
        assert_eq!(cs.store().slots[&SlotRef::new(key, 0)], Slot::EMPTY);
    }
    assert_eq!(dying.pop(&mut cs), None);
    assert_eq!(store, TestStore::new(4, 4));
}

#[test]
fn a_chain_of_nested_cnodes_is_torn_down_in_place() {
    // CNode k (radix 2, slots 1..4) holds the only capability to CNode k + 1 in slot 1,
    // and an endpoint and a copy of it in slots 2 and 3; CNode 0 holds the capability to
    // CNode 1.
    const N: u64 = if cfg!(miri) { 40 } else { 20_000 };
    let mut store = TestStore::new(N + 1, 4);
    let mut cs = CSpace::new(&mut store);
    for key in 0..N {
        cs.insert_root(SlotRef::new(key, 1), cnode(key + 1, 2))
            .unwrap();
        if key > 0 {
            cs.insert_root(SlotRef::new(key, 2), ep(0x1000 + key))
                .unwrap();
            let copy = SlotRef::new(key, 3);
            cs.derive(SlotRef::new(key, 2), copy, Rights::READ, None)
                .unwrap();
        }
    }
    check_invariants(cs.store());
    let mut dying = DyingCNodes::new();
    let outcome = cs.delete(s(1)).unwrap();
    assert!(outcome.last_reference);
    handle(&mut cs, &mut dying, outcome);
    assert_eq!(empty_dying(&mut cs, &mut dying), N as usize);
    assert!(dying.is_empty());
    check_invariants(&store);
    assert_eq!(store.occupied().count(), 0);
    // Every slot 0 is empty again.
    assert_eq!(store, TestStore::new(N + 1, 4));
}

#[test]
fn revoke_steps_delete_leaves_first_like_revoke() {
    let build = || {
        let mut store = TestStore::new(1, 64);
        let mut cs = CSpace::new(&mut store);
        cs.insert_root(s(1), ep(0x1000)).unwrap();
        for i in 2..64 {
            cs.derive(s(i / 2), s(i), Rights::ALL, None).unwrap();
        }
        store
    };
    let mut expected = Vec::new();
    let mut reference = build();
    CSpace::new(&mut reference)
        .revoke(s(1), |o| expected.push(*o))
        .unwrap();
    let mut store = build();
    let mut cs = CSpace::new(&mut store);
    let mut from = s(1);
    let mut got = Vec::new();
    while let Some((outcome, parent)) = cs.revoke_step(s(1), from).unwrap() {
        got.push(outcome);
        from = parent;
    }
    assert_eq!(got, expected);
    assert_eq!(store, reference);
    assert_eq!(
        CSpace::new(&mut store).revoke_step(s(1), s(5)),
        Err(CapError::EmptySlot)
    );
}

#[test]
fn a_revoke_goes_on_when_teardown_empties_its_next_start() {
    // Untyped A (CNode 0, slot 1) has a child untyped B that lives in CNode 1, and B a
    // child: the only capability to CNode 1 (CNode 0, slot 2). Deleting that leaf
    // destroys CNode 1 and so deletes B, where the next step would have started.
    let mut store = TestStore::new(2, 4);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(s(1), untyped(0x4000_0000, 20)).unwrap();
    let b = SlotRef::new(1, 1);
    cs.insert_child(s(1), b, untyped(0x4000_0000, 16)).unwrap();
    cs.insert_child(b, s(2), cnode(1, 2)).unwrap();
    cs.insert_root(SlotRef::new(1, 2), ep(0x1000)).unwrap();
    check_invariants(cs.store());
    let mut dying = DyingCNodes::new();
    let mut from = s(1);
    let mut deleted = 0;
    while let Some((outcome, parent)) = cs.revoke_step(s(1), from).unwrap() {
        deleted += 1;
        handle(&mut cs, &mut dying, outcome);
        empty_dying(&mut cs, &mut dying);
        from = if cs.lookup(parent).is_ok() {
            parent
        } else {
            s(1)
        };
    }
    assert_eq!(deleted, 1);
    check_invariants(&store);
    let left: Vec<_> = store.occupied().map(|(at, _)| *at).collect();
    assert_eq!(left, [s(1)]);
}
