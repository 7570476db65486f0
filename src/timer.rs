//! The timer queue: deadlines in a binary heap, handles that survive rescheduling.
//!
//! The queue knows nothing about clocks: every call takes `now`, so the
//! reactor drives it from the monotonic clock and the test harness from a
//! manual one. Scheduling, cancelling and rescheduling cost O(log n);
//! cancelled and moved entries are dropped lazily and the heap is compacted
//! when more than half of it is stale, so memory stays proportional to the
//! live timers.
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, Instant};
//! use twirl::timer::TimerQueue;
//!
//! let t0 = Instant::now();
//! let mut q = TimerQueue::new(t0);
//! let a = q.schedule(t0, Duration::from_millis(20), None, "a");
//! let _b = q.schedule(t0, Duration::from_millis(10), None, "b");
//! q.cancel(a);
//! assert_eq!(q.pop_due(t0 + Duration::from_millis(30)).map(|f| f.1), Some("b"));
//! assert!(q.pop_due(t0 + Duration::from_millis(30)).is_none());
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Names one scheduled timer; stays valid across [`TimerQueue::reschedule`]
/// and becomes inactive once the timer fires (one-shot) or is cancelled.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    index: u32,
    generation: u32,
}

struct Slot<T> {
    /// The slot's generation; the [`FREE`] bit is set while no timer holds
    /// it, so no handle matches a free slot. Kept while free: a handle is
    /// never valid for a later timer in the same slot. A slot whose
    /// generation reaches [`LAST_GENERATION`] is retired (never reused)
    /// instead of wrapping, so no handle is ever given twice.
    generation: u32,
    /// Sequence number of this timer's live heap entry; older entries are stale.
    seq: u32,
    /// `None` while a fired repeating timer's action is out being run.
    action: Option<T>,
}

/// A heap entry: deadline (ns since the queue's base), then sequence
/// number, which keeps timers with equal deadlines in the order they were
/// scheduled, then the slot. 16 bytes.
type Entry = Reverse<(u64, u32, u32)>;

/// Marks a free slot's generation.
const FREE: u32 = 1 << 31;
/// The last generation a slot is given before it is retired.
const LAST_GENERATION: u32 = FREE - 1;

/// A priority queue of timers carrying actions of type `T`.
///
/// Memory per pending timer: a 16-byte heap entry and a slot of 8 bytes plus
/// `T` (rounded up to `T`'s alignment). Repeating timers keep their interval
/// in a side table, since most timers do not repeat.
pub struct TimerQueue<T> {
    base: Instant,
    heap: BinaryHeap<Entry>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    intervals: HashMap<u32, u64>,
    /// Wraps after 2^32 schedulings; a stale entry would have to survive
    /// that many (compaction drops stale entries long before) to be mistaken.
    next_seq: u32,
    live: usize,
}

impl<T> TimerQueue<T> {
    /// An empty queue; `now` anchors its internal nanosecond clock.
    pub fn new(now: Instant) -> Self {
        TimerQueue {
            base: now,
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            intervals: HashMap::new(),
            next_seq: 0,
            live: 0,
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&mut self, deadline_ns: u64, index: u32) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.heap.push(Reverse((deadline_ns, seq, index)));
        seq
    }

