//! `PITR.RESTORE ... DRYRUN`: what a restore would read, shard by shard, and how long it
//! would take at the replay speed measured on this machine.
//!
//! The speed is measured, not assumed: the last restore this process ran (its replayed
//! bytes over its replay time), else a sample taken now, by replaying the plan's first
//! segment (up to one segment, decoded and applied to a scratch map) on one thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::replay::{plan, ShardPlan};
use crate::log::{scan_shard_with, LogError, ScanOptions, ScanRange};
use crate::map::{apply_ref, new_map};

/// The last restore's replay speed, per thread, in bytes per second (0: none ran yet).
static LAST_RATE: AtomicU64 = AtomicU64::new(0);

/// Remembers a finished restore's replay speed (bytes over seconds, over `threads`).
pub fn note_replay_speed(bytes: u64, seconds: f64, threads: usize) {
    if bytes >= 1 << 20 && seconds > 0.0 {
        let per_thread = bytes as f64 / seconds / threads.max(1) as f64;
        LAST_RATE.store(per_thread as u64, Ordering::Relaxed);
    }
}

/// One shard's part of a dry run.
#[derive(Debug, Clone)]
pub struct ShardDry {
    pub checkpoint: Option<PathBuf>,
    pub checkpoint_bytes: u64,
    pub segments: usize,
    pub log_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct DryRun {
    pub shards: Vec<ShardDry>,
    /// Replay speed used for the estimate, bytes per second per thread, and where it came from.
    pub rate: f64,
    pub rate_source: String,
    pub threads: usize,
    pub estimated_seconds: f64,
}

/// Plans a restore of the shards in `dirs` (each read up to its `until_seq`) to `at_us`.
pub fn dry_run(
    dirs: &[PathBuf],
    (table_id, until_seq): (u64, &[u64]),
    at_us: u64,
    threads: usize,
) -> Result<DryRun, LogError> {
    let plans: Vec<ShardPlan> = dirs
        .iter()
        .zip(until_seq)
        .map(|(d, &u)| plan(d, at_us, u))
        .collect::<Result<_, _>>()?;
    let mut shards = Vec::new();
    for p in &plans {
        let checkpoint_bytes = match &p.checkpoint {
            Some(c) => std::fs::metadata(c).map_err(|e| LogError::io(c, e))?.len(),
            None => 0,
        };
        shards.push(ShardDry {
            checkpoint: p.checkpoint.clone(),
            checkpoint_bytes,
            segments: p.segments.len(),
            log_bytes: p.bytes,
        });
    }
    let (rate, rate_source) = match LAST_RATE.load(Ordering::Relaxed) {
        0 => sample(dirs, table_id, &plans)?,
        r => (r as f64, "the last restore this server ran".to_string()),
    };
    let total: u64 = shards
        .iter()
        .map(|s| s.checkpoint_bytes + s.log_bytes)
        .sum();
    let threads = threads.max(1);
    let estimated_seconds = if rate > 0.0 {
        total as f64 / rate / threads as f64
    } else {
        0.0
    };
    Ok(DryRun {
        shards,
        rate,
        rate_source,
        threads,
        estimated_seconds,
    })
}

/// Replays the first segment of the largest shard's plan into a scratch map and times it.
fn sample(dirs: &[PathBuf], table_id: u64, plans: &[ShardPlan]) -> Result<(f64, String), LogError> {
    let Some((k, p)) = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.segments.is_empty())
        .max_by_key(|(_, p)| p.bytes)
    else {
        return Ok((0.0, "nothing to replay".to_string()));
    };
    let first = p.segments[0];
    let next = p.segments.get(1).copied();
    let range = ScanRange {
        from_seq: p.from_seq.max(first),
        until_us: p.until_us,
        until_seq: next.map_or(p.until_seq, |n| (n - 1).min(p.until_seq)),
    };
    let map = new_map();
    let t = Instant::now();
    let (stats, _) = scan_shard_with(
        &dirs[k],
        table_id,
        k as u32,
        range,
        ScanOptions::default(),
        |_, _, r| {
            apply_ref(&map, r);
        },
    )?;
    let s = t.elapsed().as_secs_f64();
    if stats.stored_bytes == 0 || s <= 0.0 {
        return Ok((0.0, "nothing to replay".to_string()));
    }
    Ok((
        stats.stored_bytes as f64 / s,
        format!(
            "a sample now: {} bytes of shard {k} replayed in {:.3} s",
            stats.stored_bytes, s
        ),
    ))
}
