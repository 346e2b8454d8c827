//! The io_uring engine: a private ring per writer thread. A batch's write and its
//! `fdatasync` go in as two linked entries, so the kernel runs the sync only after the whole
//! write succeeded, and both cost one `io_uring_enter`. A direct write (`O_DIRECT`,
//! `RWF_DSYNC`) is one entry with no sync after it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::{IoEngine, IoFailure};
use crate::log::direct::check_progress;

const RING_ENTRIES: u32 = 8;
const WRITE: u64 = 1;
const SYNC: u64 = 2;
/// Longest single write entry; blocks are far smaller, this only keeps the `u32` honest.
const MAX_WRITE: usize = 1 << 30;

pub struct UringEngine {
    ring: IoUring,
    /// Set by the first submit or completion the engine cannot account for. Entries may then
    /// still sit in the ring pointing into a buffer the writer will reuse, and a completion
    /// could be taken for another's: nothing more is submitted, every call fails, and the
    /// writer poisons the shard's log until a restart re-reads what is on disk.
    broken: Option<String>,
}

impl UringEngine {
    /// Fails where io_uring is disabled (seccomp, `kernel.io_uring_disabled`, old kernels).
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::new(RING_ENTRIES)?;
        let engine = UringEngine { ring, broken: None };
        Ok(engine)
    }

    fn broken_error(&self) -> Option<io::Error> {
        self.broken
            .as_ref()
            .map(|why| io::Error::other(format!("io_uring engine is unusable: {why}")))
    }

    fn mark_broken(&mut self, why: String) -> io::Error {
        tracing::error!("io_uring log engine: {why}; the shard refuses writes until a restart");
        self.broken = Some(why);
        self.broken_error().expect("just set")
    }

    /// Submits the queued entries and reaps `pending` completions, returning the results by
    /// user-data tag: `(write result, sync result)`.
    fn run(&mut self, mut pending: usize) -> io::Result<(Option<i32>, Option<i32>)> {
        let (mut write, mut sync) = (None, None);
        while pending > 0 {
            #[cfg(feature = "failpoints")]
            if let Some(e) = crate::log::failpoint::uring_submit_fault() {
                return Err(self.mark_broken(format!("submit failed: {e}")));
            }
            match self.ring.submit_and_wait(pending) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.mark_broken(format!("submit failed: {e}"))),
            }
            let mut unknown = None;
            for cqe in self.ring.completion() {
                match cqe.user_data() {
                    WRITE if write.is_none() => write = Some(cqe.result()),
                    SYNC if sync.is_none() => sync = Some(cqe.result()),
                    other => unknown = Some(other),
                }
                pending = pending.saturating_sub(1);
            }
            if let Some(tag) = unknown {
                return Err(self.mark_broken(format!("unexpected completion (tag {tag})")));
            }
        }
        Ok((write, sync))
    }

    fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: the ring has room (we never queue more than two entries before reaping
        // them), and every buffer an entry points at outlives `run`, which waits for all
        // completions before returning.
        unsafe {
            self.ring
                .submission()
                .push(&entry)
                .expect("submission queue has room");
        }
    }
}

fn check(res: Option<i32>) -> io::Result<usize> {
    match res {
        Some(n) if n >= 0 => Ok(n as usize),
        Some(errno) => Err(io::Error::from_raw_os_error(-errno)),
        None => Err(io::Error::other("io_uring completion missing")),
    }
}

impl IoEngine for UringEngine {
    fn append(
        &mut self,
        file: &File,
        buf: &[u8],
        offset: u64,
        sync: bool,
    ) -> Result<(), IoFailure> {
        if let Some(e) = self.broken_error() {
            return Err(IoFailure::Broken(e));
        }
        let fd = types::Fd(file.as_raw_fd());
        let mut done = 0usize;
        let mut synced = false;
        while done < buf.len() {
            let chunk = &buf[done..(done + MAX_WRITE).min(buf.len())];
            let last = done + chunk.len() == buf.len();
            let mut entry = opcode::Write::new(fd, chunk.as_ptr(), chunk.len() as u32)
                .offset(offset + done as u64)
                .build()
                .user_data(WRITE);
            let link_sync = sync && last;
            if link_sync {
                entry = entry.flags(squeue::Flags::IO_LINK);
            }
            self.push(entry);
            if link_sync {
                let fsync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(SYNC);
                self.push(fsync);
            }
            let (w, s) = self
                .run(if link_sync { 2 } else { 1 })
                .map_err(IoFailure::Broken)?;
            let n = check(w).map_err(IoFailure::Write)?;
            if n == 0 {
                let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                return Err(IoFailure::Write(e));
            }
            done += n;
            if link_sync {
                match s {
                    // A short write breaks the link: the sync is cancelled; loop and retry.
                    Some(r) if r == -libc::ECANCELED && done < buf.len() => {}
                    other => {
                        check(other).map_err(IoFailure::Sync)?;
                        synced = true;
                    }
                }
            }
        }
        if sync && !synced {
            self.sync_data(file).map_err(IoFailure::Sync)?;
        }
        Ok(())
    }

    fn append_direct(
        &mut self,
        file: &File,
        buf: &[u8],
        offset: u64,
        dsync: bool,
    ) -> Result<(), IoFailure> {
        if let Some(e) = self.broken_error() {
            return Err(IoFailure::Broken(e));
        }
        let fd = types::Fd(file.as_raw_fd());
        let flags = if dsync { libc::RWF_DSYNC } else { 0 };
        let mut done = 0usize;
        while done < buf.len() {
            let chunk = &buf[done..(done + MAX_WRITE).min(buf.len())];
            let entry = opcode::Write::new(fd, chunk.as_ptr(), chunk.len() as u32)
                .offset(offset + done as u64)
                .rw_flags(flags)
                .build()
                .user_data(WRITE);
            self.push(entry);
            let (w, _) = self.run(1).map_err(IoFailure::Broken)?;
            let n = check(w).map_err(|e| super::direct_failure(e, dsync))?;
            done += n;
            check_progress(done, buf.len(), n).map_err(IoFailure::Write)?;
        }
        Ok(())
    }

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        if let Some(e) = self.broken_error() {
            return Err(e);
        }
        let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(SYNC);
        self.push(entry);
        let (_, s) = self.run(1)?;
        check(s).map(|_| ())
    }

    fn name(&self) -> &'static str {
        "uring"
    }
}
