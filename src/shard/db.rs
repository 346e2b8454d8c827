//! The set of live tables in a data directory, with the catalog that names them.
//!
//! ```text
//! <data-dir>/LOCK                               flock + pid of the holder
//! <data-dir>/catalog                            table names, ids, settings (atomic replace)
//! <data-dir>/tables/<table-id>/shard-<k>/*.seg  each shard's log
//! <data-dir>/tables/<table-id>/table.meta       the table's own catalog entry
//! <data-dir>/lost+found/                        table directories no catalog names
//! ```
//!
//! Creating a table makes its directory first and names it in the catalog second; dropping
//! removes it from the catalog first and deletes files second. A crash between the two steps
//! leaves a directory no catalog entry names, which the next start moves to `lost+found/`
//! (see `startup.rs`: start-up never deletes table data). A table's `table.meta` is written
//! before the catalog that changes its entry, so the catalog is never ahead of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::catalog_cell::CatalogCell;
use super::config::EngineConfig;
use super::lock::DirLock;
use super::startup;
use super::table::{ShardOpen, Table};
use super::DbError;
use crate::catalog::{self, validate_table_name, Catalog, TableMeta, TableStatus};
use crate::log::fsutil::{sync_dir, write_atomic};
use crate::log::{Clock, StatsSnapshot};
use crate::restore::RestoreProgress;

pub const DEFAULT_TABLE: &str = "default";

pub struct Db {
    pub dir: PathBuf,
    pub cfg: EngineConfig,
    pub(super) clock: Arc<dyn Clock>,
    /// Changes one at a time; readers never wait for a save (`catalog_cell.rs`).
    pub(super) catalog: CatalogCell,
    pub(super) tables: RwLock<HashMap<String, Arc<Table>>>,
    /// Restores running, by target name.
    pub(super) restores: Mutex<HashMap<String, Arc<RestoreProgress>>>,
    /// Why a restore failed, by target name (kept until the table is dropped or the restart).
    pub(super) failures: Mutex<HashMap<String, String>>,
    /// Held (read) by restores while they read a table's history, (write) by retention.
    pub(super) history: RwLock<()>,
    /// What [`Db::refresh_disk_bytes`] last counted.
    pub(super) disk_bytes: std::sync::atomic::AtomicU64,
    /// The `table.meta` entries known to be on disk, by table id.
    pub(super) table_files: Mutex<HashMap<u64, TableMeta>>,
    /// Set when the server archives (`--archive`): retention keeps what it has not got.
    pub archive: std::sync::OnceLock<Arc<super::ArchiveState>>,
    /// What maintenance passes have done.
    pub activity: super::maintain::MaintainActivity,
    /// The log counters of dropped tables, so the totals [`Db::log_stats`] reports (INFO,
    /// Prometheus counters) never go down.
    pub(super) retired: Mutex<RetiredStats>,
    /// Key indexes of sealed segments and checkpoints, for history questions.
    pub history_cache: crate::history::IndexCache,
    _lock: DirLock,
}

/// Dropped tables' log counters: those being shut (still moving) and the final sum of those
/// already shut. A table moves from `tables` to `dropping` to `sum` under this lock.
#[derive(Default)]
pub(super) struct RetiredStats {
    dropping: Vec<Arc<Table>>,
    sum: StatsSnapshot,
}

/// What start-up found, for the log line and `INFO`.
#[derive(Debug, Default)]
pub struct OpenSummary {
    pub tables: usize,
    pub records_replayed: u64,
    pub torn_tails: Vec<String>,
    /// Damaged ranges skipped by a tolerant start, described.
    pub lost: Vec<String>,
    pub io_engine: &'static str,
}

/// Creates a directory and any missing parents (owner-only), each fsynced into its parent.
pub(super) fn mkdir(path: &Path) -> Result<(), DbError> {
    crate::log::fsutil::create_private_dir(path).map_err(DbError::from)
}

