//! A table's history: its shards questioned together (the key's own shard for one key, all
//! of them, in parallel, for what changed).

use std::path::PathBuf;

use super::cache::IndexCache;
use super::glob::Glob;
use super::reader::{Changed, ShardSource, Write};
use crate::log::LogError;
use crate::map::shard_of;

/// The most keys one round of a diff holds, all shards together (each with its value: about
/// 150 MB with 100-byte values). Rounds grow up to it, never past it.
pub const MAX_CHANGED_KEYS: usize = 1_000_000;
/// Keys a diff's first round takes per shard, at least.
const ROUND_KEYS: usize = 100_000;
/// Past this many keys, their values at a moment are found by one pass over each shard's
/// checkpoint and log instead of a lookup per key.
const BATCH_KEYS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A table to question: its id, each shard's directory, and each shard's last durable
/// sequence when the question began.
pub struct TableSource<'a> {
    pub table_id: u64,
    pub dirs: Vec<PathBuf>,
    pub until_seq: Vec<u64>,
    pub cache: &'a IndexCache,
}

/// A key whose value differs between two moments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

/// One page of a diff: the changes, and whether keys after the last one remain to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffPage {
    pub changes: Vec<Change>,
    pub more: bool,
}

impl<'a> TableSource<'a> {
    /// The values at `t` of `keys` (sorted, with their values at the end of a range), each
    /// key looked up on its own while they are few, else by one pass per shard, in parallel.
    fn values_at(
        &self,
        shards: &[ShardSource<'_>],
        keys: &[&[u8]],
        t: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, HistoryError> {
        if keys.len() <= BATCH_KEYS {
            return keys
                .iter()
                .map(|k| Ok(shards[self.shard_of(k)].value_at(k, t)?))
                .collect();
        }
        let mut per_shard: Vec<Vec<(usize, &[u8])>> = vec![Vec::new(); self.dirs.len()];
        for (i, k) in keys.iter().enumerate() {
            per_shard[self.shard_of(k)].push((i, k));
        }
        let found: Vec<Result<Vec<Option<Vec<u8>>>, LogError>> = std::thread::scope(|s| {
            let hs: Vec<_> = per_shard
                .iter()
                .enumerate()
                .map(|(k, list)| {
                    s.spawn(move || {
                        let keys: Vec<&[u8]> = list.iter().map(|(_, key)| *key).collect();
                        self.shard(k).values_at(&keys, t)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(LogError::Panicked("a diff worker".into())))
                })
                .collect()
        });
        let mut out = vec![None; keys.len()];
        for (list, vals) in per_shard.iter().zip(found) {
            for ((i, _), v) in list.iter().zip(vals?) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    fn shard(&self, k: usize) -> ShardSource<'_> {
        ShardSource::new(
            &self.dirs[k],
            (self.table_id, k as u32),
            self.until_seq[k],
            self.cache,
        )
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        shard_of(key, self.dirs.len())
    }

    /// The key's writes with a commit time in `range`, newest first, at most `count`.
    pub fn history(
        &self,
        key: &[u8],
        range: (u64, u64),
        count: usize,
    ) -> Result<Vec<Write>, HistoryError> {
        Ok(self.shard(self.shard_of(key)).history(key, range, count)?)
    }

    /// The values of `keys` at `t`, in order (a few looked up one by one, many by one pass
    /// per shard).
    pub fn values_of(&self, keys: &[&[u8]], t: u64) -> Result<Vec<Option<Vec<u8>>>, HistoryError> {
        let shards: Vec<ShardSource<'_>> = (0..self.dirs.len()).map(|k| self.shard(k)).collect();
        self.values_at(&shards, keys, t)
    }

    /// The key's value at `at_us`, as a restore to `at_us` would hold it.
    pub fn value_at(&self, key: &[u8], at_us: u64) -> Result<Option<Vec<u8>>, HistoryError> {
        Ok(self.shard(self.shard_of(key)).value_at(key, at_us)?)
    }

    /// Keys (matching `glob`, sorted by their bytes, after `after`) whose value at `t2`
    /// differs from their value at `t1` (`t1 <= t2`), at most `count` of them.
    ///
    /// Only keys written in `(t1, t2]` can differ. Each shard finds the smallest of those
    /// (in parallel), a few times `count` of them, so memory stays bounded whatever the
    /// range holds; each is compared with its value at `t1`; when too few differ and more
    /// keys were left out, the next round starts after the last one looked at.
    pub fn diff(
        &self,
        range: (u64, u64),
        glob: Option<&Glob>,
        after: Option<&[u8]>,
        count: usize,
    ) -> Result<DiffPage, HistoryError> {
        self.diff_rounds(range, glob, after, count, ROUND_KEYS)
    }

    /// [`TableSource::diff`], each round holding at least `round_keys` keys per shard.
    pub fn diff_rounds(
        &self,
        (t1, t2): (u64, u64),
        glob: Option<&Glob>,
        after: Option<&[u8]>,
        count: usize,
        round_keys: usize,
    ) -> Result<DiffPage, HistoryError> {
        let shards: Vec<ShardSource<'_>> = (0..self.dirs.len()).map(|k| self.shard(k)).collect();
        let mut page = DiffPage::default();
        let mut from: Option<Vec<u8>> = after.map(<[u8]>::to_vec);
        let most = (MAX_CHANGED_KEYS / self.dirs.len().max(1)).max(1);
        let mut keep = count
            .saturating_mul(2)
            .clamp(round_keys.clamp(1, most), most);
        loop {
            let found: Vec<Result<(Changed, bool), LogError>> = std::thread::scope(|s| {
                let from = from.as_deref();
                let hs: Vec<_> = (0..self.dirs.len())
                    .map(|k| s.spawn(move || self.shard(k).changed((t1, t2), glob, (from, keep))))
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(LogError::Panicked("a diff worker".into())))
                    })
                    .collect()
            });
            let mut all: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            let mut left_out = false;
            for f in found {
                let (map, more) = f?;
                left_out |= more;
                all.extend(map);
            }
            all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            // Beyond `keep` the merged list is not complete (a shard left out smaller keys
            // than another's last): look only at the part every shard fully covered.
            let covered = if left_out {
                all.len().min(keep)
            } else {
                all.len()
            };
            let keys: Vec<&[u8]> = all[..covered].iter().map(|(k, _)| k.as_slice()).collect();
            let befores = self.values_at(&shards, &keys, t1)?;
            for (i, ((key, now), before)) in all[..covered].iter().zip(befores).enumerate() {
                if page.changes.len() >= count {
                    page.more = true;
                    return Ok(page);
                }
                if before != *now {
                    page.changes.push(Change {
                        key: key.clone(),
                        before,
                        after: now.clone(),
                    });
                }
                if i + 1 == covered {
                    from = Some(key.clone());
                }
            }
            if !left_out || covered == 0 {
                page.more = page.changes.len() >= count && covered < all.len();
                return Ok(page);
            }
            keep = keep.saturating_mul(2).min(most);
        }
    }
}
