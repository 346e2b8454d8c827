//! Segment work kept off the commit path, on one helper thread per shard log.
//!
//! - **Prepare**: the next segment file is made ahead of need, as `next.seg-prepared`:
//!   created, given one preallocation chunk of zeros (written or reserved, [`Fill`]), synced,
//!   its directory synced. At a roll the writer writes the segment header into it (unsynced:
//!   the first block's sync carries it) and renames it to the segment's name; neither the
//!   header nor the rename waits for a sync of its own, because recovery adopts a prepared
//!   file whose header is valid (`recovery.rs`, "prepared segments").
//! - **Extend**: the open segment's zeros are extended a chunk ahead of the writer and synced,
//!   so a block's sync rarely carries a new file size. Under `everysec` and `never` the
//!   space is reserved with `fallocate` instead of written ([`Fill`]); it is synced all the
//!   same, which writes the log's dirty pages out a chunk at a time.
//! - **Seal**: a finished segment (its blocks already synced) is trimmed to its last block,
//!   synced and given its index once the writer has moved on.
//!
//! Zeros past the log are written only under the segment's [`Room`] lock, at or past the
//! length it records, and blocks only below it: the helper's zeros never land on a block.
//! When the helper falls behind, the writer creates the next segment, or extends the open
//! one, itself, as before; sealing always waits for the helper (it is off every reader's and
//! writer's path), unless the helper thread is gone.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use super::config::FsyncPolicy;
use super::direct::{pwrite_direct, reopen_direct, AlignedBuf, DirectMode, DIRECT_ALIGN};
use super::error::LogError;
use super::fsutil::{sync_dir, write_atomic};
use super::index::INDEX_EXT;
use super::io::refuses_direct;
use super::recovery::ActiveSegment;
use super::segment::SEGMENT_HEADER_LEN;
use super::writer::LogStats;

/// How the space ahead of the writer is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Zeros written and synced (`fsync always` with buffered blocks): a buffered block's
    /// `fdatasync` then carries no new size or extent.
    Zeros,
    /// Zeros for a log whose blocks go out directly (`fsync always`, `--log-direct auto`):
    /// reserved with `fallocate`, then overwritten with zeros through an `O_DIRECT` handle,
    /// page-cache free, so the log's direct writes overwrite written blocks in place. As
    /// [`Fill::Zeros`] where the file system refuses either step.
    DirectZeros,
    /// Blocks reserved with `fallocate`, nothing written (they read back as zeros): for
    /// `everysec` and `never`, where writing zeros would put every byte through the page cache
    /// twice and hold the file's lock (which the writer's appends take too) for as long as
    /// copying them takes. Zeros where the file system refuses.
    Reserve,
}

impl Fill {
    /// The fill for a log under `fsync` whose blocks go out as `direct` says.
    pub fn for_log(fsync: FsyncPolicy, direct: DirectMode) -> Fill {
        match (fsync, direct) {
            (FsyncPolicy::Always, DirectMode::Auto) => Fill::DirectZeros,
            (FsyncPolicy::Always, DirectMode::Off) => Fill::Zeros,
            (FsyncPolicy::EverySec | FsyncPolicy::Never, _) => Fill::Reserve,
        }
    }

    /// This log's fill for a segment whose blocks go out directly or not (`direct`): zeros a
    /// buffered segment is appended to stay in the page cache.
    pub fn for_segment(self, direct: bool) -> Fill {
        match self {
            Fill::DirectZeros if !direct => Fill::Zeros,
            other => other,
        }
    }
}

/// The name of a shard's prepared (not yet used) segment file.
pub const PREPARED_NAME: &str = "next.seg-prepared";

/// The end of a segment's zeros (written or reserved): the file's length as its writers know
/// it.
#[derive(Debug)]
pub struct Room {
    end: Mutex<u64>,
}

impl Room {
    pub fn new(end: u64) -> Arc<Room> {
        Arc::new(Room {
            end: Mutex::new(end),
        })
    }

    /// Held while zeros are written past the end, or the file is cut.
    pub fn lock(&self) -> MutexGuard<'_, u64> {
        self.end.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A prepared segment file, zeros (written or reserved) to `alloc_end` bytes.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    pub file: File,
    pub alloc_end: u64,
    /// The helper's own handle on the same file, for extending it once it is a segment.
    pub helper_file: Option<Arc<File>>,
}

enum Job {
    /// Make the next prepared file; `adopt`: reuse the all-zeros one recovery found.
    Prepare {
        adopt: bool,
        /// The segment it becomes will be written directly.
        direct: bool,
    },
    /// Extend the open segment through the helper's own handle on it
    /// ([`ActiveSegment::helper_file`]).
    Extend {
        file: Arc<File>,
        path: PathBuf,
        room: Arc<Room>,
        to: u64,
        /// The segment's blocks go out directly.
        direct: bool,
    },
    Seal(Box<ActiveSegment>),
    /// Answered once every job sent before it is done.
    Barrier(Sender<()>),
}

