//! The ring itself: header layout, slot storage, splitting and attaching.

use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::num::NonZeroU64;

use crate::error::{AlreadySplit, AttachError, CorruptIndices};
use crate::notify::Notify;
use crate::sync::{AtomicU32, AtomicU64, Ordering, Slot, const_unless_loom};
use crate::{Consumer, Producer};

/// Values and offsets of the shared-memory header, for peers written in other
/// languages. All fields are little- or big-endian as the machine is, and
/// every field is a 32-bit word accessed atomically, except the type
/// fingerprint, one 64-bit word accessed atomically (write it with a single
/// 64-bit store). The word at offset 36 is reserved (an in-process claim;
/// never read for shared rings), and every byte of the header not named here
/// is zero in a fresh ring.
pub mod layout {
    /// `"KIPC"` read as a little-endian `u32`, at offset [`MAGIC_OFFSET`].
    pub const MAGIC: u32 = u32::from_le_bytes(*b"KIPC");
    /// ABI version of the header and protocol described here. Version 2 added the
    /// type fingerprint and the owner process words.
    pub const ABI_VERSION: u32 = 2;
    /// Cache-line padding used between the header's parts.
    pub const LINE: usize = 128;
    /// Offset of the magic word.
    pub const MAGIC_OFFSET: usize = 0;
    /// Offset of the ABI version word.
    pub const ABI_OFFSET: usize = 4;
    /// Offset of the capacity word.
    pub const CAPACITY_OFFSET: usize = 8;
    /// Offset of the element size word.
    pub const ELEMENT_SIZE_OFFSET: usize = 12;
    /// Offset of the element alignment word.
    pub const ELEMENT_ALIGN_OFFSET: usize = 16;
    /// Offset of the word holding the slot array's offset.
    pub const SLOT_OFFSET_OFFSET: usize = 20;
    /// Offset of the state word: bit 0 producer closed ([`PRODUCER_CLOSED`]), bit 1
    /// consumer closed ([`CONSUMER_CLOSED`]).
    pub const STATE_OFFSET: usize = 24;
    /// State-word flag: the producer closed its end (a consumer's pop of an empty ring
    /// then fails with `Closed`). A supervisor that stopped the producer for good may set
    /// it so the consumer does not wait forever.
    pub const PRODUCER_CLOSED: u32 = 1;
    /// State-word flag: the consumer closed its end (a producer's push then fails with
    /// `Closed`).
    pub const CONSUMER_CLOSED: u32 = 2;
    /// Offset of the producer generation word (0: never attached).
    pub const PRODUCER_GENERATION_OFFSET: usize = 28;
    /// Offset of the consumer generation word (0: never attached).
    pub const CONSUMER_GENERATION_OFFSET: usize = 32;
    /// Offset of the 64-bit type fingerprint (8-aligned, one atomic 64-bit word): 0
    /// until the first typed endpoint stamps it (a ring whose header a third party
    /// wrote from [`Geometry::header_words`]), then the fingerprint of the item type
    /// (`type_fingerprint`, or a tag the user chose); attaching with another
    /// fingerprint fails.
    pub const FINGERPRINT_OFFSET: usize = 40;
    /// Offset of the producer's process id (0: unknown). A process-shared
    /// producer with `std` on Linux writes its identity (this word and the two
    /// after it) when it attaches and whenever it checks on its consumer;
    /// without `std` it writes zeros. The consumer uses it to notice that the
    /// producer's process died.
    pub const PRODUCER_PID_OFFSET: usize = 48;
    /// Offset of the low 32 bits of the producer's PID namespace inode (0: unknown):
    /// the PID is only checked by a peer in the same namespace.
    pub const PRODUCER_PIDNS_OFFSET: usize = 52;
    /// Offset of the low 32 bits of the producer's start time, in clock ticks
    /// since boot (field 22 of `/proc/PID/stat`; 0: unknown): tells the
    /// producer from a later process that reused its id.
    pub const PRODUCER_START_OFFSET: usize = 56;
    /// Offset of the consumer's process id, like [`PRODUCER_PID_OFFSET`].
    pub const CONSUMER_PID_OFFSET: usize = 60;
    /// Offset of the consumer's PID namespace word, like [`PRODUCER_PIDNS_OFFSET`].
    pub const CONSUMER_PIDNS_OFFSET: usize = 64;
    /// Offset of the consumer's start time, like [`PRODUCER_START_OFFSET`].
    pub const CONSUMER_START_OFFSET: usize = 68;
    /// Offset of the tail index (written by the producer only).
    pub const TAIL_OFFSET: usize = LINE;
    /// Offset of the head index (written by the consumer only).
    pub const HEAD_OFFSET: usize = 2 * LINE;
    /// Offset of the consumer's wait word: bit 0 set while the consumer is
    /// about to sleep; the producer adds 1 (clearing it) and wakes the word.
    pub const CONSUMER_WAIT_OFFSET: usize = 3 * LINE;
    /// Offset of the producer's wait word, with the same protocol.
    pub const PRODUCER_WAIT_OFFSET: usize = 4 * LINE;
    /// Offset of the slot array when the element alignment is at most
    /// [`LINE`]; otherwise the next multiple of the alignment.
    pub const HEADER_SIZE: usize = 5 * LINE;

    /// The shape of a ring whose element type is known only as a size and an
    /// alignment: for a creator that places a ring between two other parties
    /// (a broker writing a header into memory it then maps into two
    /// processes). It describes exactly what [`SharedRing`](crate::SharedRing)
    /// `<T, N>` lays out for a `T` of that size and alignment.
    ///
    /// ```
    /// use kaal_ipc::{SharedRing, layout::Geometry};
    /// let geometry = Geometry::new(1024, 8, 8).unwrap();
    /// assert_eq!(geometry.region_bytes(), SharedRing::<u64, 1024>::REGION_SIZE);
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Geometry {
        capacity: u32,
        element_bytes: u32,
        element_align: u32,
    }

