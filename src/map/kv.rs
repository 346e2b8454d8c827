//! The in-memory map of one table shard, and how log records change it.
//!
//! A fixed number of lock-striped hash tables (`hashbrown::HashTable`) whose slots are single
//! 8-byte pointers to an [`Entry`] holding key and value together. Readers (net threads) take
//! a stripe's read lock; the shard's writer thread is the only writer.
//! (`DashMap<Box<[u8]>, Box<[u8]>>` before: two allocations per key and 32-byte slots, and no
//! way to reuse an entry's value bytes in place once key and value share an allocation.)

use hashbrown::hash_table::{self, HashTable};
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::entry::Entry;
use crate::log::RecordRef;

/// Lock stripes per map. Enough that readers on a few net threads rarely meet the writer, and
/// that a checkpoint, which copies one stripe at a time under its read lock, holds each lock
/// only briefly: a 2M-key shard has about 2,000 keys a stripe (16 stripes held 125,000 each,
/// and the writer's apply, with the GETs queued behind it, waited for the whole copy).
const STRIPES: usize = 1024;

pub struct KvMap {
    /// Per-map random seed: hash flooding cannot target a known function.
    seed: u64,
    stripes: Box<[RwLock<Stripe>]>,
}

/// One lock's share of the map, with the key and value bytes it holds (kept under the same
/// lock, so counting costs no atomic operation per write).
struct Stripe {
    table: HashTable<Entry>,
    bytes: i64,
}

/// A stored value, readable while the guard lives (it holds a stripe's read lock).
pub type ValueRef<'a> = MappedRwLockReadGuard<'a, [u8]>;

pub fn new_map() -> KvMap {
    with_capacity(0)
}

/// A map with room for `keys` entries before it grows (growing a large map rehashes it).
pub fn with_capacity(keys: usize) -> KvMap {
    let seed = xxh3_64(&std::process::id().to_le_bytes())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let per = keys.div_ceil(STRIPES);
    KvMap {
        seed,
        stripes: (0..STRIPES)
            .map(|_| {
                RwLock::new(Stripe {
                    table: HashTable::with_capacity(per),
                    bytes: 0,
                })
            })
            .collect(),
    }
}

impl KvMap {
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, self.seed)
    }

    /// The stripe of a hash: bits the table itself does not use for small tables (it takes
    /// the low bits for the slot and the top 7 for its tag).
    #[inline]
    fn stripe(&self, hash: u64) -> &RwLock<Stripe> {
        &self.stripes[(hash >> 32) as usize % STRIPES]
    }

    /// The lock stripe `key` lives in (`0..STRIPES`): threads that apply the records of
    /// disjoint sets of stripes never meet on a lock.
    pub fn stripe_of(&self, key: &[u8]) -> usize {
        (self.hash(key) >> 32) as usize % STRIPES
    }

    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        let h = self.hash(key);
        let guard = self.stripe(h).read();
        RwLockReadGuard::try_map(guard, |s| {
            s.table.find(h, |e| e.key() == key).map(Entry::value)
        })
        .ok()
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        let h = self.hash(key);
        self.stripe(h)
            .read()
            .table
            .find(h, |e| e.key() == key)
            .is_some()
    }

    pub fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.read().table.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets `key` to `value`; returns the change in stored key and value bytes. An overwrite
    /// of the same length reuses the entry.
    pub fn put(&self, key: &[u8], value: &[u8]) -> i64 {
        let h = self.hash(key);
        let seed = self.seed;
        let mut stripe = self.stripe(h).write();
        let entry = stripe
            .table
            .entry(h, |e| e.key() == key, |e| xxh3_64_with_seed(e.key(), seed));
        let delta = match entry {
            hash_table::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                let delta = value.len() as i64 - e.value().len() as i64;
                if e.value().len() == value.len() {
                    e.value_mut().copy_from_slice(value);
                } else {
                    *e = Entry::new(key, value);
                }
                delta
            }
            hash_table::Entry::Vacant(v) => {
                v.insert(Entry::new(key, value));
                (key.len() + value.len()) as i64
            }
        };
        stripe.bytes += delta;
        delta
    }

    /// Removes `key`; returns the change in stored bytes (0 when it was absent).
    pub fn remove(&self, key: &[u8]) -> i64 {
        let h = self.hash(key);
        let mut stripe = self.stripe(h).write();
        let delta = match stripe.table.find_entry(h, |e| e.key() == key) {
            Ok(o) => {
                let (e, _) = o.remove();
                -((e.key().len() + e.value().len()) as i64)
            }
            Err(_) => 0,
        };
        stripe.bytes += delta;
        delta
    }

    /// How many lock stripes every map has (`0..stripes()` are the stripe numbers).
    pub const fn stripes() -> usize {
        STRIPES
    }

    /// Entries and key-and-value bytes in stripe `i`.
    pub(crate) fn stripe_size(&self, i: usize) -> (u64, u64) {
        let s = self.stripes[i].read();
        (s.table.len() as u64, s.bytes.max(0) as u64)
    }

    /// Calls `f` for every entry of stripe `i`, holding its read lock throughout: for a map
    /// nothing writes to (a restore's result), where the lock is never waited for.
    pub(crate) fn for_each_in_stripe(&self, i: usize, mut f: impl FnMut(&[u8], &[u8])) {
        for e in self.stripes[i].read().table.iter() {
            f(e.key(), e.value());
        }
    }

    /// Calls `f` for every entry, one stripe's read lock at a time (writes to other stripes
    /// go on meanwhile); stops at the first error.
    pub fn try_for_each<E>(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for s in self.stripes.iter() {
            for e in s.read().table.iter() {
                f(e.key(), e.value())?;
            }
        }
        Ok(())
    }

    /// Like [`KvMap::try_for_each`], but each stripe is copied out under its read lock and `f`
    /// runs after the lock is released: for slow consumers (a checkpoint compressing and
    /// writing to disk) that must not hold up the writer, or readers queued behind it, on a
    /// live table. Holds one stripe's copy at a time.
    pub fn try_for_each_copied<E>(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut bytes: Vec<u8> = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for s in self.stripes.iter() {
            bytes.clear();
            spans.clear();
            {
                let t = s.read();
                for e in t.table.iter() {
                    let at = bytes.len();
                    bytes.extend_from_slice(e.key());
                    bytes.extend_from_slice(e.value());
                    spans.push((at, e.key().len(), e.value().len()));
                }
            }
            for &(at, k, v) in &spans {
                f(&bytes[at..at + k], &bytes[at + k..at + k + v])?;
            }
        }
        Ok(())
    }

    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let _ = self.try_for_each(|k, v| {
            f(k, v);
            Ok::<(), ()>(())
        });
    }

    /// Key and value bytes held (kept by `put` and `remove`).
    pub fn bytes(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.read().bytes)
            .sum::<i64>()
            .max(0) as u64
    }
}

