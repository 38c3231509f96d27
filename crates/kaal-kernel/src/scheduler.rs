//! Run queues of the preemptive priority round-robin scheduler.
//!
//! 256 priorities, one FIFO queue each, and a bitmap of non-empty queues so the highest
//! ready priority is found with a count of leading zeros. The queues are intrusive doubly
//! linked lists through fields of the thread objects themselves ([`QueueLinks`]), so
//! enqueue and dequeue are O(1), need no allocation, and there is no limit on the number
//! of threads. Pure logic, tested on the host.

/// Names a thread (the kernel uses its TCB's physical address). Never 0.
pub type ThreadRef = u64;

/// Number of priorities.
pub const PRIORITIES: usize = 256;

/// Where a queue keeps its links: inside each thread.
pub trait QueueLinks {
    /// The thread after `thread` (0 if none).
    fn next(&self, thread: ThreadRef) -> ThreadRef;
    /// The thread before `thread` (0 if none).
    fn previous(&self, thread: ThreadRef) -> ThreadRef;
    /// Sets both links of `thread`.
    fn set_links(&mut self, thread: ThreadRef, previous: ThreadRef, next: ThreadRef);
    /// Sets the next link of `thread`.
    fn set_next(&mut self, thread: ThreadRef, next: ThreadRef);
    /// Sets the previous link of `thread`.
    fn set_previous(&mut self, thread: ThreadRef, previous: ThreadRef);
}

/// A FIFO of threads linked through [`QueueLinks`]: the shape of run queues and of the
/// wait queues of endpoints and notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Queue {
    /// First thread, 0 if empty.
    pub head: ThreadRef,
    /// Last thread, 0 if empty.
    pub tail: ThreadRef,
}

impl Queue {
    /// An empty queue.
    pub const EMPTY: Self = Self { head: 0, tail: 0 };

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.head == 0
    }

    /// Appends `thread`.
    pub fn push_back(&mut self, links: &mut impl QueueLinks, thread: ThreadRef) {
        links.set_links(thread, self.tail, 0);
        if self.tail == 0 {
            self.head = thread;
        } else {
            links.set_next(self.tail, thread);
        }
        self.tail = thread;
    }

    /// Prepends `thread`.
    pub fn push_front(&mut self, links: &mut impl QueueLinks, thread: ThreadRef) {
        links.set_links(thread, 0, self.head);
        if self.head == 0 {
            self.tail = thread;
        } else {
            links.set_previous(self.head, thread);
        }
        self.head = thread;
    }

    /// Removes and returns the first thread.
    pub fn pop_front(&mut self, links: &mut impl QueueLinks) -> Option<ThreadRef> {
        let thread = self.head;
        if thread == 0 {
            return None;
        }
        // `remove` for the first thread, which has no predecessor.
        let next = links.next(thread);
        self.head = next;
        if next == 0 {
            self.tail = 0;
        } else {
            links.set_previous(next, 0);
        }
        links.set_links(thread, 0, 0);
        Some(thread)
    }

    /// Unlinks `thread`, which must be in this queue.
    pub fn remove(&mut self, links: &mut impl QueueLinks, thread: ThreadRef) {
        let (previous, next) = (links.previous(thread), links.next(thread));
        if previous == 0 {
            self.head = next;
        } else {
            links.set_next(previous, next);
        }
        if next == 0 {
            self.tail = previous;
        } else {
            links.set_previous(next, previous);
        }
        links.set_links(thread, 0, 0);
    }
}

/// The ready queues.
#[derive(Debug)]
pub struct RunQueues {
    queues: [Queue; PRIORITIES],
    /// Bit `p % 64` of word `p / 64`: the queue of priority `p` is not empty.
    bitmap: [u64; 4],
    /// Bit `w`: word `w` of `bitmap` is not zero (seL4's two-level bitmap), so the
    /// highest ready priority takes two counts of leading zeros, not a scan.
    words: u64,
}

impl Default for RunQueues {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueues {
    /// Empty queues.
    pub const fn new() -> Self {
        Self {
            queues: [Queue::EMPTY; PRIORITIES],
            bitmap: [0; 4],
            words: 0,
        }
    }

