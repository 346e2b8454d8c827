//! The I/O seam of the log writer: append a block at an offset (optionally followed by
//! `fdatasync`) and sync. Two engines sit behind it: io_uring and plain `pwrite`.
//!
//! The io_uring engine uses the `io-uring` crate directly rather than `tokio-uring`: the log
//! writer is a dedicated thread that needs no async runtime, and the raw ring lets it link the
//! write and the `fdatasync` into one submission (one `io_uring_enter` per batch instead of two
//! syscalls). `tokio-uring` has had no release since 2024 and offers no linked operations.

pub mod async_ring;
mod std_io;
mod uring;

use std::fs::File;
use std::io;

pub use std_io::StdEngine;
pub use uring::UringEngine;

use super::error::LogError;

/// Which I/O path the log writer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring where it can be set up, else `pwrite` with one log line saying why.
    #[default]
    Auto,
    /// io_uring or an error.
    Uring,
    /// `pwrite` + `fdatasync` (named `epoll` on the server's command line).
    Std,
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "uring" => Ok(IoMode::Uring),
            "std" | "epoll" => Ok(IoMode::Std),
            other => Err(format!(
                "unknown I/O mode {other:?}: expected auto, uring or epoll"
            )),
        }
    }
}

/// Which half of an append failed: the writer undoes a failed write, but after a failed sync
/// it can no longer trust anything unsynced in the file.
#[derive(Debug)]
pub enum IoFailure {
    Write(io::Error),
    Sync(io::Error),
    /// The engine itself can no longer be trusted (an io_uring submit or completion it cannot
    /// account for): the writer poisons the log, as after a failed sync.
    Broken(io::Error),
}

/// The operations the writer needs. Both return only once the kernel has finished.
pub trait IoEngine: Send {
    /// Writes all of `buf` at `offset`; with `sync`, then `fdatasync`s the file.
    fn append(&mut self, file: &File, buf: &[u8], offset: u64, sync: bool)
        -> Result<(), IoFailure>;
    /// Writes all of the page-aligned `buf` at the page-aligned `offset` of `file`, an
    /// `O_DIRECT` handle; with `dsync`, as `RWF_DSYNC` (durable once it returns: no
    /// `fdatasync` follows). A refusal (`EINVAL`, `EOPNOTSUPP`, `ENOSYS`), a full disk or
    /// quota (`ENOSPC`, `EDQUOT`) or a short write that left the rest unaligned is a write
    /// failure (see [`direct_failure`]); any other failure of a `dsync` write is a sync
    /// failure, since what reached the disk is unknown.
    fn append_direct(
        &mut self,
        file: &File,
        buf: &[u8],
        offset: u64,
        dsync: bool,
    ) -> Result<(), IoFailure>;
    fn sync_data(&mut self, file: &File) -> io::Result<()>;
    /// `"uring"` or `"std"`, for logs and `INFO`.
    fn name(&self) -> &'static str;
}

/// Sorts a direct write's error into the half that failed (see [`IoEngine::append_direct`]):
/// a refusal (the kernel or file system will not take the write), a full disk or quota, and
/// a short write are write failures: the block is cut off and the log goes on, since every
/// earlier block was durable before it was acknowledged and this write only rewrote their
/// tail page with the same bytes. The failed block itself may have reached the disk (a thin
/// device can report ENOSPC from the flush), so the writer syncs the cut that removes it.
/// Anything else from a `dsync` write may have lost data and is a sync failure.
pub(crate) fn direct_failure(e: io::Error, dsync: bool) -> IoFailure {
    let before_io = matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | libc::ENOSPC | libc::EDQUOT)
    ) || e.kind() == io::ErrorKind::WriteZero;
    if dsync && !before_io {
        IoFailure::Sync(e)
    } else {
        IoFailure::Write(e)
    }
}

/// The file system refuses direct writes (not merely this one): the log goes buffered.
pub(crate) fn refuses_direct(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

/// Sets up the engine for `mode`.
pub fn open_engine(mode: IoMode) -> Result<Box<dyn IoEngine>, LogError> {
    match mode {
        IoMode::Std => Ok(Box::new(StdEngine)),
        IoMode::Uring => UringEngine::new()
            .map(|e| Box::new(e) as Box<dyn IoEngine>)
            .map_err(LogError::UringUnavailable),
        IoMode::Auto => match UringEngine::new() {
            Ok(e) => Ok(Box::new(e)),
            Err(e) => {
                tracing::warn!("io_uring unavailable ({e}); the log uses pwrite + fdatasync");
                Ok(Box::new(StdEngine))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn direct_write_errors_poison_unless_nothing_can_have_been_lost() {
        let e = |n| io::Error::from_raw_os_error(n);
        for n in [
            libc::EINVAL,
            libc::EOPNOTSUPP,
            libc::ENOSYS,
            libc::ENOSPC,
            libc::EDQUOT,
        ] {
            assert!(
                matches!(direct_failure(e(n), true), IoFailure::Write(_)),
                "{n}"
            );
        }
        let short = crate::log::direct::short_direct_write();
        assert!(matches!(direct_failure(short, true), IoFailure::Write(_)));
        assert!(matches!(
            direct_failure(e(libc::EIO), true),
            IoFailure::Sync(_)
        ));
        // Without RWF_DSYNC nothing was promised durable: a plain write failure.
        assert!(matches!(
            direct_failure(e(libc::EIO), false),
            IoFailure::Write(_)
        ));
        assert!(refuses_direct(&e(libc::EINVAL)) && !refuses_direct(&e(libc::ENOSPC)));
    }

    fn engines() -> Vec<Box<dyn IoEngine>> {
        let mut v: Vec<Box<dyn IoEngine>> = vec![Box::new(StdEngine)];
        match UringEngine::new() {
            Ok(u) => v.push(Box::new(u)),
            Err(e) => eprintln!("io_uring not available here, testing std only: {e}"),
        }
        v
    }

    #[test]
    fn append_writes_at_offsets_and_syncs() {
        for mut engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join("f"))
                .unwrap();
            engine.append(&f, b"hello", 0, false).unwrap();
            engine.append(&f, &vec![7u8; 300_000], 5, true).unwrap();
            engine.sync_data(&f).unwrap();
            let mut back = vec![0u8; 300_005];
            f.read_exact_at(&mut back, 0).unwrap();
            assert_eq!(&back[..5], b"hello", "engine {}", engine.name());
            assert!(back[5..].iter().all(|&b| b == 7));
        }
    }

    #[test]
    fn mode_names_parse() {
        assert_eq!("epoll".parse::<IoMode>().unwrap(), IoMode::Std);
        assert_eq!("uring".parse::<IoMode>().unwrap(), IoMode::Uring);
        assert!("kqueue".parse::<IoMode>().is_err());
    }
}
