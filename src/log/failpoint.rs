//! Fault injection for tests (cargo feature `failpoints`): make the next writes or syncs of
//! the log, a checkpoint or the catalog fail the way a full disk or a dying one does.
//! Process-wide; armed from tests, or at start-up from `REWIND_FAILPOINTS` (the server binary),
//! e.g. `write_enospc=1,short_write=1,sync_eio=1,checkpoint_eio=1,catalog_eio=1`.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

static WRITE_ENOSPC: AtomicU32 = AtomicU32::new(0);
static SYNC_EIO: AtomicU32 = AtomicU32::new(0);
static SHORT_WRITE: AtomicU32 = AtomicU32::new(0);
static CHECKPOINT_EIO: AtomicU32 = AtomicU32::new(0);
static CATALOG_EIO: AtomicU32 = AtomicU32::new(0);

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
            other => eprintln!("unknown failpoint {other:?}"),
        }
    }
}