    impl Geometry {
        /// A ring of `capacity` slots (a power of two, at most 2³⁰) of
        /// elements of `element_bytes` (a multiple of the alignment) aligned
        /// to `element_align` (a power of two); `None` if any is invalid.
        pub const fn new(capacity: u32, element_bytes: u32, element_align: u32) -> Option<Self> {
            if !capacity.is_power_of_two()
                || capacity > 1 << 30
                || !element_align.is_power_of_two()
                || !element_bytes.is_multiple_of(element_align)
            {
                return None;
            }
            Some(Self {
                capacity,
                element_bytes,
                element_align,
            })
        }

        /// Offset of the slot array from the start of the region.
        pub const fn slot_offset(&self) -> usize {
            let align = self.element_align as usize;
            if align <= LINE {
                HEADER_SIZE
            } else {
                HEADER_SIZE.div_ceil(align) * align
            }
        }

        /// Bytes the region needs; `None` on overflow.
        pub const fn checked_region_bytes(&self) -> Option<usize> {
            let align = if (self.element_align as usize) > LINE {
                self.element_align as usize
            } else {
                LINE
            };
            let Some(slots) = (self.capacity as usize).checked_mul(self.element_bytes as usize)
            else {
                return None;
            };
            let Some(end) = self.slot_offset().checked_add(slots) else {
                return None;
            };
            match end.checked_add(align - 1) {
                Some(padded) => Some(padded / align * align),
                None => None,
            }
        }

        /// Bytes the region needs (saturating).
        pub const fn region_bytes(&self) -> usize {
            match self.checked_region_bytes() {
                Some(bytes) => bytes,
                None => usize::MAX,
            }
        }

        /// The header words a fresh, empty ring of this shape has, as
        /// `(offset, value)` pairs: every other byte of the header is zero
        /// (so the type fingerprint is unset: the first endpoint to attach
        /// stamps its own, and the other must match it).
        /// Written (magic last, with release ordering or a barrier) into
        /// zeroed memory, they make a ring that
        /// [`SharedRing::attach`](crate::SharedRing::attach) accepts.
        pub const fn header_words(&self) -> [(usize, u32); 6] {
            [
                (ABI_OFFSET, ABI_VERSION),
                (CAPACITY_OFFSET, self.capacity),
                (ELEMENT_SIZE_OFFSET, self.element_bytes),
                (ELEMENT_ALIGN_OFFSET, self.element_align),
                (SLOT_OFFSET_OFFSET, self.slot_offset() as u32),
                (MAGIC_OFFSET, MAGIC),
            ]
        }
    }
}

pub(crate) use layout::{CONSUMER_CLOSED, PRODUCER_CLOSED};

#[repr(C, align(128))]
struct Meta {
    magic: AtomicU32,
    abi: AtomicU32,
    capacity: AtomicU32,
    elem_size: AtomicU32,
    elem_align: AtomicU32,
    slot_offset: AtomicU32,
    state: AtomicU32,
    producer_gen: AtomicU32,
    consumer_gen: AtomicU32,
    /// In-process claim taken by [`SharedRing::try_split`]. Never trusted for
    /// attached rings, whose uniqueness comes from ownership instead.
    split: AtomicU32,
    /// 0 (unset) or the item type's fingerprint; see [`layout::FINGERPRINT_OFFSET`].
    fingerprint: AtomicU64,
    producer: Owner,
    consumer: Owner,
    /// The rest of the cache line, as atomics: a peer may write any byte of a shared
    /// header, so no byte of it may be plain data under a shared reference.
    _padding: [AtomicU32; META_PADDING_WORDS],
}

const META_PADDING_WORDS: usize = 32 - 18;

/// The process that holds one end, as that process wrote it (see
/// [`layout::PRODUCER_PID_OFFSET`]).
#[repr(C)]
pub(crate) struct Owner {
    pub(crate) pid: AtomicU32,
    pub(crate) ns: AtomicU32,
    pub(crate) start: AtomicU32,
}

impl Owner {
    const_unless_loom! {
        fn new() -> Self {
            Self {
                pid: AtomicU32::new(0),
                ns: AtomicU32::new(0),
                start: AtomicU32::new(0),
            }
        }
    }
}
const LINE_PADDING_WORDS: usize = 31;

/// One index on its own cache line; the rest of the line is atomics too (see
/// `Meta::_padding`).
#[repr(C, align(128))]
pub(crate) struct Line(pub(crate) AtomicU32, [AtomicU32; LINE_PADDING_WORDS]);

#[cfg(not(loom))]
const fn padding<const W: usize>() -> [AtomicU32; W] {
    [const { AtomicU32::new(0) }; W]
}

#[cfg(loom)]
fn padding<const W: usize>() -> [AtomicU32; W] {
    core::array::from_fn(|_| AtomicU32::new(0))
}

impl Line {
    const_unless_loom! {
        pub(crate) fn new(value: u32) -> Self {
            Line(AtomicU32::new(value), padding::<LINE_PADDING_WORDS>())
        }
    }
}

// No implicit padding left anywhere in the header (loom's atomics are larger).
#[cfg(not(loom))]
const _: () = assert!(size_of::<Line>() == 128 && size_of::<Meta>() == 128);

