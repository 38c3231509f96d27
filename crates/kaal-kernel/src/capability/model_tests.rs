//! Randomized test: long random operation sequences against a plain model of the
//! slot contents, checking the tree invariants after every step.

use super::testing::{TestStore, check_invariants, descendants, object_range};
use super::*;
use std::collections::{HashMap, HashSet};
use std::vec::Vec;

/// xorshift64*: small, deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CNODES: u64 = 2;
const SLOTS: u32 = 48;

/// The model: what each slot should hold.
type Model = HashMap<SlotRef, Capability>;

struct Run {
    rng: Rng,
    store: TestStore,
    model: Model,
    next_root: u64,
}

impl Run {
    fn new(seed: u64) -> Self {
        let mut store = TestStore::new(CNODES, SLOTS);
        let mut cs = CSpace::new(&mut store);
        let untyped = UntypedState::new(0x4000_0000, 20, false)
            .unwrap()
            .capability();
        let irq = Capability::new(ObjectType::IrqControl, 0, Rights::ALL);
        cs.insert_root(SlotRef::new(0, 0), untyped).unwrap();
        cs.insert_root(SlotRef::new(0, 1), irq).unwrap();
        let model = store
            .slots
            .iter()
            .map(|(&at, slot)| (at, slot.cap))
            .collect();
        Self {
            rng: Rng(seed | 1),
            store,
            model,
            next_root: 0,
        }
    }

    /// A slot, now and then one that does not exist.
    fn slot(&mut self) -> SlotRef {
        if self.rng.chance(3) {
            return SlotRef::new(CNODES + self.rng.below(2), 0);
        }
        SlotRef::new(
            self.rng.below(CNODES),
            self.rng.below(u64::from(SLOTS) + 1) as u32,
        )
    }

    /// Prefers occupied slots, so most operations get past validation.
    fn source(&mut self) -> SlotRef {
        let occupied: Vec<_> = self
            .model
            .iter()
            .filter(|(_, c)| !c.is_null())
            .map(|(&s, _)| s)
            .collect();
        if occupied.is_empty() || self.rng.chance(10) {
            return self.slot();
        }
        let mut sorted = occupied;
        sorted.sort();
        sorted[self.rng.below(sorted.len() as u64) as usize]
    }

    /// Mostly an occupied slot holding a capability of type `ty`.
    fn source_of(&mut self, ty: ObjectType) -> SlotRef {
        let mut of_type: Vec<_> = self
            .model
            .iter()
            .filter(|(_, c)| c.object_type == ty)
            .map(|(&s, _)| s)
            .collect();
        if of_type.is_empty() || self.rng.chance(10) {
            return self.source();
        }
        of_type.sort();
        of_type[self.rng.below(of_type.len() as u64) as usize]
    }

    /// Mostly an empty slot.
    fn destination(&mut self) -> SlotRef {
        for _ in 0..8 {
            let at = self.slot();
            if self.model.get(&at).is_some_and(Capability::is_null) {
                return at;
            }
        }
        self.slot()
    }

    fn model_get(&self, at: SlotRef) -> Result<Capability, CapError> {
        match self.model.get(&at) {
            None => Err(CapError::InvalidSlot),
            Some(c) if c.is_null() => Err(CapError::EmptySlot),
            Some(c) => Ok(*c),
        }
    }

    /// How many other slots hold a capability to `cap`'s object.
    fn others(&self, at: SlotRef, cap: &Capability) -> usize {
        self.model
            .iter()
            .filter(|(s, c)| **s != at && c.same_object(cap))
            .count()
    }

    fn step(&mut self) {
        let before = self.store.clone();
        let result: Result<(), CapError> = match self.rng.below(100) {
            0..=19 => self.retype(),
            20..=49 => self.derive(),
            50..=59 => self.move_cap(),
            60..=79 => self.delete(),
            80..=87 => self.revoke(),
            88..=93 => self.issue_irq(),
            _ => self.root(),
        };
        if result.is_err() {
            assert_eq!(
                self.store, before,
                "a failed operation changed the store: {result:?}"
            );
        }
        self.check();
    }

