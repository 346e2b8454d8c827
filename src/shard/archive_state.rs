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
    /// Commit time of that sequence (0: nothing archived yet).
    pub last_us: u64,
    /// Every local checkpoint up to this end sequence is in the archive (`None`: none is).
    pub checkpoint_end: Option<u64>,
    /// A dropped table's shard whose whole log and checkpoints are in the archive.
    pub drained: bool,
}

/// The archive as the server sees it. Counters only grow.
#[derive(Debug)]
pub struct ArchiveState {
    pub url: String,
    /// Empty until the lease is taken.
    generation: Mutex<String>,
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
}

impl ArchiveState {
    pub fn new(url: &str) -> Self {
        ArchiveState {
            url: url.to_string(),
            generation: Mutex::new(String::new()),
            started: Instant::now(),
            bytes: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            status: Mutex::new("starting".into()),
            floors: Mutex::new(HashMap::new()),
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

    /// The newest moment a restore from the archive alone reaches for a table of `shards`
    /// shards: the oldest of its shards' newest archived commits (0: some shard has nothing
    /// archived, or none wrote). A restore cannot tell a quiet shard from one whose shipping stopped, so a
    /// quiet shard holds it back.
    pub fn latest_restorable_us(&self, table: u64, shards: u32) -> u64 {
        let floors = self.floors.lock().expect("floors lock");
        let mut latest = u64::MAX;
        for k in 0..shards {
            match floors.get(&(table, k)) {
                Some(f) if f.last_us > 0 => latest = latest.min(f.last_us),
                // A shard that never wrote anything holds nothing back.
                Some(f) if f.log_seq == 0 => {}
                _ => return 0,
            }
        }
        if latest == u64::MAX {
            0
        } else {
            latest
        }
    }

    /// How far the archive is behind one shard's newest durable write (`durable`: its
    /// sequence and commit time), measured now: 0 when it has everything.
    pub fn lag_us(&self, table: u64, shard: u32, durable: (u64, u64), since_us: u64) -> u64 {
        let f = self.floor(table, shard);
        if f.log_seq >= durable.0 {
            return 0;
        }
        durable
            .1
            .saturating_sub(if f.last_us > 0 { f.last_us } else { since_us })
    }

    pub fn generation(&self) -> String {
        self.generation.lock().expect("generation lock").clone()
    }

    pub fn set_generation(&self, g: &str) {
        *self.generation.lock().expect("generation lock") = g.to_string();
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
