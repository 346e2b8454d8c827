//! History questions on the table layer: which table (live, or dropped and still in its
//! window), the window every moment asked about must lie in, what is durable, and the lock
//! that keeps retention from deleting files under the question.

use super::db::Db;
use super::pitr::Window;
use super::DbError;
use crate::catalog::{TableMeta, TableStatus};
use crate::history::{HistoryError, TableSource};
use crate::restore::format_time;

/// A PITR table being questioned.
pub struct HistoryCtx<'a> {
    pub meta: TableMeta,
    pub window: Window,
    pub source: TableSource<'a>,
}

impl HistoryCtx<'_> {
    /// Refuses a moment outside the restorable window, as `PITR.RESTORE` does.
    pub fn check(&self, t: u64, now_us: u64) -> Result<(), DbError> {
        let why = if t < self.window.earliest_us {
            "before the earliest restorable time"
        } else if self.meta.status == TableStatus::Dropped && t > self.meta.dropped_us {
            "after the table was dropped"
        } else if t > now_us {
            "in the future"
        } else {
            return Ok(());
        };
        Err(DbError::BadTime(format!(
            "time {} for table '{}' is {why}: it must lie between {} and {} (restorable window)",
            format_time(t),
            self.meta.name,
            format_time(self.window.earliest_us),
            format_time(self.window.latest_us)
        )))
    }
}

impl From<HistoryError> for DbError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Log(e) => DbError::Log(e),
        }
    }
}

impl Db {
    /// Runs `f` on the history of `name` (a live table, else the most recently dropped one
    /// of that name, or `id:<n>`) with PITR on, holding off retention while it runs.
    pub fn with_history<T>(
        &self,
        name: &str,
        f: impl FnOnce(&HistoryCtx<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let (meta, _) = self.pitr_source(name)?;
        if meta.status == TableStatus::Restoring || meta.status == TableStatus::Failed {
            return Err(DbError::NotActive(meta.name, meta.status.as_str()));
        }
        let _history = self.history.read().unwrap_or_else(|p| p.into_inner());
        // Looked at again under the lock: a dropped table may have expired meanwhile.
        let (again, window) = self.pitr_source(name)?;
        if again.id != meta.id {
            return Err(DbError::NoSuchTable(name.to_string()));
        }
        let window = window.ok_or_else(|| DbError::PitrDisabled(meta.name.clone()))?;
        let live = self.table(&meta.name).filter(|t| t.meta.id == meta.id);
        let until_seq: Vec<u64> = match &live {
            Some(t) => t.shards.iter().map(|s| s.log.durable().0).collect(),
            None => vec![u64::MAX; meta.shards as usize],
        };
        let table_dir = self.dir.join("tables").join(meta.id.to_string());
        let dirs = (0..meta.shards)
            .map(|k| super::shard_dir(&table_dir, k))
            .collect();
        let ctx = HistoryCtx {
            source: TableSource {
                table_id: meta.id,
                dirs,
                until_seq,
                cache: &self.history_cache,
            },
            meta,
            window,
        };
        f(&ctx)
    }
}

/// Target values a revert writes in one read-modify-write submission, at most (a shard's
/// submission is resolved into one block, which holds at most half a block's limit).
const REVERT_CHUNK_BYTES: usize = 16 << 20;

impl Db {
    /// Puts each key of the live table `name` back to its target (`None`: absent) as
    /// read-modify-writes in its shard's commit order: a key already at its target is left
    /// alone. Returns how many keys changed. Blocking.
    pub fn revert_keys(
        &self,
        name: &str,
        targets: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<usize, DbError> {
        use crate::log::{CommitError, RmwDecision, RmwOp};
        let table = self
            .table(name)
            .ok_or_else(|| DbError::NoSuchTable(name.to_string()))?;
        let shards = table.shards.len();
        let mut chunks: Vec<Vec<Vec<RmwOp>>> = (0..shards).map(|_| vec![Vec::new()]).collect();
        let mut sizes = vec![0usize; shards];
        for (key, target) in targets {
            let k = table.shard_for(&key);
            let size = key.len() + target.as_ref().map_or(0, Vec::len);
            if sizes[k] + size > REVERT_CHUNK_BYTES && !chunks[k].last().expect("one").is_empty() {
                chunks[k].push(Vec::new());
                sizes[k] = 0;
            }
            sizes[k] += size;
            let op = RmwOp::new(&key, move |cur| match (cur, &target) {
                (Some(c), Some(t)) if c == t.as_slice() => RmwDecision::Keep,
                (_, Some(t)) => RmwDecision::Put(t.clone()),
                (Some(_), None) => RmwDecision::Delete,
                (None, None) => RmwDecision::Keep,
            });
            chunks[k].last_mut().expect("one").push(op);
        }
        let mut waits = Vec::new();
        for (k, list) in chunks.into_iter().enumerate() {
            for ops in list.into_iter().filter(|o| !o.is_empty()) {
                waits.push(table.shards[k].log.submit_rmw(ops));
            }
        }
        let mut changed = 0;
        let mut failed = None;
        for rx in waits {
            match rx.blocking_recv().unwrap_or(Err(CommitError::Closed)) {
                Ok(outcomes) => {
                    changed += outcomes
                        .iter()
                        .filter(|o| matches!(o.decision, RmwDecision::Put(_) | RmwDecision::Delete))
                        .count();
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(DbError::Internal(format!(
                "revert not wholly committed ({changed} keys changed in the shards that committed): {e}"
            ))),
            None => Ok(changed),
        }
    }

    /// Key count and an order-independent digest of the live table `name`: the wrapping sum
    /// over its entries of xxh3-64(value) seeded with xxh3-64(key). Read beside writes, so
    /// it describes no single moment while writes go on.
    pub fn digest(&self, name: &str) -> Result<(u64, u64), DbError> {
        use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};
        let table = self
            .table(name)
            .ok_or_else(|| DbError::NoSuchTable(name.to_string()))?;
        let (mut n, mut sum) = (0u64, 0u64);
        for s in &table.shards {
            s.map.for_each(|k, v| {
                n += 1;
                sum = sum.wrapping_add(xxh3_64_with_seed(v, xxh3_64(k)));
            });
        }
        Ok((n, sum))
    }
}

/// The file beside a restore's target that names the keys it restores (`MATCH glob`).
const RESTORE_FILTER: &str = "restore.match";

impl Db {
    fn restore_filter_path(&self, target_id: u64) -> std::path::PathBuf {
        self.dir
            .join("tables")
            .join(target_id.to_string())
            .join(RESTORE_FILTER)
    }

    /// Keeps a restore's MATCH pattern beside its target (durably).
    pub(super) fn write_restore_filter(
        &self,
        target_id: u64,
        g: &crate::history::Glob,
    ) -> Result<(), DbError> {
        let path = self.restore_filter_path(target_id);
        if let Some(dir) = path.parent() {
            super::db::mkdir(dir)?;
        }
        crate::log::fsutil::write_atomic(&path, g.source())?;
        Ok(())
    }

    /// Empties an interrupted restore's target directory but for its MATCH pattern.
    pub(super) fn clear_restore_target(&self, target_id: u64) {
        let dir = self.dir.join("tables").join(target_id.to_string());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == RESTORE_FILTER) {
                continue;
            }
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            if let Err(err) = r {
                tracing::warn!("could not clear {}: {err}", p.display());
            }
        }
    }

