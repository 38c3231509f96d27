//! Best-fit buddy allocator over kernel untyped memory.
//!
//! An untyped capability covers a naturally aligned region of `2^size_bits` bytes.
//! Retyping it into two untyped children of `size_bits - 1` splits it; revoking it
//! deletes the children and makes it whole again. [`UntypedAllocator`] keeps the tree
//! of such splits and asks an [`UntypedBackend`] to perform the kernel operations, so
//! the bookkeeping is host-testable.

use alloc::collections::{BTreeMap, BTreeSet};
use core::fmt;

/// Smallest block the allocator hands out: a 4 KiB page.
pub const MIN_SIZE_BITS: u8 = 12;
/// Largest block the allocator hands out (128 TiB).
pub const MAX_SIZE_BITS: u8 = 47;

/// The smallest block size (`size_bits`) that holds `bytes`: a power of two, at least
/// [`MIN_SIZE_BITS`]; `None` above [`MAX_SIZE_BITS`].
///
/// ```
/// use kaal_broker::untyped::size_bits_for;
/// assert_eq!(size_bits_for(1), Some(12));
/// assert_eq!(size_bits_for(0x2001), Some(14));
/// assert_eq!(size_bits_for(u64::MAX), None);
/// ```
pub fn size_bits_for(bytes: u64) -> Option<u8> {
    let size_bits = bytes.checked_next_power_of_two()?.trailing_zeros();
    let size_bits = u8::try_from(size_bits).ok()?.max(MIN_SIZE_BITS);
    (size_bits <= MAX_SIZE_BITS).then_some(size_bits)
}

/// The kernel operations behind an [`UntypedAllocator`].
pub trait UntypedBackend {
    /// Names an untyped capability (for example its CSpace slot).
    type Handle: Copy + fmt::Debug + PartialEq;
    /// Why an operation failed.
    type Error: fmt::Debug;
    /// Retypes `parent` (a free, childless block) into two untyped halves of
    /// `child_size_bits`; returns the lower and upper half.
    fn split(
        &mut self,
        parent: Self::Handle,
        child_size_bits: u8,
    ) -> Result<[Self::Handle; 2], Self::Error>;
    /// Revokes `parent`: both halves (already free and childless) disappear and `parent`
    /// is whole again.
    fn merge(&mut self, parent: Self::Handle, halves: [Self::Handle; 2])
    -> Result<(), Self::Error>;
}

/// Stable identifier of a block of an [`UntypedAllocator`].
///
/// It names the block (a range of memory in the split tree), not one allocation: a
/// freed block that was not merged keeps its id and may be allocated again under it.
/// A merged-away block's id is not reused for the next 2^32 blocks created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(u32);

/// A block of untyped memory: `2^size_bits` bytes at `base`, naturally aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<H> {
    /// Identifies the block in its allocator.
    pub id: BlockId,
    /// The backend's handle (capability) for the block.
    pub handle: H,
    /// Physical base address.
    pub base: u64,
    /// log2 of the size in bytes.
    pub size_bits: u8,
}

impl<H> Block<H> {
    /// Size of the block in bytes.
    pub fn bytes(&self) -> u64 {
        1u64 << self.size_bits
    }
}

/// Why an [`UntypedAllocator`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UntypedError<E> {
    /// The size is outside [`MIN_SIZE_BITS`]..=[`MAX_SIZE_BITS`].
    #[error("untyped size 2^{size_bits} is outside 2^{MIN_SIZE_BITS}..=2^{MAX_SIZE_BITS}")]
    InvalidSize {
        /// The size asked for.
        size_bits: u8,
    },
    /// No free block is that large.
    #[error("out of untyped memory for a block of 2^{size_bits} bytes")]
    OutOfMemory {
        /// The size asked for.
        size_bits: u8,
    },
    /// No such block (never existed, or merged into its parent).
    #[error("unknown untyped block {0:?}")]
    UnknownBlock(BlockId),
    /// The block is free or split, not allocated.
    #[error("untyped block {0:?} is not allocated")]
    NotAllocated(BlockId),
    /// The backend failed; see the method for the state left behind.
    #[error("untyped backend error: {0:?}")]
    Backend(E),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Allocated,
    Split([BlockId; 2]),
}

#[derive(Clone, Copy, Debug)]
struct Node<H> {
    handle: H,
    base: u64,
    size_bits: u8,
    parent: Option<BlockId>,
    state: State,
}

