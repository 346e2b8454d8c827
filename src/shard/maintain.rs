//! Background upkeep of a data directory: fuzzy checkpoints, retention, and key indexes
//! for history questions. `Db::maintain`
//! runs one pass at the time the injected clock gives; the server calls it on a timer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::db::Db;
use super::table::{shard_dir, Table};
use super::{retention, DbError, US_PER_DAY};
use crate::catalog::{TableMeta, TableStatus};
use crate::log::checkpoint::{CheckpointHeader, CheckpointWriter};

/// Key indexes one maintenance pass builds at most (the first pass after an upgrade has a
/// whole window of segments to index: the passes after it go on, between their checkpoints).
const MAX_INDEXES_PER_PASS: usize = 16;

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintainReport {
    pub checkpoints: Vec<PathBuf>,
    pub deleted: Vec<PathBuf>,
    /// Dropped tables whose recovery period ended, removed for good.
    pub expired_tables: Vec<String>,
    /// Checkpoints that failed (table/shard: error); retried on the next pass.
    pub failed: Vec<String>,
    /// Key indexes written for sealed segments and checkpoints of PITR tables.
    pub key_indexes_built: usize,
    /// Retention was skipped: a restore or history question was reading.
    pub retention_deferred: bool,
}

/// What maintenance passes have done since start (for `/metrics`).
#[derive(Debug, Default)]
pub struct MaintainActivity {
    pub passes: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    /// Segments, checkpoints and key indexes retention deleted.
    pub files_deleted: AtomicU64,
    pub tables_expired: AtomicU64,
    pub retention_deferred: AtomicU64,
}

impl MaintainActivity {
    fn note(&self, r: &MaintainReport) {
        let add = |a: &AtomicU64, n: usize| a.fetch_add(n as u64, Ordering::Relaxed);
        add(&self.passes, 1);
        add(&self.checkpoints, r.checkpoints.len());
        add(&self.checkpoint_failures, r.failed.len());
        add(&self.files_deleted, r.deleted.len());
        add(&self.tables_expired, r.expired_tables.len());
        add(&self.retention_deferred, r.retention_deferred as usize);
    }
}

/// Writes a fuzzy checkpoint of one shard while writes go on. `None` when nothing changed
/// since the last one.
pub fn checkpoint_shard(
    table: &Table,
    shard: usize,
    now_us: u64,
    zstd_level: i32,
) -> Result<Option<PathBuf>, DbError> {
    let sh = &table.shards[shard];
    let (start_seq, _) = sh.applied.read();
    let last_end = sh.last_checkpoint.lock().expect("checkpoint lock").0;
    if start_seq == last_end {
        return Ok(None);
    }
    let header = CheckpointHeader {
        table_id: table.meta.id,
        shard: shard as u32,
        start_seq,
        end_seq: 0,
        end_us: 0,
        created_us: now_us,
    };
    let dir = shard_dir(&table.dir, shard as u32);
    let mut w = CheckpointWriter::create(&dir, &header, zstd_level)?;
    // Copied out a stripe at a time: compression and disk writes happen outside the locks the
    // writer thread and readers need.
    sh.map.try_for_each_copied(|k, v| w.put(k, v))?;
    // Everything the image can hold was applied by now: the gate orders it.
    let (end_seq, end_us) = sh.applied.read();
    let (path, _) = w.finish_at(end_seq, end_us)?;
    let bytes = sh.log.stats().stored_bytes;
    *sh.last_checkpoint.lock().expect("checkpoint lock") = (end_seq, now_us, bytes);
    Ok(Some(path))
}

