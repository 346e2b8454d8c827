//! Fault injection for tests (cargo feature `failpoints`): make the next writes or syncs of
//! the log fail the way a full disk or a dying one does. Process-wide; armed from tests, or
//! at start-up from `REWIND_FAILPOINTS="write_enospc=N,sync_eio=N"` (the server binary).

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

static WRITE_ENOSPC: AtomicU32 = AtomicU32::new(0);
static SYNC_EIO: AtomicU32 = AtomicU32::new(0);

/// The next `n` log writes fail with ENOSPC.
pub fn arm_write_enospc(n: u32) {
    WRITE_ENOSPC.store(n, Ordering::SeqCst);
}

/// The next `n` log syncs fail with EIO.
pub fn arm_sync_eio(n: u32) {
    SYNC_EIO.store(n, Ordering::SeqCst);
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

/// Arms faults from `REWIND_FAILPOINTS` (`write_enospc=N,sync_eio=N`).
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
            other => eprintln!("unknown failpoint {other:?}"),
        }
    }
}