    fn retype(&mut self) -> Result<(), CapError> {
        let untyped = self.source_of(ObjectType::Untyped);
        let (ty, bits) = match self.rng.below(7) {
            0 => (ObjectType::Endpoint, 0),
            1 => (ObjectType::Notification, 0),
            2 => (ObjectType::Tcb, 0),
            3 => (ObjectType::Frame4K, 0),
            4 => (ObjectType::CNode, 1 + self.rng.below(3) as u8),
            5 => (ObjectType::Untyped, 12 + self.rng.below(4) as u8),
            _ => (ObjectType::AddressSpace, 0),
        };
        let count = 1 + self.rng.below(3) as u32;
        let first = self.destination();
        let mut cs = CSpace::new(&mut self.store);
        let base = cs.retype(untyped, ty, bits, first, count)?;
        let size = size_bits(ty, bits).unwrap();
        for i in 0..count {
            let at = SlotRef::new(first.cnode, first.index + i);
            let cap = cs.lookup(at).unwrap();
            assert_eq!(
                (cap.object_type, cap.object, cap.rights),
                (ty, base + (u64::from(i) << size), Rights::ALL)
            );
            assert_eq!(cap.object % (1 << size), 0, "misaligned object");
            assert_eq!(self.model.insert(at, cap), Some(Capability::NULL));
        }
        self.model.insert(untyped, cs.lookup(untyped).unwrap());
        Ok(())
    }

    fn derive(&mut self) -> Result<(), CapError> {
        let (from, to) = (self.source(), self.destination());
        let rights = Rights::from_bits(self.rng.below(8)).unwrap();
        let badge = self.rng.chance(40).then(|| self.rng.below(4));
        let src = self.model_get(from);
        let result = CSpace::new(&mut self.store).derive(from, to, rights, badge);
        let src = src?;
        let Ok(cap) = result else {
            let err = result.unwrap_err();
            let expected_failure = !src.object_type.is_derivable()
                || self.model_get(to) != Err(CapError::EmptySlot)
                || badge.is_some() && (!src.object_type.is_badgeable() || src.badge != 0);
            assert!(expected_failure, "derive failed unexpectedly: {err:?}");
            return Err(err);
        };
        assert!(
            src.rights.contains(cap.rights) && rights.contains(cap.rights),
            "rights grew"
        );
        assert_eq!(cap.rights, src.rights.intersection(rights));
        assert!(cap.same_object(&src));
        assert_eq!(cap.badge, badge.unwrap_or(src.badge));
        assert!(badge.is_none() || src.badge == 0, "re-badged");
        assert_eq!(self.model.insert(to, cap), Some(Capability::NULL));
        Ok(())
    }

    fn move_cap(&mut self) -> Result<(), CapError> {
        let (from, to) = (self.source(), self.destination());
        CSpace::new(&mut self.store).move_cap(from, to)?;
        let cap = self.model.insert(from, Capability::NULL).unwrap();
        assert_eq!(self.model.insert(to, cap), Some(Capability::NULL));
        Ok(())
    }

    fn delete(&mut self) -> Result<(), CapError> {
        let at = self.source();
        let outcome = CSpace::new(&mut self.store).delete(at)?;
        let cap = self.model.insert(at, Capability::NULL).unwrap();
        assert_eq!(outcome.cap, cap);
        assert_eq!(
            outcome.last_reference,
            self.others(at, &cap) == 0,
            "last reference of {cap:?}"
        );
        Ok(())
    }

    fn revoke(&mut self) -> Result<(), CapError> {
        let at = self.source();
        self.model_get(at)?;
        let doomed = descendants(&self.store, at);
        let mut outcomes = Vec::new();
        let mut cs = CSpace::new(&mut self.store);
        if self.rng.chance(50) {
            assert_eq!(cs.revoke(at, |o| outcomes.push(*o))?, doomed.len());
        } else {
            while !cs.revoke_some(at, 1 + self.rng.below(3) as usize, |o| outcomes.push(*o))? {}
        }
        assert!(!cs.has_children(at).unwrap());
        assert_eq!(outcomes.len(), doomed.len(), "on_delete calls");
        let mut removed: Vec<Capability> = doomed
            .iter()
            .map(|s| self.model.insert(*s, Capability::NULL).unwrap())
            .collect();
        let mut reported: Vec<Capability> = outcomes.iter().map(|o| o.cap).collect();
        removed.sort_by_key(|c| (c.object_type, c.object, c.badge, c.rights.bits(), c.extra));
        reported.sort_by_key(|c| (c.object_type, c.object, c.badge, c.rights.bits(), c.extra));
        assert_eq!(removed, reported);
        // One destruction for each object that has no capability left.
        let mut objects: HashSet<(ObjectType, u64, u64)> = HashSet::new();
        for o in &outcomes {
            let key = (
                o.cap.object_type,
                o.cap.object,
                object_range(&o.cap).map_or(0, |r| r.1),
            );
            let survives = self.model.values().any(|c| c.same_object(&o.cap));
            if o.last_reference {
                assert!(
                    !survives && objects.insert(key),
                    "destroyed twice or too early: {o:?}"
                );
            }
        }
        let gone = outcomes
            .iter()
            .filter(|o| !self.model.values().any(|c| c.same_object(&o.cap)));
        assert_eq!(
            gone.map(|o| (
                o.cap.object_type,
                o.cap.object,
                object_range(&o.cap).map_or(0, |r| r.1)
            ))
            .collect::<HashSet<_>>(),
            objects
        );
        Ok(())
    }

