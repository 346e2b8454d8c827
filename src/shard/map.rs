//! The in-memory map of one table shard, and how log records change it.

use dashmap::DashMap;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::log::RecordRef;

/// Keys and values are exact-size boxes copied out of the receive buffer, so a stored value
/// never pins a client's whole read buffer.
pub type KvMap = DashMap<Box<[u8]>, Box<[u8]>, KeyHashBuilder>;

/// Hashes a byte-string key with one seeded xxh3 call. (xxhash-rust's streaming `Xxh3`
/// hasher measured 1.6x slower here on 16-byte keys, with most of the time in key
/// comparisons: see `benches/map_apply.rs`.)
#[derive(Clone)]
pub struct KeyHashBuilder {
    seed: u64,
}

pub struct KeyHasher {
    seed: u64,
    hash: u64,
}

impl std::hash::BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.hash = xxh3_64_with_seed(bytes, self.seed ^ self.hash);
    }

    /// The length prefix `[u8]` hashes first adds nothing the bytes do not already tell.
    #[inline]
    fn write_usize(&mut self, _len: usize) {}

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub fn new_map() -> KvMap {
    with_capacity(0)
}

/// A map with room for `keys` entries before it grows (growing a large map rehashes it).
pub fn with_capacity(keys: usize) -> KvMap {
    // A per-process random seed keeps hash flooding from degrading the map.
    let seed = xxh3_64(&std::process::id().to_le_bytes())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    DashMap::with_capacity_and_hasher(keys, KeyHashBuilder { seed })
}

/// Applies one record; returns the change in stored key and value bytes.
pub fn apply_ref(map: &KvMap, r: RecordRef<'_>) -> i64 {
    match r {
        RecordRef::Put { key, value } => {
            // Overwrites reuse the key, and the value's allocation when the size matches.
            if let Some(mut old) = map.get_mut(key) {
                let delta = value.len() as i64 - old.len() as i64;
                if old.len() == value.len() {
                    old.copy_from_slice(value);
                } else {
                    *old = Box::from(value);
                }
                return delta;
            }
            let added = (key.len() + value.len()) as i64;
            match map.insert(Box::from(key), Box::from(value)) {
                // Another thread cannot have added it: one writer thread owns the shard.
                Some(old) => added - (key.len() + old.len()) as i64,
                None => added,
            }
        }
        RecordRef::Delete { key } => match map.remove(key) {
            Some((k, v)) => -((k.len() + v.len()) as i64),
            None => 0,
        },
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
}