/// A lock-free single-producer single-consumer ring of `N` slots of `T`.
///
/// `N` must be a power of two between 1 and 2³⁰. The ring is `#[repr(C)]`
/// with a self-describing header (see [`layout`]), so the same type works in a
/// `static`, in a `Box` or `Arc`, and in memory shared between processes.
///
/// * [`split`](Self::split) borrows the ring mutably and needs no allocation;
/// * [`try_split`](Self::try_split) works through a shared reference, such as
///   a `static`, once;
/// * `split_arc` (feature `alloc`) gives endpoints that own an `Arc`;
/// * [`init_in`](Self::init_in) and [`attach`](Self::attach) place the ring in
///   a shared-memory region and validate its header.
///
/// ```
/// use kaal_ipc::SharedRing;
///
/// static RING: SharedRing<u32, 8> = SharedRing::new();
///
/// let (mut tx, mut rx) = RING.try_split().unwrap();
/// tx.try_push(7).unwrap();
/// assert_eq!(rx.try_pop(), Ok(7));
/// assert!(RING.try_split().is_err()); // only once
/// ```
#[repr(C)]
pub struct SharedRing<T, const N: usize> {
    meta: Meta,
    pub(crate) tail: Line,
    pub(crate) head: Line,
    pub(crate) consumer_wait: Line,
    pub(crate) producer_wait: Line,
    slots: [Slot<T>; N],
}

// SAFETY: the ring hands each slot to exactly one endpoint at a time (the
// producer owns [tail, head + N), the consumer owns [head, tail)), with
// Release/Acquire index updates transferring ownership. Items move between
// threads, so `T: Send` is required; no `&T` is shared between threads except
// through the consumer's `peek`/`as_slices`, which the producer never
// overlaps.
unsafe impl<T: Send, const N: usize> Sync for SharedRing<T, N> {}

#[cfg(not(loom))]
const fn slots_new<T, const N: usize>() -> [Slot<T>; N] {
    [const { Slot::new() }; N]
}

#[cfg(loom)]
fn slots_new<T, const N: usize>() -> [Slot<T>; N] {
    core::array::from_fn(|_| Slot::new())
}

impl<T, const N: usize> SharedRing<T, N> {
    const VALID: () = {
        assert!(N.is_power_of_two(), "ring capacity must be a power of two");
        assert!(N <= 1 << 30, "ring capacity must be at most 2^30");
        assert!(size_of::<T>() <= u32::MAX as usize);
    };
    pub(crate) const MASK: u32 = N as u32 - 1;
    pub(crate) const CAP: u32 = N as u32;
    const SLOT_OFFSET: usize = offset_of!(Self, slots);

    const_unless_loom! {
        fn meta(magic: u32) -> Meta {
            Meta {
                magic: AtomicU32::new(magic),
                abi: AtomicU32::new(layout::ABI_VERSION),
                capacity: AtomicU32::new(N as u32),
                elem_size: AtomicU32::new(size_of::<T>() as u32),
                elem_align: AtomicU32::new(align_of::<T>() as u32),
                slot_offset: AtomicU32::new(Self::SLOT_OFFSET as u32),
                state: AtomicU32::new(0),
                producer_gen: AtomicU32::new(0),
                consumer_gen: AtomicU32::new(0),
                split: AtomicU32::new(0),
                fingerprint: AtomicU64::new(0),
                producer: Owner::new(),
                consumer: Owner::new(),
                _padding: padding::<META_PADDING_WORDS>(),
            }
        }
    }

    const_unless_loom! {
        /// Creates an empty ring with a valid header.
        pub fn new() -> Self {
            #[allow(clippy::let_unit_value)]
            let () = Self::VALID;
            Self {
                meta: Self::meta(layout::MAGIC),
                tail: Line::new(0),
                head: Line::new(0),
                consumer_wait: Line::new(0),
                producer_wait: Line::new(0),
                slots: slots_new::<T, N>(),
            }
        }
    }

    /// Writes a fresh header with `magic` (every field but the slots) into
    /// `ring`.
    ///
    /// # Safety
    ///
    /// `ring` must be valid for writes of `Self` and not accessed by anyone
    /// else during the call.
    unsafe fn write_header(ring: *mut Self, magic: u32) {
        // SAFETY: valid for writes and unshared (caller contract); only the
        // header fields are written, through raw field pointers.
        unsafe {
            core::ptr::addr_of_mut!((*ring).tail).write(Line::new(0));
            core::ptr::addr_of_mut!((*ring).head).write(Line::new(0));
            core::ptr::addr_of_mut!((*ring).consumer_wait).write(Line::new(0));
            core::ptr::addr_of_mut!((*ring).producer_wait).write(Line::new(0));
            core::ptr::addr_of_mut!((*ring).meta).write(Self::meta(magic));
        }
    }

