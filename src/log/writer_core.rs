//! The state of one shard's log writer and what it does with a gathered batch: segment
//! changes, encode, write, sync, apply, answers. Whoever leads the log (`leader.rs`) drives it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::block::{BlockEncoder, MAX_BLOCK_PAYLOAD};
use super::clock::{Clock, CommitClock};
use super::config::{FsyncPolicy, LogConfig};
use super::direct::{DirectMode, DirectTail};
use super::error::{CommitError, LogError};
use super::fsutil::{rename_noreplace, sync_dir};
use super::io::{IoEngine, IoFailure};
use super::recovery::{ActiveSegment, Recovered};
use super::rmw::{Overlay, ReadHook};
use super::segment::{self, hour_of, SegmentHeader, SEGMENT_HEADER_LEN};
use super::segment_prep::{extend, seal, Fill, Prepared, SegmentHelper};
use super::writer::{Ack, CommitHook, CommitInfo, LogStats, RmwSubmission, Submission};

const EVERYSEC: Duration = Duration::from_secs(1);

pub(crate) struct WriterCore {
    pub(super) config: LogConfig,
    pub(super) engine: Box<dyn IoEngine>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) commit_clock: CommitClock,
    hook: Option<CommitHook>,
    /// Reads the applied state for read-modify-writes.
    reader: Option<ReadHook>,
    /// The gathered batch by key, once a read-modify-write needs it.
    overlay: Overlay,
    pub(super) encoder: BlockEncoder,
    pub(super) active: Option<ActiveSegment>,
    pub(super) next_seq: u64,
    /// Set by the first failed sync; from then on every write is refused.
    pub(super) poisoned: Option<Arc<LogError>>,
    /// Bytes written but not yet synced (relaxed fsync policies).
    pub(super) dirty: bool,
    pub(super) last_sync: Instant,
    pub(super) stats: Arc<LogStats>,
    /// The background thread's timer will run the next `everysec` sync.
    timer_armed: bool,
    /// A block's write was given up in flight (a broken ring).
    pub(super) abandoned: bool,
    /// Prepares, extends and seals segments off the commit path.
    pub(super) helper: SegmentHelper,
    /// Why blocks are not written direct though `direct` asks for it (the file system
    /// refused); `None` while it may be tried.
    pub(super) direct_refused: Option<String>,
}

impl WriterCore {
    pub fn new(
        config: LogConfig,
        engine: Box<dyn IoEngine>,
        clock: Arc<dyn Clock>,
        (hook, reader): (Option<CommitHook>, Option<ReadHook>),
        recovered: Recovered,
        stats: Arc<LogStats>,
    ) -> std::io::Result<Self> {
        let encoder = BlockEncoder::new(config.zstd_level, config.min_compress_len)?;
        let helper = SegmentHelper::start(
            &config.dir,
            format!("seg-t{}-s{}", config.table_id, config.shard),
            (
                config.preallocate_bytes,
                Fill::for_log(config.fsync, config.direct),
            ),
            recovered.prepared,
            stats.clone(),
        );
        let mut core = WriterCore {
            engine,
            clock,
            commit_clock: CommitClock::starting_after(recovered.last_commit_us),
            hook,
            reader,
            overlay: Overlay::default(),
            encoder,
            active: recovered.active,
            next_seq: recovered.next_seq,
            poisoned: None,
            dirty: false,
            last_sync: Instant::now(),
            stats,
            timer_armed: false,
            abandoned: false,
            helper,
            direct_refused: None,
            config,
        };
        if let Some(mut seg) = core.active.take() {
            core.arm_direct(&mut seg);
            core.active = Some(seg);
        }
        Ok(core)
    }

