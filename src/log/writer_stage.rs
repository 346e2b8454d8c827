//! One block's way to the disk, in three steps, so the I/O between them can be blocking
//! (`WriterCore::commit`) or asynchronous on a net thread's ring (`local.rs`):
//! [`WriterCore::stage`] takes the commit time, opens or rolls the segment, encodes the block
//! and makes room for it; the I/O writes it (and syncs it, with `fsync always`);
//! [`WriterCore::complete`] turns the outcome into the block's place in the segment, or undoes
//! a failed write, or poisons the log after a failed sync.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::config::FsyncPolicy;
use super::direct::{align_up, AlignedBuf};
use super::error::{CommitError, LogError};
use super::io::{refuses_direct, IoFailure};
use super::segment_prep::Fill;
use super::writer::Submission;
use super::writer_core::{preallocate, WriterCore};

/// A gathered batch's block, encoded and placed at the end of the active segment, waiting
/// for its I/O. It owns the block's bytes, so asynchronous I/O can point at them.
pub(crate) struct Staged {
    pub block: Vec<u8>,
    /// With direct writes, what goes to the disk instead of `block`: the tail page, the block
    /// and zeros to a page boundary, and the (aligned) offset they go at (`direct.rs`).
    direct: Option<(AlignedBuf, u64)>,
    /// The active segment's file, its direct handle for a direct write (open as long as the
    /// writer leads nothing else).
    pub fd: RawFd,
    /// Where the block goes: the log's end.
    pub offset: u64,
    /// The block is durable once its I/O completes (`fsync always`).
    pub sync: bool,
    /// A failure a failpoint injects instead of the I/O (only with `failpoints`).
    pub injected: Option<IoFailure>,
    commit_us: u64,
    first_seq: u64,
    count: u64,
    raw: u64,
    /// When the block was ready for its I/O: its write (and sync) latency is measured from here.
    staged_at: Instant,
}

impl Staged {
    /// The bytes to write, at [`Staged::io_offset`].
    pub fn io_bytes(&self) -> &[u8] {
        match &self.direct {
            Some((buf, _)) => buf.as_slice(),
            None => &self.block,
        }
    }

    pub fn io_offset(&self) -> u64 {
        self.direct.as_ref().map_or(self.offset, |(_, at)| *at)
    }

    /// An `fdatasync` follows the write.
    pub fn io_fdatasync(&self) -> bool {
        self.sync && self.direct.is_none()
    }

    /// The write itself is `RWF_DSYNC`.
    pub fn io_dsync(&self) -> bool {
        self.sync && self.direct.is_some()
    }

    /// The I/O must run through [`WriterCore::write_staged`] (a failpoint is armed).
    pub fn needs_blocking_io(&self) -> bool {
        self.injected.is_some()
    }
}

impl WriterCore {
    /// Counts a block a net thread wrote through its own ring.
    pub fn note_net_block(&self) {
        self.stats.net_blocks.fetch_add(1, Ordering::Relaxed);
    }