    /// The number of slots, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// A snapshot of the number of items in the ring, clamped to `N` if the
    /// indices are corrupt.
    pub fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        (tail.wrapping_sub(head) as usize).min(N)
    }

    /// Whether a snapshot of the ring shows no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a snapshot of the ring shows every slot occupied.
    pub fn is_full(&self) -> bool {
        self.len() == N
    }

    /// The generation of the producer: 0 if none ever attached, incremented
    /// each time a producer endpoint is created.
    pub fn producer_generation(&self) -> u32 {
        self.meta.producer_gen.load(Ordering::Acquire)
    }

    /// The generation of the consumer, like
    /// [`producer_generation`](Self::producer_generation).
    pub fn consumer_generation(&self) -> u32 {
        self.meta.consumer_gen.load(Ordering::Acquire)
    }

    #[inline(always)]
    pub(crate) fn slot(&self, index: u32) -> &Slot<T> {
        // The mask keeps every index, valid or not, inside the array; the
        // compiler elides the bounds check.
        &self.slots[(index & Self::MASK) as usize]
    }

    /// Raw pointer to slot `index` (masked), derived from the whole slot array, so a
    /// bulk copy or a slice may run on into the following slots. `Slot<T>` is
    /// `repr(transparent)` over `UnsafeCell<MaybeUninit<T>>`: the array is `N`
    /// contiguous `T`s, and writing through this pointer is allowed because every byte
    /// it reaches is inside an `UnsafeCell`.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn slot_ptr(&self, index: u32) -> *mut T {
        let base: *mut T = self.slots.as_ptr().cast::<T>().cast_mut();
        base.wrapping_add((index & Self::MASK) as usize)
    }

    pub(crate) fn state(&self) -> &AtomicU32 {
        &self.meta.state
    }

    pub(crate) fn producer_gen(&self) -> &AtomicU32 {
        &self.meta.producer_gen
    }

    pub(crate) fn consumer_gen(&self) -> &AtomicU32 {
        &self.meta.consumer_gen
    }

    /// The identity words of the producer (`producer == true`) or the
    /// consumer.
    pub(crate) fn owner(&self, producer: bool) -> &Owner {
        if producer {
            &self.meta.producer
        } else {
            &self.meta.consumer
        }
    }

    /// Rewrites every geometry word of the header (magic last, with release
    /// ordering) and the fingerprint if `fingerprint` is non-zero; returns
    /// whether any of them differed. For [`Producer::repair`] and
    /// [`Consumer::repair`](crate::Consumer::repair).
    pub(crate) fn restore_header(&self, fingerprint: u64) -> bool {
        let m = &self.meta;
        let mut changed = false;
        let mut put = |word: &AtomicU32, value: u32| {
            changed |= word.swap(value, Ordering::AcqRel) != value;
        };
        put(&m.abi, layout::ABI_VERSION);
        put(&m.capacity, N as u32);
        put(&m.elem_size, size_of::<T>() as u32);
        put(&m.elem_align, align_of::<T>() as u32);
        put(&m.slot_offset, Self::SLOT_OFFSET as u32);
        put(&m.magic, layout::MAGIC);
        if fingerprint != 0 {
            changed |= m.fingerprint.swap(fingerprint, Ordering::AcqRel) != fingerprint;
        }
        changed
    }

    pub(crate) fn check_indices(head: u32, tail: u32) -> Result<(), CorruptIndices> {
        if tail.wrapping_sub(head) > Self::CAP {
            Err(CorruptIndices {
                head,
                tail,
                capacity: Self::CAP,
            })
        } else {
            Ok(())
        }
    }

    /// Splits the ring into its two endpoints, borrowing it mutably: no
    /// allocation, no claim, usable any number of times (each split starts a
    /// new generation on both sides). Items left from a previous split stay in
    /// the ring.
    ///
    /// ```
    /// let mut ring = kaal_ipc::SharedRing::<String, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.try_push("hello".to_string()).unwrap();
    /// assert_eq!(rx.try_pop().as_deref(), Ok("hello"));
    /// ```
    pub fn split(&mut self) -> Endpoints<T, N, &Self> {
        self.split_with(crate::notify::Spin)
    }

    /// Like [`split`](Self::split) with a chosen [`Notify`] strategy for the
    /// blocking operations.
    pub fn split_with<W: Notify + Clone>(&mut self, notify: W) -> Endpoints<T, N, &Self, W> {
        let this: &Self = self;
        split_handles(this, this, notify)
            .expect("indices of an exclusively borrowed ring are maintained by this crate")
    }

    /// Splits the ring through a shared reference, such as a `static`. Only
    /// the first call succeeds; later calls return [`AlreadySplit`].
    pub fn try_split(&self) -> Result<Endpoints<T, N, &Self>, AlreadySplit> {
        self.try_split_with(crate::notify::Spin)
    }

    /// Like [`try_split`](Self::try_split) with a chosen [`Notify`] strategy.
    pub fn try_split_with<W: Notify + Clone>(
        &self,
        notify: W,
    ) -> Result<Endpoints<T, N, &Self, W>, AlreadySplit> {
        self.meta
            .split
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| AlreadySplit)?;
        Ok(split_handles(self, self, notify)
            .expect("indices of an in-process ring are maintained by this crate"))
    }

    /// Drops the items in the ring and resets it to empty.
    pub fn clear(&mut self) {
        self.drop_items();
        self.head.0 = AtomicU32::new(0);
        self.tail.0 = AtomicU32::new(0);
    }

    fn drop_items(&mut self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        if Self::check_indices(head, tail).is_err() {
            // Not reachable for in-process rings; leaking is the safe choice.
            return;
        }
        let mut i = head;
        while i != tail {
            // SAFETY: with `&mut self` no endpoint exists, and [head, tail)
            // holds initialised items pushed by a producer and not popped.
            unsafe { self.slot(i).drop_in_place() };
            i = i.wrapping_add(1);
        }
    }
}

