//! A live table: one map and one log per shard. Opening it recovers every shard's log and
//! replays it into the map, all shards in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::config::EngineConfig;
use super::DbError;
use crate::catalog::TableMeta;
use crate::log::{
    checkpoint, scan_shard_with, Clock, CommitHook, LogConfig, LostRange, OpenReport, ReadHook,
    RecordRef, ScanOptions, ScanRange, ShardLog,
};
use crate::map::{apply_ref, load_checkpoint, new_map, shard_of, with_capacity, KvMap};

pub struct TableShard {
    pub map: Arc<KvMap>,
    /// The shard's DynamoDB items in DynamoDB's order (for Query and Scan).
    pub ordered: Arc<crate::map::OrderedKeys>,
    /// What the map holds: the commit hook applies under its gate.
    pub applied: Arc<Applied>,
    /// The newest checkpoint of this shard: (end_seq, created_us, log bytes written then).
    pub last_checkpoint: std::sync::Mutex<(u64, u64, u64)>,
    pub log: ShardLog,
}

/// The last sequence applied to a shard's map and its commit time. The commit hook updates
/// them, with the map, under `gate`; a checkpoint reads them under it, so it knows an upper
/// bound for anything it saw in the map.
#[derive(Debug, Default)]
pub struct Applied {
    pub gate: std::sync::Mutex<()>,
    pub seq: AtomicU64,
    pub us: AtomicU64,
}

impl Applied {
    pub fn read(&self) -> (u64, u64) {
        let _g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        (
            self.seq.load(Ordering::Acquire),
            self.us.load(Ordering::Acquire),
        )
    }
}

pub struct Table {
    pub meta: TableMeta,
    pub dir: PathBuf,
    pub shards: Vec<TableShard>,
    dropped: AtomicBool,
}

/// What opening one shard found.
#[derive(Debug, Clone)]
pub struct ShardOpen {
    pub shard: u32,
    pub report: OpenReport,
    pub records_replayed: u64,
    /// Damaged ranges a tolerant start skipped.
    pub lost: Vec<LostRange>,
}

pub use crate::log::shard_dir;

impl Table {
    /// Opens (creating if new) the table in `dir`, recovering and replaying every shard.
    pub fn open(
        dir: PathBuf,
        meta: TableMeta,
        cfg: &EngineConfig,
        clock: &Arc<dyn Clock>,
    ) -> Result<(Table, Vec<ShardOpen>), DbError> {
        Self::open_with(dir, meta, cfg, clock, None)
    }

    /// Opens a table; with `maps`, shard `k` starts from `maps[k]` (a restore just built them
    /// and wrote them as checkpoints) instead of loading its checkpoint.
    pub fn open_with(
        dir: PathBuf,
        meta: TableMeta,
        cfg: &EngineConfig,
        clock: &Arc<dyn Clock>,
        maps: Option<Vec<KvMap>>,
    ) -> Result<(Table, Vec<ShardOpen>), DbError> {
        let mut maps: Vec<Option<KvMap>> = match maps {
            Some(m) => {
                assert_eq!(m.len(), meta.shards as usize, "one map per shard");
                m.into_iter().map(Some).collect()
            }
            None => (0..meta.shards).map(|_| None).collect(),
        };
        let results: Vec<Result<(TableShard, ShardOpen), DbError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..meta.shards)
                .zip(maps.iter_mut())
                .map(|(k, map)| {
                    let dir = &dir;
                    let meta = &meta;
                    let map = map.take();
                    s.spawn(move || open_shard(dir, meta, k, cfg, clock.clone(), map))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("shard open thread panicked"))
                .collect()
        });
        let mut shards = Vec::new();
        let mut reports = Vec::new();
        for r in results {
            let (shard, report) = r?;
            shards.push(shard);
            reports.push(report);
        }
        Ok((
            Table {
                meta,
                dir,
                shards,
                dropped: AtomicBool::new(false),
            },
            reports,
        ))
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn shard_for(&self, key: &[u8]) -> usize {
        shard_of(key, self.shards.len())
    }

    pub fn map_for(&self, key: &[u8]) -> &KvMap {
        &self.shards[self.shard_for(key)].map
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.len()).sum()
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.map.bytes()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Marks the table dropped and stops its log writers (committing what they hold).
    pub fn shut(&self, dropped: bool) {
        if dropped {
            self.dropped.store(true, Ordering::Release);
        }
        for s in &self.shards {
            s.log.shutdown();
        }
    }
}

/// Threads that load one shard's checkpoint when `shards` open at once: the cores shared out,
/// at most 8 each.
fn load_workers(shards: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / shards.max(1) as usize).clamp(1, 8)
}

