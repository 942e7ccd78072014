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
//! Size: 16 bits per key of capacity, 4 probes, all four in one 64-byte block (a "blocked"
//! Bloom filter: one cache line read or written per id instead of four, which matters because
//! the filter of a large store is many megabytes and every probe of a plain filter is a cache
//! miss). ≈0.3 % false positives when full (0.28 % measured), against ≈0.24 % for four
//! independent probes. The capacity is doubled (and the filter rebuilt from the file) when the
//! inserted ids reach it, up to [`MAX_BITS`] (32 MiB, 16 M keys); beyond that it is no longer
//! rebuilt and its false positives rise towards "always maybe", i.e. towards the lookup it
//! saves, never towards a wrong answer.

/// Bits per key of capacity.
const BITS_PER_KEY: u64 = 16;
/// Probes per id, each 9 bits of the id's hash (a bit of a block).
const PROBES: u32 = 4;
/// Bits of a block (one cache line).
const BLOCK_BITS: u64 = 512;
/// The smallest filter: 64 K keys, 128 KiB.
const MIN_BITS: u64 = 1 << 20;
/// The largest filter: 32 MiB (2^19 blocks: the hash's top 28 bits choose the block).
pub const MAX_BITS: u64 = 1 << 28;

/// One cache line of the filter.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// The filter (see the module docs).
#[derive(Debug, Clone)]
pub struct KeyFilter {
    blocks: Vec<Block>,
    /// `blocks.len() - 1` (a power of two).
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
        let blocks = bits / BLOCK_BITS;
        KeyFilter {
            blocks: vec![Block::default(); blocks as usize],
            mask: blocks - 1,
            inserted: 0,
        }
    }

    /// A filter for a file's `rows` ids, built by scanning them: room for twice as many (so it
    /// is not rebuilt at once), and at least `min` (the size it is rebuilt at when full).
    pub fn for_rows(rows: i64, min: u64) -> KeyFilter {
        KeyFilter::with_capacity((rows.max(0) as u64).saturating_mul(2).max(min))
    }

    /// The block of `id` and its bits there: the hash's top bits choose the block, four
    /// 9-bit fields of its low 36 bits the bits.
    fn probes(&self, id: i64) -> (usize, [u64; PROBES as usize]) {
        let h = mix(id as u64);
        let block = ((h >> 36) & self.mask) as usize;
        (
            block,
            std::array::from_fn(|i| (h >> (9 * i)) & (BLOCK_BITS - 1)),
        )
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: i64) {
        let (block, bits) = self.probes(id);
        let words = &mut self.blocks[block].0;
        for b in bits {
            words[(b / 64) as usize] |= 1 << (b % 64);
        }
        self.inserted += 1;
    }

    /// False only if `id` was never inserted.
    pub fn may_contain(&self, id: i64) -> bool {
        let (block, bits) = self.probes(id);
        let words = &self.blocks[block].0;
        bits.into_iter()
            .all(|b| words[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// Whether it is full and may still grow (the caller then rebuilds it, bigger).
    pub fn wants_rebuild(&self) -> bool {
        let bits = self.bits();
        bits < MAX_BITS && self.inserted.saturating_mul(BITS_PER_KEY) >= bits
    }

    /// Its capacity in keys.
    pub fn capacity(&self) -> u64 {
        self.bits() / BITS_PER_KEY
    }

    fn bits(&self) -> u64 {
        (self.mask + 1) * BLOCK_BITS
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
    fn a_full_filter_answers_absent_for_most_others() {
        let mut f = KeyFilter::with_capacity(0);
        let n = f.capacity();
        for i in 0..n {
            f.insert(((i / 250) << 32 | mix(i) & 0xffff_ffff) as i64);
        }
        assert!(f.wants_rebuild());
        let trials = 200_000u64;
        let false_positives = (0..trials)
            .map(|i| mix(i + (1 << 40)) as i64)
            .filter(|id| f.may_contain(*id))
            .count();
        // ≈0.3 % expected at 16 bits per key and 4 probes in one block.
        assert!(false_positives < 1600, "{false_positives} of {trials}");
        assert!(
            false_positives > 0,
            "a full filter has some false positives"
        );
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
