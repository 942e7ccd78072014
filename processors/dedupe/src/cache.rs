//! A bounded map of hot keys, least recently used evicted first.
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
    map: HashMap<K, (V, u64)>,
    tick: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        Lru {
            map: HashMap::default(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// Removes and returns the entry (the caller puts it back after committing its change).
    pub fn take(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|(v, _)| v)
    }

    /// Reads without changing the recency.
    #[cfg(test)]
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    pub fn put(&mut self, k: K, v: V) {
        self.tick += 1;
        self.map.insert(k, (v, self.tick));
        if self.map.len() > self.cap {
            self.evict();
        }
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
        let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
        // The `drop`-th smallest tick: everything at or below it goes.
        let (_, nth, _) = ticks.select_nth_unstable(drop - 1);
        let threshold = *nth;
        self.map.retain(|_, (_, t)| *t > threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_put() {
        let mut c = Lru::new(10);
        for i in 0..11 {
            c.put(i, i);
        }
        assert_eq!(c.len(), 9);
        assert!(c.peek(&0).is_none() && c.peek(&1).is_none());
        assert_eq!(c.peek(&10), Some(&10));
        let v = c.take(&5).unwrap();
        c.put(5, v);
        for i in 11..14 {
            c.put(i, i);
        }
        assert_eq!(c.peek(&5), Some(&5), "recently used survives");
        let mut one = Lru::new(1);
        one.put(1, 1);
        one.put(2, 2);
        assert_eq!(one.len(), 1);
        assert_eq!(one.peek(&2), Some(&2));
    }
}