fn open_shard(
    table_dir: &Path,
    meta: &TableMeta,
    shard: u32,
    cfg: &EngineConfig,
    clock: Arc<dyn Clock>,
    preloaded: Option<KvMap>,
) -> Result<(TableShard, ShardOpen), DbError> {
    let dir = shard_dir(table_dir, shard);
    let mut lc = LogConfig::new(&dir, meta.id, shard);
    lc.fsync = cfg.fsync;
    lc.io = cfg.io;
    lc.direct = cfg.direct;
    lc.zstd_level = cfg.zstd_level;
    lc.segment_max_bytes = cfg.segment_max_bytes;
    lc.tolerant = cfg.tolerant;
    let mut from_seq = 0;
    let mut last_ckp = (0, 0, 0);
    let map = match preloaded {
        Some(map) => map,
        None => {
            remove_temporaries(&dir);
            // Start from the newest checkpoint, then replay the log after its start.
            match checkpoint::list(&dir)?.pop() {
                Some((_, path)) => {
                    // Sized for its entries up front (a growing map rehashes everything it
                    // holds: a quarter of a large load's time went there). The footer's count
                    // is checksummed; capped at the file's length in bytes, so even a wrong
                    // one reserves slots for no more entries than the file has bytes.
                    let entries = checkpoint::entry_count(&path, meta.id, shard)?;
                    let file_len = std::fs::metadata(&path).map_or(0, |m| m.len());
                    let map = with_capacity(entries.min(file_len) as usize);
                    // Decompressed and applied on this shard's share of the cores: a checkpoint
                    // holds each key once (every writer walks each stripe once), so the order
                    // its entries land in changes nothing.
                    let workers = load_workers(meta.shards);
                    let h = load_checkpoint(&map, &path, meta.id, shard, workers, entries, None)?;
                    from_seq = h.start_seq + 1;
                    last_ckp = (h.end_seq, h.created_us, 0);
                    map
                }
                None => new_map(),
            }
        }
    };
    let map = Arc::new(map);
    let ordered = Arc::new(crate::map::OrderedKeys::new());
    let applied = Arc::new(Applied::default());
    let (hook_map, hook_applied, hook_ordered) = (map.clone(), applied.clone(), ordered.clone());
    // Runs on the writer thread after each commit, in log order, before the client is
    // answered: a connection always reads its own acknowledged writes.
    let hook: CommitHook = Box::new(move |info, records| {
        let _g = hook_applied.gate.lock().unwrap_or_else(|e| e.into_inner());
        for r in records.iter() {
            apply_ref(&hook_map, r.expect("batches are built by RecordBatch"));
        }
        hook_ordered.note(records.iter().flatten().map(|r| match r {
            RecordRef::Put { key, .. } => (key, true),
            RecordRef::Delete { key } => (key, false),
        }));
        let last = info.first_seq + records.len() as u64 - 1;
        hook_applied.seq.store(last, Ordering::Release);
        hook_applied.us.store(info.commit_us, Ordering::Release);
    });
    // Read-modify-writes read the applied state on the writer thread, in commit order.
    let read_map = map.clone();
    let reader: ReadHook = Box::new(move |key, visit| match read_map.get(key) {
        Some(v) => visit(Some(&v)),
        None => visit(None),
    });
    let (log, report) = ShardLog::open_with_reader(lc, clock, Some(hook), Some(reader))?;
    applied.seq.store(report.next_seq - 1, Ordering::Release);
    applied.us.store(report.last_commit_us, Ordering::Release);
    // The writer is idle until the table is served, so the replay sees a still log.
    let opts = ScanOptions {
        tolerant: cfg.tolerant,
        progress: None,
        stop: None,
    };
    let range = ScanRange {
        from_seq,
        ..ScanRange::ALL
    };
    let (stats, lost) = scan_shard_with(&dir, meta.id, shard, range, opts, |_, _, r| {
        apply_ref(&map, r);
    })?;
    // Before any write is served: the hook keeps it up to date from here on.
    ordered.replace_with(crate::map::OrderedKeys::build(&map));
    Ok((
        TableShard {
            map,
            ordered,
            applied,
            last_checkpoint: std::sync::Mutex::new(last_ckp),
            log,
        },
        ShardOpen {
            shard,
            report,
            records_replayed: stats.records,
            lost,
        },
    ))
}

/// Removes what a crash left half-written: temporary checkpoint and index files (the real
/// files are renamed into place only once whole).
fn remove_temporaries(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tmp") {
            match std::fs::remove_file(&p) {
                Ok(()) => tracing::warn!("removed {}, left by an interrupted write", p.display()),
                Err(err) => tracing::warn!("could not remove {}: {err}", p.display()),
            }
        }
    }
}