    /// Gives the segment a direct handle when its blocks should go out with `O_DIRECT` +
    /// `RWF_DSYNC` (`fsync always`, `direct` not off, segments preallocated, the file system
    /// takes it).
    pub(super) fn arm_direct(&mut self, seg: &mut ActiveSegment) {
        if self.config.direct == DirectMode::Off
            || self.config.fsync != FsyncPolicy::Always
            || self.direct_refused.is_some()
        {
            return;
        }
        // Without preallocation the padding would grow the file: direct writes need it.
        if self.config.preallocate_bytes == 0 {
            return self.give_up_direct("segments are not preallocated".into());
        }
        match DirectTail::open(&seg.path, &seg.file, seg.len) {
            Ok(d) => seg.direct = Some(d),
            Err((why, true)) => self.give_up_direct(why),
            // A passing shortage: this segment goes buffered, the next one tries again.
            Err((why, false)) => tracing::warn!("{why}; this segment is written buffered"),
        }
    }

    /// Direct writes cannot be used here (`why`): the active segment and every later one of
    /// this log are written buffered. One log line says why.
    pub(super) fn give_up_direct(&mut self, why: String) {
        tracing::warn!("the log writes buffered (pwrite + fdatasync): {why}");
        if let Some(seg) = self.active.as_mut() {
            seg.direct = None;
        }
        self.direct_refused = Some(why);
    }

    /// A batch stops taking more submissions once its records reach this many bytes.
    pub fn max_batch_bytes(&self) -> usize {
        self.config.max_batch_bytes
    }

    /// Adds a submission to the batch being gathered (`index` is its place in it), keeping
    /// the read-modify-write overlay up to date once one was built.
    pub fn note_gathered(&mut self, index: usize, s: &Submission) {
        if self.overlay.is_built() {
            self.overlay.add(index, &s.batch);
        }
    }

    /// Ends a gathered batch (committed or not): read-modify-writes read the map again, and
    /// with `everysec` a sync runs once a second has passed since the last.
    /// Returns true when unsynced writes wait for an `everysec` sync that nobody has
    /// scheduled: the caller wakes the background thread, whose timer runs it.
    #[must_use = "wake the background thread when this is true"]
    pub fn end_batch(&mut self) -> bool {
        self.overlay.clear();
        self.sync_if_due();
        self.dirty && self.config.fsync == FsyncPolicy::EverySec && !self.timer_armed
    }

    /// With `everysec`: syncs unsynced writes once a second has passed since the last sync.
    pub fn sync_if_due(&mut self) {
        if self.dirty
            && self.config.fsync == FsyncPolicy::EverySec
            && self.last_sync.elapsed() >= EVERYSEC
        {
            self.background_sync();
        }
    }

    /// How long until an `everysec` sync is due (`None`: none is).
    /// The background thread arms its timer with this.
    pub fn sync_due_in(&mut self) -> Option<Duration> {
        let due = (self.dirty && self.config.fsync == FsyncPolicy::EverySec)
            .then(|| EVERYSEC.saturating_sub(self.last_sync.elapsed()));
        self.timer_armed = due.is_some();
        due
    }

    /// A clean stop: trims the preallocated zeros, so the file ends at its last block, and
    /// syncs.
    pub fn close(&mut self) {
        // After an abandoned write the file's end is not ours to cut: that write may still
        // land after a trim. The log is poisoned; a restart reads back what is there.
        let trim = !self.abandoned;
        // The helper's jobs first: an extension it still has queued must not land after
        // the trim.
        self.helper.finish();
        if let Some(seg) = self
            .active
            .as_mut()
            .filter(|s| trim && *s.room.lock() > s.len)
        {
            let len = seg.len;
            match seg.cut_to(len) {
                Ok(()) => self.dirty = true,
                Err(e) => tracing::warn!("could not trim {}: {e}", seg.path.display()),
            }
        }
        if let Err(e) = self.flush() {
            tracing::error!(
                "final sync of shard log {} failed: {e}",
                self.config.dir.display()
            );
        }
    }