    /// Encodes the batch as the next block of the active segment (opening or rolling one as
    /// needed) and makes room for it. Nothing reaches the file yet.
    pub fn stage(&mut self, batch: &[Submission]) -> Result<Staged, CommitError> {
        if let Some(p) = &self.poisoned {
            return Err(CommitError::Poisoned(p.clone()));
        }
        // The commit time is taken after the batch was gathered: everything sent after it
        // lands in a later block with a later or equal time.
        let commit_us = self.commit_clock.next(self.clock.now_us());
        self.ensure_segment(commit_us)?;
        let seg = self.active.as_mut().expect("ensure_segment opened one");
        let first_seq = self.next_seq;
        let count: u64 = batch.iter().map(|s| s.batch.len() as u64).sum();
        let raw: u64 = batch.iter().map(|s| s.batch.bytes().len() as u64).sum();
        let parts: Vec<&[u8]> = batch.iter().map(|s| s.batch.bytes()).collect();
        self.encoder
            .encode_parts(
                seg.header.salt(),
                first_seq,
                commit_us,
                count as u32,
                &parts,
            )
            .map_err(|e| CommitError::WriteFailed(Arc::new(LogError::io("zstd", e))))?;
        let block = self.encoder.take_block();
        let offset = seg.len;
        let sync = self.config.fsync == FsyncPolicy::Always;
        // A direct write also covers the zeros up to the next page boundary.
        let room = match seg.direct {
            Some(_) => align_up(offset + block.len() as u64) - offset,
            None => block.len() as u64,
        };
        let fill =
            Fill::for_log(self.config.fsync, self.config.direct).for_segment(seg.direct.is_some());
        if let Err(e) = preallocate(
            seg,
            room,
            (self.config.preallocate_bytes, fill),
            &self.helper,
            &self.stats,
            self.config.segment_max_bytes,
        ) {
            let _ = seg.cut_to(offset);
            self.encoder.reuse(block);
            return Err(CommitError::WriteFailed(Arc::new(e)));
        }
        let direct = match seg
            .direct
            .as_mut()
            .map(|d| d.stage(&seg.file, offset, &block))
        {
            Some(Ok(staged)) => Some(staged),
            Some(Err(e)) => {
                tracing::warn!(
                    "{}: cannot read the tail page back ({e}); this segment is written buffered",
                    seg.path.display()
                );
                seg.direct = None;
                None
            }
            None => None,
        };
        let fd = match (&direct, &seg.direct) {
            (Some(_), Some(d)) => d.file.as_raw_fd(),
            _ => seg.file.as_raw_fd(),
        };
        #[cfg(feature = "failpoints")]
        let injected = super::failpoint::write_fault()
            .map(IoFailure::Write)
            .or_else(|| {
                // Half the block reaches the file before the error, as with a disk that
                // fills up in the middle of a write.
                super::failpoint::short_write_fault().map(|e| {
                    let half = &block[..block.len() / 2];
                    let _ = self.engine.append(&seg.file, half, offset, false);
                    IoFailure::Write(e)
                })
            })
            .or_else(|| {
                sync.then(super::failpoint::sync_fault)
                    .flatten()
                    .map(IoFailure::Sync)
            });
        #[cfg(not(feature = "failpoints"))]
        let injected: Option<IoFailure> = None;
        Ok(Staged {
            fd,
            direct,
            block,
            offset,
            sync,
            injected,
            commit_us,
            first_seq,
            count,
            raw,
            staged_at: Instant::now(),
        })
    }

    /// The staged block's I/O with the writer's own (blocking) engine.
    /// A direct write the file system refuses (`EINVAL`) is written buffered instead, and the
    /// log writes buffered from then on.
    pub fn write_staged(&mut self, st: &mut Staged) -> Result<(), IoFailure> {
        let seg = self.active.as_ref().expect("a staged block has a segment");
        let direct = seg.direct.as_ref().filter(|_| st.direct.is_some());
        let outcome = match (st.injected.take(), direct) {
            // An injected sync failure still writes the block, as a real one would have.
            (Some(IoFailure::Sync(e)), _) => self
                .engine
                .append(&seg.file, &st.block, st.offset, false)
                .and(Err(IoFailure::Sync(e))),
            (Some(f), _) => Err(f),
            (None, Some(d)) => {
                self.engine
                    .append_direct(&d.file, st.io_bytes(), st.io_offset(), st.sync)
            }
            (None, None) => self.engine.append(&seg.file, &st.block, st.offset, st.sync),
        };
        match outcome {
            Err(IoFailure::Write(e)) if st.direct.is_some() && refuses_direct(&e) => {
                self.refuse_direct(st, &e);
                let seg = self.active.as_ref().expect("a staged block has a segment");
                self.engine.append(&seg.file, &st.block, st.offset, st.sync)
            }
            other => other,
        }
    }

    /// The file system refused a direct write: the staged block and the log go buffered.
    fn refuse_direct(&mut self, st: &mut Staged, e: &std::io::Error) {
        self.give_up_direct(self.refusal(e));
        st.direct = None;
        st.fd = self
            .active
            .as_ref()
            .expect("a staged block has a segment")
            .file
            .as_raw_fd();
    }

