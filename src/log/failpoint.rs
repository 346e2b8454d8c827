//! Fault injection for tests (cargo feature `failpoints`): make the next writes or syncs of
//! the log, a checkpoint or the catalog fail the way a full disk or a dying one does.
//! Process-wide; armed from tests, or at start-up from `REWIND_FAILPOINTS` (the server binary),
//! e.g. `write_enospc=1,short_write=1,sync_eio=1,checkpoint_eio=1,catalog_eio=1,restore_delay_us=500`
//! (`reserve_eintr`, `reserve_eopnotsupp` and `reserve_enospc` answer the log's `fallocate`).

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

static WRITE_ENOSPC: AtomicU32 = AtomicU32::new(0);
static SYNC_EIO: AtomicU32 = AtomicU32::new(0);
static SHORT_WRITE: AtomicU32 = AtomicU32::new(0);
static CHECKPOINT_EIO: AtomicU32 = AtomicU32::new(0);
static CATALOG_EIO: AtomicU32 = AtomicU32::new(0);
static RESTORE_DELAY_US: AtomicU32 = AtomicU32::new(0);
static RESTORE_PANIC: AtomicU32 = AtomicU32::new(0);
static CATALOG_DELAY_MS: AtomicU32 = AtomicU32::new(0);
static URING_SUBMIT_EIO: AtomicU32 = AtomicU32::new(0);
static ROLL_CRASH: AtomicU32 = AtomicU32::new(0);
static ROLL_CRASH_SKIP: AtomicU32 = AtomicU32::new(0);
static RESERVE_EINTR: AtomicU32 = AtomicU32::new(0);
static RESERVE_EOPNOTSUPP: AtomicU32 = AtomicU32::new(0);
static RESERVE_ENOSPC: AtomicU32 = AtomicU32::new(0);
static RESERVE_PARTIAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The next `n` log writes fail with ENOSPC.
pub fn arm_write_enospc(n: u32) {
    WRITE_ENOSPC.store(n, Ordering::SeqCst);
}

/// The next `n` log syncs fail with EIO.
pub fn arm_sync_eio(n: u32) {
    SYNC_EIO.store(n, Ordering::SeqCst);
}

/// The next `n` log writes put only the first half of their block on disk, then fail with
/// ENOSPC: a short write followed by an error.
pub fn arm_short_write(n: u32) {
    SHORT_WRITE.store(n, Ordering::SeqCst);
}

/// The next `n` checkpoints fail with EIO before they are renamed into place.
pub fn arm_checkpoint_eio(n: u32) {
    CHECKPOINT_EIO.store(n, Ordering::SeqCst);
}

/// The next `n` catalog saves fail with EIO before the new catalog replaces the old one.
pub fn arm_catalog_eio(n: u32) {
    CATALOG_EIO.store(n, Ordering::SeqCst);
}

/// Every record a restore replays first waits `us` microseconds (0: off), so a test can watch
/// a restore in progress on any machine.
pub fn arm_restore_delay_us(us: u32) {
    RESTORE_DELAY_US.store(us, Ordering::SeqCst);
}

/// The next `n` records a restore replays make its worker panic.
pub fn arm_restore_panic(n: u32) {
    RESTORE_PANIC.store(n, Ordering::SeqCst);
}

pub fn restore_panic() -> bool {
    take(&RESTORE_PANIC)
}

/// Sleeps as [`arm_restore_delay_us`] says.
pub fn restore_delay() {
    let us = RESTORE_DELAY_US.load(Ordering::Relaxed);
    if us > 0 {
        std::thread::sleep(std::time::Duration::from_micros(u64::from(us)));
    }
}

static DIR_SYNCS: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Records a directory fsync, for tests that check what a power cut could lose.
pub fn note_dir_sync(dir: &std::path::Path) {
    let mut v = DIR_SYNCS.lock().unwrap_or_else(|e| e.into_inner());
    if v.len() < 100_000 {
        v.push(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()));
    }
}

/// The directories fsynced since the last call, in order; clears the record.
pub fn take_dir_syncs() -> Vec<std::path::PathBuf> {
    std::mem::take(&mut *DIR_SYNCS.lock().unwrap_or_else(|e| e.into_inner()))
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

pub fn write_fault() -> Option<io::Error> {
    take(&WRITE_ENOSPC).then(|| io::Error::from_raw_os_error(libc::ENOSPC))
}

pub fn sync_fault() -> Option<io::Error> {
    take(&SYNC_EIO).then(|| io::Error::from_raw_os_error(libc::EIO))
}

pub fn short_write_fault() -> Option<io::Error> {
    take(&SHORT_WRITE).then(|| io::Error::from_raw_os_error(libc::ENOSPC))
}

pub fn checkpoint_fault() -> Option<io::Error> {
    take(&CHECKPOINT_EIO).then(|| io::Error::from_raw_os_error(libc::EIO))
}

/// Every catalog save first waits `ms` milliseconds (0: off): a slow disk, to show that the
/// net threads do not wait for it.
pub fn arm_catalog_delay_ms(ms: u32) {
    CATALOG_DELAY_MS.store(ms, Ordering::SeqCst);
}

pub fn catalog_delay() {
    let ms = CATALOG_DELAY_MS.load(Ordering::Relaxed);
    if ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
    }
}

