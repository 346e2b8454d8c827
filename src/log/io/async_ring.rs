//! A net thread's own io_uring, driven from its tokio runtime: the thread that gathered a
//! tick's writes submits every pending shard's block (write, linked to `fdatasync` with
//! `fsync always`) at once, and goes on serving its other connections while they are in
//! flight; the ring's eventfd, registered with the runtime, wakes it when they complete.
//!
//! Ownership of the buffers: whoever pushes an append keeps its buffer in place until every
//! entry of it has completed (`local.rs` keeps staged blocks in slots, and waits for them,
//! blocking, before it lets them go). After a submit it cannot account for, the ring is never
//! entered again (entries may still sit in it pointing at old buffers): the caller falls back
//! to blocking commits.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;

use super::IoFailure;

const RING_ENTRIES: u32 = 256;
/// Appends per submission round (two entries each).
pub const MAX_APPENDS: usize = (RING_ENTRIES / 2) as usize;
/// Longest single write entry, as in the blocking engine.
const MAX_WRITE: usize = 1 << 30;

/// All of `buf` written at `offset` of `fd`, then, with `sync`, the file `fdatasync`ed;
/// with `dsync`, the write is `RWF_DSYNC` (a direct write, durable when it completes).
pub struct Append<'a> {
    pub fd: RawFd,
    pub buf: &'a [u8],
    pub offset: u64,
    pub sync: bool,
    pub dsync: bool,
}

pub struct AsyncRing {
    ring: RefCell<IoUring>,
    efd: AsyncFd<OwnedFd>,
    broken: Cell<bool>,
}

/// One append's progress.
#[derive(Default)]
pub struct Progress {
    done: usize,
    /// Entries of this append in flight.
    inflight: u32,
    write: Option<i32>,
    sync: Option<i32>,
    synced: bool,
    result: Option<Result<(), IoFailure>>,
}

impl AsyncRing {
    /// A ring for this thread, its eventfd registered with the current tokio runtime (call
    /// inside one: it panics without a reactor). Fails where io_uring is refused (seccomp,
    /// `io_uring_disabled`).
    pub fn new() -> io::Result<AsyncRing> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .build(RING_ENTRIES)
            .or_else(|_| IoUring::new(RING_ENTRIES))?;
        // SAFETY: eventfd returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we own.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        ring.submitter().register_eventfd(efd.as_raw_fd())?;
        // SAFETY: the AsyncFd owns the eventfd, which stays open for its whole life.
        let efd = unsafe { AsyncFd::register_with_interest(efd, tokio::io::Interest::READABLE) }?;
        Ok(AsyncRing {
            ring: RefCell::new(ring),
            efd,
            broken: Cell::new(false),
        })
    }

    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Marks the ring unusable (a submit or completion it cannot account for).
    pub fn set_broken(&self) {
        self.broken.set(true);
    }

    /// Queues the next entries of the append in `slot` (its remaining bytes, with the linked
    /// sync on the last piece); returns how many. Submit them with [`AsyncRing::submit`].
    ///
    /// # Safety
    /// `op.buf` must stay where it is, unchanged, until every entry pushed for it has
    /// completed (reaped with [`AsyncRing::reap`]).
    pub unsafe fn push(&self, slot: usize, op: &Append<'_>, p: &mut Progress) -> usize {
        let rest = &op.buf[p.done..];
        let chunk = &rest[..rest.len().min(MAX_WRITE)];
        let link_sync = op.sync && chunk.len() == rest.len();
        let mut write = opcode::Write::new(types::Fd(op.fd), chunk.as_ptr(), chunk.len() as u32)
            .offset(op.offset + p.done as u64)
            .rw_flags(if op.dsync { libc::RWF_DSYNC } else { 0 })
            .build()
            .user_data((slot as u64) << 1);
        if link_sync {
            write = write.flags(squeue::Flags::IO_LINK);
        }
        p.write = None;
        p.sync = None;
        let mut ring = self.ring.borrow_mut();
        let mut sq = ring.submission();
        // SAFETY: the caller keeps the buffer alive; the queue has room (at most
        // MAX_APPENDS appends of two entries each are in the ring at once).
        unsafe {
            sq.push(&write).expect("submission queue has room");
        }
        let mut n = 1;
        if link_sync {
            let fsync = opcode::Fsync::new(types::Fd(op.fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(((slot as u64) << 1) | 1);
            // SAFETY: as above (an fsync points at no memory).
            unsafe {
                sq.push(&fsync).expect("submission queue has room");
            }
            n += 1;
        }
        p.inflight += n as u32;
        n
    }

    /// Hands the queued entries to the kernel. An error leaves the ring broken: entries may
    /// still sit in it, so it is never entered again.
    pub fn submit(&self) -> io::Result<()> {
        loop {
            match self.ring.borrow().submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.broken.set(true);
                    return Err(e);
                }
            }
        }
    }

    /// Takes every completion off the ring: `(slot, is_sync, result)` for each.
    pub fn reap(&self, out: &mut Vec<(usize, bool, i32)>) {
        let mut ring = self.ring.borrow_mut();
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            out.push(((ud >> 1) as usize, ud & 1 == 1, cqe.result()));
        }
    }

    /// Waits (async) until a completion may have arrived.
    pub async fn readable(&self) {
        match self.efd.readable().await {
            Ok(mut ready) => {
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into a buffer of 8 from our eventfd.
                unsafe { libc::read(self.efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                ready.clear_ready();
            }
            Err(e) => {
                tracing::warn!("io_uring eventfd: {e}; waiting for a completion inline");
                self.wait_blocking();
            }
        }
    }

    /// Waits (blocking) for at least one completion.
    pub fn wait_blocking(&self) {
        loop {
            match self.ring.borrow().submit_and_wait(1) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.broken.set(true);
                    return;
                }
            }
        }
    }
}

