//! Tests of the capability operations on hand-built trees.

use super::testing::{TestStore, check_invariants, descendants, fails_unchanged, s, with_untyped};
use super::*;
use std::vec::Vec;

fn ep(addr: u64) -> Capability {
    Capability::new(ObjectType::Endpoint, addr, Rights::ALL)
}

#[test]
fn slot_fits_its_size() {
    assert_eq!(core::mem::size_of::<Slot>(), 1 << SLOT_SIZE_BITS);
}

#[test]
fn lookup_and_insert_root() {
    let mut store = TestStore::new(1, 4);
    let mut cs = CSpace::new(&mut store);
    assert_eq!(cs.lookup(s(0)), Err(CapError::EmptySlot));
    assert_eq!(cs.lookup(s(4)), Err(CapError::InvalidSlot));
    assert_eq!(cs.lookup(SlotRef::new(9, 0)), Err(CapError::InvalidSlot));
    cs.insert_root(s(1), ep(0x1000)).unwrap();
    assert_eq!(cs.lookup(s(1)), Ok(ep(0x1000)));
    assert_eq!(cs.has_children(s(1)), Ok(false));
    assert_eq!(cs.has_children(s(0)), Err(CapError::EmptySlot));
    fails_unchanged(&mut store, CapError::SlotOccupied, |cs| {
        cs.insert_root(s(1), ep(0x2000))
    });
    fails_unchanged(&mut store, CapError::InvalidSlot, |cs| {
        cs.insert_root(s(4), ep(0x2000))
    });
    fails_unchanged(&mut store, CapError::InvalidOperation, |cs| {
        cs.insert_root(s(2), Capability::NULL)
    });
    check_invariants(&store);
}

#[test]
fn copy_and_mint() {
    let mut store = TestStore::new(1, 8);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(s(0), ep(0x1000)).unwrap();
    let copy = cs.derive(s(0), s(1), Rights::READ_WRITE, None).unwrap();
    assert_eq!(copy.rights, Rights::READ_WRITE);
    assert_eq!(copy.badge, 0);
    let minted = cs.derive(s(1), s(2), Rights::ALL, Some(42)).unwrap();
    assert_eq!((minted.rights, minted.badge), (Rights::READ_WRITE, 42));
    let recopy = cs.derive(s(2), s(3), Rights::READ, None).unwrap();
    assert_eq!((recopy.rights, recopy.badge), (Rights::READ, 42));
    assert_eq!(cs.store().slots[&s(3)].parent, Some(s(2)));
    assert_eq!(cs.store().slots[&s(2)].parent, Some(s(1)));
    assert!(cs.has_children(s(0)).unwrap());
    check_invariants(&store);

    fails_unchanged(&mut store, CapError::AlreadyBadged, |cs| {
        cs.derive(s(2), s(4), Rights::ALL, Some(7))
    });
    fails_unchanged(&mut store, CapError::SlotOccupied, |cs| {
        cs.derive(s(0), s(2), Rights::ALL, None)
    });
    fails_unchanged(&mut store, CapError::EmptySlot, |cs| {
        cs.derive(s(7), s(4), Rights::ALL, None)
    });
    fails_unchanged(&mut store, CapError::InvalidSlot, |cs| {
        cs.derive(s(0), s(8), Rights::ALL, None)
    });
    fails_unchanged(&mut store, CapError::InvalidSlot, |cs| {
        cs.derive(s(9), s(4), Rights::ALL, None)
    });
}

#[test]
fn derive_rules_per_type() {
    let mut store = with_untyped(8);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(
        s(1),
        Capability::new(ObjectType::IrqControl, 0, Rights::ALL),
    )
    .unwrap();
    let mut frame =
        Capability::new(ObjectType::Frame4K, 0x9000_0000, Rights::ALL).with_extra(0x40_0000);
    // A mapped frame keeps its mapping's tag in `badge`.
    frame.badge = 7;
    cs.insert_root(s(2), frame).unwrap();
    // A frame copy is unmapped, with no mapping tag; frames take no badge.
    let copy = cs.derive(s(2), s(3), Rights::READ, None).unwrap();
    assert_eq!((copy.extra, copy.badge), (0, 0));
    for (from, badge) in [(0, None), (1, None), (2, Some(1))] {
        fails_unchanged(&mut store, CapError::InvalidOperation, |cs| {
            cs.derive(s(from), s(5), Rights::ALL, badge)
        });
    }
    // Minting with badge 0 on an unbadged notification leaves it unbadged.
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(
        s(6),
        Capability::new(ObjectType::Notification, 0x2000, Rights::ALL),
    )
    .unwrap();
    assert_eq!(
        cs.derive(s(6), s(7), Rights::ALL, Some(0)).unwrap().badge,
        0
    );
    check_invariants(&store);
}

