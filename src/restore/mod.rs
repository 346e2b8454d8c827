//! Point-in-time restore: rebuild a table as it was at a moment, into a new table.
//!
//! Every source shard is replayed in parallel (`replay.rs`); each result is written as the
//! target shard's first checkpoint (durable before the target turns `ACTIVE`), and the maps
//! are handed to the live target table so nothing is read twice.

mod dryrun;
pub mod progress;
mod replay;
mod time;

use std::path::{Path, PathBuf};

pub use dryrun::{dry_run, note_replay_speed, DryRun, ShardDry};
pub use progress::{Phase, RestoreProgress, Snapshot};
pub use replay::{plan, replay, replay_parts, ShardPlan};
pub use time::{format_time, parse_time};

use crate::log::checkpoint::{self, CheckpointHeader, CheckpointWriter};
use crate::log::LogError;
use crate::map::KvMap;

/// Most threads one shard's replay is split over.
pub const MAX_PARTS: usize = 8;

/// What to restore: a source shard directory per shard, and where each one stops.
#[derive(Debug, Clone)]
pub struct RestoreSpec {
    pub source_id: u64,
    /// `<source table dir>/shard-<k>` for every shard k.
    pub source_shards: Vec<PathBuf>,
    /// Per shard, the last sequence known durable when the restore began.
    pub until_seq: Vec<u64>,
    pub at_us: u64,
    pub target_id: u64,
    pub target_dir: PathBuf,
    /// Shards replayed at once.
    pub threads: usize,
    pub zstd_level: i32,
    /// Only keys matching this are restored.
    pub filter: Option<crate::history::Glob>,
}

/// Replays every shard and writes the target's checkpoints. Returns the maps, shard by shard.
pub fn run(spec: &RestoreSpec, progress: &RestoreProgress) -> Result<Vec<KvMap>, LogError> {
    let n = spec.source_shards.len();
    assert_eq!(progress.shards.len(), n, "progress has one slot per shard");
    let plans = spec
        .source_shards
        .iter()
        .zip(&spec.until_seq)
        .map(|(dir, &until)| {
            plan(dir, spec.at_us, until).map(|mut p| {
                p.filter = spec.filter.clone();
                p
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = plans.iter().map(|p| p.bytes).sum();
    progress
        .total_bytes
        .store(total, std::sync::atomic::Ordering::Relaxed);
    let threads = spec.threads.clamp(1, n.max(1));
    // Cores left over when there are fewer shards than cores replay each shard in parts
    // (`replay_parts`): a one-shard table restores on every core too.
    // One part reads and routes, the others apply: capped, since one reader can feed only
    // so many appliers.
    let parts = (spec.threads / n.max(1)).clamp(1, MAX_PARTS);
    let mut maps: Vec<Option<KvMap>> = (0..n).map(|_| None).collect();
    // Shards are handed out in turn to `threads` workers.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let results: Vec<Vec<(usize, Result<KvMap, LogError>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= n {
                            return done;
                        }
                        let dir = &spec.source_shards[k];
                        let t = std::time::Instant::now();
                        let r = replay_parts(
                            dir,
                            spec.source_id,
                            k as u32,
                            &plans[k],
                            &progress.shards[k],
                            parts,
                        )
                        .and_then(|map| {
                            let replayed = t.elapsed();
                            write_target(spec, k as u32, &map, parts)?;
                            tracing::info!(
                                "restore shard {k}: {} keys, replay {:.3} s, checkpoint {:.3} s",
                                map.len(),
                                replayed.as_secs_f64(),
                                (t.elapsed() - replayed).as_secs_f64()
                            );
                            Ok(map)
                        });
                        done.push((k, r));
                    }
                })
            })
            .collect();
        // A worker that panicked fails the restore (the target is marked FAILED with the
        // reason) instead of taking the restore thread down with it.
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|p| {
                    let why = crate::log::error::panic_message(p.as_ref());
                    vec![(
                        usize::MAX,
                        Err(LogError::Panicked(format!("restore: {why}"))),
                    )]
                })
            })
            .collect()
    });
    for (k, r) in results.into_iter().flatten() {
        let map = r?;
        maps[k] = Some(map);
    }
    note_replay_speed(total, started.elapsed().as_secs_f64(), spec.threads);
    Ok(maps
        .into_iter()
        .map(|m| m.expect("every shard ran"))
        .collect())
}

/// Writes a target shard's state as its first checkpoint: the target's own log starts at 1.
fn write_target(
    spec: &RestoreSpec,
    shard: u32,
    map: &KvMap,
    threads: usize,
) -> Result<(), LogError> {
    let dir = target_shard_dir(&spec.target_dir, shard);
    crate::log::fsutil::create_private_dir(&dir)?;
    let header = CheckpointHeader {
        table_id: spec.target_id,
        shard,
        start_seq: 0,
        end_seq: 0,
        end_us: spec.at_us,
        created_us: crate::log::Clock::now_us(&crate::log::SystemClock),
    };
    // Walked, framed and compressed on `threads` threads, chunk by chunk: nothing writes to
    // the map until the target is handed over.
    CheckpointWriter::create(&dir, &header, spec.zstd_level)?
        .write_chunks(&map.stripe_chunks(checkpoint::BLOCK_TARGET), threads)?;
    Ok(())
}

pub fn target_shard_dir(table_dir: &Path, shard: u32) -> PathBuf {
    crate::log::shard_dir(table_dir, shard)
}
