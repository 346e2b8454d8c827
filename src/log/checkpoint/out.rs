//! Where a checkpoint's bytes go: its temporary file, in [`PIECE_BYTES`] pieces.
//!
//! Where the file system takes `O_DIRECT`, every whole piece is written directly from a
//! page-aligned buffer: no copy into the page cache, no dirty pages for writeback to catch up
//! on, no new page-cache pages (which a VM whose freed memory goes back to the host pays a
//! host fault for; docs/BENCHMARKS.md). What is left at the end (less than a piece, then the
//! footer, then the header rewritten at offset 0) goes through a second, buffered handle on
//! the same file, and one `fsync` makes the whole file durable. The bytes are the same either
//! way: only the path they take differs. Where direct writes are refused (tmpfs before Linux
//! 6.6, no `/proc` to reopen the file through, or a write refused with `EINVAL`,
//! `EOPNOTSUPP` or `ENOSYS`) the pieces go buffered from then on, with a sync every
//! [`CHECKPOINT_SYNC_EVERY_BYTES`] as before.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::log::direct::{self, AlignedBuf, DIRECT_ALIGN};

/// Bytes gathered before a write: a whole number of pages.
pub const PIECE_BYTES: usize = 1 << 20;

/// A buffered checkpoint syncs its file every this many bytes as it goes. Left to the end, a
/// large checkpoint's dirty pages pile up, and on ext4 (data=ordered) the log's next
/// `fdatasync` can wait for their writeback: SETs stall behind a background task. Measured in
/// docs/BENCHMARKS.md ("Checkpoints and tail latency"). Direct pieces leave nothing dirty.
pub const CHECKPOINT_SYNC_EVERY_BYTES: u64 = 8 << 20;

const _: () = assert!(PIECE_BYTES.is_multiple_of(DIRECT_ALIGN));

pub struct CheckpointOut {
    /// The buffered handle: pieces when there is no direct one, and the end of the file.
    file: File,
    /// The direct handle, while the file system takes direct writes.
    direct: Option<File>,
    buf: AlignedBuf,
    /// Bytes of `buf` in use.
    len: usize,
    /// File offset of `buf[0]`.
    at: u64,
    /// Bytes written buffered since the last `sync_data`.
    unsynced: u64,
}

impl CheckpointOut {
    /// Creates (or truncates) `path`, mode 0600.
    pub fn create(path: &Path) -> io::Result<CheckpointOut> {
        Self::create_with(path, true)
    }

    /// As [`CheckpointOut::create`]; `try_direct: false` writes every piece buffered.
    fn create_with(path: &Path, try_direct: bool) -> io::Result<CheckpointOut> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let direct = match try_direct {
            true => direct::reopen_direct(&file),
            false => None,
        };
        let mut buf = AlignedBuf::new();
        buf.set_len(PIECE_BYTES);
        Ok(CheckpointOut {
            file,
            direct,
            buf,
            len: 0,
            at: 0,
            unsynced: 0,
        })
    }

    /// Whether whole pieces still go out directly.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(PIECE_BYTES - self.len);
            self.buf.as_mut_slice()[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == PIECE_BYTES {
                self.write_piece()?;
            }
        }
        Ok(())
    }

    /// Writes the full buffer at `at`.
    fn write_piece(&mut self) -> io::Result<()> {
        let piece = &self.buf.as_slice()[..PIECE_BYTES];
        if let Some(d) = &self.direct {
            match direct::pwrite_direct(d, piece, self.at, false) {
                Ok(()) => {
                    self.at += PIECE_BYTES as u64;
                    self.len = 0;
                    return Ok(());
                }
                // The file system opened the handle but refuses the write: buffered from
                // here on (a direct write that failed changed nothing we rely on: the
                // buffered write below covers the same bytes).
                Err(e) if crate::log::io::refuses_direct(&e) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(piece, self.at)?;
        self.at += PIECE_BYTES as u64;
        self.len = 0;
        self.unsynced += PIECE_BYTES as u64;
        if self.unsynced >= CHECKPOINT_SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Writes what is still gathered through the buffered handle, then `header` at offset
    /// 0, and syncs the file (data and metadata); returns the file.
    pub fn finish(self, header: &[u8]) -> io::Result<File> {
        self.file
            .write_all_at(&self.buf.as_slice()[..self.len], self.at)?;
        self.file.write_all_at(header, 0)?;
        self.file.sync_all()?;
        Ok(self.file)
    }

    /// Bytes written or gathered so far: the file's length once finished.
    #[cfg(test)]
    pub fn position(&self) -> u64 {
        self.at + self.len as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// Uneven writes across piece boundaries land byte for byte, header rewritten.
    fn round_trip(dir: &Path, try_direct: bool) -> bool {
        let path = dir.join("x.tmp");
        let mut out = CheckpointOut::create_with(&path, try_direct).unwrap();
        let direct = out.is_direct();
        let data = pattern(3 * PIECE_BYTES + 12_345);
        let mut at = 0;
        for step in [1usize, 63, 4096, 700_001, PIECE_BYTES, 5].iter().cycle() {
            if at == data.len() {
                break;
            }
            let n = (*step).min(data.len() - at);
            out.write_all(&data[at..at + n]).unwrap();
            at += n;
        }
        assert_eq!(out.position(), data.len() as u64);
        drop(out.finish(b"HEADER").unwrap());
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), data.len());
        assert_eq!(&back[..6], b"HEADER");
        assert_eq!(&back[6..], &data[6..]);
        direct
    }

    #[test]
    fn bytes_land_in_order_direct_or_buffered() {
        let d = tempfile::tempdir().unwrap();
        assert!(!round_trip(d.path(), false));
        let direct = round_trip(d.path(), true);
        eprintln!("direct writes taken here: {direct}");
    }
}
