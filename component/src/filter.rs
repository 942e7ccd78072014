//! A Bloom filter over 64-bit ids of keys a database holds, so that a key it cannot hold
//! (every new key) is not looked up there.
//!
//! Used by the `dedupe` processor (ids of its state file's keys) and by the `sqlite` exporter
//! (ids of the event keys it stores, which a `dedupe` with `storage` reads its state from).
//!
//! It never answers "absent" for an id that was inserted, and ids are only ever inserted (a
//! deleted key stays "maybe present", which is merely a wasted lookup). Its owner builds it when
//! it opens its file, from every id there, and inserts the id of every new key before the
//! transaction that writes it. So across restarts and failed commits a key with a row is always
//! "maybe present".
//!
//! Size: 16 bits per key of capacity, 4 probes (≈0.25 % false positives when full). The
//! capacity is doubled (and the filter rebuilt from the file) when the inserted ids reach it,
//! up to [`MAX_BITS`] (32 MiB, 16 M keys); beyond that it is no longer rebuilt and its false
//! positives rise towards "always maybe", i.e. towards the lookup it saves, never towards a wrong
//! answer.

/// Bits per key of capacity.
const BITS_PER_KEY: u64 = 16;
/// Probes per id.
const PROBES: u32 = 4;
/// The smallest filter: 64 K keys, 128 KiB.
const MIN_BITS: u64 = 1 << 20;
/// The largest filter: 32 MiB.
pub const MAX_BITS: u64 = 1 << 28;

/// The filter (see the module docs).
#[derive(Debug, Clone)]
pub struct KeyFilter {
    words: Vec<u64>,
    /// `bits - 1` (`bits` is a power of two).
    mask: u64,
    /// Ids inserted (with repeats), against the capacity.
    inserted: u64,
}

/// splitmix64's finaliser: ids need not be uniform (`dedupe`'s have a hash of the session in
/// their high half, shared by all of the session's keys), so they are mixed before probing.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl KeyFilter {
    /// An empty filter with room for `keys` keys (at least the minimum size).
    pub fn with_capacity(keys: u64) -> KeyFilter {
        let bits = keys
            .saturating_mul(BITS_PER_KEY)
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two()
            .min(MAX_BITS);
        KeyFilter {
            words: vec![0; (bits / 64) as usize],
            mask: bits - 1,
            inserted: 0,
        }
    }

    fn probes(&self, id: i64) -> [u64; PROBES as usize] {
        let h = mix(id as u64);
        let (h1, h2) = (h, (h >> 32) | 1);
        std::array::from_fn(|i| h1.wrapping_add((i as u64).wrapping_mul(h2)) & self.mask)
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: i64) {
        for b in self.probes(id) {
            self.words[(b / 64) as usize] |= 1 << (b % 64);
        }
        self.inserted += 1;
    }

    /// False only if `id` was never inserted.
    pub fn may_contain(&self, id: i64) -> bool {
        self.probes(id)
            .into_iter()
            .all(|b| self.words[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// Whether it is full and may still grow (the caller then rebuilds it, bigger).
    pub fn wants_rebuild(&self) -> bool {
        let bits = self.mask + 1;
        bits < MAX_BITS && self.inserted.saturating_mul(BITS_PER_KEY) >= bits
    }

    /// Its capacity in keys.
    pub fn capacity(&self) -> u64 {
        (self.mask + 1) / BITS_PER_KEY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_never_absent_and_others_mostly_are() {
        let mut f = KeyFilter::with_capacity(10_000);
        // Ids shaped like key ids: many keys share the session half.
        let ids: Vec<i64> = (0..10_000u64)
            .map(|i| ((i / 1000) << 32 | mix(i) & 0xffff_ffff) as i64)
            .collect();
        for id in &ids {
            f.insert(*id);
        }
        assert!(ids.iter().all(|id| f.may_contain(*id)));
        let false_positives = (0..100_000u64)
            .map(|i| mix(i + 1_000_000) as i64)
            .filter(|id| f.may_contain(*id))
            .count();
        assert!(false_positives < 1000, "{false_positives}");
    }

    #[test]
    fn grows_until_the_bound() {
        let mut f = KeyFilter::with_capacity(0);
        assert_eq!(f.capacity(), MIN_BITS / BITS_PER_KEY);
        for i in 0..f.capacity() as i64 {
            f.insert(i);
        }
        assert!(f.wants_rebuild());
        let big = KeyFilter::with_capacity(u64::MAX);
        assert_eq!(big.capacity(), MAX_BITS / BITS_PER_KEY);
        assert!(!big.wants_rebuild());
    }
}
