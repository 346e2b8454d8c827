//! Point-in-time recovery on the table layer: turning it on and off, the restorable window,
//! and restores into new tables (run in the background, tracked while they run).

use std::sync::Arc;

use tokio::sync::oneshot;

use super::db::Db;
use super::table::Table;
use super::DbError;
use crate::catalog::{validate_table_name, TableMeta, TableStatus};
use crate::restore::{self, format_time, Phase, RestoreProgress, RestoreSpec};

pub const US_PER_DAY: u64 = 86_400_000_000;
pub const MAX_DAYS: u64 = 35;

/// The restorable window of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub earliest_us: u64,
    pub latest_us: u64,
}

/// Where a restore goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreAt {
    Latest,
    Time(u64),
}

/// A restore that was started: its progress, and an answer once it is over.
pub struct RestoreHandle {
    pub progress: Arc<RestoreProgress>,
    pub done: oneshot::Receiver<Result<(), String>>,
}

fn window_error(name: &str, t: u64, w: &Window, why: &str) -> DbError {
    DbError::BadTime(format!(
        "restore time {} for table '{name}' is {why}: it must lie between {} and {} (restorable window)",
        format_time(t),
        format_time(w.earliest_us),
        format_time(w.latest_us)
    ))
}

/// The zstd level of a restored table's first checkpoint: zstd's fast mode (-3) unless the
/// server stores raw (0) or asked for something faster. Writing that checkpoint is part of
/// every restore's time: on 3M writes of 100 random letters (2 cores) level 1 took 1.23 s
/// end to end, -3 1.14 s, raw 1.06 s; later checkpoints use the configured level.
fn restore_zstd_level(configured: i32) -> i32 {
    if configured == 0 {
        0
    } else {
        configured.min(-3)
    }
}

impl Db {
    /// The catalog entry of a table that exists (not dropped).
    pub fn meta(&self, name: &str) -> Option<TableMeta> {
        self.catalog.read().get(name).cloned()
    }

