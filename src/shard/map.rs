//! The in-memory map of one table shard, and how log records change it.

use dashmap::DashMap;
use xxhash_rust::xxh3::{xxh3_64, Xxh3Builder};

use crate::log::{Record, RecordRef};

/// Keys and values are exact-size boxes copied out of the receive buffer, so a stored value
/// never pins a client's whole read buffer.
pub type KvMap = DashMap<Box<[u8]>, Box<[u8]>, Xxh3Builder>;

pub fn new_map() -> KvMap {
    // A per-process random seed keeps hash flooding from degrading the map.
    let seed = xxh3_64(&std::process::id().to_le_bytes())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    DashMap::with_hasher(Xxh3Builder::new().with_seed(seed))
}

/// Applies one record; returns the change in stored key and value bytes.
pub fn apply_ref(map: &KvMap, r: RecordRef<'_>) -> i64 {
    match r {
        RecordRef::Put { key, value } => {
            let added = value.len() as i64;
            match map.insert(Box::from(key), Box::from(value)) {
                Some(old) => added - old.len() as i64,
                None => added + key.len() as i64,
            }
        }
        RecordRef::Delete { key } => match map.remove(key) {
            Some((k, v)) => -((k.len() + v.len()) as i64),
            None => 0,
        },
    }
}

pub fn apply(map: &KvMap, r: &Record) -> i64 {
    apply_ref(map, r.as_ref())
}

/// The shard a key belongs to. Stable across processes: logs on disk depend on it.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    (xxh3_64(key) % shards as u64) as usize
}
