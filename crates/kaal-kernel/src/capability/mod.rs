//! Capabilities: typed, rights-bearing references to kernel objects.
//!
//! This module is the pure core of the object model: it builds and is tested on the
//! host, and knows nothing about where CNodes live. The kernel supplies the slots
//! through [`SlotStore`] (slots inside CNode objects retyped from untyped RAM); the
//! tests use a hash map.
//!
//! ## Slots
//!
//! A [`Capability`] lives in a [`Slot`] of a CNode, named by a [`SlotRef`] (CNode and
//! index). An empty slot holds [`Capability::NULL`]. Every operation validates its
//! arguments first and changes nothing when it fails.
//!
//! ## The derivation tree
//!
//! Each slot also holds its place in the derivation tree: a parent, a first child, and
//! a doubly linked list of siblings, so a capability can be unlinked in O(1) plus the
//! number of its children. Retype makes the new objects' capabilities children of the
//! untyped capability ([`CSpace::retype`], [`CSpace::insert_child`]); copy and mint
//! make the new capability a child of its source ([`CSpace::derive`]); boot-time
//! capabilities are roots ([`CSpace::insert_root`]). Rights only shrink along the tree.
//!
//! Only untyped and IRQ-control capabilities have children that refer to other objects,
//! and those two types cannot be copied ([`ObjectType::is_derivable`]). So below every
//! other capability there are only copies of the same object, and the capabilities to
//! one object always form a run of adjacent siblings (the original or, once it is
//! deleted, the children that took its place) with the subtrees below them. That makes
//! "is this the last capability to the object?" an O(1) question: neither the parent,
//! nor a child, nor the previous or next sibling refers to the same object. [`CSpace::delete`]
//! answers it in [`DeleteOutcome::last_reference`] so the kernel knows when to destroy
//! the object.
//!
//! Deleting a capability keeps its children: they take its place in its parent's list
//! (or become parentless siblings). Revoking deletes all descendants.
//!
//! ## Why revoke is iterative
//!
//! Derivation chains are built by user space (copy of a copy of a copy...), so a tree
//! can be as deep as there are slots. The kernel stack is small and fixed, so
//! [`CSpace::revoke`] never recurses: it walks down first-child links to a leaf,
//! deletes it, steps back to the leaf's parent and repeats, using the tree itself as
//! the stack. Every descendant is visited once, and leaves go first, so each delete is
//! a plain unlink and the last capability to an object is reported exactly once.
//! [`CSpace::revoke_some`] bounds the work per call so the kernel can preempt a long
//! revoke; [`CSpace::revoke_step`] deletes one capability at a time, so the kernel can
//! tear down what each deletion destroys before taking the next.
//!
//! ## Destroying CNodes without kernel memory
//!
//! The last capability to a CNode going means the CNode's slots must be emptied, and
//! each of those deletions may destroy further CNodes, as many and as deeply nested as
//! user space built them. [`DyingCNodes`] keeps the CNodes still to empty as a stack
//! linked through slot 0 of each (a slot no capability ever occupies), so the kernel
//! needs neither recursion nor a heap for it.
//!
//! ## Untyped memory and reset
//!
//! An untyped capability carries an [`UntypedState`]: its region and a watermark.
//! Retype carves naturally aligned objects from the watermark upwards and records them
//! as children. Memory is never returned piecemeal: once the untyped capability has no
//! children (every object made from it has been deleted, typically by revoking the
//! untyped), nothing allocated from it is alive, so the next retype starts again from
//! the base. Before memory is reused the kernel must have destroyed each object whose
//! last capability went away; in particular a CNode's own slots must be emptied (each
//! of their capabilities deleted) before the CNode's memory is released, since those
//! slots are still linked into the tree.

mod cspace;
mod delete;
mod object;
mod retype;
mod rights;
mod untyped;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod teardown_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use cspace::{CSpace, DeleteOutcome, Slot, SlotRef, SlotStore};
pub use delete::DyingCNodes;
pub use object::{
    CNODE_MAX_RADIX, Capability, ObjectType, SLOT_SIZE_BITS, TCB_SIZE_BITS, UNTYPED_MAX_BITS,
    UNTYPED_MIN_BITS, size_bits,
};
pub use rights::Rights;
pub use untyped::{UntypedState, split_into_untyped};

use thiserror::Error;

/// Why a capability operation failed. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CapError {
    /// The slot does not exist (index outside the CNode, or no such CNode).
    #[error("no such capability slot")]
    InvalidSlot,
    /// The slot is empty where a capability was needed.
    #[error("the capability slot is empty")]
    EmptySlot,
    /// The slot holds a capability where an empty slot was needed.
    #[error("the capability slot is occupied")]
    SlotOccupied,
    /// The capability has the wrong type for the operation.
    #[error("wrong object type: expected {expected:?}, found {found:?}")]
    WrongType {
        /// The type the operation needs.
        expected: ObjectType,
        /// The type the capability has.
        found: ObjectType,
    },
    /// The capability lacks a right the operation needs.
    #[error("the capability lacks a needed right")]
    MissingRights,
    /// A badge was asked for a capability that already has one.
    #[error("the capability is already badged")]
    AlreadyBadged,
    /// The operation is not defined for this capability or argument.
    #[error("invalid operation for this capability")]
    InvalidOperation,
    /// The untyped region has not enough room left.
    #[error("not enough untyped memory: {requested} bytes requested, {available} available")]
    NotEnoughMemory {
        /// Bytes the objects need (saturated at `u64::MAX`).
        requested: u64,
        /// Bytes left after aligning the watermark.
        available: u64,
    },
    /// Device memory can only become frames (or smaller device untyped).
    #[error("device memory can only be retyped to frames")]
    DeviceMemoryType,
    /// An object size or CNode radix out of range.
    #[error("invalid object size")]
    InvalidSize,
}