    fn mark(&mut self, priority: u8) {
        let p = priority as usize;
        let word = p / 64;
        if self.queues[p].is_empty() {
            self.bitmap[word] &= !(1 << (p % 64));
            if self.bitmap[word] == 0 {
                self.words &= !(1 << word);
            }
        } else {
            self.bitmap[word] |= 1 << (p % 64);
            self.words |= 1 << word;
        }
    }

    /// Appends `thread` (not queued anywhere) to the queue of `priority`.
    pub fn push_back(&mut self, links: &mut impl QueueLinks, thread: ThreadRef, priority: u8) {
        self.queues[priority as usize].push_back(links, thread);
        self.mark(priority);
    }

    /// Puts `thread` at the front of its priority (a preempted thread keeps its turn).
    pub fn push_front(&mut self, links: &mut impl QueueLinks, thread: ThreadRef, priority: u8) {
        self.queues[priority as usize].push_front(links, thread);
        self.mark(priority);
    }

    /// The highest priority with a ready thread.
    #[inline]
    pub fn highest_priority(&self) -> Option<u8> {
        if self.words == 0 {
            return None;
        }
        let word = 63 - self.words.leading_zeros() as usize;
        let bits = self.bitmap[word & 3];
        Some((word * 64 + 63 - bits.leading_zeros() as usize) as u8)
    }

    /// The first thread queued at `priority` (0 if none).
    pub fn first(&self, priority: u8) -> ThreadRef {
        self.queues[priority as usize].head
    }

    /// Removes and returns the first thread of the highest non-empty priority.
    pub fn pop_highest(&mut self, links: &mut impl QueueLinks) -> Option<(ThreadRef, u8)> {
        let priority = self.highest_priority()?;
        let thread = self.queues[priority as usize].pop_front(links)?;
        self.mark(priority);
        Some((thread, priority))
    }

    /// Takes the first thread queued at `priority` and appends `thread` (not queued
    /// anywhere) to the same queue: a `yield` in one step. The queue is never empty in
    /// between, so the bitmap stays as it is. `None`, and nothing changed, if the queue
    /// is empty.
    #[inline]
    pub fn rotate(
        &mut self,
        links: &mut impl QueueLinks,
        thread: ThreadRef,
        priority: u8,
    ) -> Option<ThreadRef> {
        let queue = &mut self.queues[priority as usize];
        let first = queue.pop_front(links)?;
        queue.push_back(links, thread);
        Some(first)
    }

