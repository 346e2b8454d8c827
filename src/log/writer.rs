//! The log writer of one shard: many producers, one leader at a time, group commit.
//!
//! Producers hand over a batch of records (a client's pipeline, say) and get a one-shot
//! answer. Whoever leads the log (`leader.rs`: a net thread at the end of its tick, a
//! blocking caller, or the shard's background thread) takes everything that is waiting, up
//! to a byte limit, encodes it as one block, writes it and syncs it once, runs the commit
//! hook (the server applies the records to its map there, in log order), then answers every
//! producer. While it writes and syncs, the next batch piles up in the queue: the longer the
//! sync, the larger the batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::block::MAX_BLOCK_PAYLOAD;
use super::clock::Clock;
use super::config::LogConfig;
use super::error::{CommitError, LogError};
use super::io::open_engine;
use super::leader::{self, Refused, Shared};
use super::record::{Record, RecordBatch};
use super::recovery::{recover_shard, TornTail};
use super::rmw::{ReadHook, RmwOp, RmwOutcome};
use super::writer_core::WriterCore;

/// What a producer learns when its records are durable (or, with a relaxed fsync policy,
/// written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// Sequence of the first record of the submission; record `i` has `first_seq + i`.
    pub first_seq: u64,
    pub commit_us: u64,
}

pub type CommitResult = Result<CommitInfo, CommitError>;

/// Called on the writer thread for each submission once it is committed, in log order,
/// before the producer is answered.
pub type CommitHook = Box<dyn FnMut(&CommitInfo, &RecordBatch) + Send>;

/// What a read-modify-write submission learns: each operation's outcome, once the records it
/// decided on are durable (or at once, when it decided on none).
pub type RmwResult = Result<Vec<RmwOutcome>, CommitError>;

/// Whom to answer for a submission, and how.
pub(crate) enum Ack {
    Plain(oneshot::Sender<CommitResult>),
    Rmw(oneshot::Sender<RmwResult>, Vec<RmwOutcome>),
}

impl Ack {
    pub fn ok(self, info: CommitInfo) {
        match self {
            Ack::Plain(tx) => {
                let _ = tx.send(Ok(info));
            }
            Ack::Rmw(tx, outcomes) => {
                let _ = tx.send(Ok(outcomes));
            }
        }
    }

    pub fn err(self, e: CommitError) {
        match self {
            Ack::Plain(tx) => {
                let _ = tx.send(Err(e));
            }
            Ack::Rmw(tx, _) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

/// Records to log. A resolved read-modify-write may hold none.
pub(crate) struct Submission {
    pub batch: RecordBatch,
    pub ack: Ack,
}

pub(crate) struct RmwSubmission {
    pub ops: Vec<RmwOp>,
    pub ack: oneshot::Sender<RmwResult>,
}

pub(crate) enum Msg {
    Append(Submission),
    /// Read-modify-writes, resolved by the leader in commit order.
    Rmw(RmwSubmission),
}

/// Counters a writer keeps; read with [`ShardLog::stats`].
#[derive(Debug, Default)]
pub struct LogStats {
    pub syncs: AtomicU64,
    pub blocks: AtomicU64,
    pub records: AtomicU64,
    pub raw_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub segments_created: AtomicU64,
    /// Rolls that started the next segment in a file the helper had prepared.
    pub segments_prepared: AtomicU64,
    /// Rolls that had to create the next segment inline (the helper had none ready).
    pub segment_rolls_inline: AtomicU64,
    /// Finished segments trimmed, synced and indexed.
    pub segments_sealed: AtomicU64,
    /// Blocks a net thread wrote through its own ring (`--commit inline`).
    pub net_blocks: AtomicU64,
    /// Blocks written with `O_DIRECT` (and `RWF_DSYNC`), no `fdatasync` after them.
    pub direct_blocks: AtomicU64,
    /// Space made ahead of the writer: zeros written (`fsync always`, or where `fallocate`
    /// is refused) and blocks reserved with `fallocate` (`segment_prep.rs`, `Fill`).
    pub zeroed_bytes: AtomicU64,
    pub reserved_bytes: AtomicU64,
    /// The last sequence written (and synced, with `fsync always`) and applied, and its
    /// commit time: what a reader beside the writer may rely on.
    pub durable_seq: AtomicU64,
    pub durable_us: AtomicU64,
    /// How long making writes durable took: a block's write and sync together with `fsync
    /// always`, the sync alone with `everysec` (nothing with `never`).
    pub sync_latency: crate::metrics::Histogram,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub syncs: u64,
    pub blocks: u64,
    pub records: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub segments_created: u64,
    pub segments_prepared: u64,
    pub segment_rolls_inline: u64,
    pub segments_sealed: u64,
    pub net_blocks: u64,
    pub direct_blocks: u64,
    pub zeroed_bytes: u64,
    pub reserved_bytes: u64,
    pub sync_latency: crate::metrics::histogram::Snapshot,
}

impl StatsSnapshot {
    /// Adds `o`'s counters (and its sync latencies) to these.
    pub fn add(&mut self, o: &StatsSnapshot) {
        self.syncs += o.syncs;
        self.blocks += o.blocks;
        self.records += o.records;
        self.raw_bytes += o.raw_bytes;
        self.stored_bytes += o.stored_bytes;
        self.segments_created += o.segments_created;
        self.segments_prepared += o.segments_prepared;
        self.segment_rolls_inline += o.segment_rolls_inline;
        self.segments_sealed += o.segments_sealed;
        self.net_blocks += o.net_blocks;
        self.direct_blocks += o.direct_blocks;
        self.zeroed_bytes += o.zeroed_bytes;
        self.reserved_bytes += o.reserved_bytes;
        self.sync_latency.add(&o.sync_latency);
    }
}

impl LogStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            syncs: get(&self.syncs),
            blocks: get(&self.blocks),
            records: get(&self.records),
            raw_bytes: get(&self.raw_bytes),
            stored_bytes: get(&self.stored_bytes),
            segments_created: get(&self.segments_created),
            segments_prepared: get(&self.segments_prepared),
            segment_rolls_inline: get(&self.segment_rolls_inline),
            segments_sealed: get(&self.segments_sealed),
            net_blocks: get(&self.net_blocks),
            direct_blocks: get(&self.direct_blocks),
            zeroed_bytes: get(&self.zeroed_bytes),
            reserved_bytes: get(&self.reserved_bytes),
            sync_latency: self.sync_latency.snapshot(),
        }
    }
}