    /// The MATCH pattern of an interrupted restore (`None`: it restored every key); an
    /// unreadable one is an error naming the file.
    pub(super) fn read_restore_filter(
        &self,
        target_id: u64,
    ) -> Result<Option<crate::history::Glob>, String> {
        let path = self.restore_filter_path(target_id);
        match std::fs::read(&path) {
            Ok(b) => crate::history::Glob::new(&b)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!(
                "cannot read {} (the restore's MATCH): {e}; restore again",
                path.display()
            )),
        }
    }
}

impl Db {
    /// What `PITR.RESTORE source ... (AT at | LATEST) DRYRUN` would read and how long it
    /// would take; checks `source`, the moment and `target` as a restore does, creates
    /// nothing. Returns the moment the restore would go to.
    pub fn dry_run_restore(
        &self,
        source: &str,
        target: &[u8],
        at: super::RestoreAt,
    ) -> Result<(u64, crate::restore::DryRun), DbError> {
        let target = crate::catalog::validate_table_name(target).map_err(DbError::InvalidName)?;
        if self.meta(target).is_some() {
            return Err(DbError::TableExists(target.to_string()));
        }
        let now = self.clock.now_us();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.with_history(source, |ctx| {
            let at_us = match at {
                super::RestoreAt::Latest => ctx.window.latest_us,
                super::RestoreAt::Time(t) => {
                    ctx.check(t, now)?;
                    t
                }
            };
            let s = &ctx.source;
            let dry = crate::restore::dry_run(&s.dirs, (s.table_id, &s.until_seq), at_us, threads)?;
            Ok((at_us, dry))
        })
    }
}
