//! The io_uring engine: a private ring per writer thread. A batch's write and its
//! `fdatasync` go in as two linked entries, so the kernel runs the sync only after the whole
//! write succeeded, and both cost one `io_uring_enter`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::{IoEngine, IoFailure};

const RING_ENTRIES: u32 = 8;
const WRITE: u64 = 1;
const SYNC: u64 = 2;
/// Longest single write entry; blocks are far smaller, this only keeps the `u32` honest.
const MAX_WRITE: usize = 1 << 30;

pub struct UringEngine {
    ring: IoUring,
}

impl UringEngine {
    /// Fails where io_uring is disabled (seccomp, `kernel.io_uring_disabled`, old kernels).
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::new(RING_ENTRIES)?;
        let engine = UringEngine { ring };
        Ok(engine)
    }

    /// Submits the queued entries and reaps `pending` completions, returning the results by
    /// user-data tag: `(write result, sync result)`.
    fn run(&mut self, mut pending: usize) -> io::Result<(Option<i32>, Option<i32>)> {
        let (mut write, mut sync) = (None, None);
        while pending > 0 {
            match self.ring.submit_and_wait(pending) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for cqe in self.ring.completion() {
                match cqe.user_data() {
                    WRITE => write = Some(cqe.result()),
                    SYNC => sync = Some(cqe.result()),
                    other => unreachable!("unknown completion tag {other}"),
                }
                pending -= 1;
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
        None => unreachable!("completion missing"),
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
                .map_err(IoFailure::Write)?;
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

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
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