/// Best-fit buddy allocator over untyped capabilities.
///
/// Blocks are free, allocated, or split into two halves. [`allocate`](Self::allocate)
/// takes the smallest free block that fits (lowest address first) and splits it down,
/// keeping the lower half and leaving the upper halves free;
/// [`free`](Self::free) merges a block with its buddy as long as the buddy is free.
///
/// ```
/// use kaal_broker::untyped::{UntypedAllocator, UntypedBackend};
///
/// /// Hands out handles 1, 2, 3, ... and never fails.
/// struct Counter(u32);
/// impl UntypedBackend for Counter {
///     type Handle = u32;
///     type Error = ();
///     fn split(&mut self, _: u32, _: u8) -> Result<[u32; 2], ()> {
///         self.0 += 2;
///         Ok([self.0 - 1, self.0])
///     }
///     fn merge(&mut self, _: u32, _: [u32; 2]) -> Result<(), ()> {
///         Ok(())
///     }
/// }
///
/// let mut backend = Counter(100);
/// let mut untyped = UntypedAllocator::new();
/// let region = untyped.add_region(7, 0x4000_0000, 20); // 1 MiB
/// let page = untyped.allocate(&mut backend, 12)?;
/// assert_eq!((page.base, page.size_bits), (0x4000_0000, 12));
/// assert_eq!(untyped.allocated_bytes(), 4096);
/// assert_eq!(untyped.largest_free_size_bits(), Some(19));
/// untyped.free(&mut backend, page.id)?;
/// assert_eq!(untyped.free_bytes(), 1 << 20);
/// assert_eq!(untyped.block(region).map(|b| b.handle), Some(7));
/// # Ok::<(), kaal_broker::untyped::UntypedError<()>>(())
/// ```
#[derive(Clone, Debug)]
pub struct UntypedAllocator<H> {
    nodes: BTreeMap<BlockId, Node<H>>,
    /// Free blocks ordered by (size, base): the first at or above a size is the best fit.
    free: BTreeSet<(u8, u64, BlockId)>,
    next_id: u32,
    free_bytes: u64,
    allocated_bytes: u64,
}

impl<H: Copy + fmt::Debug + PartialEq> Default for UntypedAllocator<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Copy + fmt::Debug + PartialEq> UntypedAllocator<H> {
    /// How many blocks were made by splitting (each holds a capability of its own in
    /// the backend; boot regions do not count).
    pub fn split_blocks(&self) -> usize {
        self.nodes
            .values()
            .filter(|node| node.parent.is_some())
            .count()
    }

    /// An allocator without memory.
    pub fn new() -> Self {
        Self {
            nodes: BTreeMap::new(),
            free: BTreeSet::new(),
            next_id: 0,
            free_bytes: 0,
            allocated_bytes: 0,
        }
    }

    /// Adds a whole free boot region: the untyped capability `handle` covering
    /// `2^size_bits` bytes at `base`.
    ///
    /// The region must be naturally aligned, childless and not overlap another region;
    /// `size_bits` must be below 64.
    pub fn add_region(&mut self, handle: H, base: u64, size_bits: u8) -> BlockId {
        debug_assert!(size_bits < 64, "untyped region of 2^{size_bits} bytes");
        debug_assert!(
            base.trailing_zeros() >= u32::from(size_bits),
            "untyped region at {base:#x} not aligned to 2^{size_bits}"
        );
        let id = self.insert(Node {
            handle,
            base,
            size_bits,
            parent: None,
            state: State::Free,
        });
        self.free_bytes += 1u64 << size_bits;
        id
    }

    /// Allocates a block of `2^size_bits` bytes: the smallest free block that fits,
    /// split down as needed.
    ///
    /// # Errors
    ///
    /// [`UntypedError::InvalidSize`], [`UntypedError::OutOfMemory`], or
    /// [`UntypedError::Backend`] if a split failed. The splits done by this call are
    /// then merged back (best effort; halves left over by a failed merge stay free and
    /// consistent, see [`coalesce`](Self::coalesce)).
    pub fn allocate<B: UntypedBackend<Handle = H>>(
        &mut self,
        backend: &mut B,
        size_bits: u8,
    ) -> Result<Block<H>, UntypedError<B::Error>> {
        if !(MIN_SIZE_BITS..=MAX_SIZE_BITS).contains(&size_bits) {
            return Err(UntypedError::InvalidSize { size_bits });
        }
        let &(_, _, mut id) = self
            .free
            .range((size_bits, 0, BlockId(0))..)
            .next()
            .ok_or(UntypedError::OutOfMemory { size_bits })?;
        loop {
            let node = self.nodes[&id];
            if node.size_bits == size_bits {
                break;
            }
            let child_size_bits = node.size_bits - 1;
            let halves = match backend.split(node.handle, child_size_bits) {
                Ok(halves) => halves,
                Err(error) => {
                    // Undo this call's splits; a failed merge leaves consistent state.
                    let _ = self.merge_up(backend, id);
                    return Err(UntypedError::Backend(error));
                }
            };
            let half = |handle, base| Node {
                handle,
                base,
                size_bits: child_size_bits,
                parent: Some(id),
                state: State::Free,
            };
            let lower = self.insert(half(halves[0], node.base));
            let upper = self.insert(half(halves[1], node.base + (1u64 << child_size_bits)));
            self.set_state(id, State::Split([lower, upper]));
            id = lower;
        }
        self.set_state(id, State::Allocated);
        self.free_bytes -= 1u64 << size_bits;
        self.allocated_bytes += 1u64 << size_bits;
        Ok(self.block_of(id))
    }