#[cfg(feature = "alloc")]
impl<T, const N: usize> SharedRing<T, N> {
    /// Creates an empty ring directly on the heap. Unlike
    /// `Box::new(SharedRing::new())`, the ring is never built on the stack
    /// first, so a ring of any size works in a debug build too.
    ///
    /// ```
    /// // 16 MiB of slots: fine on the heap, an overflow on a thread's stack.
    /// let ring = kaal_ipc::SharedRing::<u64, { 2 << 20 }>::new_boxed();
    /// assert_eq!(ring.capacity(), 2 << 20);
    /// ```
    pub fn new_boxed() -> alloc::boxed::Box<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        #[cfg(not(loom))]
        {
            let mut ring = alloc::boxed::Box::<Self>::new_uninit();
            // SAFETY: a fresh allocation, valid for writes of `Self` and
            // unshared.
            unsafe { Self::write_header(ring.as_mut_ptr(), layout::MAGIC) };
            // SAFETY: every field but the slots is written; the slots are
            // `UnsafeCell<MaybeUninit<T>>`, for which uninitialised bytes are
            // valid.
            unsafe { ring.assume_init() }
        }
        #[cfg(loom)]
        alloc::boxed::Box::new(Self::new())
    }

    /// Creates an empty ring directly inside an `Arc` (never on the stack),
    /// ready for [`split_arc`](Self::split_arc).
    pub fn new_arc() -> alloc::sync::Arc<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        #[cfg(not(loom))]
        {
            let mut ring = alloc::sync::Arc::<Self>::new_uninit();
            let ptr = alloc::sync::Arc::get_mut(&mut ring)
                .expect("a new Arc has one owner")
                .as_mut_ptr();
            // SAFETY: a fresh, unshared allocation valid for writes of `Self`.
            unsafe { Self::write_header(ptr, layout::MAGIC) };
            // SAFETY: every field but the slots is written; uninitialised
            // slots are valid (`UnsafeCell<MaybeUninit<T>>`).
            unsafe { ring.assume_init() }
        }
        #[cfg(loom)]
        alloc::sync::Arc::new(Self::new())
    }

    /// A new heap ring split into its two endpoints: the one-line start, like
    /// `rtrb::RingBuffer::new`. The endpoints spin when they block; see
    /// [`pair_with`](Self::pair_with).
    ///
    /// ```
    /// use kaal_ipc::{HeapConsumer, HeapProducer, SharedRing};
    ///
    /// let (mut tx, mut rx): (HeapProducer<u64, 1024>, HeapConsumer<u64, 1024>) =
    ///     SharedRing::pair();
    /// let t = std::thread::spawn(move || for i in 0..1000 { tx.push(i).unwrap() });
    /// for i in 0..1000 { assert_eq!(rx.pop(), Ok(i)); }
    /// t.join().unwrap();
    /// ```
    pub fn pair() -> Endpoints<T, N, alloc::sync::Arc<Self>> {
        Self::pair_with(crate::notify::Spin)
    }

    /// Like [`pair`](Self::pair) with a chosen [`Notify`] strategy.
    pub fn pair_with<W: Notify + Clone>(notify: W) -> Endpoints<T, N, alloc::sync::Arc<Self>, W> {
        Self::new_arc()
            .split_arc_with(notify)
            .expect("a new ring is not split yet")
    }

    /// Splits a shared ring into endpoints that each own an `Arc` to it. Only
    /// the first split of a ring succeeds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kaal_ipc::SharedRing;
    ///
    /// let (mut tx, mut rx) = Arc::new(SharedRing::<u64, 64>::new()).split_arc().unwrap();
    /// let t = std::thread::spawn(move || for i in 0..1000 { tx.push(i).unwrap() });
    /// for i in 0..1000 { assert_eq!(rx.pop(), Ok(i)); }
    /// t.join().unwrap();
    /// ```
    pub fn split_arc(
        self: alloc::sync::Arc<Self>,
    ) -> Result<Endpoints<T, N, alloc::sync::Arc<Self>>, AlreadySplit> {
        self.split_arc_with(crate::notify::Spin)
    }

    /// Like [`split_arc`](Self::split_arc) with a chosen [`Notify`] strategy.
    pub fn split_arc_with<W: Notify + Clone>(
        self: alloc::sync::Arc<Self>,
        notify: W,
    ) -> Result<Endpoints<T, N, alloc::sync::Arc<Self>, W>, AlreadySplit> {
        self.meta
            .split
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| AlreadySplit)?;
        Ok(split_handles(self.clone(), self, notify)
            .expect("indices of an in-process ring are maintained by this crate"))
    }
}

impl<T, const N: usize> Drop for SharedRing<T, N> {
    fn drop(&mut self) {
        self.drop_items();
    }
}

impl<T, const N: usize> Default for SharedRing<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> core::fmt::Debug for SharedRing<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedRing")
            .field("capacity", &N)
            .field("head", &self.head.0.load(Ordering::Relaxed))
            .field("tail", &self.tail.0.load(Ordering::Relaxed))
            .field("state", &self.meta.state.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) fn split_handles<T, const N: usize, R: RingHandle<T, N>, W: Notify + Clone>(
    p: R,
    c: R,
    notify: W,
) -> Result<Endpoints<T, N, R, W>, CorruptIndices> {
    let mut producer = Producer::attach(p, notify.clone())?;
    let consumer = Consumer::attach(c, notify)?;
    // Attached together: the consumer is the producer's first peer, not a
    // restart of one it saw before.
    producer.acknowledge_peer();
    Ok((producer, consumer))
}

/// A producer and a consumer of the same ring.
pub type Endpoints<T, const N: usize, R, W = crate::Spin> =
    (Producer<T, N, R, W>, Consumer<T, N, R, W>);

mod sealed {
    pub trait Sealed {}

    /// Unnameable outside the crate, so [`RingHandle::ring`](super::RingHandle)
    /// cannot be called from outside: a shared-memory ring must never be
    /// reachable as a plain `&SharedRing` (whose endpoints are trusted).
    #[derive(Clone, Copy)]
    pub struct Token(());

    impl Token {
        pub(crate) const fn new() -> Self {
            Self(())
        }
    }
}

#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
pub(crate) use sealed::Sealed;
pub(crate) use sealed::Token;

/// How an endpoint reaches its ring: `&SharedRing`, `Arc<SharedRing>` or an
/// [`Attached`] shared-memory region. Sealed.
pub trait RingHandle<T, const N: usize>: sealed::Sealed {
    /// Whether the peer may be another process that this one does not trust
    /// (the ring was attached in shared memory). Futex waits then use the
    /// process-shared variant, and APIs that would hand out references into
    /// slots the peer could write are unavailable.
    const PROCESS_SHARED: bool;
    #[doc(hidden)]
    fn ring(&self, token: sealed::Token) -> &SharedRing<T, N>;
    #[doc(hidden)]
    /// The item fingerprint the header must carry (0: none, in-process rings).
    fn fingerprint(&self, _token: sealed::Token) -> u64 {
        0
    }
}

/// A [`RingHandle`] whose peer is in this process and is this crate's own
/// endpoint, so references into slots are sound.
pub trait TrustedHandle<T, const N: usize>: RingHandle<T, N> {}

impl<T, const N: usize> sealed::Sealed for &SharedRing<T, N> {}
impl<T, const N: usize> RingHandle<T, N> for &SharedRing<T, N> {
    const PROCESS_SHARED: bool = false;
    #[inline(always)]
    fn ring(&self, _: sealed::Token) -> &SharedRing<T, N> {
        self
    }
}
impl<T, const N: usize> TrustedHandle<T, N> for &SharedRing<T, N> {}