    fn issue_irq(&mut self) -> Result<(), CapError> {
        let irq = self.rng.below(64);
        let handler = Capability::new(ObjectType::IrqHandler, irq, Rights::ALL);
        if self.model.values().any(|c| c.same_object(&handler)) {
            return Ok(()); // the kernel issues each line once
        }
        let (parent, to) = (self.source_of(ObjectType::IrqControl), self.destination());
        CSpace::new(&mut self.store).insert_child(parent, to, handler)?;
        assert_eq!(
            self.model_get(parent).unwrap().object_type,
            ObjectType::IrqControl
        );
        assert_eq!(self.model.insert(to, handler), Some(Capability::NULL));
        Ok(())
    }

    fn root(&mut self) -> Result<(), CapError> {
        self.next_root += 1;
        let cap = if self.rng.chance(50) {
            Capability::new(
                ObjectType::Notification,
                0x9000_0000 + self.next_root * 32,
                Rights::ALL,
            )
        } else {
            let base = 0x1_0000_0000 + (self.next_root << 20);
            UntypedState::new(base, 20, self.rng.chance(20))
                .unwrap()
                .capability()
        };
        let at = self.destination();
        CSpace::new(&mut self.store).insert_root(at, cap)?;
        assert_eq!(self.model.insert(at, cap), Some(Capability::NULL));
        Ok(())
    }

    fn check(&self) {
        check_invariants(&self.store);
        for (at, slot) in &self.store.slots {
            assert_eq!(self.model[at], slot.cap, "slot {at:?}");
        }
        // Distinct live objects never share memory unless one is an untyped it was
        // made from.
        let mut live: Vec<(SlotRef, Capability, (u64, u64))> = self
            .store
            .occupied()
            .filter_map(|(&at, s)| object_range(&s.cap).map(|r| (at, s.cap, r)))
            .collect();
        live.sort_by_key(|l| l.2);
        let inside =
            |outer: &(u64, u64), inner: &(u64, u64)| outer.0 <= inner.0 && inner.1 <= outer.1;
        for (i, (a, ca, ra)) in live.iter().enumerate() {
            // Sorted by start: only the following entries that start before `ra` ends.
            for (b, cb, rb) in live[i + 1..].iter().take_while(|l| l.2.0 < ra.1) {
                if ca.same_object(cb) {
                    continue;
                }
                let ok = (ca.object_type == ObjectType::Untyped
                    && inside(ra, rb)
                    && self.is_ancestor(*b, ca))
                    || (cb.object_type == ObjectType::Untyped
                        && inside(rb, ra)
                        && self.is_ancestor(*a, cb));
                assert!(ok, "{ca:?} at {a:?} overlaps {cb:?} at {b:?}");
            }
        }
    }

    /// Whether some ancestor of `below` refers to the untyped `untyped`.
    fn is_ancestor(&self, below: SlotRef, untyped: &Capability) -> bool {
        let mut p = self.store.slots[&below].parent;
        while let Some(at) = p {
            if self.store.slots[&at].cap.same_object(untyped) {
                return true;
            }
            p = self.store.slots[&at].parent;
        }
        false
    }
}

#[test]
fn random_operation_sequences_keep_the_invariants() {
    // Under Miri (a step and its checks take a second or more) one short walk.
    let (seeds, steps) = if cfg!(miri) { (1, 40) } else { (100u64, 300) };
    for seed in 1..=seeds {
        let mut run = Run::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for _ in 0..steps {
            run.step();
        }
    }
}
