//! A hashed timing wheel: set, cancel and fire are O(1).
//!
//! Entries live in a slab and are threaded on intrusive doubly-linked lists, one per
//! bucket (`deadline_tick % slots`). Advancing the clock visits only the buckets whose
//! tick has passed; an entry more than one revolution away stays in its bucket until its
//! own tick comes round. A bitmap of non-empty buckets tells the shard how long it may
//! sleep without scanning entries. The wheel never owns a connection: payloads are
//! tokens, and a fired timer whose connection is gone is simply dropped by the shard.

use std::ops::{Index, IndexMut};
use std::time::{Duration, Instant};

use crate::sys::region;

const NIL: u32 = u32::MAX;

/// Names one armed timer. Stale keys (already fired or cancelled) are recognised by
/// their generation and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey {
    idx: u32,
    generation: u32,
}

struct Entry<T> {
    deadline: u64,
    generation: u32,
    prev: u32,
    next: u32,
    payload: T,
}

/// The wheel's entries. Up to `reserved` of them live in a region reserved up front
/// (`sys::region`: pages resident only while used, given back when freed), so the timers
/// every connection holds cost the same in every run; past that, in an ordinary slab
/// (keys offset by `reserved`), so arming a timer never fails.
struct Entries<T> {
    region: Option<region::Slab<Entry<T>>>,
    overflow: slab::Slab<Entry<T>>,
    reserved: usize,
}

impl<T> Entries<T> {
    fn new(reserved: usize) -> Self {
        // Without the reservation (address space refused) every entry overflows.
        let region = region::Slab::with_capacity(reserved).ok();
        let reserved = region.as_ref().map_or(0, |_| reserved);
        Entries {
            region,
            overflow: slab::Slab::new(),
            reserved,
        }
    }

    fn len(&self) -> usize {
        self.region.as_ref().map_or(0, |r| r.len()) + self.overflow.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, e: Entry<T>) -> usize {
        let e = match self.region.as_mut() {
            Some(r) => match r.insert(e) {
                Ok(key) => return key,
                Err(e) => e,
            },
            None => e,
        };
        self.reserved + self.overflow.insert(e)
    }

    fn get(&self, key: usize) -> Option<&Entry<T>> {
        if key < self.reserved {
            self.region.as_ref()?.get(key)
        } else {
            self.overflow.get(key - self.reserved)
        }
    }

    fn remove(&mut self, key: usize) -> Entry<T> {
        match self.region.as_mut() {
            Some(r) if key < self.reserved => r.remove(key),
            _ => self.overflow.remove(key - self.reserved),
        }
    }
}

impl<T> Index<usize> for Entries<T> {
    type Output = Entry<T>;
    fn index(&self, key: usize) -> &Entry<T> {
        self.get(key).expect("a linked timer entry")
    }
}

impl<T> IndexMut<usize> for Entries<T> {
    fn index_mut(&mut self, key: usize) -> &mut Entry<T> {
        let entry = match self.region.as_mut() {
            Some(r) if key < self.reserved => r.get_mut(key),
            _ => self.overflow.get_mut(key - self.reserved),
        };
        entry.expect("a linked timer entry")
    }
}

/// The wheel. `T` is what a fired timer hands back.
pub(crate) struct TimerWheel<T> {
    entries: Entries<T>,
    heads: Vec<u32>,
    nonempty: Vec<u64>,
    mask: u64,
    tick: Duration,
    origin: Instant,
    /// The last tick whose bucket has been processed.
    current: u64,
    next_generation: u32,
}

impl<T> TimerWheel<T> {
    /// A wheel of `slots` buckets (rounded up to a power of two) of `tick` each, with
    /// room reserved for `reserve` timers (more still work, from the allocator).
    pub(crate) fn new(origin: Instant, slots: usize, tick: Duration, reserve: usize) -> Self {
        let slots = slots.max(64).next_power_of_two();
        TimerWheel {
            entries: Entries::new(reserve),
            heads: vec![NIL; slots],
            nonempty: vec![0; slots / 64],
            mask: slots as u64 - 1,
            tick: tick.max(Duration::from_micros(100)),
            origin,
            current: 0,
            next_generation: 0,
        }
    }