#[test]
fn insert_child_rules() {
    let mut store = with_untyped(8);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(
        s(1),
        Capability::new(ObjectType::IrqControl, 0, Rights::ALL),
    )
    .unwrap();
    cs.insert_child(
        s(1),
        s(2),
        Capability::new(ObjectType::IrqHandler, 33, Rights::ALL),
    )
    .unwrap();
    cs.insert_child(s(0), s(3), ep(0x4000_0000)).unwrap();
    fails_unchanged(&mut store, CapError::InvalidOperation, |cs| {
        cs.insert_child(s(3), s(4), ep(0x5000_0000))
    });
    fails_unchanged(&mut store, CapError::InvalidOperation, |cs| {
        let own = cs.lookup(s(0))?;
        cs.insert_child(s(0), s(4), own)
    });
    fails_unchanged(&mut store, CapError::InvalidOperation, |cs| {
        cs.insert_child(s(0), s(4), Capability::NULL)
    });
    fails_unchanged(&mut store, CapError::SlotOccupied, |cs| {
        cs.insert_child(s(0), s(2), ep(1))
    });
    fails_unchanged(&mut store, CapError::EmptySlot, |cs| {
        cs.insert_child(s(5), s(4), ep(1))
    });
    check_invariants(&store);
}

#[test]
fn move_keeps_the_tree() {
    let mut store = TestStore::new(2, 8);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(s(0), ep(0x1000)).unwrap();
    for i in 1..=3 {
        cs.derive(s(0), s(i), Rights::ALL, None).unwrap();
    }
    cs.derive(s(2), s(4), Rights::ALL, None).unwrap();
    cs.derive(s(2), s(5), Rights::ALL, None).unwrap();
    // Middle sibling with children, to another CNode.
    let far = SlotRef::new(1, 7);
    cs.move_cap(s(2), far).unwrap();
    assert_eq!(cs.lookup(s(2)), Err(CapError::EmptySlot));
    assert_eq!(cs.store().slots[&s(4)].parent, Some(far));
    assert_eq!(cs.store().slots[&s(3)].next_sibling, Some(far));
    // First child, then the root itself.
    cs.move_cap(s(3), s(6)).unwrap();
    assert_eq!(cs.store().slots[&s(0)].first_child, Some(s(6)));
    cs.move_cap(s(0), s(7)).unwrap();
    assert_eq!(cs.store().slots[&s(1)].parent, Some(s(7)));
    check_invariants(&store);
    fails_unchanged(&mut store, CapError::SlotOccupied, |cs| {
        cs.move_cap(s(7), s(7))
    });
    fails_unchanged(&mut store, CapError::SlotOccupied, |cs| {
        cs.move_cap(s(7), s(1))
    });
    fails_unchanged(&mut store, CapError::EmptySlot, |cs| {
        cs.move_cap(s(0), s(2))
    });
    fails_unchanged(&mut store, CapError::InvalidSlot, |cs| {
        cs.move_cap(s(7), s(9))
    });
}

#[test]
fn delete_reparents_children_in_place() {
    let mut store = TestStore::new(1, 8);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(s(0), ep(0x1000)).unwrap();
    cs.derive(s(0), s(1), Rights::ALL, None).unwrap(); // will be last sibling
    cs.derive(s(0), s(2), Rights::ALL, None).unwrap(); // middle
    cs.derive(s(0), s(3), Rights::ALL, None).unwrap(); // first
    cs.derive(s(2), s(4), Rights::ALL, None).unwrap();
    cs.derive(s(2), s(5), Rights::ALL, None).unwrap();
    let out = cs.delete(s(2)).unwrap();
    assert_eq!(
        out,
        DeleteOutcome {
            cap: ep(0x1000),
            last_reference: false
        }
    );
    let order: Vec<_> =
        core::iter::successors(Some(s(3)), |&at| cs.store().slots[&at].next_sibling).collect();
    assert_eq!(order, [s(3), s(5), s(4), s(1)]);
    assert!(
        order
            .iter()
            .all(|&at| cs.store().slots[&at].parent == Some(s(0)))
    );
    check_invariants(&store);
    fails_unchanged(&mut store, CapError::EmptySlot, |cs| cs.delete(s(2)));
    fails_unchanged(&mut store, CapError::InvalidSlot, |cs| cs.delete(s(8)));
}