    /// Frees an allocated block (the caller has revoked its own children) and merges it
    /// with its buddy while the buddy is free.
    ///
    /// # Errors
    ///
    /// [`UntypedError::UnknownBlock`] or [`UntypedError::NotAllocated`] without any
    /// change. [`UntypedError::Backend`] if a merge failed: the block is free anyway,
    /// only merging stopped ([`coalesce`](Self::coalesce) retries).
    pub fn free<B: UntypedBackend<Handle = H>>(
        &mut self,
        backend: &mut B,
        block: BlockId,
    ) -> Result<(), UntypedError<B::Error>> {
        let node = self
            .nodes
            .get(&block)
            .ok_or(UntypedError::UnknownBlock(block))?;
        if node.state != State::Allocated {
            return Err(UntypedError::NotAllocated(block));
        }
        let bytes = 1u64 << node.size_bits;
        self.set_state(block, State::Free);
        self.allocated_bytes -= bytes;
        self.free_bytes += bytes;
        self.merge_up(backend, block).map_err(UntypedError::Backend)
    }

    /// Merges every pair of free buddies, for example after a failed merge.
    ///
    /// # Errors
    ///
    /// [`UntypedError::Backend`] from the first merge that failed; later pairs are left
    /// alone.
    pub fn coalesce<B: UntypedBackend<Handle = H>>(
        &mut self,
        backend: &mut B,
    ) -> Result<(), UntypedError<B::Error>> {
        let free: alloc::vec::Vec<BlockId> = self.free.iter().map(|&(_, _, id)| id).collect();
        for id in free {
            if self.nodes.get(&id).is_some_and(|n| n.state == State::Free) {
                self.merge_up(backend, id).map_err(UntypedError::Backend)?;
            }
        }
        Ok(())
    }

    /// The block `id`, if it exists (free, allocated or split).
    pub fn block(&self, id: BlockId) -> Option<Block<H>> {
        self.nodes.contains_key(&id).then(|| self.block_of(id))
    }

    /// The free blocks, smallest first (by address within one size).
    pub fn free_blocks(&self) -> impl Iterator<Item = Block<H>> + '_ {
        self.free.iter().map(|&(_, _, id)| self.block_of(id))
    }

    /// Bytes in free blocks.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Bytes in allocated blocks.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    /// Size of the largest free block, if any.
    pub fn largest_free_size_bits(&self) -> Option<u8> {
        self.free.last().map(|&(size_bits, _, _)| size_bits)
    }

    /// Merges the free block `id` with its buddy while the buddy is free.
    fn merge_up<B: UntypedBackend<Handle = H>>(
        &mut self,
        backend: &mut B,
        mut id: BlockId,
    ) -> Result<(), B::Error> {
        while let Some(parent) = self.nodes[&id].parent {
            let Node {
                handle: parent_handle,
                state: State::Split(halves),
                ..
            } = self.nodes[&parent]
            else {
                break; // A parent is always split.
            };
            let [lower, upper] = halves.map(|half| self.nodes[&half]);
            if lower.state != State::Free || upper.state != State::Free {
                break;
            }
            backend.merge(parent_handle, [lower.handle, upper.handle])?;
            for (half, node) in halves.into_iter().zip([lower, upper]) {
                self.free.remove(&(node.size_bits, node.base, half));
                self.nodes.remove(&half);
            }
            self.set_state(parent, State::Free);
            id = parent;
        }
        Ok(())
    }

    /// Stores `node` under a fresh id (and in the free set if free).
    fn insert(&mut self, node: Node<H>) -> BlockId {
        let mut id = BlockId(self.next_id);
        while self.nodes.contains_key(&id) {
            id = BlockId(id.0.wrapping_add(1));
        }
        self.next_id = id.0.wrapping_add(1);
        if node.state == State::Free {
            self.free.insert((node.size_bits, node.base, id));
        }
        self.nodes.insert(id, node);
        id
    }

    /// Changes the state of an existing block, keeping the free set in step.
    fn set_state(&mut self, id: BlockId, state: State) {
        let node = self.nodes.get_mut(&id).expect("block exists");
        let key = (node.size_bits, node.base, id);
        node.state = state;
        if state == State::Free {
            self.free.insert(key);
        } else {
            self.free.remove(&key);
        }
    }

    fn block_of(&self, id: BlockId) -> Block<H> {
        let node = &self.nodes[&id];
        Block {
            id,
            handle: node.handle,
            base: node.base,
            size_bits: node.size_bits,
        }
    }
}