    /// Removes `thread`, which is queued at `priority`.
    pub fn remove(&mut self, links: &mut impl QueueLinks, thread: ThreadRef, priority: u8) {
        self.queues[priority as usize].remove(links, thread);
        self.mark(priority);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Links(HashMap<ThreadRef, (ThreadRef, ThreadRef)>);

    impl QueueLinks for Links {
        fn next(&self, t: ThreadRef) -> ThreadRef {
            self.0.get(&t).map_or(0, |l| l.1)
        }
        fn previous(&self, t: ThreadRef) -> ThreadRef {
            self.0.get(&t).map_or(0, |l| l.0)
        }
        fn set_links(&mut self, t: ThreadRef, p: ThreadRef, n: ThreadRef) {
            self.0.insert(t, (p, n));
        }
        fn set_next(&mut self, t: ThreadRef, n: ThreadRef) {
            self.0.entry(t).or_default().1 = n;
        }
        fn set_previous(&mut self, t: ThreadRef, p: ThreadRef) {
            self.0.entry(t).or_default().0 = p;
        }
    }

    #[test]
    fn highest_priority_follows_every_word_of_the_bitmap() {
        let (mut queues, mut links) = (RunQueues::new(), Links::default());
        let mut model = std::collections::BTreeMap::<u8, Vec<ThreadRef>>::new();
        // A fixed pseudo-random walk of pushes and removals over all 256 priorities.
        let mut state = 0x1234_5678_u64;
        for step in 1..=if cfg!(miri) { 600 } else { 4000u64 } {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let priority = (state >> 56) as u8;
            let queued: Vec<(u8, ThreadRef)> = model
                .iter()
                .flat_map(|(&p, ts)| ts.iter().map(move |&t| (p, t)))
                .collect();
            if state & 1 == 0 || queued.is_empty() {
                queues.push_back(&mut links, step, priority);
                model.entry(priority).or_default().push(step);
            } else {
                let (p, t) = queued[(state >> 8) as usize % queued.len()];
                queues.remove(&mut links, t, p);
                let list = model.get_mut(&p).expect("queued");
                list.retain(|&x| x != t);
                if list.is_empty() {
                    model.remove(&p);
                }
            }
            assert_eq!(queues.highest_priority(), model.keys().next_back().copied());
        }
    }

    #[test]
    fn highest_priority_first_round_robin_within() {
        let (mut queues, mut links) = (RunQueues::new(), Links::default());
        queues.push_back(&mut links, 1, 10);
        queues.push_back(&mut links, 2, 200);
        queues.push_back(&mut links, 3, 10);
        queues.push_back(&mut links, 4, 200);
        assert_eq!(queues.highest_priority(), Some(200));
        assert_eq!(queues.pop_highest(&mut links), Some((2, 200)));
        queues.push_back(&mut links, 2, 200);
        assert_eq!(queues.pop_highest(&mut links), Some((4, 200)));
        assert_eq!(queues.pop_highest(&mut links), Some((2, 200)));
        assert_eq!(queues.pop_highest(&mut links), Some((1, 10)));
        assert_eq!(queues.pop_highest(&mut links), Some((3, 10)));
        assert_eq!(queues.pop_highest(&mut links), None);
    }

    #[test]
    fn front_insert_and_remove_anywhere() {
        let (mut queues, mut links) = (RunQueues::new(), Links::default());
        for t in 1..=4 {
            queues.push_back(&mut links, t, 0);
        }
        queues.remove(&mut links, 2, 0); // middle
        queues.remove(&mut links, 4, 0); // tail
        queues.push_front(&mut links, 9, 0);
        queues.remove(&mut links, 9, 0); // head
        queues.push_back(&mut links, 5, 0);
        let order: Vec<_> =
            std::iter::from_fn(|| queues.pop_highest(&mut links).map(|x| x.0)).collect();
        assert_eq!(order, vec![1, 3, 5]);
        assert_eq!(queues.highest_priority(), None);
        queues.push_back(&mut links, 6, 63);
        queues.push_back(&mut links, 7, 64);
        assert_eq!(queues.highest_priority(), Some(64));
        queues.remove(&mut links, 7, 64);
        assert_eq!(queues.highest_priority(), Some(63));
    }

    #[test]
    fn random_operations_match_a_model() {
        let (mut queues, mut links) = (RunQueues::new(), Links::default());
        let mut model: Vec<Vec<ThreadRef>> = vec![Vec::new(); PRIORITIES];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rng = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut where_is: HashMap<ThreadRef, u8> = HashMap::new();
        for _ in 0..if cfg!(miri) { 1_000 } else { 20_000 } {
            let thread = 1 + rng() % 64;
            let priority = (rng() % 4) as u8 * 60;
            match (where_is.get(&thread).copied(), rng() % 4) {
                (None, 3) if !model[priority as usize].is_empty() => {
                    // A yield: the first of `priority` out, `thread` in at the back.
                    let first = model[priority as usize].remove(0);
                    model[priority as usize].push(thread);
                    assert_eq!(queues.rotate(&mut links, thread, priority), Some(first));
                    where_is.remove(&first);
                    where_is.insert(thread, priority);
                }
                (None, 3) => {
                    // Rotating an empty queue changes nothing.
                    assert_eq!(queues.rotate(&mut links, thread, priority), None);
                    assert_eq!(queues.first(priority), 0);
                }
                (None, 0) => {
                    queues.push_back(&mut links, thread, priority);
                    model[priority as usize].push(thread);
                    where_is.insert(thread, priority);
                }
                (None, 1) => {
                    queues.push_front(&mut links, thread, priority);
                    model[priority as usize].insert(0, thread);
                    where_is.insert(thread, priority);
                }
                (Some(p), 2) => {
                    queues.remove(&mut links, thread, p);
                    model[p as usize].retain(|&t| t != thread);
                    where_is.remove(&thread);
                }
                _ => {
                    let expected = (0..PRIORITIES).rev().find(|&p| !model[p].is_empty());
                    let got = queues.pop_highest(&mut links);
                    match expected {
                        None => assert_eq!(got, None),
                        Some(p) => {
                            let t = model[p].remove(0);
                            assert_eq!(got, Some((t, p as u8)));
                            where_is.remove(&t);
                        }
                    }
                }
            }
        }
    }
}