    pub fn pitr_enable(&self, name: &[u8], days: u64) -> Result<TableMeta, DbError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(DbError::BadPeriod(days));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let mut catalog = self.catalog.write();
        let mut next = catalog.clone();
        let meta = next
            .get_mut(&name)
            .ok_or_else(|| DbError::NoSuchTable(name.clone()))?;
        if meta.status != TableStatus::Active {
            return Err(DbError::NotActive(name, meta.status.as_str()));
        }
        if meta.pitr_days == 0 {
            meta.pitr_since_us = self.clock.now_us();
        }
        meta.pitr_days = days as u8;
        let meta = meta.clone();
        self.save_catalog(&next)?;
        *catalog = next;
        Ok(meta)
    }

    /// Turns PITR off; the history is released (enabling again starts a new window).
    pub fn pitr_disable(&self, name: &[u8]) -> Result<(), DbError> {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut catalog = self.catalog.write();
        let mut next = catalog.clone();
        let meta = next
            .get_mut(&name)
            .ok_or_else(|| DbError::NoSuchTable(name.clone()))?;
        meta.pitr_days = 0;
        meta.pitr_since_us = 0;
        self.save_catalog(&next)?;
        *catalog = next;
        Ok(())
    }

    /// A restore source by name (live, else most recently dropped; or `id:<n>`), with its
    /// window when PITR is on.
    pub fn pitr_source(&self, name: &str) -> Result<(TableMeta, Option<Window>), DbError> {
        let meta = self
            .catalog
            .read()
            .source(name)
            .cloned()
            .ok_or_else(|| DbError::NoSuchTable(name.to_string()))?;
        let window = self.window(&meta);
        Ok((meta, window))
    }

    /// Earliest: when PITR was enabled, or the start of the recovery period if later.
    /// Latest: the newest durable commit (for a dropped table, no later than the drop); any
    /// time from there up to now restores the same contents.
    fn window(&self, meta: &TableMeta) -> Option<Window> {
        if meta.pitr_days == 0 {
            return None;
        }
        let now = self.clock.now_us();
        let period_start = now.saturating_sub(meta.pitr_days as u64 * US_PER_DAY);
        let earliest_us = meta.pitr_since_us.max(period_start);
        let newest = match self.table(&meta.name).filter(|t| t.meta.id == meta.id) {
            Some(t) => t
                .shards
                .iter()
                .map(|s| s.log.durable().1)
                .max()
                .unwrap_or(0),
            None => meta.dropped_us,
        };
        let latest_us = if meta.status == TableStatus::Dropped {
            newest.min(meta.dropped_us).max(earliest_us)
        } else {
            newest.max(earliest_us)
        };
        (meta.status != TableStatus::Dropped || earliest_us <= meta.dropped_us).then_some(Window {
            earliest_us,
            latest_us,
        })
    }

    /// Every restore running, by target name.
    pub fn restores_running(&self) -> Vec<(String, Arc<RestoreProgress>)> {
        self.restores
            .lock()
            .expect("restores lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn restore_progress(&self, target: &str) -> Option<Arc<RestoreProgress>> {
        self.restores
            .lock()
            .expect("restores lock")
            .get(target)
            .cloned()
    }

    pub fn restore_failure(&self, target: &str) -> Option<String> {
        self.failures
            .lock()
            .expect("failures lock")
            .get(target)
            .cloned()
    }

    /// Starts restoring `source` as it was at `at` into a new table `target`.
    pub fn begin_restore(
        self: &Arc<Self>,
        source: &str,
        target: &[u8],
        at: RestoreAt,
    ) -> Result<RestoreHandle, DbError> {
        self.begin_restore_matching(source, target, at, None)
    }

    /// [`Db::begin_restore`] of only the keys matching `filter`, when given.
    pub fn begin_restore_matching(
        self: &Arc<Self>,
        source: &str,
        target: &[u8],
        at: RestoreAt,
        filter: Option<crate::history::Glob>,
    ) -> Result<RestoreHandle, DbError> {
        let target = validate_table_name(target).map_err(DbError::InvalidName)?;
        let (src, window) = self.pitr_source(source)?;
        if src.status == TableStatus::Restoring || src.status == TableStatus::Failed {
            return Err(DbError::NotActive(src.name, src.status.as_str()));
        }
        let window = window.ok_or_else(|| DbError::PitrDisabled(src.name.clone()))?;
        // What is durable now bounds what the replay may read, shard by shard.
        let live = self.table(&src.name).filter(|t| t.meta.id == src.id);
        let until_seq: Vec<u64> = match &live {
            Some(t) => t.shards.iter().map(|s| s.log.durable().0).collect(),
            None => vec![u64::MAX; src.shards as usize],
        };
        let now = self.clock.now_us();
        let at_us = match at {
            RestoreAt::Latest => window.latest_us,
            RestoreAt::Time(t) if t < window.earliest_us => {
                return Err(window_error(
                    &src.name,
                    t,
                    &window,
                    "before the earliest restorable time",
                ))
            }
            RestoreAt::Time(t) if src.status == TableStatus::Dropped && t > src.dropped_us => {
                return Err(window_error(
                    &src.name,
                    t,
                    &window,
                    "after the table was dropped",
                ))
            }
            RestoreAt::Time(t) if t > now => {
                return Err(window_error(&src.name, t, &window, "in the future"))
            }
            RestoreAt::Time(t) => t,
        };
        let meta = {
            let mut catalog = self.catalog.write();
            if catalog.get(target).is_some() {
                return Err(DbError::TableExists(target.to_string()));
            }
            let mut next = catalog.clone();
            let mut meta = next.add(target, src.shards, now);
            let entry = next.get_mut(target).expect("just added");
            entry.status = TableStatus::Restoring;
            entry.restore_source_id = src.id;
            entry.restore_at_us = at_us;
            meta.status = TableStatus::Restoring;
            meta.restore_source_id = src.id;
            meta.restore_at_us = at_us;
            // Kept beside the target before the catalog names it, so a restore resumed
            // after a crash restores the same keys.
            if let Some(g) = &filter {
                self.write_restore_filter(meta.id, g)?;
            }
            if let Err(e) = self.save_catalog(&next) {
                // The id is not taken: leave nothing a later table of that id would read.
                let _ = std::fs::remove_dir_all(self.dir.join("tables").join(meta.id.to_string()));
                return Err(e);
            }
            *catalog = next;
            meta
        };
        Ok(self.spawn_restore(meta, until_seq, filter))
    }

    /// Restores a table from shard directories outside this data directory (an archive's
    /// download: `source_id` is the table's id where it came from) into a new table `target`.
    /// The target's catalog entry names no local source, so an interrupted run is marked
    /// FAILED at the next start instead of being run again. With `pitr_days` > 0 the target
    /// keeps continuous backups from its restore on (a host replacement carries on archiving
    /// it), where a restore inside one server starts with them off, as DynamoDB's does.
    pub fn restore_external(
        self: &Arc<Self>,
        target: &[u8],
        source_id: u64,
        source_shards: Vec<std::path::PathBuf>,
        at_us: u64,
        pitr_days: u8,
    ) -> Result<RestoreHandle, DbError> {
        let target = validate_table_name(target).map_err(DbError::InvalidName)?;
        let shards = source_shards.len() as u32;
        let now = self.clock.now_us();
        let meta = {
            let mut catalog = self.catalog.write();
            if catalog.get(target).is_some() {
                return Err(DbError::TableExists(target.to_string()));
            }
            let mut next = catalog.clone();
            let mut meta = next.add(target, shards, now);
            let entry = next.get_mut(target).expect("just added");
            entry.status = TableStatus::Restoring;
            entry.restore_at_us = at_us;
            meta.status = TableStatus::Restoring;
            meta.restore_at_us = at_us;
            if pitr_days > 0 {
                let days = pitr_days.min(35);
                (entry.pitr_days, entry.pitr_since_us) = (days, now);
                (meta.pitr_days, meta.pitr_since_us) = (days, now);
            }
            self.save_catalog(&next)?;
            *catalog = next;
            meta
        };
        let mut spec = self.restore_spec(&meta, vec![u64::MAX; shards as usize], None);
        spec.source_id = source_id;
        spec.source_shards = source_shards;
        Ok(self.spawn_restore_spec(meta, spec, false))
    }

    /// Runs the restore of catalog entry `meta` in the background.
    fn spawn_restore(
        self: &Arc<Self>,
        meta: TableMeta,
        until_seq: Vec<u64>,
        filter: Option<crate::history::Glob>,
    ) -> RestoreHandle {
        let spec = self.restore_spec(&meta, until_seq, filter);
        self.spawn_restore_spec(meta, spec, true)
    }

    fn restore_spec(
        &self,
        meta: &TableMeta,
        until_seq: Vec<u64>,
        filter: Option<crate::history::Glob>,
    ) -> RestoreSpec {
        let tables_dir = self.dir.join("tables");
        let source_dir = tables_dir.join(meta.restore_source_id.to_string());
        RestoreSpec {
            source_id: meta.restore_source_id,
            source_shards: (0..meta.shards)
                .map(|k| super::shard_dir(&source_dir, k))
                .collect(),
            until_seq,
            at_us: meta.restore_at_us,
            target_id: meta.id,
            target_dir: tables_dir.join(meta.id.to_string()),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            zstd_level: restore_zstd_level(self.cfg.zstd_level),
            filter,
        }
    }

    fn spawn_restore_spec(
        self: &Arc<Self>,
        meta: TableMeta,
        spec: RestoreSpec,
        local_source: bool,
    ) -> RestoreHandle {
        let progress = Arc::new(RestoreProgress::new(
            meta.restore_at_us,
            meta.shards as usize,
        ));
        self.restores
            .lock()
            .expect("restores lock")
            .insert(meta.name.clone(), progress.clone());
        let (tx, done) = oneshot::channel();
        let (db, p) = (self.clone(), progress.clone());
        let name = meta.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("restore-{}", meta.id))
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| {
                    db.run_restore(&spec, meta.clone(), &p, local_source)
                });
                let result = std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                    let why = format!(
                        "the restore panicked: {}",
                        crate::log::error::panic_message(panic.as_ref())
                    );
                    db.record_failed_restore(&spec, &meta, &why);
                    Err(why)
                });
                if let Err(why) = &result {
                    tracing::error!("restore of '{name}' failed: {why}");
                    p.fail(why.clone());
                }
                db.restores.lock().expect("restores lock").remove(&name);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            progress.fail(format!("cannot start the restore thread: {e}"));
        }
        RestoreHandle { progress, done }
    }

    fn run_restore(
        &self,
        spec: &RestoreSpec,
        meta: TableMeta,
        progress: &RestoreProgress,
        local_source: bool,
    ) -> Result<(), String> {
        let started = std::time::Instant::now();
        let history = self.history.read().expect("history lock");
        let source_known = !local_source || self.catalog.read().by_id(spec.source_id).is_some();
        let replayed = if source_known {
            restore::run(spec, progress)
        } else {
            Err(crate::log::LogError::Config(format!(
                "the source table (id {}) no longer exists",
                spec.source_id
            )))
        };
        drop(history);
        let outcome = replayed.map_err(|e| e.to_string()).and_then(|maps| {
            progress.set_phase(Phase::Writing);
            let mut active = meta.clone();
            active.status = TableStatus::Active;
            let (table, _) = Table::open_with(
                spec.target_dir.clone(),
                active,
                &self.cfg,
                &self.clock,
                Some(maps),
            )
            .map_err(|e| e.to_string())?;
            Ok(table)
        });
        let mut catalog = self.catalog.write();
        let mut next = catalog.clone();
        let Some(entry) = next.tables.iter_mut().find(|t| t.id == meta.id) else {
            return Err("the target table was removed during the restore".into());
        };
        match outcome {
            Ok(table) => {
                entry.status = TableStatus::Active;
                self.save_catalog(&next).map_err(|e| e.to_string())?;
                *catalog = next;
                let items = table.len();
                self.tables
                    .write()
                    .expect("tables lock")
                    .insert(meta.name.clone(), Arc::new(table));
                progress.set_phase(Phase::Done);
                tracing::info!(
                    "restored table id {} as of {} into '{}': {items} items in {:.3} s",
                    spec.source_id,
                    format_time(spec.at_us),
                    meta.name,
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err(why) => {
                drop(catalog);
                self.record_failed_restore(spec, &meta, &why);
                Err(why)
            }
        }
    }

    /// Marks a restore's target FAILED with the reason (`TABLE.DESCRIBE` shows it) and removes
    /// what it had written.
    fn record_failed_restore(&self, spec: &RestoreSpec, meta: &TableMeta, why: &str) {
        let mut catalog = self.catalog.write_even_poisoned();
        let mut next = catalog.clone();
        // Only a target still being restored: a panic after it became ACTIVE (or was
        // dropped) must not touch a table that is being served.
        let entry = next
            .tables
            .iter_mut()
            .find(|t| t.id == meta.id && t.status == TableStatus::Restoring);
        if let Some(entry) = entry {
            entry.status = TableStatus::Failed;
            let _ = std::fs::remove_dir_all(&spec.target_dir);
            if let Err(e) = self.save_catalog(&next) {
                tracing::error!("could not record the failed restore: {e}");
            } else {
                *catalog = next;
            }
        }
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(meta.name.clone(), why.to_string());
    }

    /// Runs again every restore a crash interrupted: the target is rebuilt from scratch.
    pub fn resume_restores(self: &Arc<Self>) -> Vec<RestoreHandle> {
        let pending: Vec<TableMeta> = self
            .catalog
            .read()
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::Restoring)
            .cloned()
            .collect();
        pending
            .into_iter()
            .filter_map(|meta| {
                tracing::warn!("resuming the interrupted restore into '{}'", meta.name);
                let filter = self.read_restore_filter(meta.id);
                // From scratch, but the MATCH pattern stays where it is throughout, so a
                // crash now resumes the same restore again.
                self.clear_restore_target(meta.id);
                // Bounded by what the source holds now, before any new write: the replay never
                // reads the tail a live writer is appending to. A source that is not live (dropped)
                // has no writer.
                let source = self.catalog.read().by_id(meta.restore_source_id).cloned();
                let live = source
                    .and_then(|s| self.table(&s.name))
                    .filter(|t| t.meta.id == meta.restore_source_id);
                let until = match live {
                    Some(t) => t.shards.iter().map(|s| s.log.durable().0).collect(),
                    None => vec![u64::MAX; meta.shards as usize],
                };
                match filter {
                    Ok(filter) => Some(self.spawn_restore(meta, until, filter)),
                    Err(why) => {
                        tracing::error!("cannot resume the restore into '{}': {why}", meta.name);
                        let spec = self.restore_spec(&meta, until, None);
                        self.record_failed_restore(&spec, &meta, &why);
                        None
                    }
                }
            })
            .collect()
    }
}
