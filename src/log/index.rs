//! The per-second index of one segment: for every second that has writes, where its first
//! block starts.
//!
//! Like Kafka's time index it has fixed-width entries with monotonic timestamps, and it is
//! not the source of truth: a missing or inconsistent index is rebuilt from its segment. The
//! index of the segment being written lives in memory and is written (atomically) when the
//! segment is closed.
//!
//! ```text
//! index := header:[u8; 32] entry*count trailer:[u8; 8]
//!
//! header (little-endian)
//! | off | size | field      | meaning                                               |
//! |-----|------|------------|-------------------------------------------------------|
//! |   0 |    7 | magic      | b"RWNDIDX"                                            |
//! |   7 |    1 | version    | 1                                                     |
//! |   8 |    8 | salt       | the segment's salt: binds the index to its segment    |
//! |  16 |    8 | count      | number of entries                                     |
//! |  24 |    8 | header_sum | xxh3-64 of bytes 0..24                                |
//!
//! entry (24 bytes), strictly increasing in second and offset
//! |   0 |    8 | second     | Unix second of the block's commit time                |
//! |   8 |    8 | offset     | byte offset of the first block of that second         |
//! |  16 |    8 | first_seq  | first sequence number of that block                   |
//!
//! trailer
//! |   0 |    8 | entries_sum | xxh3-64 of all entry bytes, seeded with the salt     |
//! ```

use std::fs::File;
use std::path::Path;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::block::{u64_at, BlockHeader, BLOCK_HEADER_LEN};
use super::error::{FormatError, LogError};
use super::segment::{SegmentHeader, SEGMENT_HEADER_LEN};
use super::stream::{read_upto, zeros_to};

pub const INDEX_MAGIC: [u8; 7] = *b"RWNDIDX";
pub const INDEX_VERSION: u8 = 1;
pub const INDEX_EXT: &str = "idx";
const HEADER_LEN: usize = 32;
const ENTRY_LEN: usize = 24;
pub const US_PER_SEC: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub second: u64,
    pub offset: u64,
    pub first_seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondIndex {
    markers: Vec<Marker>,
}