#[cfg(feature = "alloc")]
impl<T, const N: usize> sealed::Sealed for alloc::sync::Arc<SharedRing<T, N>> {}
#[cfg(feature = "alloc")]
impl<T, const N: usize> RingHandle<T, N> for alloc::sync::Arc<SharedRing<T, N>> {
    const PROCESS_SHARED: bool = false;
    #[inline(always)]
    fn ring(&self, _: sealed::Token) -> &SharedRing<T, N> {
        self
    }
}
#[cfg(feature = "alloc")]
impl<T, const N: usize> TrustedHandle<T, N> for alloc::sync::Arc<SharedRing<T, N>> {}

/// A ring placed in a shared-memory region, validated, not yet split into
/// endpoints. Obtained from [`SharedRing::init_in`] or
/// [`SharedRing::attach`]; it owns this process's access to the region.
pub struct Attached<'a, T, const N: usize> {
    ring: &'a SharedRing<T, N>,
    /// The item type's fingerprint this attachment was checked against.
    fingerprint: u64,
    _not_sync: PhantomData<*const ()>,
}

// SAFETY: an `Attached` is a unique capability to a region whose items are
// plain bytes (`FromBytes + IntoBytes`); moving it to another thread moves the
// capability. Endpoints made from it are `Send` through the same reasoning.
unsafe impl<T: Send, const N: usize> Send for Attached<'_, T, N> {}

impl<T, const N: usize> sealed::Sealed for Attached<'_, T, N> {}
impl<T, const N: usize> RingHandle<T, N> for Attached<'_, T, N> {
    const PROCESS_SHARED: bool = true;
    #[inline(always)]
    fn ring(&self, _: sealed::Token) -> &SharedRing<T, N> {
        self.ring
    }
    fn fingerprint(&self, _: sealed::Token) -> u64 {
        self.fingerprint
    }
}

impl<T, const N: usize> core::fmt::Debug for Attached<'_, T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Attached").field(self.ring).finish()
    }
}

impl<'a, T, const N: usize> Attached<'a, T, N> {
    /// Becomes this process's producer endpoint. Resumes from the indices in
    /// the region (validated) and starts a new producer generation, so the
    /// consumer can tell a restarted producer from the old one.
    pub fn into_producer<W: Notify>(
        self,
        notify: W,
    ) -> Result<Producer<T, N, Self, W>, CorruptIndices> {
        Producer::attach(self, notify)
    }

    /// Becomes this process's consumer endpoint, like
    /// [`into_producer`](Self::into_producer).
    pub fn into_consumer<W: Notify>(
        self,
        notify: W,
    ) -> Result<Consumer<T, N, Self, W>, CorruptIndices> {
        Consumer::attach(self, notify)
    }

    /// Takes both roles in this process (for threads sharing a mapping).
    pub fn split<W: Notify + Clone>(
        self,
        notify: W,
    ) -> Result<Endpoints<T, N, Self, W>, CorruptIndices> {
        let other = Attached {
            ring: self.ring,
            fingerprint: self.fingerprint,
            _not_sync: PhantomData,
        };
        split_handles(self, other, notify)
    }

    /// The fingerprint this attachment was checked against (0: none).
    #[cfg(all(feature = "std", target_os = "linux", not(loom)))]
    pub(crate) fn checked_fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A snapshot of the number of items in the ring, for diagnostics.
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }
}