/// The next `n` io_uring submits fail with EIO, with their entries left in the ring.
pub fn arm_uring_submit_eio(n: u32) {
    URING_SUBMIT_EIO.store(n, Ordering::SeqCst);
}

pub fn uring_submit_fault() -> Option<io::Error> {
    take(&URING_SUBMIT_EIO).then(|| io::Error::from_raw_os_error(libc::EIO))
}

/// The process aborts (as with SIGKILL: no destructor runs) when a segment roll reaches
/// `step`: 1 the finished segment retired (synced if it had to be), 2 the prepared file's
/// header written, not renamed, 3 renamed, its first block not yet written, 4 the helper
/// about to seal the finished segment. 0: off. `roll_crash_skip=K` lets K such points pass
/// first.
pub fn arm_roll_crash(step: u32) {
    ROLL_CRASH.store(step, Ordering::SeqCst);
}

pub fn roll_crash(step: u32) {
    if ROLL_CRASH.load(Ordering::Relaxed) != step || take(&ROLL_CRASH_SKIP) {
        return;
    }
    eprintln!("failpoint roll_crash={step}: aborting");
    std::process::abort();
}

/// The next `n` reservations of log space ahead (`fallocate`, `segment_prep.rs`) are
/// interrupted by a signal (EINTR): each is retried.
pub fn arm_reserve_eintr(n: u32) {
    RESERVE_EINTR.store(n, Ordering::SeqCst);
}

/// How many of the interruptions armed with [`arm_reserve_eintr`] have not been taken yet.
pub fn reserve_eintr_left() -> u32 {
    RESERVE_EINTR.load(Ordering::SeqCst)
}

/// The next `n` reservations answer EOPNOTSUPP, as on a file system without `fallocate`:
/// zeros are written instead. Each call takes one; `u32::MAX` lasts until disarmed with 0.
pub fn arm_reserve_eopnotsupp(n: u32) {
    RESERVE_EOPNOTSUPP.store(n, Ordering::SeqCst);
}

/// The next `n` reservations fail with ENOSPC, as on a disk filling up: the first of them
/// after getting half its space (ext4 keeps what it allocated, and the file's size with it),
/// the rest with nothing.
pub fn arm_reserve_enospc(n: u32) {
    RESERVE_PARTIAL.store(n > 0, Ordering::SeqCst);
    RESERVE_ENOSPC.store(n, Ordering::SeqCst);
}

/// What the next reservation answers instead of calling `fallocate`, if armed; with `true`,
/// it is to take half its range first.
pub fn reserve_fault() -> Option<(io::Error, bool)> {
    let (errno, partial) = if take(&RESERVE_EINTR) {
        (libc::EINTR, false)
    } else if take(&RESERVE_EOPNOTSUPP) {
        (libc::EOPNOTSUPP, false)
    } else if take(&RESERVE_ENOSPC) {
        (libc::ENOSPC, RESERVE_PARTIAL.swap(false, Ordering::SeqCst))
    } else {
        return None;
    };
    Some((io::Error::from_raw_os_error(errno), partial))
}

pub fn catalog_fault() -> Option<io::Error> {
    take(&CATALOG_EIO).then(|| io::Error::from_raw_os_error(libc::EIO))
}

/// Arms faults from `REWIND_FAILPOINTS` (`name=N,...`, names as the `arm_*` functions).
pub fn arm_from_env() {
    let Ok(spec) = std::env::var("REWIND_FAILPOINTS") else {
        return;
    };
    for part in spec.split(',') {
        let Some((name, n)) = part.split_once('=') else {
            continue;
        };
        let n: u32 = n.trim().parse().unwrap_or(0);
        match name.trim() {
            "write_enospc" => arm_write_enospc(n),
            "sync_eio" => arm_sync_eio(n),
            "short_write" => arm_short_write(n),
            "checkpoint_eio" => arm_checkpoint_eio(n),
            "catalog_eio" => arm_catalog_eio(n),
            "restore_delay_us" => arm_restore_delay_us(n),
            "restore_panic" => arm_restore_panic(n),
            "catalog_delay_ms" => arm_catalog_delay_ms(n),
            "uring_submit_eio" => arm_uring_submit_eio(n),
            "roll_crash" => arm_roll_crash(n),
            "reserve_eintr" => arm_reserve_eintr(n),
            "reserve_eopnotsupp" => arm_reserve_eopnotsupp(n),
            "reserve_enospc" => arm_reserve_enospc(n),
            "roll_crash_skip" => ROLL_CRASH_SKIP.store(n, Ordering::SeqCst),
            other => eprintln!("unknown failpoint {other:?}"),
        }
    }
}