impl SecondIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn markers(&self) -> &[Marker] {
        &self.markers
    }

    pub fn len(&self) -> usize {
        self.markers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// Notes a block. Adds a marker only when the block opens a new second. Blocks must come
    /// in log order.
    pub fn note_block(&mut self, commit_us: u64, offset: u64, first_seq: u64) {
        let second = commit_us / US_PER_SEC;
        match self.markers.last() {
            Some(last) if last.second >= second => {
                assert!(last.second == second, "commit time went backwards");
                assert!(last.offset < offset, "block offsets go forward");
            }
            _ => self.markers.push(Marker {
                second,
                offset,
                first_seq,
            }),
        }
    }

    /// Where the blocks of second `s` start and end: `(start, end)`; `end` is `None` when the
    /// second runs to the end of the segment. `None` when no block has that second.
    pub fn second_range(&self, s: u64) -> Option<(u64, Option<u64>)> {
        let i = self.markers.partition_point(|m| m.second < s);
        let m = self.markers.get(i).filter(|m| m.second == s)?;
        Some((m.offset, self.markers.get(i + 1).map(|n| n.offset)))
    }

    /// Offset of the first block committed in a later second than `t_us`, or `None` when every
    /// block of the segment is at or before that second. Blocks before the cut may still be
    /// after `t_us` inside its own second; the reader filters those by commit time.
    pub fn cut_after(&self, t_us: u64) -> Option<u64> {
        let s = t_us / US_PER_SEC;
        let i = self.markers.partition_point(|m| m.second <= s);
        self.markers.get(i).map(|m| m.offset)
    }

    /// Offset of a block at or before the one holding sequence `seq`: the marker with the
    /// largest `first_seq <= seq`, or the first block of the segment.
    pub fn start_for_seq(&self, seq: u64) -> u64 {
        let i = self.markers.partition_point(|m| m.first_seq <= seq);
        match i {
            0 => SEGMENT_HEADER_LEN as u64,
            i => self.markers[i - 1].offset,
        }
    }

    pub fn encode(&self, salt: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + ENTRY_LEN * self.markers.len() + 8);
        out.extend_from_slice(&INDEX_MAGIC);
        out.push(INDEX_VERSION);
        out.extend_from_slice(&salt.to_le_bytes());
        out.extend_from_slice(&(self.markers.len() as u64).to_le_bytes());
        let sum = xxh3_64(&out[0..24]);
        out.extend_from_slice(&sum.to_le_bytes());
        for m in &self.markers {
            out.extend_from_slice(&m.second.to_le_bytes());
            out.extend_from_slice(&m.offset.to_le_bytes());
            out.extend_from_slice(&m.first_seq.to_le_bytes());
        }
        let sum = xxh3_64_with_seed(&out[HEADER_LEN..], salt);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes an index file and checks it against its segment (`salt`, `segment_len`).
    pub fn decode(b: &[u8], salt: u64, segment_len: u64) -> Result<Self, FormatError> {
        if b.len() < HEADER_LEN + 8 {
            return Err(FormatError::Truncated {
                what: "index",
                need: (HEADER_LEN + 8) as u64,
                have: b.len() as u64,
            });
        }
        if b[0..7] != INDEX_MAGIC {
            return Err(FormatError::BadMagic {
                expected: INDEX_MAGIC.to_vec(),
                found: b[0..7].to_vec(),
            });
        }
        let (got, expected) = (xxh3_64(&b[0..24]), u64_at(b, 24));
        if got != expected {
            return Err(FormatError::ChecksumMismatch {
                what: "index header",
                got,
                expected,
            });
        }
        if b[7] != INDEX_VERSION {
            return Err(FormatError::BadVersion {
                what: "index",
                found: b[7],
                supported: INDEX_VERSION,
            });
        }
        let bad = |detail: String| FormatError::Malformed {
            what: "index",
            detail,
        };
        if u64_at(b, 8) != salt {
            return Err(bad("belongs to another segment (salt differs)".into()));
        }
        let count = u64_at(b, 16);
        let want = count
            .checked_mul(ENTRY_LEN as u64)
            .and_then(|n| n.checked_add((HEADER_LEN + 8) as u64));
        if want != Some(b.len() as u64) {
            return Err(FormatError::Truncated {
                what: "index",
                need: want.unwrap_or(u64::MAX),
                have: b.len() as u64,
            });
        }
        let entries = &b[HEADER_LEN..b.len() - 8];
        let (got, expected) = (xxh3_64_with_seed(entries, salt), u64_at(b, b.len() - 8));
        if got != expected {
            return Err(FormatError::ChecksumMismatch {
                what: "index entries",
                got,
                expected,
            });
        }
        let mut index = SecondIndex::new();
        for e in entries.chunks_exact(ENTRY_LEN) {
            let m = Marker {
                second: u64_at(e, 0),
                offset: u64_at(e, 8),
                first_seq: u64_at(e, 16),
            };
            let in_file = m.offset >= SEGMENT_HEADER_LEN as u64 && m.offset < segment_len;
            let ordered = index.markers.last().is_none_or(|p| {
                p.second < m.second && p.offset < m.offset && p.first_seq < m.first_seq
            });
            if !in_file || !ordered {
                return Err(bad(format!(
                    "entry {m:?} out of order or outside the segment"
                )));
            }
            index.markers.push(m);
        }
        Ok(index)
    }

    /// Rebuilds the index of a segment from its block headers (one read per block). Stops at
    /// `segment_len`, or where zeros run to the end (a segment not yet sealed: its helper
    /// trims them, and may be doing so now); a block header that fails its check is
    /// reported as damage.
    pub fn rebuild(
        file: &File,
        path: &Path,
        header: &SegmentHeader,
        segment_len: u64,
    ) -> Result<Self, LogError> {
        let salt = header.salt();
        let mut index = SecondIndex::new();
        let mut offset = SEGMENT_HEADER_LEN as u64;
        let mut buf = [0u8; BLOCK_HEADER_LEN];
        while offset + BLOCK_HEADER_LEN as u64 <= segment_len {
            let got = read_upto(file, &mut buf, offset).map_err(|e| LogError::io(path, e))?;
            if got < BLOCK_HEADER_LEN {
                if buf[..got].iter().all(|&b| b == 0) {
                    break; // cut at its zeros meanwhile
                }
                let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Err(LogError::io(path, eof));
            }
            if buf.iter().all(|&b| b == 0)
                && zeros_to(file, offset, segment_len).map_err(|e| LogError::io(path, e))?
            {
                break;
            }
            let h = BlockHeader::decode(&buf, salt).map_err(|source| LogError::Damaged {
                path: path.to_path_buf(),
                offset,
                source,
            })?;
            index.note_block(h.commit_us, offset, h.first_seq);
            offset += h.block_len();
        }
        Ok(index)
    }
}