#[derive(Default)]
struct Slot {
    ready: Option<Prepared>,
    /// A prepare job is queued or running.
    pending: bool,
}

/// The handle the writer keeps on its helper thread.
pub(super) struct SegmentHelper {
    tx: Option<Sender<Job>>,
    slot: Arc<Mutex<Slot>>,
    thread: Option<JoinHandle<()>>,
}

impl SegmentHelper {
    /// Starts the helper for the shard directory `dir`; it prepares the first spare file at
    /// once (reusing the all-zeros one recovery found when `adopt`). Without a thread (it
    /// could not be spawned) every job falls back to the writer.
    pub fn start(
        dir: &Path,
        name: String,
        (chunk, fill): (u64, Fill),
        adopt: bool,
        stats: Arc<LogStats>,
    ) -> SegmentHelper {
        let (tx, rx) = channel::<Job>();
        let slot = Arc::new(Mutex::new(Slot::default()));
        let work = Worker {
            dir: dir.to_path_buf(),
            chunk,
            fill,
            slot: slot.clone(),
            stats,
        };
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            for job in rx {
                work.run(job);
            }
        });
        let mut helper = SegmentHelper {
            tx: None,
            slot,
            thread: None,
        };
        match thread {
            Ok(t) => {
                helper.tx = Some(tx);
                helper.thread = Some(t);
                helper.ask_prepare(adopt, true);
            }
            Err(e) => tracing::warn!("segment helper thread not started ({e}): rolls run inline"),
        }
        helper
    }

    fn send(&self, job: Job) -> Result<(), Box<Job>> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|e| Box::new(e.0)),
            None => Err(Box::new(job)),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for the next prepared file, unless one is ready or on its way. The writer asks
    /// once the previous one has its segment name (the helper creates the next under the
    /// same prepared name). `direct`: the log still writes directly (its zeros then skip the
    /// page cache, where a buffered log's partial-page appends would have to read them back).
    pub fn ask_prepare(&self, adopt: bool, direct: bool) {
        let mut slot = self.slot();
        if slot.ready.is_some() || slot.pending {
            return;
        }
        slot.pending = self.send(Job::Prepare { adopt, direct }).is_ok();
    }

    /// The prepared file, if one is ready.
    pub fn take_prepared(&self) -> Option<Prepared> {
        self.slot().ready.take()
    }

    /// Asks for the open segment's zeros to reach `to` bytes.
    pub fn extend(&self, seg: &ActiveSegment, to: u64) {
        let Some(file) = seg.helper_file.clone() else {
            return;
        };
        let _ = self.send(Job::Extend {
            file,
            path: seg.path.clone(),
            room: seg.room.clone(),
            to,
            direct: seg.direct.is_some(),
        });
    }

    /// Hands a finished segment over for sealing; gives it back when nobody can take it.
    pub fn seal(&self, seg: Box<ActiveSegment>) -> Result<(), Box<ActiveSegment>> {
        self.send(Job::Seal(seg)).map_err(|j| match *j {
            Job::Seal(s) => s,
            _ => unreachable!("the job sent was a seal"),
        })
    }

    /// Waits until every job handed over so far is done.
    pub fn wait_idle(&self) {
        let (tx, rx) = channel();
        if self.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Finishes every job and stops the thread. An unused prepared file stays: it is all
    /// zeros, and the next start reuses it.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("segment helper thread panicked");
            }
        }
    }
}

impl Drop for SegmentHelper {
    fn drop(&mut self) {
        self.finish();
    }
}

struct Worker {
    dir: PathBuf,
    chunk: u64,
    fill: Fill,
    slot: Arc<Mutex<Slot>>,
    stats: Arc<LogStats>,
}

