//! Run queues of the preemptive priority round-robin scheduler.
//!
//! 256 priorities, one FIFO queue each, and a bitmap of non-empty queues so the highest
//! ready priority is found with a count of leading zeros. Queues are intrusive lists
//! through a `next` array indexed by thread id, so enqueue and dequeue are O(1) and need
//! no allocation. Pure logic, tested on the host.

/// Index of a thread in the kernel's thread table.
pub type ThreadId = usize;

const NONE: u16 = u16::MAX;
/// Number of priorities.
pub const PRIORITIES: usize = 256;

/// The ready queues for at most `MAX` threads.
#[derive(Debug)]
pub struct RunQueues<const MAX: usize> {
    head: [u16; PRIORITIES],
    tail: [u16; PRIORITIES],
    next: [u16; MAX],
    queued: [bool; MAX],
    bitmap: [u64; 4],
}

impl<const MAX: usize> Default for RunQueues<MAX> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const MAX: usize> RunQueues<MAX> {
    /// Empty queues.
    pub const fn new() -> Self {
        assert!(MAX < NONE as usize);
        Self {
            head: [NONE; PRIORITIES],
            tail: [NONE; PRIORITIES],
            next: [NONE; MAX],
            queued: [false; MAX],
            bitmap: [0; 4],
        }
    }

    /// Whether `thread` is in some queue.
    pub fn is_queued(&self, thread: ThreadId) -> bool {
        self.queued[thread]
    }

    /// Appends `thread` to the queue of `priority`. A thread already queued is left alone.
    pub fn push_back(&mut self, thread: ThreadId, priority: u8) {
        if self.queued[thread] {
            return;
        }
        let p = priority as usize;
        self.next[thread] = NONE;
        match self.tail[p] {
            NONE => self.head[p] = thread as u16,
            tail => self.next[tail as usize] = thread as u16,
        }
        self.tail[p] = thread as u16;
        self.queued[thread] = true;
        self.bitmap[p / 64] |= 1 << (p % 64);
    }

    /// Puts `thread` at the front of the queue of `priority` (a preempted thread keeps its
    /// turn).
    pub fn push_front(&mut self, thread: ThreadId, priority: u8) {
        if self.queued[thread] {
            return;
        }
        let p = priority as usize;
        self.next[thread] = self.head[p];
        if self.head[p] == NONE {
            self.tail[p] = thread as u16;
        }
        self.head[p] = thread as u16;
        self.queued[thread] = true;
        self.bitmap[p / 64] |= 1 << (p % 64);
    }

    /// The highest priority with a ready thread.
    pub fn highest_priority(&self) -> Option<u8> {
        (0..4).rev().find_map(|word| {
            let bits = self.bitmap[word];
            (bits != 0).then(|| (word * 64 + 63 - bits.leading_zeros() as usize) as u8)
        })
    }

    /// Removes and returns the first thread of the highest non-empty priority.
    pub fn pop_highest(&mut self) -> Option<(ThreadId, u8)> {
        let priority = self.highest_priority()?;
        let p = priority as usize;
        let thread = self.head[p] as usize;
        self.head[p] = self.next[thread];
        if self.head[p] == NONE {
            self.tail[p] = NONE;
            self.bitmap[p / 64] &= !(1 << (p % 64));
        }
        self.queued[thread] = false;
        Some((thread, priority))
    }

    /// Removes `thread` from the queue of `priority`, if it is there.
    pub fn remove(&mut self, thread: ThreadId, priority: u8) {
        if !self.queued[thread] {
            return;
        }
        let p = priority as usize;
        let mut previous = NONE;
        let mut cursor = self.head[p];
        while cursor != NONE && cursor as usize != thread {
            previous = cursor;
            cursor = self.next[cursor as usize];
        }
        if cursor == NONE {
            return;
        }
        let after = self.next[thread];
        match previous {
            NONE => self.head[p] = after,
            previous => self.next[previous as usize] = after,
        }
        if self.tail[p] as usize == thread {
            self.tail[p] = previous;
        }
        if self.head[p] == NONE {
            self.bitmap[p / 64] &= !(1 << (p % 64));
        }
        self.queued[thread] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_priority_first_round_robin_within() {
        let mut queues = RunQueues::<8>::new();
        queues.push_back(1, 10);
        queues.push_back(2, 200);
        queues.push_back(3, 10);
        queues.push_back(4, 200);
        assert_eq!(queues.highest_priority(), Some(200));
        assert_eq!(queues.pop_highest(), Some((2, 200)));
        queues.push_back(2, 200);
        assert_eq!(queues.pop_highest(), Some((4, 200)));
        assert_eq!(queues.pop_highest(), Some((2, 200)));
        assert_eq!(queues.pop_highest(), Some((1, 10)));
        assert_eq!(queues.pop_highest(), Some((3, 10)));
        assert_eq!(queues.pop_highest(), None);
    }

    #[test]
    fn front_insert_remove_and_no_double_queueing() {
        let mut queues = RunQueues::<8>::new();
        queues.push_back(1, 0);
        queues.push_back(2, 0);
        queues.push_back(2, 0);
        queues.push_front(3, 0);
        queues.remove(1, 0);
        assert!(!queues.is_queued(1));
        assert_eq!(queues.pop_highest(), Some((3, 0)));
        assert_eq!(queues.pop_highest(), Some((2, 0)));
        assert_eq!(queues.pop_highest(), None);
        queues.push_back(5, 255);
        queues.remove(5, 255);
        assert_eq!(queues.highest_priority(), None);
        queues.push_back(6, 63);
        queues.push_back(7, 64);
        assert_eq!(queues.highest_priority(), Some(64));
    }

    #[test]
    fn removing_the_tail_keeps_the_queue_consistent() {
        let mut queues = RunQueues::<8>::new();
        queues.push_back(1, 5);
        queues.push_back(2, 5);
        queues.remove(2, 5);
        queues.push_back(3, 5);
        assert_eq!(queues.pop_highest(), Some((1, 5)));
        assert_eq!(queues.pop_highest(), Some((3, 5)));
        assert_eq!(queues.pop_highest(), None);
    }
}