impl Db {
    pub fn open(
        dir: &Path,
        cfg: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Db, OpenSummary), DbError> {
        mkdir(dir)?;
        let lock = DirLock::acquire(dir)?;
        let catalog_path = dir.join("catalog");
        let catalog = match startup::load_catalog(dir)? {
            Some(c) => c,
            None => {
                let mut c = Catalog::default();
                c.add(DEFAULT_TABLE, cfg.shards, clock.now_us());
                write_atomic(&catalog_path, &catalog::encode(&c))?;
                c
            }
        };
        let tables_dir = dir.join("tables");
        mkdir(&tables_dir)?;
        sync_dir(dir)?;
        let mut catalog = catalog;
        let set_aside = startup::move_orphans_aside(dir, &catalog, clock.now_us())?;
        // Ids are never reused, not even those of directories set aside.
        if let Some(&max) = set_aside.iter().max() {
            if max >= catalog.next_table_id {
                catalog.next_table_id = max + 1;
                write_atomic(&catalog_path, &catalog::encode(&catalog))?;
            }
        }
        let mut summary = OpenSummary::default();
        let mut tables = HashMap::new();
        // Dropped tables keep only their files; restoring ones are resumed by `resume_restores`.
        for meta in catalog
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::Active)
        {
            let (table, shards) = Table::open(
                tables_dir.join(meta.id.to_string()),
                meta.clone(),
                &cfg,
                &clock,
            )?;
            note(&mut summary, &shards);
            tables.insert(meta.name.clone(), Arc::new(table));
        }
        summary.tables = tables.len();
        // Written after the tables opened, so every live table's directory exists.
        let table_files = startup::sync_table_files(dir, &catalog)
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let db = Db {
            dir: dir.to_path_buf(),
            cfg,
            clock,
            catalog: CatalogCell::new(catalog),
            tables: RwLock::new(tables),
            restores: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            history: RwLock::new(()),
            table_files: Mutex::new(table_files),
            archive: std::sync::OnceLock::new(),
            history_cache: crate::history::IndexCache::new(),
            disk_bytes: Default::default(),
            activity: Default::default(),
            retired: Default::default(),
            _lock: lock,
        };
        db.refresh_disk_bytes();
        Ok((db, summary))
    }

    /// A copy of the catalog as it stands.
    pub fn catalog_snapshot(&self) -> Catalog {
        (*self.catalog.read()).clone()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.read().expect("tables lock").get(name).cloned()
    }

    /// Names of the tables that exist (active, restoring or failed), sorted.
    pub fn table_names(&self) -> Vec<String> {
        let catalog = self.catalog.read();
        let mut names: Vec<String> = catalog
            .tables
            .iter()
            .filter(|t| t.status != TableStatus::Dropped)
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        names
    }

    pub fn tables(&self) -> Vec<Arc<Table>> {
        let mut t: Vec<_> = self
            .tables
            .read()
            .expect("tables lock")
            .values()
            .cloned()
            .collect();
        t.sort_by(|a, b| a.name().cmp(b.name()));
        t
    }

    pub(super) fn save_catalog(&self, c: &Catalog) -> Result<(), DbError> {
        #[cfg(feature = "failpoints")]
        crate::log::failpoint::catalog_delay();
        #[cfg(feature = "failpoints")]
        if let Some(e) = crate::log::failpoint::catalog_fault() {
            return Err(crate::log::LogError::io(self.dir.join("catalog.tmp"), e).into());
        }
        // First each changed table's own copy of its entry (what `recover-catalog` reads), so
        // the catalog is never ahead of it; a failure there fails the change.
        let mut known = self.table_files.lock().expect("table files lock");
        known.retain(|id, _| c.tables.iter().any(|t| t.id == *id));
        for meta in &c.tables {
            if startup::write_table_file_if_changed(&self.dir, meta, known.get(&meta.id))? {
                known.insert(meta.id, meta.clone());
            } else {
                known.remove(&meta.id);
            }
        }
        if let Err(e) = write_atomic(&self.dir.join("catalog"), &catalog::encode(c)) {
            // What was written may be undone by the caller (a failed create deletes the
            // directory): check every file again next time.
            known.clear();
            return Err(e.into());
        }
        Ok(())
    }

    pub fn create_table(&self, name: &[u8]) -> Result<Arc<Table>, DbError> {
        let name = validate_table_name(name).map_err(DbError::InvalidName)?;
        let mut catalog = self.catalog.write();
        if catalog.get(name).is_some() {
            return Err(DbError::TableExists(name.to_string()));
        }
        let mut next = catalog.clone();
        let meta: TableMeta = next.add(name, self.cfg.shards, self.clock.now_us());
        let dir = self.dir.join("tables").join(meta.id.to_string());
        let (table, _) = Table::open(dir.clone(), meta, &self.cfg, &self.clock)?;
        if let Err(e) = self.save_catalog(&next) {
            table.shut(true);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        *catalog = next;
        let table = Arc::new(table);
        self.tables
            .write()
            .expect("tables lock")
            .insert(name.to_string(), table.clone());
        Ok(table)
    }

    /// Drops a table. A table with PITR on keeps its files, restorable (as `name` while no
    /// live table has that name, or as `id:<n>`) until its recovery period has passed.
    pub fn drop_table(&self, name: &[u8]) -> Result<(), DbError> {
        let name = String::from_utf8_lossy(name).into_owned();
        if name == DEFAULT_TABLE {
            return Err(DbError::ProtectedTable(name));
        }
        let mut catalog = self.catalog.write();
        let mut next = catalog.clone();
        let meta = next
            .get_mut(&name)
            .ok_or_else(|| DbError::NoSuchTable(name.clone()))?;
        if meta.status == TableStatus::Restoring {
            return Err(DbError::NotActive(name, "RESTORING"));
        }
        let keep_history = meta.pitr_days > 0 && meta.status == TableStatus::Active;
        if keep_history {
            meta.status = TableStatus::Dropped;
            meta.dropped_us = self.clock.now_us();
        } else {
            next.remove(&name);
        }
        let id = catalog.get(&name).map(|m| m.id).expect("found above");
        self.save_catalog(&next)?;
        *catalog = next;
        // Readers see the table dropped before it leaves the table map: none finds it
        // active in the catalog with no live table behind it.
        catalog.publish();
        self.failures.lock().expect("failures lock").remove(&name);
        let table = {
            let mut retired = self.retired.lock().expect("retired stats lock");
            let table = self.tables.write().expect("tables lock").remove(&name);
            retired.dropping.extend(table.clone());
            table
        };
        // Stopping the writers and deleting files can take long: not under the catalog's
        // writer lock, which every other change waits for (readers do not).
        drop(catalog);
        if let Some(t) = &table {
            t.shut(true);
            let mut retired = self.retired.lock().expect("retired stats lock");
            retired.dropping.retain(|d| !Arc::ptr_eq(d, t));
            for s in &t.shards {
                retired.sum.add(&s.log.stats());
            }
        }
        if !keep_history {
            let dir = self.dir.join("tables").join(id.to_string());
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(
                        "table '{name}' dropped; removing {} failed: {e}",
                        dir.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// Commits what every log holds, syncs and stops the writers.
    pub fn shutdown(&self) {
        for t in self.tables() {
            t.shut(false);
        }
    }

    /// Log counters summed over every shard of every table, dropped ones included: each is a
    /// total since start-up that never goes down.
    pub fn log_stats(&self) -> StatsSnapshot {
        let retired = self.retired.lock().expect("retired stats lock");
        let mut sum = retired.sum;
        for t in self.tables().iter().chain(retired.dropping.iter()) {
            for s in &t.shards {
                sum.add(&s.log.stats());
            }
        }
        sum
    }

    /// Bytes of the files under `tables/`, as the last maintenance pass (or start-up) counted
    /// them: `INFO` reads this without walking the directory on a net thread.
    pub fn log_bytes_on_disk(&self) -> u64 {
        self.disk_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Walks `tables/` and keeps the total for [`Db::log_bytes_on_disk`].
    pub fn refresh_disk_bytes(&self) {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                    Err(_) => 0,
                })
                .sum()
        }
        let n = walk(&self.dir.join("tables"));
        self.disk_bytes
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }
}

fn note(summary: &mut OpenSummary, shards: &[ShardOpen]) {
    for s in shards {
        summary.records_replayed += s.records_replayed;
        summary.io_engine = s.report.io_engine;
        summary.lost.extend(s.lost.iter().map(|l| l.to_string()));
        if let Some(t) = &s.report.torn {
            summary.torn_tails.push(format!(
                "{} at offset {} ({} bytes cut: {})",
                t.path.display(),
                t.offset,
                t.bytes_cut,
                t.reason
            ));
        }
    }
}
