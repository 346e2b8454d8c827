//! Replaying one source shard up to a time, into a fresh map.
//!
//! The newest checkpoint that may stand in for the log at `at_us` (its `end_us <= at_us`) is
//! loaded first, then the log from the checkpoint's `start_seq + 1` up to `at_us` and to the
//! last sequence known durable when the restore began. Records of one shard are applied in log
//! order, so the last write wins; shards hold disjoint keys and run in parallel.

use std::path::Path;

use crate::log::record::RecordBatch;
use crate::log::{
    checkpoint, scan_shard_with, segment, LogError, RecordRef, ScanOptions, ScanProgress, ScanRange,
};
use crate::map::{apply_ref, load_checkpoint, with_capacity, Keep, KvMap};

/// Most keys a replay map is sized for up front.
const MAX_PRESIZE: usize = 16 << 20;

/// Where one shard's replay starts and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub checkpoint: Option<std::path::PathBuf>,
    pub from_seq: u64,
    pub until_us: u64,
    pub until_seq: u64,
    /// Stored bytes of the segments the replay will read, for progress.
    pub bytes: u64,
    /// First sequences of those segments.
    pub segments: Vec<u64>,
    /// Only keys matching this are restored (`PITR.RESTORE ... MATCH glob`).
    pub filter: Option<crate::history::Glob>,
}

/// Plans the replay of `dir` (one source shard) to `at_us`, reading no sequence past
/// `until_seq`.
pub fn plan(dir: &Path, at_us: u64, until_seq: u64) -> Result<ShardPlan, LogError> {
    let mut ckp = None;
    let mut from_seq = 0;
    for (_, path) in checkpoint::list(dir)?.into_iter().rev() {
        let h = checkpoint::read_header(&path)?;
        if h.end_us <= at_us && h.end_seq <= until_seq {
            from_seq = h.start_seq + 1;
            ckp = Some(path);
            break;
        }
    }
    // Bisect the segments by creation time for the cut; count the bytes between the start and
    // the cut for progress.
    let segs = segment::list(dir)?;
    let mut spans = Vec::with_capacity(segs.len());
    let mut sizes = Vec::with_capacity(segs.len());
    for s in &segs {
        let (created_us, len) = segment_head(&s.path)?;
        spans.push(segment::SegmentSpan {
            first_seq: s.first_seq,
            created_us,
        });
        sizes.push(len);
    }
    let end = segment::cut(&spans, at_us);
    let mut bytes = 0;
    let mut segments = Vec::new();
    for i in 0..end {
        let past_start = spans.get(i + 1).is_none_or(|n| n.first_seq > from_seq);
        if past_start && spans[i].first_seq <= until_seq {
            bytes += sizes[i];
            segments.push(segs[i].first_seq);
        }
    }
    Ok(ShardPlan {
        checkpoint: ckp,
        from_seq,
        until_us: at_us,
        until_seq,
        bytes,
        segments,
        filter: None,
    })
}

/// Runs a shard's plan into a new map.
pub fn replay(
    dir: &Path,
    table_id: u64,
    shard: u32,
    plan: &ShardPlan,
    progress: &ScanProgress,
) -> Result<KvMap, LogError> {
    replay_parts(dir, table_id, shard, plan, progress, 1)
}