impl Worker {
    fn run(&self, job: Job) {
        match job {
            Job::Prepare { adopt, direct } => {
                let fill = self.fill.for_segment(direct);
                let made = prepare(&self.dir, (self.chunk, fill), adopt, &self.stats);
                let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
                slot.pending = false;
                match made {
                    Ok(p) => slot.ready = Some(p),
                    Err(e) => tracing::warn!("could not prepare the next segment: {e}"),
                }
            }
            Job::Extend {
                file,
                path,
                room,
                to,
                direct,
            } => {
                let done =
                    extend(&file, &room, to, self.fill.for_segment(direct)).and_then(|grown| {
                        // With `fsync always` a block's own sync then carries no new size. Under
                        // the other policies it paces writeback: the log's dirty pages go out a
                        // chunk at a time, off the commit path (without it, SET 4 KiB `never`
                        // -P 16 had a p99 of 120-165 ms against 23-40 ms with it: the writer ran
                        // into the flusher's bursts).
                        if let Some(g) = grown {
                            g.count(&self.stats);
                            file.sync_data()?;
                        }
                        Ok(())
                    });
                if let Err(e) = done {
                    // The writer extends inline when it gets there.
                    tracing::warn!("could not extend {} ahead: {e}", path.display());
                }
            }
            Job::Seal(seg) => {
                #[cfg(feature = "failpoints")]
                super::failpoint::roll_crash(4);
                if let Err(e) = seal(&seg) {
                    tracing::warn!("sealing {} failed: {e}", seg.path.display());
                } else {
                    self.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Job::Barrier(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

/// Creates (or, with `adopt`, reopens) the prepared file and gives it `chunk` bytes of zeros
/// (written or reserved, as `fill` says), durably: the file, its size and its name.
fn prepare(
    dir: &Path,
    (chunk, fill): (u64, Fill),
    adopt: bool,
    stats: &LogStats,
) -> Result<Prepared, LogError> {
    let path = dir.join(PREPARED_NAME);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(!adopt)
        .mode(0o600)
        .open(&path)
        .map_err(|e| LogError::io(&path, e))?;
    let made = file
        .metadata()
        .map(|m| Room::new(m.len()))
        .and_then(|room| {
            if let Some(g) = extend(&file, &room, chunk.max(SEGMENT_HEADER_LEN as u64), fill)? {
                g.count(stats);
            }
            file.sync_data()?;
            Ok(room)
        })
        .map_err(|e| LogError::io(&path, e))
        .and_then(|room| sync_dir(dir).map(|_| room));
    let room = match made {
        Ok(room) => room,
        Err(e) => {
            // Nothing but zeros of ours: drop it, so the next try can create it again.
            drop(file);
            if let Err(e2) = std::fs::remove_file(&path) {
                tracing::warn!("could not remove {}: {e2}", path.display());
            }
            return Err(e);
        }
    };
    let alloc_end = *room.lock();
    let helper_file = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            tracing::warn!("no helper handle on {} ({e})", path.display());
            None
        }
    };
    Ok(Prepared {
        path,
        file,
        alloc_end,
        helper_file,
    })
}

/// How [`extend`] grew a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grown {
    /// How the new space was made (zeros where a reservation was refused).
    pub fill: Fill,
    pub bytes: u64,
    /// Of the zeros written, the bytes written with `O_DIRECT`.
    pub direct: u64,
}

impl Grown {
    /// Counts the new space in the log's stats.
    pub fn count(self, stats: &LogStats) {
        let counter = match self.fill {
            Fill::Zeros | Fill::DirectZeros => &stats.zeroed_bytes,
            Fill::Reserve => &stats.reserved_bytes,
        };
        counter.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

/// Makes the space from the room's end up to `to` as `fill` says; `None` when it is there
/// already.
pub(super) fn extend(
    file: &File,
    room: &Room,
    to: u64,
    fill: Fill,
) -> std::io::Result<Option<Grown>> {
    let mut end = room.lock();
    if *end >= to {
        return Ok(None);
    }
    let made = make_room(file, &mut end, to, fill);
    if made.is_err() {
        // A reservation or a write of zeros that failed part way (a full disk) may have grown
        // the file: what it added reads as zeros, and a trim must know to cut it.
        if let Ok(m) = file.metadata() {
            *end = (*end).max(m.len());
        }
    }
    made.map(Some)
}

fn make_room(file: &File, end: &mut u64, to: u64, fill: Fill) -> std::io::Result<Grown> {
    let bytes = to - *end;
    let mut direct = None;
    match fill {
        Fill::Reserve if reserve(file, *end, bytes)? => {
            *end = to;
            return Ok(Grown {
                fill,
                bytes,
                direct: 0,
            });
        }
        // Reserved first, so that every direct write lands inside the file's size: an
        // extending direct write holds the inode's lock (which the log's writes need too)
        // until the device has finished it; one inside the size shares it.
        Fill::DirectZeros if bytes > DIRECT_ALIGN as u64 => {
            direct = reopen_direct(file);
            if direct.is_some() && !reserve(file, *end, bytes)? {
                direct = None;
            }
        }
        _ => {}
    }
    let direct = write_zeros(file, end, to, direct)?;
    Ok(Grown {
        fill: if fill == Fill::Reserve {
            Fill::Zeros
        } else {
            fill
        },
        bytes,
        direct,
    })
}

/// Bytes of zeros a direct write carries at most: a small share of the device's queue beside
/// the log's own writes.
const DIRECT_ZEROS_BYTES: u64 = 256 << 10;

/// Writes zeros from `*end` to `to`, moving `*end` along; returns how many went out through
/// `direct`.
///
/// With a direct handle, whole pages go through it: the zeros are there to be overwritten by
/// the log's direct writes, so putting them through the page cache only cost a copy into new
/// pages, their writeback, and their invalidation by the first direct write over them (13.8%
/// of the server's samples under SET 4 KiB `always`, in the helpers; docs/BENCHMARKS.md,
/// "Zeros written directly"). The unaligned edges go buffered, and so does the file's first
/// page, where a roll writes the segment's header through the page cache (uncached, that
/// write would first read the page back from the disk). The file's bytes are the same either
/// way.
fn write_zeros(
    file: &File,
    end: &mut u64,
    to: u64,
    mut direct: Option<File>,
) -> std::io::Result<u64> {
    const PAGE: u64 = DIRECT_ALIGN as u64;
    let zeros = zero_pages();
    let mut sent = 0u64;
    while *end < to {
        if let Some(d) = &direct {
            let whole = (to - *end) / PAGE * PAGE;
            if *end >= PAGE && (*end).is_multiple_of(PAGE) && whole > 0 {
                let n = whole.min(DIRECT_ZEROS_BYTES);
                match pwrite_direct(d, &zeros[..n as usize], *end, false) {
                    Ok(()) => {
                        *end += n;
                        sent += n;
                        continue;
                    }
                    // Opened but refused: buffered from here (a direct write that failed
                    // left the range for the buffered one to cover).
                    Err(e) if refuses_direct(&e) => direct = None,
                    Err(e) => return Err(e),
                }
            }
        }
        // Buffered: up to the next page boundary while a direct handle waits, else a piece.
        let limit = match direct {
            Some(_) => (*end / PAGE + 1) * PAGE,
            None => *end + zeros.len() as u64,
        };
        let n = (to.min(limit) - *end) as usize;
        file.write_all_at(&zeros[..n], *end)?;
        *end += n as u64;
    }
    Ok(sent)
}

/// 1 MiB of page-aligned zeros, shared by every helper (only ever read).
fn zero_pages() -> &'static [u8] {
    static ZEROS: OnceLock<AlignedBuf> = OnceLock::new();
    ZEROS
        .get_or_init(|| {
            let mut b = AlignedBuf::new();
            b.set_len(1 << 20);
            b
        })
        .as_slice()
}

/// `fallocate` (mode 0: the size grows, the new range reads as zeros), retried when a signal
/// interrupts it (tmpfs's can). False where the file system does not support it; other
/// errors (a full disk) are errors.
fn reserve(file: &File, at: u64, len: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let (Ok(at), Ok(len)) = (libc::off_t::try_from(at), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::other("reservation past off_t"));
    };
    loop {
        #[cfg(feature = "failpoints")]
        let injected = super::failpoint::reserve_fault().map(|(e, partial)| {
            if partial {
                // A full disk can stop a reservation part way: ext4 keeps the blocks it got,
                // and the file's size with them.
                // SAFETY: as below.
                unsafe { libc::fallocate(file.as_raw_fd(), 0, at, len / 2) };
            }
            e
        });
        #[cfg(not(feature = "failpoints"))]
        let injected: Option<std::io::Error> = None;
        let e = match injected {
            Some(e) => e,
            None => {
                // SAFETY: plain syscall on a file descriptor this `File` owns for the call's
                // duration.
                let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, at, len) };
                if r == 0 {
                    return Ok(true);
                }
                std::io::Error::last_os_error()
            }
        };
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Trims a finished segment to its last block, syncs it and writes its index beside it.
pub(super) fn seal(seg: &ActiveSegment) -> Result<(), LogError> {
    {
        let mut end = seg.room.lock();
        if *end > seg.len {
            // A closed segment ends at its last block: only the open one carries zeros.
            seg.file
                .set_len(seg.len)
                .map_err(|e| LogError::io(&seg.path, e))?;
            *end = seg.len;
        }
    }
    seg.file
        .sync_data()
        .map_err(|e| LogError::io(&seg.path, e))?;
    write_index(seg);
    Ok(())
}

/// The index is rebuilt from its segment when missing, so a failure here is only logged.
fn write_index(seg: &ActiveSegment) {
    if !seg.path.exists() {
        return; // deleted by retention meanwhile
    }
    let path = seg.path.with_extension(INDEX_EXT);
    if let Err(e) = write_atomic(&path, &seg.index.encode(seg.header.salt())) {
        tracing::warn!("could not write index {}: {e}", path.display());
    }
}