impl Db {
    /// One pass: checkpoints where due, then retention for every table.
    pub fn maintain(&self) -> Result<MaintainReport, DbError> {
        let now = self.clock.now_us();
        let mut report = MaintainReport::default();
        for table in self.tables() {
            for k in 0..table.shards.len() {
                let sh = &table.shards[k];
                let (_, last_us, last_bytes) = *sh.last_checkpoint.lock().expect("checkpoint lock");
                let written = sh.log.stats().stored_bytes.saturating_sub(last_bytes);
                let due = written >= self.cfg.checkpoint_bytes
                    || now.saturating_sub(last_us) >= self.cfg.checkpoint_interval_us;
                if due {
                    // A failed checkpoint costs nothing but time: the log still holds
                    // everything, retention keeps what the last good checkpoint needs, and
                    // the next pass tries again. Other shards and tables go on.
                    match checkpoint_shard(&table, k, now, self.cfg.zstd_level) {
                        Ok(Some(p)) => report.checkpoints.push(p),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(
                                "checkpoint of table '{}' shard {k} failed: {e}",
                                table.name()
                            );
                            report.failed.push(format!("{}/{k}: {e}", table.name()));
                        }
                    }
                }
            }
        }
        let metas: Vec<TableMeta> = self.catalog.read().tables.clone();
        // Restores and history questions read files: none runs while files go. While one
        // does, this pass deletes nothing (waiting for it would hold up every question
        // after it, as readers queue behind a waiting writer); a later pass catches up.
        let history = match self.history.try_write() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                tracing::debug!("retention waits for a restore or history question to finish");
                report.retention_deferred = true;
                None
            }
        };
        for meta in metas.into_iter().filter(|_| history.is_some()) {
            if matches!(meta.status, TableStatus::Restoring | TableStatus::Failed) {
                continue;
            }
            let dir = self.dir.join("tables").join(meta.id.to_string());
            let earliest = (meta.pitr_days > 0).then(|| {
                meta.pitr_since_us
                    .max(now.saturating_sub(meta.pitr_days as u64 * US_PER_DAY))
            });
            // An archived (PITR) table keeps what the archive has not got yet.
            let archive = self.archive.get().filter(|_| meta.pitr_days > 0);
            if meta.status == TableStatus::Dropped && earliest.is_none_or(|e| e > meta.dropped_us) {
                if archive.is_some_and(|a| (0..meta.shards).any(|k| !a.floor(meta.id, k).drained)) {
                    continue;
                }
                self.expire(&meta)?;
                report.expired_tables.push(meta.name.clone());
                continue;
            }
            for k in 0..meta.shards {
                let floor = archive.map(|a| a.floor(meta.id, k));
                for path in retention::plan(&shard_dir(&dir, k), earliest, floor)? {
                    // A segment's or checkpoint's key index goes with it.
                    let kix = crate::history::keyindex::path_for(&path);
                    let derived = path.extension().is_some_and(|e| e == "seg" || e == "ckp");
                    for p in std::iter::once(path).chain(derived.then_some(kix)) {
                        match std::fs::remove_file(&p) {
                            Ok(()) => report.deleted.push(p),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(DbError::io(&p, e)),
                        }
                    }
                }
            }
        }
        drop(history);
        if !report.deleted.is_empty() {
            tracing::info!("retention deleted {} files", report.deleted.len());
        }
        report.key_indexes_built = self.build_key_indexes();
        // INFO reports this figure; the walk runs here, off the net threads, once the
        // pass's checkpoints and deletions are done.
        self.refresh_disk_bytes();
        self.activity.note(&report);
        Ok(report)
    }

    /// Key indexes for the sealed segments and checkpoints of every live PITR table that
    /// lacks them, so history questions find them ready. A failure is logged: the first
    /// question that needs one builds it.
    fn build_key_indexes(&self) -> usize {
        let _history = self.history.read().unwrap_or_else(|p| p.into_inner());
        let mut built = 0;
        for table in self.tables().iter().filter(|t| {
            self.meta(t.name())
                .is_some_and(|m| m.id == t.meta.id && m.pitr_days > 0)
        }) {
            for k in 0..table.shards.len() {
                let dir = shard_dir(&table.dir, k as u32);
                let budget = MAX_INDEXES_PER_PASS.saturating_sub(built);
                if budget == 0 {
                    return built; // the next pass goes on
                }
                match crate::history::index_shard(
                    &dir,
                    (table.meta.id, k as u32),
                    &self.history_cache,
                    budget,
                ) {
                    Ok(n) => built += n,
                    Err(e) => tracing::warn!("key indexes of {}: {e}", dir.display()),
                }
            }
        }
        built
    }

    /// Removes a dropped table whose history no restorable time needs.
    fn expire(&self, meta: &TableMeta) -> Result<(), DbError> {
        let mut catalog = self.catalog.write();
        let mut next = catalog.clone();
        next.remove_id(meta.id);
        self.save_catalog(&next)?;
        *catalog = next;
        let dir = self.dir.join("tables").join(meta.id.to_string());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DbError::io(&dir, e)),
        }
    }
}
