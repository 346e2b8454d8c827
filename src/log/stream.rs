//! Sequential block reading over a segment file with large reads and a reused buffer.
//!
//! Reads go in chunks of [`READ_CHUNK`] bytes; a block larger than that grows the buffer to
//! fit it (bounded by the block payload limit). Memory held is one chunk plus the largest
//! block seen.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::block::{BlockHeader, BLOCK_HEADER_LEN, BLOCK_MAGIC};
use super::error::FormatError;

pub const READ_CHUNK: usize = 8 << 20;

/// Why the stream stopped at `offset`.
#[derive(Debug)]
pub enum StreamError {
    Io(io::Error),
    /// The bytes at `offset` are not a valid block header, or end before the block does.
    Format {
        offset: u64,
        error: FormatError,
    },
}

/// A block as read: its header, its offset in the file and its stored payload.
pub struct RawBlock<'a> {
    pub offset: u64,
    pub header: BlockHeader,
    pub payload: &'a [u8],
}

pub struct BlockStream<'f> {
    file: &'f File,
    salt: u64,
    /// File offset of `buf[0]`.
    base: u64,
    /// Reads stop here (exclusive).
    end: u64,
    buf: Vec<u8>,
    /// Consumed and filled positions within `buf`.
    start: usize,
    filled: usize,
    /// Set when the range ends in preallocated zeros: where the log really ends.
    zero_tail: Option<u64>,
    /// Bytes read at a time.
    chunk: usize,
}

impl<'f> BlockStream<'f> {
    /// Streams the blocks in `[from, end)` of `file`. `from` must be a block boundary.
    pub fn new(file: &'f File, salt: u64, from: u64, end: u64) -> Self {
        BlockStream {
            file,
            salt,
            base: from,
            end: end.max(from),
            buf: Vec::new(),
            start: 0,
            filled: 0,
            zero_tail: None,
            chunk: READ_CHUNK,
        }
    }

    /// Reads `chunk` bytes at a time instead of [`READ_CHUNK`] (a reader that takes a little
    /// at a time, often, need not fill 8 MiB each time).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(super::block::BLOCK_HEADER_LEN);
        self
    }

    /// Where preallocated zeros begin, if the stream ended in them.
    pub fn zero_tail(&self) -> Option<u64> {
        self.zero_tail
    }

    /// Continues reading at `offset` (a block boundary found by [`next_header`]).
    pub fn seek(&mut self, offset: u64) {
        self.base = offset;
        self.start = 0;
        self.filled = 0;
    }

    /// File offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    fn available(&self) -> usize {
        self.filled - self.start
    }

    /// Makes at least `need` unread bytes available if the range holds them. Returns what is
    /// available afterwards.
    fn fill(&mut self, need: usize) -> io::Result<usize> {
        if self.available() >= need {
            return Ok(self.available());
        }
        // Move the unread tail to the front, grow if one block needs more room than a chunk.
        self.buf.copy_within(self.start..self.filled, 0);
        self.base += self.start as u64;
        self.filled -= self.start;
        self.start = 0;
        let want = need.max(self.chunk);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.filled < need {
            let file_pos = self.base + self.filled as u64;
            let room = (self.buf.len() - self.filled) as u64;
            let n = room.min(self.end.saturating_sub(file_pos)) as usize;
            if n == 0 {
                break;
            }
            let got = self
                .file
                .read_at(&mut self.buf[self.filled..self.filled + n], file_pos)?;
            if got == 0 {
                break;
            }
            self.filled += got;
        }
        Ok(self.available())
    }

    /// The next block, `None` at the end of the range. Checks the header; the payload
    /// checksum is the caller's (so skipped blocks cost nothing).
    pub fn next_block(&mut self) -> Result<Option<RawBlock<'_>>, StreamError> {
        let offset = self.position();
        let have = self.fill(BLOCK_HEADER_LEN).map_err(StreamError::Io)?;
        if have == 0 {
            return Ok(None);
        }
        let head = &self.buf[self.start..self.start + have.min(BLOCK_HEADER_LEN)];
        // The writer preallocates segments with zeros: a zero header followed by nothing but
        // zeros is the end of the log. Zeros with a block after them are damage.
        if head.iter().all(|&b| b == 0)
            && zeros_to(self.file, offset, self.end).map_err(StreamError::Io)?
        {
            self.zero_tail = Some(offset);
            return Ok(None);
        }
        let header = BlockHeader::decode(head, self.salt)
            .map_err(|error| StreamError::Format { offset, error })?;
        let len = header.block_len() as usize;
        let have = self.fill(len).map_err(StreamError::Io)?;
        if have < len {
            return Err(StreamError::Format {
                offset,
                error: FormatError::Truncated {
                    what: "block",
                    need: len as u64,
                    have: have as u64,
                },
            });
        }
        let payload = &self.buf[self.start + BLOCK_HEADER_LEN..self.start + len];
        self.start += len;
        Ok(Some(RawBlock {
            offset,
            header,
            payload,
        }))
    }
}

/// Checks that a block follows the one before it: the expected first sequence (when known)
/// and a commit time that does not go back.
pub fn check_order(
    path: &std::path::Path,
    offset: u64,
    header: &BlockHeader,
    expected_seq: Option<u64>,
    previous_us: u64,
) -> Result<(), super::error::LogError> {
    use super::error::LogError;
    if let Some(want) = expected_seq.filter(|&w| w != header.first_seq) {
        return Err(LogError::SequenceGap {
            path: path.to_path_buf(),
            offset,
            expected: want,
            found: header.first_seq,
        });
    }
    if header.commit_us < previous_us {
        return Err(LogError::TimeRegression {
            path: path.to_path_buf(),
            offset,
            previous_us,
            found_us: header.commit_us,
        });
    }
    Ok(())
}

/// Whether `[from, end)` of the file holds only zero bytes. A file that ends sooner (a
/// finished segment's zeros are trimmed while readers may be in them) holds zeros to its end.
pub fn zeros_to(file: &File, from: u64, end: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 256 << 10];
    let mut pos = from;
    while pos < end {
        let n = ((end - pos) as usize).min(buf.len());
        let got = read_upto(file, &mut buf[..n], pos)?;
        if buf[..got].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if got < n {
            return Ok(true);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Reads from `pos` until `buf` is full or the file ends; how many bytes were read.
pub fn read_upto(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The offset of the first valid block header of this segment (by `salt`) in `[from, end)`,
/// if any. Tells a torn tail (nothing valid after the bad spot) from damage in the middle of
/// a file, and is where a tolerant reader picks up again after damage.
pub fn next_header(file: &File, salt: u64, from: u64, end: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = from;
    while pos + BLOCK_HEADER_LEN as u64 <= end {
        let want = ((end - pos) as usize).min(buf.len());
        // Short when the file was cut meanwhile (trimmed zeros hold no header).
        let n = read_upto(file, &mut buf[..want], pos)?;
        if n < BLOCK_HEADER_LEN {
            break;
        }
        let window = &buf[..n];
        for i in 0..=n - BLOCK_HEADER_LEN {
            if window[i..i + 4] == BLOCK_MAGIC
                && BlockHeader::decode(&window[i..i + BLOCK_HEADER_LEN], salt).is_ok()
            {
                return Ok(Some(pos + i as u64));
            }
        }
        if n < want {
            break;
        }
        // Overlap windows by a header length so a header across the boundary is seen.
        pos += (n - (BLOCK_HEADER_LEN - 1)) as u64;
    }
    Ok(None)
}