impl<T, const N: usize> SharedRing<T, N>
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
{
    /// The number of bytes a region needs to hold this ring.
    pub const REGION_SIZE: usize = size_of::<Self>();
    /// The alignment a region needs to hold this ring.
    pub const REGION_ALIGN: usize = align_of::<Self>();

    fn check_region(region: *mut u8, len: usize) -> Result<(), AttachError> {
        if len < Self::REGION_SIZE {
            return Err(AttachError::TooSmall {
                len,
                required: Self::REGION_SIZE,
            });
        }
        let addr = region as usize;
        if !addr.is_multiple_of(Self::REGION_ALIGN) || addr == 0 {
            return Err(AttachError::Misaligned {
                addr,
                align: Self::REGION_ALIGN,
            });
        }
        Ok(())
    }

    /// Writes a fresh, empty ring header into `region` and attaches to it.
    /// The slots are left as they are: every bit pattern is a valid `T`.
    ///
    /// # Safety
    ///
    /// * `region` must be valid for reads and writes of `len` initialised
    ///   bytes (any values) for `'a` (for example a `MAP_SHARED` mapping that
    ///   outlives `'a`);
    /// * no other process may access the region until this call returns
    ///   (initialise before sharing the region);
    /// * within this process, the region must not be used through any other
    ///   path while the returned [`Attached`] or its endpoints live (one
    ///   attachment per mapping per process).
    ///
    /// The header carries the fingerprint of `T` ([`type_fingerprint`]), so a
    /// peer attaching with another item type is refused even if size and
    /// alignment agree; [`init_in_tagged`](Self::init_in_tagged) chooses the
    /// fingerprint instead.
    pub unsafe fn init_in<'a>(
        region: *mut u8,
        len: usize,
    ) -> Result<Attached<'a, T, N>, AttachError> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::init_in_tagged(region, len, type_fingerprint::<T>()) }
    }

    /// Like [`init_in`](Self::init_in) with a fingerprint chosen by the user:
    /// for peers built by different compilers, or written in other languages,
    /// where the derived name-based fingerprint would not agree.
    ///
    /// # Safety
    ///
    /// As for [`init_in`](Self::init_in).
    pub unsafe fn init_in_tagged<'a>(
        region: *mut u8,
        len: usize,
        fingerprint: NonZeroU64,
    ) -> Result<Attached<'a, T, N>, AttachError> {
        Self::check_region(region, len)?;
        let ring = region.cast::<Self>();
        // SAFETY: the region is valid, aligned and large enough (checked), and
        // nobody else accesses it during initialisation (caller contract).
        // Only the header is written; the slots keep their bytes, which are
        // valid `T`s because `T: FromBytes`.
        unsafe { Self::write_header(ring, 0) };
        // SAFETY: the whole header is now initialised; every field of the ring
        // is an atomic or an `UnsafeCell` slot, so a shared reference asserts
        // nothing the peer's writes could violate.
        let ring: &'a Self = unsafe { &*ring };
        ring.meta
            .fingerprint
            .store(fingerprint.get(), Ordering::Relaxed);
        ring.meta.magic.store(layout::MAGIC, Ordering::Release);
        Ok(Attached {
            ring,
            fingerprint: fingerprint.get(),
            _not_sync: PhantomData,
        })
    }

    /// Attaches to a ring that another process initialised in `region`,
    /// validating the header: magic, ABI version, capacity, element size and
    /// alignment, slot offset and the indices.
    ///
    /// # Safety
    ///
    /// * `region` must be valid for reads and writes of `len` initialised
    ///   bytes (any values) for `'a` (for example a `MAP_SHARED` mapping that
    ///   outlives `'a`);
    /// * within this process, the region must not be used through any other
    ///   path while the returned [`Attached`] or its endpoints live (one
    ///   attachment per mapping per process).
    ///
    /// The other process need not be trusted: whatever it writes, this
    /// process sees errors, never undefined behaviour.
    ///
    /// The header's type fingerprint must be that of `T`
    /// ([`type_fingerprint`]); if the header has none yet (a ring laid out by
    /// a third party from [`layout::Geometry::header_words`]), this attach
    /// stamps it.
    pub unsafe fn attach<'a>(
        region: *mut u8,
        len: usize,
    ) -> Result<Attached<'a, T, N>, AttachError> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::attach_tagged(region, len, type_fingerprint::<T>()) }
    }

    /// Like [`attach`](Self::attach) with a fingerprint chosen by the user
    /// (see [`init_in_tagged`](Self::init_in_tagged)).
    ///
    /// # Safety
    ///
    /// As for [`attach`](Self::attach).
    pub unsafe fn attach_tagged<'a>(
        region: *mut u8,
        len: usize,
        fingerprint: NonZeroU64,
    ) -> Result<Attached<'a, T, N>, AttachError> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::attach_checked(region, len, Some(fingerprint)) }
    }

    /// Like [`attach`](Self::attach) without the item-type fingerprint check
    /// (every layout check stays, and the header's fingerprint is neither
    /// read nor stamped): for a ring whose item type a supervisor already
    /// vouches for. On KaaL the broker lays out every channel from the system
    /// description, whose element type the build's typed accessors enforce on
    /// both components, so the components attach this way; the derived
    /// fingerprint, a hash of the type's path, would differ between two
    /// component crates that each define the declared type.
    ///
    /// # Safety
    ///
    /// As for [`attach`](Self::attach).
    pub unsafe fn attach_vouched<'a>(
        region: *mut u8,
        len: usize,
    ) -> Result<Attached<'a, T, N>, AttachError> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::attach_checked(region, len, None) }
    }

    /// # Safety
    ///
    /// As for [`attach`](Self::attach).
    unsafe fn attach_checked<'a>(
        region: *mut u8,
        len: usize,
        fingerprint: Option<NonZeroU64>,
    ) -> Result<Attached<'a, T, N>, AttachError> {
        Self::check_region(region, len)?;
        // SAFETY: valid, aligned and large enough (checked and by contract);
        // every field of the ring is an atomic or an `UnsafeCell` slot, so the
        // peer may keep writing any bytes without invalidating the reference.
        let ring: &'a Self = unsafe { &*region.cast::<Self>() };
        let m = &ring.meta;
        let check = |found: u32, expected: u32, err: fn(u32, u32) -> AttachError| {
            if found == expected {
                Ok(())
            } else {
                Err(err(found, expected))
            }
        };
        check(
            m.magic.load(Ordering::Acquire),
            layout::MAGIC,
            |found, expected| AttachError::BadMagic { found, expected },
        )?;
        check(
            m.abi.load(Ordering::Relaxed),
            layout::ABI_VERSION,
            |found, expected| AttachError::AbiVersion { found, expected },
        )?;
        check(
            m.capacity.load(Ordering::Relaxed),
            N as u32,
            |found, expected| AttachError::Capacity { found, expected },
        )?;
        check(
            m.elem_size.load(Ordering::Relaxed),
            size_of::<T>() as u32,
            |found, expected| AttachError::ElementSize { found, expected },
        )?;
        check(
            m.elem_align.load(Ordering::Relaxed),
            align_of::<T>() as u32,
            |found, expected| AttachError::ElementAlign { found, expected },
        )?;
        check(
            m.slot_offset.load(Ordering::Relaxed),
            Self::SLOT_OFFSET as u32,
            |found, expected| AttachError::SlotOffset { found, expected },
        )?;
        Self::check_indices(
            ring.head.0.load(Ordering::Acquire),
            ring.tail.0.load(Ordering::Acquire),
        )?;
        let fingerprint = fingerprint.map_or(0, NonZeroU64::get);
        if fingerprint != 0 {
            match m.fingerprint.compare_exchange(
                0,
                fingerprint,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {}
                Err(found) if found == fingerprint => {}
                Err(found) => {
                    return Err(AttachError::TypeMismatch {
                        found,
                        expected: fingerprint,
                        item: core::any::type_name::<T>(),
                    });
                }
            }
        }
        Ok(Attached {
            ring,
            fingerprint,
            _not_sync: PhantomData,
        })
    }
}