    /// Schedules `action` to fire `delay` after `now`, then every `interval` if given.
    pub fn schedule(&mut self, now: Instant, delay: Duration, interval: Option<Duration>, action: T) -> TimerHandle {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { generation: FREE, seq: 0, action: None });
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 timers")
            }
        };
        let deadline = self.ns(now).saturating_add(dur_ns(delay));
        let seq = self.push(deadline, index);
        // Free slots never hold LAST_GENERATION (see `release`): no wrap.
        let generation = (self.slots[index as usize].generation & !FREE) + 1;
        match interval {
            // A zero interval still advances (by 1 ns), so a repeat cannot spin.
            Some(i) => {
                self.intervals.insert(index, dur_ns(i).max(1));
            }
            // Most queues hold no repeating timer: skip the hashing then.
            None if !self.intervals.is_empty() => {
                self.intervals.remove(&index);
            }
            None => {}
        }
        self.slots[index as usize] = Slot { generation, seq, action: Some(action) };
        self.live += 1;
        TimerHandle { index, generation }
    }

    fn slot(&self, h: TimerHandle) -> Option<&Slot<T>> {
        self.slots.get(h.index as usize).filter(|s| s.generation == h.generation)
    }

    fn slot_mut(&mut self, h: TimerHandle) -> Option<&mut Slot<T>> {
        self.slots.get_mut(h.index as usize).filter(|s| s.generation == h.generation)
    }

    /// True while the timer is scheduled (a repeating timer stays active until cancelled).
    pub fn is_active(&self, h: TimerHandle) -> bool {
        self.slot(h).is_some()
    }

    /// Cancels the timer; true if it was active. A repeating timer
    /// cancelled from its own callback (its action lent out by
    /// [`pop_due`](Self::pop_due)) counts as active: it is cancelled, and the
    /// action handed back by [`restore`](Self::restore) is dropped.
    pub fn cancel(&mut self, h: TimerHandle) -> bool {
        if self.slot(h).is_none() {
            return false;
        }
        self.vacate(h.index);
        if !self.intervals.is_empty() {
            self.intervals.remove(&h.index);
        }
        self.live -= 1;
        self.maybe_compact();
        true
    }

    /// Moves an active timer to fire `delay` after `now`; false if it is not active.
    pub fn reschedule(&mut self, now: Instant, h: TimerHandle, delay: Duration) -> bool {
        if self.slot(h).is_none() {
            return false;
        }
        let deadline = self.ns(now).saturating_add(dur_ns(delay));
        let seq = self.push(deadline, h.index);
        if let Some(s) = self.slot_mut(h) {
            s.seq = seq;
        }
        self.maybe_compact();
        true
    }

    /// Number of active timers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no timer is active.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn is_stale(&self, seq: u32, index: u32) -> bool {
        let s = &self.slots[index as usize];
        s.generation & FREE != 0 || s.seq != seq
    }

    fn drop_stale_top(&mut self) {
        while let Some(&Reverse((_, seq, index))) = self.heap.peek() {
            if !self.is_stale(seq, index) {
                break;
            }
            self.heap.pop();
        }
    }

    /// The earliest deadline among active timers.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((ns, _, _))| self.base + Duration::from_nanos(*ns))
    }

    /// Takes the next timer due at `now`, earliest first and, for equal
    /// deadlines, in the order they were scheduled.
    ///
    /// A one-shot timer is removed. A repeating timer is rescheduled one
    /// interval after its deadline (skipping intervals already missed, like
    /// Twisted's `LoopingCall`) and its action lent out: hand it back with
    /// [`restore`](Self::restore) after running it.
    pub fn pop_due(&mut self, now: Instant) -> Option<(TimerHandle, T)> {
        self.pop_due_before(now, u64::MAX)
    }

    /// A mark for [`pop_due_before`](Self::pop_due_before): timers scheduled
    /// (or rescheduled, or repeated) after it count as later than it.
    pub fn mark(&self) -> u64 {
        u64::from(self.next_seq)
    }

    /// Like [`pop_due`](Self::pop_due), but only timers scheduled before
    /// `mark`. The reactor fires a turn's timers this way, so that a timer set
    /// for "now" from a timer callback runs next turn, after other sources
    /// had theirs, instead of again and again within the same turn.
    pub fn pop_due_before(&mut self, now: Instant, mark: u64) -> Option<(TimerHandle, T)> {
        self.drop_stale_top();
        let now_ns = self.ns(now);
        let &Reverse((deadline, seq, index)) = self.heap.peek()?;
        // Entries are ordered by deadline, then sequence: once the top is
        // newer than the mark, every older due entry has already been taken.
        // (A pass spans far fewer than 2^31 schedulings, so the wrapping
        // distance tells newer from older.)
        let newer = mark != u64::MAX && seq.wrapping_sub(mark as u32) < (1 << 31);
        if deadline > now_ns || newer {
            return None;
        }
        self.heap.pop();
        let h = TimerHandle { index, generation: self.slots[index as usize].generation };
        let repeat = if self.intervals.is_empty() { None } else { self.intervals.get(&index).copied() };
        let Some(interval) = repeat else {
            let action = self.vacate(index);
            self.live -= 1;
            return action.map(|a| (h, a));
        };
        let missed = (now_ns - deadline) / interval;
        let next = deadline.saturating_add(interval.saturating_mul(missed + 1));
        let action = self.slots[index as usize].action.take();
        let seq = self.push(next, index);
        self.slots[index as usize].seq = seq;
        action.map(|a| (h, a))
    }

    /// Gives a repeating timer's action back after it ran; dropped if the
    /// timer was cancelled meanwhile.
    pub fn restore(&mut self, h: TimerHandle, action: T) {
        if let Some(s) = self.slot_mut(h) {
            s.action = Some(action);
        }
    }

    /// Frees a slot, returning its action: on the free list, unless its
    /// generations are used up: then it is retired, for good.
    fn vacate(&mut self, index: u32) -> Option<T> {
        let slot = &mut self.slots[index as usize];
        let generation = slot.generation;
        slot.generation |= FREE;
        let action = slot.action.take();
        if generation < LAST_GENERATION {
            self.free.push(index);
        }
        action
    }

    fn maybe_compact(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live {
            let heap = std::mem::take(&mut self.heap);
            let live: Vec<_> =
                heap.into_vec().into_iter().filter(|Reverse((_, seq, index))| !self.is_stale(*seq, *index)).collect();
            self.heap = BinaryHeap::from(live);
        }
    }
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(q: &mut TimerQueue<&'static str>, now: Instant) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some((h, a)) = q.pop_due(now) {
            out.push(a);
            q.restore(h, a);
            if out.len() > 1000 {
                break;
            }
        }
        out
    }

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        q.schedule(t0, ms(30), None, "c");
        q.schedule(t0, ms(10), None, "a1");
        q.schedule(t0, ms(10), None, "a2");
        q.schedule(t0, ms(20), None, "b");
        assert_eq!(q.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(drain(&mut q, t0 + ms(9)), Vec::<&str>::new());
        assert_eq!(drain(&mut q, t0 + ms(20)), vec!["a1", "a2", "b"]);
        assert_eq!(drain(&mut q, t0 + ms(100)), vec!["c"]);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn cancel_and_reschedule() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let a = q.schedule(t0, ms(10), None, "a");
        let b = q.schedule(t0, ms(20), None, "b");
        assert!(q.is_active(a));
        assert!(q.cancel(a));
        assert!(!q.is_active(a));
        assert!(!q.cancel(a));
        assert!(q.reschedule(t0 + ms(5), b, ms(50)));
        assert_eq!(drain(&mut q, t0 + ms(54)), Vec::<&str>::new());
        assert_eq!(q.next_deadline(), Some(t0 + ms(55)));
        assert_eq!(drain(&mut q, t0 + ms(55)), vec!["b"]);
        assert!(!q.is_active(b));
        assert!(!q.reschedule(t0, b, ms(1)));
    }

    #[test]
    fn stale_handle_does_not_touch_new_timer_in_reused_slot() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let a = q.schedule(t0, ms(10), None, "a");
        q.cancel(a);
        let b = q.schedule(t0, ms(10), None, "b");
        assert!(!q.cancel(a));
        assert!(q.is_active(b));
        assert_eq!(drain(&mut q, t0 + ms(10)), vec!["b"]);
    }

    #[test]
    fn repeating_timer_skips_missed_intervals_and_cancels() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let r = q.schedule(t0, ms(10), Some(ms(10)), "tick");
        assert_eq!(drain(&mut q, t0 + ms(10)), vec!["tick"]);
        assert_eq!(drain(&mut q, t0 + ms(15)), Vec::<&str>::new());
        // 35 ms late: one firing, next deadline at 50.
        assert_eq!(drain(&mut q, t0 + ms(45)), vec!["tick"]);
        assert_eq!(q.next_deadline(), Some(t0 + ms(50)));
        assert!(q.is_active(r));
        assert!(q.cancel(r));
        assert_eq!(drain(&mut q, t0 + ms(1000)), Vec::<&str>::new());
    }

    #[test]
    fn timers_set_during_a_pass_wait_for_the_next_one() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        q.schedule(t0, ms(0), None, "old");
        let r = q.schedule(t0, ms(0), Some(ms(0)), "repeat");
        let mark = q.mark();
        assert_eq!(q.pop_due_before(t0, mark).map(|f| f.1), Some("old"));
        q.schedule(t0, ms(0), None, "new");
        let (h, a) = q.pop_due_before(t0, mark).unwrap();
        assert_eq!((h, a), (r, "repeat"));
        q.restore(h, a);
        assert!(q.pop_due_before(t0, mark).is_none(), "the repeat and the new one wait");
        let mark = q.mark();
        assert_eq!(drain_before(&mut q, t0, mark), vec!["new"], "the repeat's next deadline is 1 ns on");
        let later = t0 + Duration::from_nanos(1);
        let mark = q.mark();
        assert_eq!(drain_before(&mut q, later, mark), vec!["repeat"]);
    }

    fn drain_before(q: &mut TimerQueue<&'static str>, now: Instant, mark: u64) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some((h, a)) = q.pop_due_before(now, mark) {
            out.push(a);
            q.restore(h, a);
        }
        out
    }

    #[test]
    fn cancel_during_run_drops_restored_action() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let r = q.schedule(t0, ms(1), Some(ms(1)), "tick");
        let (h, a) = q.pop_due(t0 + ms(1)).unwrap();
        assert!(q.cancel(r), "cancelling itself while its action is out being run");
        q.restore(h, a);
        assert!(!q.is_active(r));
        assert!(q.pop_due(t0 + ms(100)).is_none());
    }

    #[test]
    fn a_pending_timer_costs_at_most_64_bytes() {
        // The reactor's own action type, the largest in use.
        let per_timer = size_of::<Entry>() + size_of::<Slot<crate::core::TimerAction>>();
        assert!(per_timer <= 64, "{per_timer} bytes per timer");
    }

    #[test]
    fn a_handle_is_never_valid_for_a_later_timer() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let h = q.schedule(t0, ms(1), None, ());
            assert!(seen.insert(h), "handle {h:?} given twice");
            q.cancel(h);
        }
        assert_eq!(q.slots.len(), 1, "one slot, reused");
        // A slot at its last generation is retired, not wrapped to 0 and reused.
        q.slots[0].generation = FREE | (LAST_GENERATION - 1);
        let last = q.schedule(t0, ms(1), None, ());
        q.cancel(last);
        let next = q.schedule(t0, ms(1), None, ());
        assert_ne!(next.index, last.index, "the exhausted slot is retired");
        assert!(!q.is_active(last) && q.is_active(next));
        assert!(seen.insert(last) && seen.insert(next));
    }

    #[test]
    fn compaction_keeps_heap_proportional_to_live_timers() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let keep = q.schedule(t0, ms(5000), None, "keep");
        for i in 0..10_000u64 {
            let h = q.schedule(t0, ms(i), None, "x");
            q.cancel(h);
            q.reschedule(t0, keep, ms(5000 + i));
        }
        assert!(q.heap.len() <= 200, "heap grew to {}", q.heap.len());
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(t0 + ms(5000 + 9999)));
    }
}