    fn refusal(&self, e: &std::io::Error) -> String {
        let path = self.active.as_ref().map(|s| s.path.display().to_string());
        format!("{}: direct write refused ({e})", path.unwrap_or_default())
    }

    /// Takes the outcome of the staged block's I/O: its commit time once it is in the log.
    /// A failed write is cut off again (the log stays healthy, e.g. after ENOSPC); a failed
    /// sync poisons the log, because the kernel may have dropped pages it reported written.
    pub fn complete(
        &mut self,
        st: Staged,
        outcome: Result<(), IoFailure>,
    ) -> Result<u64, CommitError> {
        let Staged {
            block,
            direct,
            offset,
            sync,
            commit_us,
            first_seq,
            count,
            raw,
            staged_at,
            ..
        } = st;
        let block_len = block.len() as u64;
        self.encoder.reuse(block);
        let seg = self.active.as_mut().expect("a staged block has a segment");
        let was_direct = direct.is_some();
        let direct = match (direct, seg.direct.as_mut()) {
            (Some((buf, start)), Some(d)) if outcome.is_ok() => Some((d, buf, start)),
            // A broken engine may still hold the write: its buffer is never reused.
            (Some(staged), _) if matches!(outcome, Err(IoFailure::Broken(_))) => {
                std::mem::forget(staged);
                None
            }
            (Some((buf, _)), Some(d)) => {
                d.failed(buf);
                None
            }
            _ => None,
        };
        match outcome {
            Ok(()) => {}
            Err(IoFailure::Write(e)) => {
                if was_direct && refuses_direct(&e) {
                    // Refused on a net thread's ring: later blocks go buffered.
                    self.give_up_direct(self.refusal(&e));
                }
                let seg = self.active.as_mut().expect("a staged block has a segment");
                let err = Arc::new(LogError::io(&seg.path, e));
                // Cut off whatever part of the block reached the file, so the next block
                // follows the last good one. If even that fails, the file can't be trusted.
                // A failed direct write may have reached the disk whole (a device can report
                // ENOSPC from the flush): its cut is synced, so no power cut brings it back.
                let cut = seg.cut_to(offset).and_then(|()| {
                    if was_direct {
                        seg.file.sync_data()
                    } else {
                        Ok(())
                    }
                });
                return match cut {
                    Ok(()) => Err(CommitError::WriteFailed(err)),
                    Err(e2) => {
                        tracing::error!("cannot undo failed write on {}: {e2}", seg.path.display());
                        Err(self.poison(err))
                    }
                };
            }
            Err(IoFailure::Sync(e)) | Err(IoFailure::Broken(e)) => {
                let err = Arc::new(LogError::io(&seg.path, e));
                return Err(self.poison(err));
            }
        }
        seg.len += block_len;
        if let Some((d, buf, start)) = direct {
            d.landed(buf, start, seg.len);
            self.stats.direct_blocks.fetch_add(1, Ordering::Relaxed);
        }
        seg.index.note_block(commit_us, offset, first_seq);
        if sync {
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
            self.last_sync = Instant::now();
            let us = self
                .last_sync
                .saturating_duration_since(staged_at)
                .as_micros();
            self.stats.sync_latency.observe_us(us as u64);
        } else {
            self.dirty = true;
        }
        self.stats.blocks.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(count, Ordering::Relaxed);
        self.stats.raw_bytes.fetch_add(raw, Ordering::Relaxed);
        self.stats
            .stored_bytes
            .fetch_add(block_len, Ordering::Relaxed);
        Ok(commit_us)
    }

    /// A staged block whose I/O cannot be accounted for (a broken ring): what reached the
    /// file past the log's end is unknown, so the log refuses writes until a restart reads it
    /// back. The block's buffer is leaked, never reused: the kernel may still read it.
    /// Returns the error its producers get.
    pub fn abandon(&mut self, st: Staged) -> CommitError {
        std::mem::forget(st.block);
        std::mem::forget(st.direct);
        self.abandoned = true;
        let path = self
            .active
            .as_ref()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let err = Arc::new(LogError::io(
            path,
            std::io::Error::other("a block's write was abandoned in flight"),
        ));
        self.poison(err)
    }
}
