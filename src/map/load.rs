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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::checkpoint::{write, CheckpointHeader};

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            table_id: 2,
            shard: 0,
            start_seq: 0,
            end_seq: 0,
            end_us: 1,
            created_us: 1,
        }
    }

    /// Loads with and without a filter on one and on three threads; a repeated key is refused
    /// on every path, and with a filter only when the filter keeps it.
    #[test]
    fn loads_every_kept_entry_and_refuses_a_repeated_key_on_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = (0..30_000u32)
            .map(|i| (format!("k{i}").into_bytes(), vec![b'v'; 60]))
            .collect();
        let (good, n) = write(
            dir.path(),
            &header(),
            1,
            entries.iter().map(|(k, v)| (k, v)),
        )
        .unwrap();
        let only_k1 = |k: &[u8]| k.starts_with(b"k1");
        let kept = entries.iter().filter(|(k, _)| only_k1(k)).count();
        for workers in [1, 3] {
            let map = crate::map::new_map();
            load_checkpoint(&map, &good, 2, 0, workers, n, None).unwrap();
            assert_eq!(map.len(), 30_000, "{workers} workers");
            let map = crate::map::new_map();
            load_checkpoint(&map, &good, 2, 0, workers, n, Some(&only_k1)).unwrap();
            assert_eq!(map.len(), kept, "{workers} workers, filtered");
        }
        // "k12" twice (inside the filter), then "k25" twice (outside it).
        let bad_dir = tempfile::tempdir().unwrap();
        entries.push((b"k12".to_vec(), b"again".to_vec()));
        let (bad, n) = write(
            bad_dir.path(),
            &header(),
            1,
            entries.iter().map(|(k, v)| (k, v)),
        )
        .unwrap();
        for workers in [1, 3] {
            for keep in [None, Some(&only_k1 as &(dyn Fn(&[u8]) -> bool + Sync))] {
                let map = crate::map::new_map();
                let err = load_checkpoint(&map, &bad, 2, 0, workers, n, keep).unwrap_err();
                assert!(err.to_string().contains("a key repeats"), "{err}");
            }
        }
        entries.pop();
        entries.push((b"k25".to_vec(), b"again".to_vec()));
        let (outside, n) = write(
            bad_dir.path(),
            &header(),
            1,
            entries.iter().map(|(k, v)| (k, v)),
        )
        .unwrap();
        let map = crate::map::new_map();
        load_checkpoint(&map, &outside, 2, 0, 3, n, Some(&only_k1)).unwrap();
        assert_eq!(map.len(), kept, "the repeat is among keys not loaded");
        let map = crate::map::new_map();
        assert!(load_checkpoint(&map, &outside, 2, 0, 3, n, None).is_err());
    }
}