/// How an index was obtained, so callers can log a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSource {
    File,
    /// The file was missing or did not match its segment; the reason is kept for the log.
    Rebuilt(String),
}

/// Loads the index file beside a closed segment, or rebuilds it from the segment if the file
/// is missing or inconsistent. Does not write anything.
pub fn load_or_rebuild(
    index_path: &Path,
    segment: &File,
    segment_path: &Path,
    header: &SegmentHeader,
    segment_len: u64,
) -> Result<(SecondIndex, IndexSource), LogError> {
    let reason = match std::fs::read(index_path) {
        Ok(bytes) => match SecondIndex::decode(&bytes, header.salt(), segment_len) {
            Ok(index) => return Ok((index, IndexSource::File)),
            Err(e) => format!("{}: {e}", index_path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{} is missing", index_path.display())
        }
        Err(e) => return Err(LogError::io(index_path, e)),
    };
    let index = SecondIndex::rebuild(segment, segment_path, header, segment_len)?;
    Ok((index, IndexSource::Rebuilt(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> SecondIndex {
        let mut idx = SecondIndex::new();
        for i in 0..n {
            // Two blocks per second; only the first of each second makes a marker.
            idx.note_block(
                1_700_000_000_000_000 + i * 500_000,
                64 + i * 100,
                1 + i * 10,
            );
        }
        idx
    }

    #[test]
    fn markers_only_for_new_seconds() {
        let idx = sample(10);
        assert_eq!(idx.len(), 5);
        assert_eq!(idx.markers()[1].offset, 64 + 200);
    }

    #[test]
    fn lookups() {
        let idx = sample(10);
        let s0 = 1_700_000_000;
        assert_eq!(idx.second_range(s0), Some((64, Some(264))));
        assert_eq!(idx.second_range(s0 + 4), Some((864, None)));
        assert_eq!(idx.second_range(s0 + 5), None);
        assert_eq!(idx.cut_after(s0 * US_PER_SEC + 999_999), Some(264));
        assert_eq!(idx.cut_after((s0 + 4) * US_PER_SEC), None);
        assert_eq!(idx.cut_after(0), Some(64));
        assert_eq!(idx.start_for_seq(0), 64);
        assert_eq!(idx.start_for_seq(21), 264);
        assert_eq!(idx.start_for_seq(1_000), 864);
    }

    #[test]
    fn round_trip() {
        let idx = sample(100);
        let bytes = idx.encode(99);
        assert_eq!(SecondIndex::decode(&bytes, 99, 1 << 20).unwrap(), idx);
        let empty = SecondIndex::new();
        assert_eq!(SecondIndex::decode(&empty.encode(5), 5, 64).unwrap(), empty);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = sample(6).encode(99);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            assert!(
                SecondIndex::decode(&bad, 99, 1 << 20).is_err(),
                "flip at {i} undetected"
            );
        }
    }

    #[test]
    fn index_of_another_segment_or_past_the_end_is_rejected() {
        let bytes = sample(6).encode(99);
        assert!(SecondIndex::decode(&bytes, 98, 1 << 20).is_err());
        assert!(SecondIndex::decode(&bytes, 99, 400).is_err());
        assert!(SecondIndex::decode(&bytes[..bytes.len() - 1], 99, 1 << 20).is_err());
    }
}