#[test]
fn last_reference_after_deleting_the_original() {
    // Deleting the original makes its copies siblings under the untyped; the last
    // one is found through its neighbours, not only parent and children.
    let mut store = with_untyped(16);
    let mut cs = CSpace::new(&mut store);
    let ep_addr = cs.retype(s(0), ObjectType::Endpoint, 0, s(1), 1).unwrap();
    cs.retype(s(0), ObjectType::Notification, 0, s(2), 1)
        .unwrap();
    cs.derive(s(1), s(3), Rights::ALL, Some(1)).unwrap();
    cs.derive(s(1), s(4), Rights::ALL, Some(2)).unwrap();
    cs.derive(s(4), s(5), Rights::READ, None).unwrap();
    assert!(!cs.delete(s(1)).unwrap().last_reference);
    check_invariants(cs.store());
    assert!(!cs.delete(s(4)).unwrap().last_reference);
    assert!(!cs.delete(s(3)).unwrap().last_reference);
    assert_eq!(cs.is_last_reference(s(5)), Ok(true));
    let out = cs.delete(s(5)).unwrap();
    assert!(out.last_reference);
    assert_eq!(out.cap.object, ep_addr);
    assert_eq!(cs.is_last_reference(s(2)), Ok(true));
    // Parentless copies of a deleted root.
    cs.insert_root(s(6), ep(0x1000)).unwrap();
    cs.derive(s(6), s(7), Rights::ALL, None).unwrap();
    cs.derive(s(6), s(8), Rights::ALL, None).unwrap();
    assert!(!cs.delete(s(6)).unwrap().last_reference);
    assert!(!cs.delete(s(8)).unwrap().last_reference);
    assert!(cs.delete(s(7)).unwrap().last_reference);
    check_invariants(&store);
}

#[test]
fn revoke_deletes_each_descendant_once() {
    let mut store = with_untyped(64);
    let mut cs = CSpace::new(&mut store);
    cs.retype(s(0), ObjectType::Endpoint, 0, s(1), 3).unwrap();
    cs.retype(s(0), ObjectType::Untyped, 12, s(4), 2).unwrap();
    cs.retype(s(4), ObjectType::Frame4K, 0, s(6), 1).unwrap();
    for (to, from) in (10..).zip([1, 2, 10, 11, 3, 1]) {
        cs.derive(s(from), s(to), Rights::ALL, None).unwrap();
    }
    let expected = descendants(cs.store(), s(0));
    assert_eq!(expected.len(), 6 + 6);
    let mut seen = Vec::new();
    let count = cs.revoke(s(0), |o| seen.push(*o)).unwrap();
    assert_eq!(count, expected.len());
    assert_eq!(seen.len(), expected.len());
    // One destruction per object: 3 endpoints, 2 untyped, 1 frame.
    let last: Vec<_> = seen
        .iter()
        .filter(|o| o.last_reference)
        .map(|o| o.cap)
        .collect();
    assert_eq!(last.len(), 6);
    assert!(!cs.has_children(s(0)).unwrap());
    assert!(
        expected
            .iter()
            .all(|&at| cs.lookup(at) == Err(CapError::EmptySlot))
    );
    check_invariants(cs.store());
    // Nothing is alive, so retype starts again from the base.
    assert_eq!(
        cs.retype(s(0), ObjectType::Frame4K, 0, s(1), 1),
        Ok(0x4000_0000)
    );
    assert_eq!(cs.revoke(s(1), |_| panic!("no descendants")), Ok(0));
    fails_unchanged(&mut store, CapError::EmptySlot, |cs| {
        cs.revoke(s(2), |_| {})
    });
}

#[test]
fn revoke_some_makes_bounded_progress() {
    let mut store = TestStore::new(1, 100);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(s(0), ep(0x1000)).unwrap();
    for i in 1..100 {
        cs.derive(s(i / 2), s(i), Rights::ALL, None).unwrap();
    }
    let mut total = 0;
    let mut calls = 0;
    while !cs.revoke_some(s(0), 7, |_| total += 1).unwrap() {
        calls += 1;
        check_invariants(cs.store());
    }
    assert_eq!((total, calls), (99, 99 / 7));
    assert_eq!(cs.revoke_some(s(0), 0, |_| {}), Ok(true));
}

#[test]
fn deep_trees_need_no_recursion() {
    // Deep enough to overflow a recursive walk's stack; under Miri, deep enough to walk.
    const N: u32 = if cfg!(miri) { 200 } else { 20_000 };
    let mut store = TestStore::new(1, N + 2);
    let mut cs = CSpace::new(&mut store);
    cs.insert_root(s(0), ep(0x1000)).unwrap();
    for i in 1..N {
        cs.derive(s(i - 1), s(i), Rights::ALL, None).unwrap();
    }
    check_invariants(cs.store());
    // Delete and move in the middle of the chain.
    assert!(!cs.delete(s(N / 2)).unwrap().last_reference);
    assert_eq!(cs.store().slots[&s(N / 2 + 1)].parent, Some(s(N / 2 - 1)));
    cs.move_cap(s(N / 3), s(N)).unwrap();
    check_invariants(cs.store());
    let mut last = 0;
    let count = cs
        .revoke(s(1), |o| last += usize::from(o.last_reference))
        .unwrap();
    assert_eq!((count, last), (N as usize - 3, 0));
    assert!(!cs.delete(s(0)).unwrap().last_reference);
    assert!(cs.delete(s(1)).unwrap().last_reference);
    check_invariants(&store);
    assert_eq!(store.occupied().count(), 0);
}