    /// Resolves read-modify-writes against everything submitted before them: the map, with
    /// the gathered batch laid over it. `None` when they were refused (answered already):
    /// what they would write is over half a block.
    pub fn resolve(&mut self, gathered: &[Submission], r: RmwSubmission) -> Option<Submission> {
        if !self.overlay.is_built() {
            self.overlay.build(gathered);
        }
        let (records, outcomes) = self.overlay.resolve(r.ops, gathered, self.reader.as_mut());
        let size = records.bytes().len() as u64;
        if size > MAX_BLOCK_PAYLOAD / 2 {
            let _ = r.ack.send(Err(CommitError::TooLarge {
                size,
                limit: MAX_BLOCK_PAYLOAD / 2,
            }));
            return None;
        }
        Some(Submission {
            batch: records,
            ack: Ack::Rmw(r.ack, outcomes),
        })
    }

    /// Commits a gathered batch as one block, with blocking I/O: stage, write, complete,
    /// settle.
    pub fn commit(&mut self, batch: &mut Vec<Submission>) {
        if self.answer_if_empty(batch) {
            return;
        }
        let result = self.stage(batch).and_then(|mut st| {
            let outcome = self.write_staged(&mut st);
            self.complete(st, outcome)
        });
        self.settle(batch, result);
    }

    /// Read-modify-writes that decided to write nothing: what they read is applied (or in
    /// this batch, which then holds nothing), so they are answered now. True when the batch
    /// was all of that.
    pub fn answer_if_empty(&mut self, batch: &mut Vec<Submission>) -> bool {
        if !batch.iter().all(|s| s.batch.is_empty()) {
            return false;
        }
        let info = CommitInfo {
            first_seq: self.next_seq,
            commit_us: self.stats.durable_us.load(Ordering::Acquire),
        };
        for s in batch.drain(..) {
            s.ack.ok(info);
        }
        true
    }

    /// After the block's I/O: with its commit time, applies everything, publishes it as
    /// durable, and only then answers, so whoever sees an acknowledgement also sees the
    /// write in the map and in `durable()`; with an error, answers every producer with it.
    pub fn settle(&mut self, batch: &mut Vec<Submission>, result: Result<u64, CommitError>) {
        match result {
            Ok(commit_us) => {
                let mut seq = self.next_seq;
                let mut infos = Vec::with_capacity(batch.len());
                for s in batch.iter() {
                    let info = CommitInfo {
                        first_seq: seq,
                        commit_us,
                    };
                    seq += s.batch.len() as u64;
                    if let Some(hook) = self.hook.as_mut().filter(|_| !s.batch.is_empty()) {
                        hook(&info, &s.batch);
                    }
                    infos.push(info);
                }
                self.next_seq = seq;
                self.stats.durable_us.store(commit_us, Ordering::Release);
                self.stats.durable_seq.store(seq - 1, Ordering::Release);
                for (s, info) in batch.drain(..).zip(infos) {
                    s.ack.ok(info);
                }
            }
            Err(e) => {
                for s in batch.drain(..) {
                    s.ack.err(e.clone());
                }
            }
        }
    }

    pub(super) fn poison(&mut self, err: Arc<LogError>) -> CommitError {
        tracing::error!(
            "shard log {} refuses further writes: {err}",
            self.config.dir.display()
        );
        self.poisoned = Some(err.clone());
        CommitError::Poisoned(err)
    }

    /// Syncs unsynced writes. A failure poisons the log.
    pub fn flush(&mut self) -> Result<(), CommitError> {
        if let Some(p) = &self.poisoned {
            return Err(CommitError::Poisoned(p.clone()));
        }
        if !self.dirty {
            return Ok(());
        }
        let Some(seg) = self.active.as_ref() else {
            return Ok(());
        };
        let began = Instant::now();
        match self.engine.sync_data(&seg.file) {
            Ok(()) => {
                self.dirty = false;
                self.timer_armed = false;
                self.last_sync = Instant::now();
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                let us = self.last_sync.saturating_duration_since(began).as_micros();
                self.stats.sync_latency.observe_us(us as u64);
                Ok(())
            }
            Err(e) => {
                let err = Arc::new(LogError::io(&seg.path, e));
                Err(self.poison(err))
            }
        }
    }