/// What opening a log found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    pub next_seq: u64,
    pub last_commit_us: u64,
    pub torn: Option<TornTail>,
    pub io_engine: &'static str,
}

/// A handle on one shard's log writer. Cheap to share behind an `Arc`; dropping it commits
/// what is queued, syncs and stops the background thread.
pub struct ShardLog {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<LogStats>,
    io_engine: &'static str,
}

impl ShardLog {
    /// Recovers the log in `config.dir` (cutting a torn tail) and starts its background thread.
    pub fn open(
        config: LogConfig,
        clock: Arc<dyn Clock>,
        hook: Option<CommitHook>,
    ) -> Result<(ShardLog, OpenReport), LogError> {
        Self::open_with_reader(config, clock, hook, None)
    }

    /// [`ShardLog::open`] with a reader of the applied state, for read-modify-writes
    /// ([`ShardLog::submit_rmw`]); without one they read only the batch being gathered.
    pub fn open_with_reader(
        config: LogConfig,
        clock: Arc<dyn Clock>,
        hook: Option<CommitHook>,
        reader: Option<ReadHook>,
    ) -> Result<(ShardLog, OpenReport), LogError> {
        if config.segment_max_bytes < 4096 || config.max_batch_bytes == 0 || config.queue_depth == 0
        {
            return Err(LogError::Config(format!(
                "segment_max_bytes >= 4096, max_batch_bytes and queue_depth > 0 needed: {config:?}"
            )));
        }
        super::fsutil::create_private_dir(&config.dir)?;
        let recovered = recover_shard(&config.dir, config.table_id, config.shard, config.tolerant)?;
        let engine = open_engine(config.io)?;
        let report = OpenReport {
            segments: recovered.segments,
            next_seq: recovered.next_seq,
            last_commit_us: recovered.last_commit_us,
            torn: recovered.torn.clone(),
            io_engine: engine.name(),
        };
        let stats = Arc::new(LogStats::default());
        stats
            .durable_seq
            .store(recovered.next_seq - 1, Ordering::Relaxed);
        stats
            .durable_us
            .store(recovered.last_commit_us, Ordering::Relaxed);
        let name = format!("log-t{}-s{}", config.table_id, config.shard);
        let depth = config.queue_depth;
        let core = WriterCore::new(
            config,
            engine,
            clock,
            (hook, reader),
            recovered,
            stats.clone(),
        )
        .map_err(|e| LogError::io("zstd", e))?;
        let (shared, wake) = Shared::new(core, depth);
        let shared = Arc::new(shared);
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || leader::run_background(&bg, wake))
            .map_err(|e| LogError::io("writer thread", e))?;
        Ok((
            ShardLog {
                shared,
                thread: Mutex::new(Some(thread)),
                stats,
                io_engine: report.io_engine,
            },
            report,
        ))
    }

    /// Queues a message and makes sure someone leads: this thread's flusher at the end of its
    /// tick (a net thread), else the shard's background thread.
    fn enqueue(&self, msg: Msg) {
        match self.shared.push(msg, !super::local::installed()) {
            Ok(true) => {} // the leader will see it
            Ok(false) => {
                if !super::local::defer(&self.shared) {
                    self.shared.wake_background();
                }
            }
            Err(Refused::Closed(m)) => leader::refuse(m, CommitError::Closed),
            Err(Refused::Broken(m, e)) => leader::refuse(m, CommitError::Poisoned(e)),
        }
    }

    /// Queues `batch` (at least one record) as one submission; the receiver resolves once it
    /// is committed. Blocks while the queue is full.
    pub fn submit_batch(&self, batch: RecordBatch) -> oneshot::Receiver<CommitResult> {
        assert!(!batch.is_empty(), "a submission holds at least one record");
        let (ack, rx) = oneshot::channel();
        let raw_len = batch.bytes().len() as u64;
        if raw_len > MAX_BLOCK_PAYLOAD {
            let _ = ack.send(Err(CommitError::TooLarge {
                size: raw_len,
                limit: MAX_BLOCK_PAYLOAD,
            }));
            return rx;
        }
        self.enqueue(Msg::Append(Submission {
            batch,
            ack: Ack::Plain(ack),
        }));
        rx
    }

    /// Queues read-modify-writes of keys of this shard (at least one). Each is resolved by
    /// the leader against every write submitted before it and logged with the next block;
    /// the receiver resolves with what each saw and decided once that is durable. Blocks
    /// while the queue is full.
    pub fn submit_rmw(&self, ops: Vec<RmwOp>) -> oneshot::Receiver<RmwResult> {
        assert!(!ops.is_empty(), "a submission holds at least one operation");
        let (ack, rx) = oneshot::channel();
        self.enqueue(Msg::Rmw(RmwSubmission { ops, ack }));
        rx
    }

    /// [`ShardLog::submit_batch`] for owned records.
    pub fn submit(&self, records: Vec<Record>) -> oneshot::Receiver<CommitResult> {
        self.submit_batch(records.iter().collect())
    }

    /// Submits, commits (leading, on this thread, unless another leader takes it) and waits.
    /// Not for use inside an async runtime.
    pub fn append(&self, records: Vec<Record>) -> CommitResult {
        let batch: RecordBatch = records.iter().collect();
        assert!(!batch.is_empty(), "a submission holds at least one record");
        let (ack, mut rx) = oneshot::channel();
        let raw_len = batch.bytes().len() as u64;
        if raw_len > MAX_BLOCK_PAYLOAD {
            return Err(CommitError::TooLarge {
                size: raw_len,
                limit: MAX_BLOCK_PAYLOAD,
            });
        }
        match self.shared.push(
            Msg::Append(Submission {
                batch,
                ack: Ack::Plain(ack),
            }),
            true,
        ) {
            Ok(_) => {}
            Err(Refused::Closed(_)) => return Err(CommitError::Closed),
            Err(Refused::Broken(_, e)) => return Err(CommitError::Poisoned(e)),
        }
        if let Ok(r) = rx.try_recv() {
            return r;
        }
        self.shared.lead_blocking();
        rx.blocking_recv().unwrap_or(Err(CommitError::Closed))
    }

    /// Syncs everything written so far (useful with a relaxed fsync policy). Blocking.
    pub fn flush(&self) -> Result<(), CommitError> {
        if self.shared.is_closed() {
            return Err(CommitError::Closed);
        }
        self.shared
            .with_core(|c| c.flush())
            .unwrap_or(Err(CommitError::Closed))
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Waits until the segment helper (which prepares, extends and seals segments off the
    /// commit path) has done everything handed to it so far. For tests.
    pub fn wait_segment_helper(&self) {
        self.shared.with_core(|c| c.wait_segment_helper());
    }

    /// The last durable and applied sequence and its commit time (0, 0 for an empty log).
    pub fn durable(&self) -> (u64, u64) {
        (
            self.stats.durable_seq.load(Ordering::Acquire),
            self.stats.durable_us.load(Ordering::Acquire),
        )
    }

    /// `"uring"` or `"std"`: the I/O engine the writer uses.
    pub fn io_engine(&self) -> &'static str {
        self.io_engine
    }

    /// Commits everything submitted so far, syncs and stops the background thread. Later
    /// submissions get [`CommitError::Closed`]. Safe to call more than once.
    pub fn shutdown(&self) {
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = handle {
            self.shared.close();
            if t.join().is_err() {
                tracing::error!("log writer thread panicked");
            }
        }
    }

    /// Same as [`ShardLog::shutdown`], consuming the handle.
    pub fn close(self) {
        self.shutdown();
    }
}

impl Drop for ShardLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}
