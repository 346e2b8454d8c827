//! Helpers shared by the log's unit tests.

use std::path::Path;
use std::sync::Arc;

use super::*;

/// 2025-11-25T13:00:00Z in Unix microseconds: the start of an hour.
pub const T0: u64 = 1_764_075_600_000_000;

pub fn config(dir: &Path, io: IoMode) -> LogConfig {
    let mut c = LogConfig::new(dir, 1, 0);
    c.io = io;
    c
}

pub fn open(c: &LogConfig, clock: &ManualClock) -> (ShardLog, OpenReport) {
    ShardLog::open(c.clone(), Arc::new(clock.clone()), None).expect("open log")
}

/// Every record of the log as `(seq, commit_us, record)`.
pub fn read_all(dir: &Path, range: ScanRange) -> Vec<(u64, u64, Record)> {
    let mut out = Vec::new();
    scan_shard(dir, 1, 0, range, |seq, t, r| {
        out.push((seq, t, r.to_owned()))
    })
    .expect("scan");
    out
}

/// The log in `dir` holds exactly `put(0)`, `put(1)`, ... `put(n - 1)`, at sequences 1 to n.
#[track_caller]
pub fn assert_holds_puts(dir: &Path, n: u64) {
    let got = read_all(dir, ScanRange::ALL);
    assert_eq!(got.len() as u64, n);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (seq, _, r))| *seq == i as u64 + 1 && *r == put(i as u64)));
}

pub fn put(i: u64) -> Record {
    Record::put(
        format!("key:{i}").into_bytes(),
        format!("value:{i}:{}", "x".repeat(60)).into_bytes(),
    )
}

pub fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}

pub fn io_modes() -> [IoMode; 2] {
    [IoMode::Std, IoMode::Auto]
}