/// Applies one record; returns the change in stored key and value bytes.
pub fn apply_ref(map: &KvMap, r: RecordRef<'_>) -> i64 {
    match r {
        RecordRef::Put { key, value } => map.put(key, value),
        RecordRef::Delete { key } => map.remove(key),
    }
}

/// The shard a key belongs to. Stable across processes: logs on disk depend on it.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    (xxh3_64(key) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put<'a>(k: &'a [u8], v: &'a [u8]) -> RecordRef<'a> {
        RecordRef::Put { key: k, value: v }
    }

    #[test]
    fn apply_tracks_bytes_through_every_kind_of_change() {
        let m = new_map();
        assert_eq!(apply_ref(&m, put(b"key", b"12345")), 8);
        assert_eq!(
            apply_ref(&m, put(b"key", b"abcde")),
            0,
            "same-size overwrite"
        );
        assert_eq!(&m.get(&b"key"[..]).unwrap()[..], b"abcde");
        assert_eq!(apply_ref(&m, put(b"key", b"xy")), -3, "shorter value");
        assert_eq!(&m.get(&b"key"[..]).unwrap()[..], b"xy");
        assert_eq!(apply_ref(&m, RecordRef::Delete { key: b"nope" }), 0);
        assert_eq!(apply_ref(&m, RecordRef::Delete { key: b"key" }), -5);
        assert!(m.is_empty());
    }

    #[test]
    fn routing_is_stable_and_spreads() {
        assert_eq!(shard_of(b"user:1", 4), shard_of(b"user:1", 4));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[shard_of(format!("k{i}").as_bytes(), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn growth_overwrites_and_removals_keep_every_key_findable() {
        let m = new_map();
        let mut bytes = 0i64;
        for i in 0..20_000u32 {
            let k = format!("key:{i:012}");
            bytes += m.put(k.as_bytes(), &i.to_le_bytes());
        }
        for i in (0..20_000u32).step_by(2) {
            let k = format!("key:{i:012}");
            bytes += m.put(k.as_bytes(), b"longer value");
        }
        for i in (0..20_000u32).step_by(3) {
            bytes += m.remove(format!("key:{i:012}").as_bytes());
        }
        assert_eq!(bytes as u64, m.bytes());
        let mut counted = 0u64;
        m.for_each(|k, v| counted += (k.len() + v.len()) as u64);
        assert_eq!(counted, m.bytes(), "the kept count matches the entries");
        for i in 0..20_000u32 {
            let k = format!("key:{i:012}");
            let got = m.get(k.as_bytes()).map(|v| v.to_vec());
            let want = match (i % 3, i % 2) {
                (0, _) => None,
                (_, 0) => Some(b"longer value".to_vec()),
                _ => Some(i.to_le_bytes().to_vec()),
            };
            assert_eq!(got, want, "{k}");
        }
        let mut n = 0;
        m.for_each(|_, _| n += 1);
        assert_eq!(n, m.len());
        let (mut locked, mut copied) = (Vec::new(), Vec::new());
        m.for_each(|k, v| locked.push((k.to_vec(), v.to_vec())));
        m.try_for_each_copied(|k, v| {
            copied.push((k.to_vec(), v.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            copied, locked,
            "copied iteration sees what locked iteration sees"
        );
        assert_eq!(m.len(), 20_000 - 20_000usize.div_ceil(3));
    }
}