/// Judges an append whose entries all came back: sets its result, or returns true when the
/// rest of it must be pushed again (a short write, which cancels the linked sync).
pub fn settle(op: &Append<'_>, p: &mut Progress) -> bool {
    let n = match p.write {
        Some(n) if n < 0 => {
            let e = io::Error::from_raw_os_error(-n);
            p.result = Some(Err(super::direct_failure(e, op.dsync)));
            return false;
        }
        Some(0) => {
            let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
            p.result = Some(Err(IoFailure::Write(e)));
            return false;
        }
        Some(n) => n as usize,
        None => {
            p.result = Some(Err(IoFailure::Broken(io::Error::other(
                "io_uring write completion missing",
            ))));
            return false;
        }
    };
    p.done += n;
    if op.dsync {
        // A direct write cut short off a page boundary: the rest cannot follow aligned.
        if let Err(e) = crate::log::direct::check_progress(p.done, op.buf.len(), n) {
            p.result = Some(Err(IoFailure::Write(e)));
            return false;
        }
    }
    if let Some(s) = p.sync {
        if s < 0 && !(s == -libc::ECANCELED && p.done < op.buf.len()) {
            p.result = Some(Err(IoFailure::Sync(io::Error::from_raw_os_error(-s))));
            return false;
        }
        if s >= 0 {
            p.synced = true;
        }
    }
    if p.done < op.buf.len() {
        return true;
    }
    if op.sync && !p.synced {
        // Never acknowledge data whose sync did not come back.
        p.result = Some(Err(IoFailure::Broken(io::Error::other(
            "io_uring append finished without its sync",
        ))));
        return false;
    }
    p.result = Some(Ok(()));
    false
}

impl Progress {
    /// Notes one completion of this append.
    pub fn note(&mut self, is_sync: bool, result: i32) {
        self.inflight = self.inflight.saturating_sub(1);
        if is_sync {
            self.sync = Some(result);
        } else {
            self.write = Some(result);
        }
    }

    /// Entries of this append still in the kernel.
    pub fn in_flight(&self) -> bool {
        self.inflight > 0
    }

    pub fn peek_result(&self) -> Option<&Result<(), IoFailure>> {
        self.result.as_ref()
    }

    pub fn take_result(&mut self) -> Option<Result<(), IoFailure>> {
        self.result.take()
    }
}