    /// Timers armed and not yet fired or cancelled.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        (d.as_nanos() / self.tick.as_nanos()) as u64
    }

    /// Arms a timer firing `after` from `now` (never earlier; at the tick's granularity).
    pub(crate) fn insert(&mut self, now: Instant, after: Duration, payload: T) -> TimerKey {
        let at = now + after;
        let d = at.saturating_duration_since(self.origin).as_nanos();
        let t = self.tick.as_nanos();
        // Round up so a timer never fires before its time.
        let deadline = (d.div_ceil(t) as u64).max(self.current + 1);
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let idx = self.entries.insert(Entry {
            deadline,
            generation,
            prev: NIL,
            next: NIL,
            payload,
        }) as u32;
        self.link(idx);
        TimerKey { idx, generation }
    }

    /// Cancels a timer, returning its payload if it was still armed.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.idx as usize) {
            Some(e) if e.generation == key.generation => {}
            _ => return None,
        }
        self.unlink(key.idx);
        Some(self.entries.remove(key.idx as usize).payload)
    }

    /// Fires every timer due at `now`, pushing payloads to `out` in no particular order.
    pub(crate) fn advance(&mut self, now: Instant, out: &mut Vec<T>) {
        let target = self.tick_of(now);
        if target <= self.current {
            return;
        }
        let span = self.mask + 1;
        if target - self.current >= span {
            for bucket in 0..span {
                self.fire_bucket(bucket, target, out);
            }
        } else {
            for t in self.current + 1..=target {
                self.fire_bucket(t & self.mask, target, out);
            }
        }
        self.current = target;
    }

    /// When the shard must wake next for timers: the start of the next non-empty bucket's
    /// tick (possibly early, if that bucket only holds timers a revolution or more away).
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        if self.entries.is_empty() {
            return None;
        }
        let span = self.mask + 1;
        let start = self.current + 1;
        let mut t = start;
        while t < start + span {
            let b = (t & self.mask) as usize;
            // Bits of this bitmap word from bucket `b` up: ticks t, t+1, ...
            let word = self.nonempty[b / 64] >> (b % 64);
            if word != 0 {
                let hit = t + word.trailing_zeros() as u64;
                if hit < start + span {
                    return Some(self.instant_of(hit));
                }
                break;
            }
            t += 64 - (b % 64) as u64;
        }
        None
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.origin + Duration::from_nanos((self.tick.as_nanos() as u64).saturating_mul(tick))
    }

    fn fire_bucket(&mut self, bucket: u64, target: u64, out: &mut Vec<T>) {
        let mut idx = self.heads[bucket as usize];
        while idx != NIL {
            let (next, due) = {
                let e = &self.entries[idx as usize];
                (e.next, e.deadline <= target)
            };
            if due {
                self.unlink(idx);
                out.push(self.entries.remove(idx as usize).payload);
            }
            idx = next;
        }
    }

    fn link(&mut self, idx: u32) {
        let bucket = (self.entries[idx as usize].deadline & self.mask) as usize;
        let head = self.heads[bucket];
        {
            let e = &mut self.entries[idx as usize];
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = idx;
        }
        self.heads[bucket] = idx;
        self.nonempty[bucket / 64] |= 1 << (bucket % 64);
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next, deadline) = {
            let e = &self.entries[idx as usize];
            (e.prev, e.next, e.deadline)
        };
        let bucket = (deadline & self.mask) as usize;
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.heads[bucket] = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if self.heads[bucket] == NIL {
            self.nonempty[bucket / 64] &= !(1 << (bucket % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn wheel() -> (TimerWheel<u32>, Instant) {
        let t0 = Instant::now();
        (TimerWheel::new(t0, 256, ms(1), 4), t0)
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let (mut w, t0) = wheel();
        w.insert(t0, ms(10), 1);
        let mut out = vec![];
        w.advance(t0 + ms(9), &mut out);
        assert!(out.is_empty());
        w.advance(t0 + ms(10), &mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn cancel_removes_and_stale_key_is_ignored() {
        let (mut w, t0) = wheel();
        let a = w.insert(t0, ms(5), 1);
        let b = w.insert(t0, ms(5), 2);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        let mut out = vec![];
        w.advance(t0 + ms(6), &mut out);
        assert_eq!(out, vec![2]);
        assert_eq!(w.cancel(b), None, "fired timers cannot be cancelled");
        // A new timer reusing the slab slot must not be cancelled by the old key.
        let c = w.insert(t0 + ms(6), ms(5), 3);
        assert_eq!(w.cancel(b), None);
        assert_eq!(w.cancel(c), Some(3));
    }

    #[test]
    fn far_timers_survive_revolutions() {
        let (mut w, t0) = wheel();
        // 256 slots of 1 ms: 1000 ms is almost four revolutions away.
        w.insert(t0, ms(1000), 7);
        w.insert(t0, ms(1000 - 256), 6);
        let mut out = vec![];
        for step in 1..=999 {
            w.advance(t0 + ms(step), &mut out);
            if step < 744 {
                assert!(out.is_empty(), "fired early at {step}");
            }
        }
        assert_eq!(out, vec![6]);
        w.advance(t0 + ms(1000), &mut out);
        assert_eq!(out, vec![6, 7]);
    }

    #[test]
    fn a_long_jump_fires_everything_due_and_keeps_the_rest() {
        let (mut w, t0) = wheel();
        for i in 0..100u32 {
            w.insert(t0, ms(i as u64 * 7 + 1), i);
        }
        let mut out = vec![];
        w.advance(t0 + ms(400), &mut out);
        out.sort();
        let expect: Vec<u32> = (0..100).filter(|i| i * 7 < 400).collect();
        assert_eq!(out, expect);
        assert_eq!(w.len(), 100 - expect.len());
        out.clear();
        w.advance(t0 + ms(10_000), &mut out);
        assert_eq!(out.len(), 100 - expect.len());
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn next_wake_points_at_the_first_nonempty_bucket() {
        let (mut w, t0) = wheel();
        assert_eq!(w.next_wake(), None);
        w.insert(t0, ms(30), 1);
        w.insert(t0, ms(20), 2);
        assert_eq!(w.next_wake(), Some(t0 + ms(20)));
        let mut out = vec![];
        w.advance(t0 + ms(20), &mut out);
        assert_eq!(w.next_wake(), Some(t0 + ms(30)));
    }

    #[test]
    fn inserting_in_the_past_fires_on_the_next_tick() {
        let (mut w, t0) = wheel();
        let mut out = vec![];
        w.advance(t0 + ms(50), &mut out);
        w.insert(t0 + ms(10), ms(0), 9);
        w.advance(t0 + ms(51), &mut out);
        assert_eq!(out, vec![9]);
    }
}