    fn background_sync(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!("everysec sync failed: {e}");
        }
    }

    /// Makes sure the active segment may take a block committed at `commit_us`: opens the
    /// first one, or closes the current one when it is full or the hour has changed.
    ///
    /// A roll does no file-system work of its own when the helper keeps up: the finished
    /// segment (its blocks synced already) goes to the helper for sealing, and the next one
    /// is the file the helper prepared, started by writing its header (unsynced) and renaming
    /// it. Otherwise the writer seals and creates inline, as the helper would.
    pub(super) fn ensure_segment(&mut self, commit_us: u64) -> Result<(), CommitError> {
        let roll = match &self.active {
            None => true,
            Some(s) => {
                s.len >= self.config.segment_max_bytes || s.header.hour() != hour_of(commit_us)
            }
        };
        if !roll {
            return Ok(());
        }
        if let Some(old) = self.active.take() {
            if let Err(e) = self.retire(old) {
                return Err(self.poison(Arc::new(e)));
            }
        }
        let (made, inline) = match self.helper.take_prepared() {
            Some(p) => (self.start_prepared(p, commit_us), false),
            None => (self.create_segment(commit_us), true),
        };
        if inline && made.is_ok() {
            // Counted when it worked, as `segments_created` is: prepared + inline == created.
            self.stats
                .segment_rolls_inline
                .fetch_add(1, Ordering::Relaxed);
        }
        // The prepared file has its segment name now (or is gone): the next can be made.
        self.helper
            .ask_prepare(false, self.direct_refused.is_none());
        let mut seg = match made {
            Ok(seg) => seg,
            // The I/O engine itself failed: nothing more can be trusted to it.
            Err((e, true)) => return Err(self.poison(Arc::new(e))),
            Err((e, false)) => {
                tracing::error!("cannot start a new segment: {e}");
                return Err(CommitError::WriteFailed(Arc::new(e)));
            }
        };
        self.arm_direct(&mut seg);
        self.active = Some(seg);
        self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Retires a finished segment. Its unsynced blocks (relaxed fsync policies) are synced
    /// first, here, so that only the newest segment can ever have a torn tail; the rest of
    /// sealing goes to the helper. A segment that never got a block (created just before a
    /// crash) is removed instead: the next one takes its name.
    fn retire(&mut self, seg: ActiveSegment) -> Result<(), LogError> {
        if seg.len <= SEGMENT_HEADER_LEN as u64 {
            drop(seg.file);
            std::fs::remove_file(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
            return sync_dir(&self.config.dir);
        }
        if self.dirty {
            self.engine
                .sync_data(&seg.file)
                .map_err(|e| LogError::io(&seg.path, e))?;
            self.dirty = false;
        }
        #[cfg(feature = "failpoints")]
        super::failpoint::roll_crash(1);
        match self.helper.seal(Box::new(seg)) {
            Ok(()) => Ok(()),
            Err(seg) => {
                seal(&seg)?;
                self.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Starts the next segment in the helper's prepared file: writes its header (the first
    /// block's sync carries it) and gives it the segment's name (recovery adopts a prepared
    /// file with a valid header, so the rename needs no directory sync before that block is
    /// acknowledged).
    fn start_prepared(
        &mut self,
        p: Prepared,
        commit_us: u64,
    ) -> Result<ActiveSegment, (LogError, bool)> {
        let header = self.next_header(commit_us);
        let path = self.config.dir.join(segment::file_name(self.next_seq));
        let started = p
            .file
            .write_all_at(&header.encode(), 0)
            .map_err(|e| LogError::io(&p.path, e))
            .and_then(|_| {
                #[cfg(feature = "failpoints")]
                super::failpoint::roll_crash(2);
                rename_noreplace(&p.path, &path)
            });
        if let Err(e) = started {
            // The file holds nothing but the header just written: zero it and drop the file,
            // or recovery would take it for the newest segment (the writer creates that one
            // inline next).
            let _ = p.file.write_all_at(&[0u8; SEGMENT_HEADER_LEN], 0);
            if let Err(e2) = std::fs::remove_file(&p.path) {
                tracing::warn!("could not remove {}: {e2}", p.path.display());
            }
            return Err((e, false));
        }
        #[cfg(feature = "failpoints")]
        super::failpoint::roll_crash(3);
        self.stats.segments_prepared.fetch_add(1, Ordering::Relaxed);
        let mut seg =
            ActiveSegment::new(path, p.file, header, SEGMENT_HEADER_LEN as u64, p.alloc_end);
        seg.helper_file = p.helper_file;
        Ok(seg)
    }

    fn next_header(&self, commit_us: u64) -> SegmentHeader {
        SegmentHeader {
            table_id: self.config.table_id,
            shard: self.config.shard,
            first_seq: self.next_seq,
            created_us: commit_us,
        }
    }

    /// A new segment, made and synced here; on failure, the error and whether the I/O engine
    /// broke.
    fn create_segment(&mut self, commit_us: u64) -> Result<ActiveSegment, (LogError, bool)> {
        let header = self.next_header(commit_us);
        let path = self.config.dir.join(segment::file_name(self.next_seq));
        let file = create_file(&path).map_err(|e| (e, false))?;
        let init = self
            .engine
            .append(&file, &header.encode(), 0, true)
            .map_err(|f| match f {
                IoFailure::Write(e) | IoFailure::Sync(e) => (LogError::io(&path, e), false),
                IoFailure::Broken(e) => (LogError::io(&path, e), true),
            })
            .and_then(|_| sync_dir(&self.config.dir).map_err(|e| (e, false)));
        if let Err(e) = init {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let len = SEGMENT_HEADER_LEN as u64;
        Ok(ActiveSegment::new(path, file, header, len, len).open_helper_file())
    }

    /// Waits until the segment helper has done everything handed to it (tests).
    pub fn wait_segment_helper(&self) {
        self.helper.wait_idle();
    }
}

fn create_file(path: &std::path::Path) -> Result<File, LogError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LogError::io(path, e))
}

/// Makes sure the open segment has zeros for the block about to be written, then asks the
/// helper to extend them a chunk ahead once less than half a chunk is left, so a block's
/// sync rarely also carries a new file size (measured here: 97-108 µs per write+fdatasync
/// into zeroed space against 141-158 µs when each write grows the file). When the helper has
/// not kept up, the writer writes the zeros itself; they are then synced with the block.
/// `fill` says whether the space is zeros written or blocks reserved ([`Fill`]).
pub(super) fn preallocate(
    seg: &mut ActiveSegment,
    block_len: u64,
    (chunk, fill): (u64, Fill),
    helper: &SegmentHelper,
    stats: &LogStats,
    segment_max: u64,
) -> Result<(), LogError> {
    let need = seg.len + block_len;
    if chunk == 0 {
        return Ok(());
    }
    if need > seg.alloc_end {
        let mut end = seg.room.lock();
        if need > *end {
            // Past the size limit this segment takes no more blocks: no chunk beyond this one.
            let step = if need >= segment_max { 4096 } else { chunk };
            let new_end = need.div_ceil(step) * step;
            drop(end);
            if let Some(g) = extend(&seg.file, &seg.room, new_end, fill)
                .map_err(|e| LogError::io(&seg.path, e))?
            {
                g.count(stats);
            }
            end = seg.room.lock();
        }
        seg.alloc_end = *end;
    }
    let ahead = seg.alloc_end + chunk;
    if seg.alloc_end - need < chunk / 2 && seg.ahead_asked < ahead && seg.alloc_end < segment_max {
        seg.ahead_asked = ahead;
        helper.extend(seg, ahead);
    }
    Ok(())
}
