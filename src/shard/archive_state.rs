//! What the archive (`src/archive/`) has of each table shard, kept here so that retention can
//! ask it and `INFO`/`PITR.DESCRIBE` can show it without the data plane depending on the
//! shipper.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How far the archive holds one table shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Floor {
    /// Every sequence up to here is in the archive.
    pub log_seq: u64,
    /// Every local checkpoint up to this end sequence is in the archive.
    pub checkpoint_end: u64,
    /// A dropped table's shard whose whole log and checkpoints are in the archive.
    pub drained: bool,
}

/// Per archived table, for `PITR.DESCRIBE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableArchive {
    /// The newest moment a restore from the archive alone reaches (0: none yet).
    pub latest_restorable_us: u64,
    /// How far that is behind the newest durable write.
    pub lag_us: u64,
}

/// The archive as the server sees it. Counters only grow.
#[derive(Debug)]
pub struct ArchiveState {
    pub url: String,
    pub generation: String,
    pub started: Instant,
    pub bytes: AtomicU64,
    pub objects: AtomicU64,
    pub puts: AtomicU64,
    pub gets: AtomicU64,
    pub deletes: AtomicU64,
    pub errors: AtomicU64,
    /// `ok`, `starting`, `error: ...` (retrying) or `fenced: ...` (stopped).
    status: Mutex<String>,
    floors: Mutex<HashMap<(u64, u32), Floor>>,
    tables: Mutex<HashMap<u64, TableArchive>>,
}

impl ArchiveState {
    pub fn new(url: &str, generation: &str) -> Self {
        ArchiveState {
            url: url.to_string(),
            generation: generation.to_string(),
            started: Instant::now(),
            bytes: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            status: Mutex::new("starting".into()),
            floors: Mutex::new(HashMap::new()),
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// What the archive holds of a shard; nothing (keep every file) until the shipper knows.
    pub fn floor(&self, table: u64, shard: u32) -> Floor {
        self.floors
            .lock()
            .expect("floors lock")
            .get(&(table, shard))
            .copied()
            .unwrap_or_default()
    }

    pub fn set_floor(&self, table: u64, shard: u32, f: Floor) {
        self.floors
            .lock()
            .expect("floors lock")
            .insert((table, shard), f);
    }

    pub fn table(&self, table: u64) -> Option<TableArchive> {
        self.tables
            .lock()
            .expect("tables lock")
            .get(&table)
            .copied()
    }

    pub fn set_table(&self, table: u64, t: TableArchive) {
        self.tables.lock().expect("tables lock").insert(table, t);
    }

    /// The largest lag over every archived table.
    pub fn max_lag_us(&self) -> u64 {
        let t = self.tables.lock().expect("tables lock");
        t.values().map(|t| t.lag_us).max().unwrap_or(0)
    }

    pub fn status(&self) -> String {
        self.status.lock().expect("status lock").clone()
    }

    pub fn set_status(&self, s: impl Into<String>) {
        *self.status.lock().expect("status lock") = s.into();
    }

    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// PUTs per hour since the server started.
    pub fn puts_per_hour(&self) -> f64 {
        let h = self.started.elapsed().as_secs_f64() / 3600.0;
        if h <= 0.0 {
            return 0.0;
        }
        self.puts.load(Ordering::Relaxed) as f64 / h
    }
}