/// [`replay`] on `parts` threads. The checkpoint is loaded first on every thread
/// (`checkpoint::read_parallel`). Then one thread reads the log once (checksums,
/// decompression, record parsing) and applies the records of its own share of the map's lock
/// stripes; the records of every other stripe go, in log order, in batches to the
/// thread that owns that stripe, which applies them. So each key still sees its records in
/// log order, no two threads meet on a stripe's lock, the decoding is done once, and the
/// inserts, the largest share, run on every thread. The reader's share is smaller than the
/// others', since it also decodes and routes. Progress is reported by the reader.
pub fn replay_parts(
    dir: &Path,
    table_id: u64,
    shard: u32,
    plan: &ShardPlan,
    progress: &ScanProgress,
    parts: usize,
) -> Result<KvMap, LogError> {
    let base = match &plan.checkpoint {
        Some(path) => checkpoint::entry_count(path, table_id, shard)?,
        None => 0,
    };
    // Size the map for the checkpoint's entries (all of them unless MATCH picks some) and the
    // records the log holds (about 64 stored bytes or more each), so a large restore does not
    // rehash as it grows; capped to bound what a guess can waste.
    let from_base = if plan.filter.is_some() { 0 } else { base };
    let guess = from_base.saturating_add(plan.bytes / 64);
    let map = with_capacity((guess as usize).min(MAX_PRESIZE));
    // The checkpoint first, on every part: it holds each key once, so its entries may land
    // in any order, and all of them are in before the first log record is applied. The log
    // is then read (and routed) by `read_routed`.
    if let Some(path) = &plan.checkpoint {
        let matches = |k: &[u8]| plan.filter.as_ref().is_none_or(|g| g.matches(k));
        let keep: Keep<'_> = plan.filter.is_some().then_some(&matches);
        load_checkpoint(&map, path, table_id, shard, parts, base, keep)?;
    }
    let appliers = parts.max(1) - 1;
    if appliers == 0 {
        read_routed(&map, dir, table_id, shard, plan, progress, &mut [])?;
        return Ok(map);
    }
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..appliers)
        .map(|_| crossbeam_channel::unbounded::<RecordBatch>())
        .unzip();
    // Applied batches go back to the reader to be filled again: no batch grows from empty
    // or faults in fresh pages after the first few. How many exist is bounded by the byte
    // budget (about 19 per applier), and one a huge record grew is not handed back.
    let (back_txs, back_rxs): (Vec<_>, Vec<_>) = (0..appliers)
        .map(|_| crossbeam_channel::unbounded::<RecordBatch>())
        .unzip();
    let in_flight: Vec<std::sync::Arc<InFlight>> =
        (0..appliers).map(|_| Default::default()).collect();
    let (read, applied) = std::thread::scope(|s| {
        let workers: Vec<_> = rxs
            .into_iter()
            .zip(back_txs)
            .zip(in_flight.iter().cloned())
            .map(|((rx, back), in_flight)| {
                let map = &map;
                s.spawn(move || -> Result<(), LogError> {
                    let _stopped = Stopped(in_flight.clone());
                    for mut batch in rx {
                        for r in batch.iter() {
                            // The reader encoded this batch: a parse error is a bug here.
                            let r = r.map_err(|e| {
                                LogError::Panicked(format!("restore: routed batch: {e}"))
                            })?;
                            apply_ref(map, r);
                        }
                        in_flight.release(batch.bytes().len());
                        // A buffer a huge record grew is freed, not kept: what the reader
                        // holds for reuse stays about ROUTE_BATCH_CAPACITY a batch.
                        if batch.capacity() <= ROUTE_BATCH_CAPACITY {
                            batch.clear();
                            // The reader may be done and gone: the batch is then dropped.
                            let _ = back.send(batch);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let mut routes: Vec<Route> = txs
            .into_iter()
            .zip(back_rxs)
            .zip(in_flight.iter().cloned())
            .map(|((tx, back), in_flight)| Route {
                tx,
                back,
                batch: RecordBatch::with_capacity(ROUTE_BATCH_CAPACITY),
                in_flight,
            })
            .collect();
        let read = read_routed(&map, dir, table_id, shard, plan, progress, &mut routes);
        drop(routes);
        let applied: Vec<Result<(), LogError>> = workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|p| {
                    let why = crate::log::error::panic_message(p.as_ref());
                    Err(LogError::Panicked(format!("restore: {why}")))
                })
            })
            .collect();
        (read, applied)
    });
    // An applier's own failure explains a reader that found it gone.
    for r in applied {
        r?;
    }
    read?;
    Ok(map)
}

/// Routed records wait in batches of about this many bytes.
const ROUTE_BATCH_BYTES: usize = 256 << 10;
/// A routed batch's buffer: the threshold plus room for the record that crosses it (a larger
/// record grows the buffer once).
const ROUTE_BATCH_CAPACITY: usize = ROUTE_BATCH_BYTES + (16 << 10);
/// With `parts` threads the reader owns this many of every 100 stripes divided by `parts`
/// (20 of 100 with two threads, where the applier gets 80): it also decodes and routes. 70
/// (35 of 100) left the reader the busiest thread by far under perf (measured in
/// docs/BENCHMARKS.md, "Restore, one shard").
const READER_STRIPES_PCT_X_PARTS: usize = 40;

/// Bytes of routed records that may wait for one applier (past this the reader waits; one
/// batch larger than this, a single huge record, still goes once the applier is idle).
const ROUTE_BUDGET_BYTES: usize = 4 << 20;

/// Bytes sent to an applier and not yet applied (and whether it stopped), and a signal when
/// that changes.
#[derive(Default)]
struct InFlight {
    state: parking_lot::Mutex<(usize, bool)>,
    changed: parking_lot::Condvar,
}

impl InFlight {
    /// Waits until `more` bytes fit in the budget (or nothing is in flight, or the applier
    /// stopped: the send then fails), then counts them.
    fn reserve(&self, more: usize) {
        let mut st = self.state.lock();
        while !st.1 && st.0 > 0 && st.0 + more > ROUTE_BUDGET_BYTES {
            self.changed.wait(&mut st);
        }
        st.0 += more;
    }

    fn release(&self, done: usize) {
        self.state.lock().0 -= done;
        self.changed.notify_one();
    }
}

/// Marks an applier stopped when it returns or panics, so the reader never waits on it.
struct Stopped(std::sync::Arc<InFlight>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.state.lock().1 = true;
        self.0.changed.notify_one();
    }
}

/// Where one applier's records go.
struct Route {
    tx: crossbeam_channel::Sender<RecordBatch>,
    /// Batches the applier is done with, empty, to be filled again.
    back: crossbeam_channel::Receiver<RecordBatch>,
    batch: RecordBatch,
    in_flight: std::sync::Arc<InFlight>,
}

impl Route {
    fn send(&mut self) -> Result<(), LogError> {
        let next = self
            .back
            .try_recv()
            .unwrap_or_else(|_| RecordBatch::with_capacity(ROUTE_BATCH_CAPACITY));
        let batch = std::mem::replace(&mut self.batch, next);
        self.in_flight.reserve(batch.bytes().len());
        self.tx
            .send(batch)
            .map_err(|_| LogError::Panicked("restore: an applier thread stopped".into()))
    }
}

/// Reads the plan's log once (its checkpoint is already in the map: `replay_parts`), applying
/// the reader's own stripes and routing the rest (with no routes, applies everything).
fn read_routed(
    map: &KvMap,
    dir: &Path,
    table_id: u64,
    shard: u32,
    plan: &ShardPlan,
    progress: &ScanProgress,
    routes: &mut [Route],
) -> Result<(), LogError> {
    let filter = plan.filter.as_ref();
    let n = routes.len();
    // Which applier takes `key` (`None`: the reader itself).
    let reader_pct = READER_STRIPES_PCT_X_PARTS / (n + 1);
    let owner = |key: &[u8]| -> Option<usize> {
        if n == 0 {
            return None;
        }
        let stripe = map.stripe_of(key);
        (stripe % 100 >= reader_pct).then_some(stripe % n)
    };
    let mut failed: Option<LogError> = None;
    // Set once a send fails (an applier is gone): the scan then stops at the next block
    // instead of decoding the rest of the log for nothing.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut take = |r: RecordRef<'_>, failed: &mut Option<LogError>| {
        if failed.is_some() || filter.is_some_and(|g| !g.matches(r.key())) {
            return;
        }
        match owner(r.key()) {
            None => {
                apply_ref(map, r);
            }
            Some(i) => {
                let route = &mut routes[i];
                match r {
                    RecordRef::Put { key, value } => route.batch.put(key, value),
                    RecordRef::Delete { key } => route.batch.delete(key),
                }
                if route.batch.bytes().len() >= ROUTE_BATCH_BYTES {
                    if let Err(e) = route.send() {
                        *failed = Some(e);
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    };
    let range = ScanRange {
        from_seq: plan.from_seq,
        until_us: plan.until_us,
        until_seq: plan.until_seq,
    };
    let opts = ScanOptions {
        tolerant: false,
        progress: Some(progress),
        stop: Some(&stop),
    };
    scan_shard_with(dir, table_id, shard, range, opts, |_, _, r| {
        #[cfg(feature = "failpoints")]
        crate::log::failpoint::restore_delay();
        #[cfg(feature = "failpoints")]
        if crate::log::failpoint::restore_panic() {
            panic!("injected restore panic (failpoint restore_panic)");
        }
        take(r, &mut failed)
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    for route in routes.iter_mut().filter(|r| !r.batch.is_empty()) {
        route.send()?;
    }
    Ok(())
}

/// A segment's creation time and file size, from its header.
fn segment_head(path: &Path) -> Result<(u64, u64), LogError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| LogError::io(path, e))?;
    let len = f.metadata().map_err(|e| LogError::io(path, e))?.len();
    let mut head = [0u8; segment::SEGMENT_HEADER_LEN];
    let n = f.read_at(&mut head, 0).map_err(|e| LogError::io(path, e))?;
    let h = segment::SegmentHeader::decode(&head[..n]).map_err(|source| LogError::Damaged {
        path: path.to_path_buf(),
        offset: 0,
        source,
    })?;
    Ok((h.created_us, len))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::log::checkpoint::{CheckpointHeader, CheckpointWriter};
    use crate::log::{FsyncPolicy, LogConfig, Record, ShardLog, SystemClock};

    /// A shard log in `dir` (table 1, shard 0) holding `batches`, one commit each.
    fn write_log(dir: &Path, batches: impl IntoIterator<Item = Vec<Record>>) {
        let mut config = LogConfig::new(dir, 1, 0);
        config.fsync = FsyncPolicy::Never;
        let (log, _) = ShardLog::open(config, Arc::new(SystemClock), None).unwrap();
        for batch in batches {
            log.append(batch).unwrap();
        }
        log.close();
    }

    fn contents(map: &KvMap) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut out = BTreeMap::new();
        map.for_each(|k, v| {
            out.insert(k.to_vec(), v.to_vec());
        });
        out
    }

    /// An applier that is gone fails the routed read at the next send, and the reader stops
    /// there instead of decoding the rest of the log.
    #[test]
    fn a_routed_read_stops_once_an_applier_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        write_log(
            dir.path(),
            (0..200u64).map(|b| {
                (0..40u64)
                    .map(|j| Record::put(format!("k{b}-{j}"), "x".repeat(600)))
                    .collect()
            }),
        );
        let p = plan(dir.path(), u64::MAX, u64::MAX).unwrap();
        let mut routes: Vec<Route> = (0..2)
            .map(|_| {
                // Both ends the applier would hold are dropped: it is gone.
                let (tx, _) = crossbeam_channel::unbounded();
                let (_, back) = crossbeam_channel::unbounded();
                Route {
                    tx,
                    back,
                    batch: RecordBatch::with_capacity(ROUTE_BATCH_CAPACITY),
                    in_flight: Arc::new(InFlight::default()),
                }
            })
            .collect();
        let map = crate::map::new_map();
        let progress = ScanProgress::default();
        let err = read_routed(&map, dir.path(), 1, 0, &p, &progress, &mut routes).unwrap_err();
        assert!(err.to_string().contains("applier thread stopped"), "{err}");
        let read = progress.records.load(std::sync::atomic::Ordering::Relaxed);
        // The first send goes after about 256 KiB routed to one applier: ~450 records here.
        assert!(
            read < 2_000,
            "{read} of 8,000 records read after the failure"
        );
    }

    /// A base checkpoint overwritten and deleted by the log after it, with and without a
    /// MATCH filter: routed to every number of appliers, it gives what applying the
    /// checkpoint and then the log in order on one map gives.
    #[test]
    fn routed_parts_apply_checkpoint_then_log_in_order_with_a_filter() {
        let dir = tempfile::tempdir().unwrap();
        let header = CheckpointHeader {
            table_id: 1,
            shard: 0,
            start_seq: 0,
            end_seq: 0,
            end_us: 1,
            created_us: 1,
        };
        let mut w = CheckpointWriter::create(dir.path(), &header, 1).unwrap();
        for i in 0..3000u64 {
            w.put(format!("k{i}").as_bytes(), format!("base{i}").as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
        write_log(
            dir.path(),
            (0..200u64).map(|b| {
                (0..40u64)
                    .map(|j| {
                        let key = format!("k{}", (b * 41 + j * 7) % 3500).into_bytes();
                        if (b + j) % 6 == 0 {
                            Record::delete(key)
                        } else {
                            // Values large enough that every applier gets many batches.
                            Record::put(key, format!("v{b}-{j}:{}", "x".repeat(600)).into_bytes())
                        }
                    })
                    .collect()
            }),
        );
        for pattern in [None, Some("k1*")] {
            let mut p = plan(dir.path(), u64::MAX, u64::MAX).unwrap();
            assert!(
                p.checkpoint.is_some(),
                "the plan starts from the checkpoint"
            );
            p.filter = pattern.map(|g| crate::history::Glob::new(g.as_bytes()).unwrap());
            // The oracle: checkpoint, then every record in log order, on one map.
            let want = crate::map::new_map();
            let keep = |k: &[u8]| p.filter.as_ref().is_none_or(|g| g.matches(k));
            checkpoint::read(p.checkpoint.as_ref().unwrap(), 1, 0, |k, v| {
                if keep(k) {
                    apply_ref(&want, RecordRef::Put { key: k, value: v });
                }
            })
            .unwrap();
            crate::log::scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, r| {
                if keep(r.key()) {
                    apply_ref(&want, r);
                }
            })
            .unwrap();
            assert!(contents(&want).len() > 100, "{pattern:?}");
            for parts in [1, 2, 3, 8] {
                let got =
                    replay_parts(dir.path(), 1, 0, &p, &ScanProgress::default(), parts).unwrap();
                assert_eq!(
                    contents(&got),
                    contents(&want),
                    "{parts} parts, {pattern:?}"
                );
            }
        }
    }

    /// A log of puts, overwrites and deletes over few keys (so order matters), and the
    /// checkpoint of a larger state written one entry at a time and in chunks on 3 threads.
    #[test]
    fn a_shard_replayed_in_parts_is_the_shard_replayed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = 7u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let batches: Vec<Vec<Record>> = (0..400)
            .map(|_| {
                (0..50)
                    .map(|_| {
                        let key = format!("k{}", next() % 3000).into_bytes();
                        if next() % 5 == 0 {
                            Record::delete(key)
                        } else {
                            Record::put(key, format!("v{}", next()).into_bytes())
                        }
                    })
                    .collect()
            })
            .collect();
        write_log(dir.path(), batches);
        let p = plan(dir.path(), u64::MAX, u64::MAX).unwrap();
        let whole = replay(dir.path(), 1, 0, &p, &ScanProgress::default()).unwrap();
        for parts in [2, 3, 8] {
            let progress = ScanProgress::default();
            let split = replay_parts(dir.path(), 1, 0, &p, &progress, parts).unwrap();
            assert_eq!(contents(&split), contents(&whole), "{parts} parts");
            assert_eq!(
                progress.records.load(std::sync::atomic::Ordering::Relaxed),
                20_000,
                "progress counts every record once"
            );
        }
        // The checkpoint of a larger state, one entry at a time and in chunks on 3 threads:
        // the same entries in the same order.
        let header = CheckpointHeader {
            table_id: 9,
            shard: 0,
            start_seq: 0,
            end_seq: 0,
            end_us: 5,
            created_us: 5,
        };
        let big = crate::map::new_map();
        let mut raw = 0usize;
        // Enough entries for many blocks (a block holds about 1 MiB of records).
        for round in 0..60 {
            whole.for_each(|k, v| {
                let key = [k, format!("/{round}").as_bytes()].concat();
                let value = v.repeat(40);
                raw += key.len() + value.len();
                big.put(&key, &value);
            });
        }
        assert!(raw > 16 << 20, "many blocks of about 1 MiB: {raw} bytes");
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut inline = CheckpointWriter::create(a.path(), &header, 1).unwrap();
        big.for_each(|k, v| inline.put(k, v).unwrap());
        let (pa, na) = inline.finish().unwrap();
        let (pb, nb) = CheckpointWriter::create(b.path(), &header, 1)
            .unwrap()
            .write_chunks(&big.stripe_chunks(checkpoint::BLOCK_TARGET), 3)
            .unwrap();
        assert_eq!((na, nb), (big.len() as u64, big.len() as u64));
        let read_all = |p: &std::path::Path| {
            let mut out = Vec::new();
            checkpoint::read(p, 9, 0, |k, v| out.push((k.to_vec(), v.to_vec()))).unwrap();
            out
        };
        assert_eq!(read_all(&pa), read_all(&pb));
    }
}
