//! A bounded map of hot keys, least recently used evicted first, bounded both in entries and in
//! (approximate) bytes.
//!
//! The cache is only a read cache of the state database: every change is committed to the
//! database before it is put back here, so eviction (or throwing away the entries of a batch
//! that was refused downstream) never loses anything. Eviction is done in bulk, a tenth of the
//! capacity at a time, so its O(n) selection is amortised to O(1) per insert and there is no
//! per-access linked-list bookkeeping.

use std::hash::Hash;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    /// Value, recency tick, weight (bytes).
    map: HashMap<K, (V, u64, usize)>,
    tick: u64,
    cap: usize,
    bytes: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// At most `cap` entries and `max_bytes` of summed weights.
    pub fn new(cap: usize, max_bytes: usize) -> Self {
        Lru {
            map: HashMap::default(),
            tick: 0,
            cap: cap.max(1),
            bytes: 0,
            max_bytes: max_bytes.max(1),
        }
    }

    /// Removes and returns the entry (the caller puts it back after committing its change).
    pub fn take(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|(v, _, w)| {
            self.bytes -= w;
            v
        })
    }

    /// Reads without changing the recency.
    #[cfg(test)]
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _, _)| v)
    }

    /// Inserts an entry that weighs `weight` bytes.
    pub fn put(&mut self, k: K, v: V, weight: usize) {
        self.tick += 1;
        self.bytes += weight;
        if let Some((_, _, old)) = self.map.insert(k, (v, self.tick, weight)) {
            self.bytes -= old;
        }
        if self.map.len() > self.cap {
            self.evict();
        }
        if self.bytes > self.max_bytes {
            self.evict_bytes();
        }
    }

    /// The summed weights of the entries.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn evict(&mut self) {
        let keep = self.cap - (self.cap / 10).max(1).min(self.cap - 1);
        let drop = self.map.len().saturating_sub(keep);
        if drop == 0 {
            return;
        }
        let mut ticks: Vec<u64> = self.map.values().map(|(_, t, _)| *t).collect();
        // The `drop`-th smallest tick: everything at or below it goes.
        let (_, nth, _) = ticks.select_nth_unstable(drop - 1);
        let threshold = *nth;
        self.retain_newer(threshold);
    }

    /// Over the byte budget: the least recent entries go until a tenth of it is free. The
    /// number to drop is estimated from the average weight (an O(n) selection, not a sort) and
    /// the selection repeated in the rare case that was not enough.
    fn evict_bytes(&mut self) {
        let target = self.max_bytes - self.max_bytes / 10;
        while self.bytes > target && !self.map.is_empty() {
            let len = self.map.len();
            let excess = (self.bytes - target) as u128;
            let drop = ((len as u128 * excess).div_ceil(self.bytes as u128) as usize).clamp(1, len);
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t, _)| *t).collect();
            let (_, nth, _) = ticks.select_nth_unstable(drop - 1);
            let threshold = *nth;
            self.retain_newer(threshold);
        }
    }

    fn retain_newer(&mut self, threshold: u64) {
        let mut bytes = self.bytes;
        self.map.retain(|_, (_, t, w)| {
            let keep = *t > threshold;
            if !keep {
                bytes -= *w;
            }
            keep
        });
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_put() {
        let mut c = Lru::new(10, usize::MAX);
        for i in 0..11 {
            c.put(i, i, 1);
        }
        assert_eq!(c.len(), 9);
        assert!(c.peek(&0).is_none() && c.peek(&1).is_none());
        assert_eq!(c.peek(&10), Some(&10));
        let v = c.take(&5).unwrap();
        c.put(5, v, 1);
        for i in 11..14 {
            c.put(i, i, 1);
        }
        assert_eq!(c.peek(&5), Some(&5), "recently used survives");
        let mut one = Lru::new(1, usize::MAX);
        one.put(1, 1, 1);
        one.put(2, 2, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(one.peek(&2), Some(&2));
    }

    #[test]
    fn evicts_the_least_recently_put_over_the_byte_budget() {
        let mut c = Lru::new(1000, 100);
        for i in 0..10 {
            c.put(i, i, 10);
        }
        assert_eq!((c.len(), c.bytes()), (10, 100));
        c.put(10, 10, 25);
        assert!(c.bytes() <= 90, "{}", c.bytes());
        assert!(c.peek(&0).is_none() && c.peek(&10).is_some());
        c.put(10, 10, 5);
        assert_eq!(
            c.bytes(),
            (c.len() - 1) * 10 + 5,
            "a replaced entry's weight goes"
        );
        let v = c.take(&10).unwrap();
        assert_eq!(c.bytes(), (c.len()) * 10);
        c.put(99, v, 1000);
        assert_eq!(
            (c.len(), c.bytes()),
            (0, 0),
            "an entry over the budget is not kept"
        );
    }
}