/// The fingerprint [`SharedRing::init_in`] writes into a shared header and
/// [`SharedRing::attach`] checks: a 64-bit FNV-1a hash of the item type's
/// name (`core::any::type_name`), size and alignment, never zero.
///
/// Two processes agree on it when they use the same type from a crate both
/// depend on, built by the same compiler release; the name includes the
/// crate path, so a struct copied into two binaries' own crates does not
/// match (define it in a shared crate, or pick a fingerprint with
/// [`SharedRing::init_in_tagged`]/[`SharedRing::attach_tagged`]).
///
/// ```
/// use kaal_ipc::type_fingerprint;
/// assert_eq!(type_fingerprint::<u64>(), type_fingerprint::<u64>());
/// assert_ne!(type_fingerprint::<u64>(), type_fingerprint::<i64>());
/// ```
pub fn type_fingerprint<T>() -> NonZeroU64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let name = core::any::type_name::<T>().bytes();
    let shape = (size_of::<T>() as u64)
        .to_le_bytes()
        .into_iter()
        .chain((align_of::<T>() as u64).to_le_bytes());
    let hash = name
        .chain(shape)
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    NonZeroU64::new(hash).unwrap_or(NonZeroU64::MIN)
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn header_layout_matches_documented_offsets() {
        type R = SharedRing<u64, 8>;
        assert_eq!(offset_of!(R, tail), layout::TAIL_OFFSET);
        assert_eq!(offset_of!(R, head), layout::HEAD_OFFSET);
        assert_eq!(offset_of!(R, consumer_wait), layout::CONSUMER_WAIT_OFFSET);
        assert_eq!(offset_of!(R, producer_wait), layout::PRODUCER_WAIT_OFFSET);
        assert_eq!(offset_of!(R, slots), layout::HEADER_SIZE);
        assert_eq!(offset_of!(Meta, state), layout::STATE_OFFSET);
        assert_eq!(
            offset_of!(Meta, producer_gen),
            layout::PRODUCER_GENERATION_OFFSET
        );
        assert_eq!(
            offset_of!(Meta, consumer_gen),
            layout::CONSUMER_GENERATION_OFFSET
        );
        assert_eq!(offset_of!(Meta, slot_offset), layout::SLOT_OFFSET_OFFSET);
        assert_eq!(offset_of!(Meta, fingerprint), layout::FINGERPRINT_OFFSET);
        let producer = offset_of!(Meta, producer);
        let consumer = offset_of!(Meta, consumer);
        assert_eq!(
            producer + offset_of!(Owner, pid),
            layout::PRODUCER_PID_OFFSET
        );
        assert_eq!(
            producer + offset_of!(Owner, ns),
            layout::PRODUCER_PIDNS_OFFSET
        );
        assert_eq!(
            producer + offset_of!(Owner, start),
            layout::PRODUCER_START_OFFSET
        );
        assert_eq!(
            consumer + offset_of!(Owner, pid),
            layout::CONSUMER_PID_OFFSET
        );
        assert_eq!(
            consumer + offset_of!(Owner, ns),
            layout::CONSUMER_PIDNS_OFFSET
        );
        assert_eq!(
            consumer + offset_of!(Owner, start),
            layout::CONSUMER_START_OFFSET
        );
        assert_eq!(offset_of!(Meta, magic), layout::MAGIC_OFFSET);
        assert_eq!(offset_of!(Meta, abi), layout::ABI_OFFSET);
        assert_eq!(offset_of!(Meta, capacity), layout::CAPACITY_OFFSET);
        assert_eq!(offset_of!(Meta, elem_size), layout::ELEMENT_SIZE_OFFSET);
        assert_eq!(offset_of!(Meta, elem_align), layout::ELEMENT_ALIGN_OFFSET);
        assert_eq!(offset_of!(Meta, split), 36, "documented as reserved");
        assert_eq!(size_of::<R>(), layout::HEADER_SIZE + layout::LINE);
        assert_eq!(size_of::<SharedRing<u64, 16>>(), layout::HEADER_SIZE + 128);
    }

    fn geometry_of<T, const N: usize>() -> layout::Geometry
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    {
        layout::Geometry::new(N as u32, size_of::<T>() as u32, align_of::<T>() as u32).unwrap()
    }

    #[repr(C, align(256))]
    #[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
    struct Wide([u8; 256]);

    #[test]
    fn geometry_matches_the_typed_ring() {
        fn check<T, const N: usize>()
        where
            T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
        {
            let geometry = geometry_of::<T, N>();
            assert_eq!(geometry.region_bytes(), SharedRing::<T, N>::REGION_SIZE);
            assert_eq!(geometry.slot_offset(), SharedRing::<T, N>::SLOT_OFFSET);
            // A header written from the words alone is accepted by `attach`.
            let mut memory = std::vec![0u128; SharedRing::<T, N>::REGION_SIZE / 16 + 16];
            let base = memory.as_mut_ptr().cast::<u8>();
            let offset = base.align_offset(SharedRing::<T, N>::REGION_ALIGN);
            // SAFETY: `offset + REGION_SIZE` is inside the allocation (padding of 256 bytes).
            let region = unsafe { base.add(offset) };
            for (at, value) in geometry.header_words() {
                // SAFETY: every header word is inside the region and 4-aligned.
                unsafe { region.add(at).cast::<u32>().write(value) };
            }
            // SAFETY: the region is valid, aligned, and used only through this attachment.
            let attached =
                unsafe { SharedRing::<T, N>::attach(region, SharedRing::<T, N>::REGION_SIZE) };
            assert!(attached.is_ok());
        }
        check::<u64, 1024>();
        check::<u8, 1>();
        check::<[u32; 3], 64>();
        check::<Wide, 4>();
        assert!(layout::Geometry::new(3, 8, 8).is_none());
        assert!(layout::Geometry::new(4, 12, 8).is_none());
        assert!(layout::Geometry::new(4, 8, 3).is_none());
    }
}
