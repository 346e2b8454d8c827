//! What a running restore has done, for `TABLE.DESCRIBE` and the offline progress bar.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::log::ScanProgress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Replaying = 0,
    Writing = 1,
    Done = 2,
    Failed = 3,
}

#[derive(Debug)]
pub struct RestoreProgress {
    pub at_us: u64,
    pub started: Instant,
    /// Stored log bytes the replay will read (an estimate from segment sizes).
    pub total_bytes: AtomicU64,
    pub shards: Vec<ScanProgress>,
    phase: AtomicU8,
    error: Mutex<Option<String>>,
}

/// A point-in-time reading of a restore's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub phase: Phase,
    pub records: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The oldest commit time any unfinished shard is at (how far the replay has come).
    pub replay_us: u64,
    pub elapsed_s: f64,
    pub eta_s: Option<f64>,
    pub error: Option<String>,
}

impl RestoreProgress {
    pub fn new(at_us: u64, shards: usize) -> Self {
        RestoreProgress {
            at_us,
            started: Instant::now(),
            total_bytes: AtomicU64::new(0),
            shards: (0..shards).map(|_| ScanProgress::default()).collect(),
            phase: AtomicU8::new(Phase::Replaying as u8),
            error: Mutex::new(None),
        }
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    pub fn fail(&self, why: String) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.set_phase(Phase::Failed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Replaying,
            1 => Phase::Writing,
            2 => Phase::Done,
            _ => Phase::Failed,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let bytes_done: u64 = self.shards.iter().map(|s| get(&s.stored_bytes)).sum();
        let records = self.shards.iter().map(|s| get(&s.records)).sum();
        let bytes_total = get(&self.total_bytes).max(bytes_done);
        let replay_us = self
            .shards
            .iter()
            .map(|s| get(&s.commit_us))
            .filter(|&us| us > 0)
            .min()
            .unwrap_or(0);
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let eta_s = (bytes_done > 0 && self.phase() == Phase::Replaying)
            .then(|| elapsed_s * (bytes_total - bytes_done) as f64 / bytes_done as f64);
        Snapshot {
            phase: self.phase(),
            records,
            bytes_done,
            bytes_total,
            replay_us,
            elapsed_s,
            eta_s,
            error: self.error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}
