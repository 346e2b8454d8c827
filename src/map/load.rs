//! Loading a checkpoint into a fresh map on several threads (start-up, and a restore's base).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::kv::{apply_ref, KvMap};
use crate::log::checkpoint::{self, CheckpointHeader};
use crate::log::{LogError, RecordRef};

/// Which keys to load (`None`: all).
pub type Keep<'a> = Option<&'a (dyn Fn(&[u8]) -> bool + Sync)>;

/// Puts every entry of the checkpoint at `path` that `keep` accepts into `map`, which must be
/// empty, on `workers` threads (`checkpoint::read_parallel`). `entries` is the footer's count
/// (`checkpoint::entry_count`, which sized the map). A checkpoint holds each key once, so the
/// order entries land in changes nothing; one that repeats a key is refused, since the
/// threads' order would have picked its value.
pub fn load_checkpoint(
    map: &KvMap,
    path: &Path,
    table_id: u64,
    shard: u32,
    workers: usize,
    entries: u64,
    keep: Keep<'_>,
) -> Result<CheckpointHeader, LogError> {
    debug_assert!(map.is_empty(), "a checkpoint loads into an empty map");
    // Counted only when filtered: unfiltered, every entry is applied.
    let kept = AtomicU64::new(0);
    let h = checkpoint::read_parallel(path, table_id, shard, workers, &|k, v| match keep {
        None => {
            apply_ref(map, RecordRef::Put { key: k, value: v });
        }
        Some(keep) if keep(k) => {
            apply_ref(map, RecordRef::Put { key: k, value: v });
            kept.fetch_add(1, Ordering::Relaxed);
        }
        Some(_) => {}
    })?;
    let applied = if keep.is_some() {
        kept.into_inner()
    } else {
        entries
    };
    checkpoint::check_distinct(path, map.len() as u64, applied)?;
    Ok(h)
}
