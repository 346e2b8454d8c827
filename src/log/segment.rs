//! Segment files: a header followed by blocks, named after their first sequence number.
//!
//! ```text
//! segment := header:[u8; 64] block*
//!
//! header (little-endian)
//! | off | size | field       | meaning                                              |
//! |-----|------|-------------|------------------------------------------------------|
//! |   0 |    7 | magic       | b"RWNDSEG"                                           |
//! |   7 |    1 | version     | 1                                                    |
//! |   8 |    8 | table_id    | the table this log belongs to                        |
//! |  16 |    4 | shard       | the shard within the table                           |
//! |  20 |    4 | reserved    | zero                                                 |
//! |  24 |    8 | first_seq   | sequence of the first record in this file            |
//! |  32 |    8 | created_us  | commit time of the first block, Unix microseconds    |
//! |  40 |   16 | reserved    | zero                                                 |
//! |  56 |    8 | header_sum  | xxh3-64 of bytes 0..56                               |
//! ```
//!
//! File name: `<first_seq as 20 decimal digits>.seg`, so names sort in log order. A segment
//! holds blocks of one UTC hour only (retention drops whole files) and is closed once it
//! passes the configured size.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::block::u64_at;
use super::error::{FormatError, LogError};

pub const SEGMENT_MAGIC: [u8; 7] = *b"RWNDSEG";
pub const SEGMENT_VERSION: u8 = 1;
pub const SEGMENT_HEADER_LEN: usize = 64;
pub const SEGMENT_EXT: &str = "seg";

const US_PER_HOUR: u64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub table_id: u64,
    pub shard: u32,
    pub first_seq: u64,
    pub created_us: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        h[0..7].copy_from_slice(&SEGMENT_MAGIC);
        h[7] = SEGMENT_VERSION;
        h[8..16].copy_from_slice(&self.table_id.to_le_bytes());
        h[16..20].copy_from_slice(&self.shard.to_le_bytes());
        h[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        h[32..40].copy_from_slice(&self.created_us.to_le_bytes());
        let sum = xxh3_64(&h[0..56]);
        h[56..64].copy_from_slice(&sum.to_le_bytes());
        h
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "segment header",
                need: SEGMENT_HEADER_LEN as u64,
                have: b.len() as u64,
            });
        }
        if b[0..7] != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic {
                expected: SEGMENT_MAGIC.to_vec(),
                found: b[0..7].to_vec(),
            });
        }
        let expected = u64_at(b, 56);
        let got = xxh3_64(&b[0..56]);
        if got != expected {
            return Err(FormatError::ChecksumMismatch {
                what: "segment header",
                got,
                expected,
            });
        }
        if b[7] != SEGMENT_VERSION {
            return Err(FormatError::BadVersion {
                what: "segment",
                found: b[7],
                supported: SEGMENT_VERSION,
            });
        }
        Ok(SegmentHeader {
            table_id: u64_at(b, 8),
            shard: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
            first_seq: u64_at(b, 24),
            created_us: u64_at(b, 32),
        })
    }

    /// The seed mixed into every checksum of this segment's blocks and index.
    pub fn salt(&self) -> u64 {
        xxh3_64_with_seed(&self.encode()[8..40], 0x7265_7769_6e64)
    }

    /// The UTC hour (hours since the epoch) whose blocks this segment holds.
    pub fn hour(&self) -> u64 {
        hour_of(self.created_us)
    }
}

pub fn hour_of(us: u64) -> u64 {
    us / US_PER_HOUR
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXT}")
}

/// A segment's place in the log and in time: enough to bisect a shard's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    pub first_seq: u64,
    pub created_us: u64,
}

/// The number of segments a replay to `t_us` needs to look at: segments are in log order, so
/// creation times rise, and the first one created after `t_us` holds nothing at or before it.
pub fn cut(spans: &[SegmentSpan], t_us: u64) -> usize {
    spans.partition_point(|s| s.created_us <= t_us)
}

/// A segment file found in a shard directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub first_seq: u64,
    pub path: PathBuf,
}

impl SegmentFile {
    /// The path of this segment's per-second index file.
    pub fn index_path(&self) -> PathBuf {
        self.path.with_extension(super::index::INDEX_EXT)
    }
}

/// Lists the segments of a shard directory in log order. A missing directory is an empty log.
/// Files that are not segments are ignored; names that look like segments but do not parse
/// are an error rather than silently skipped.
pub fn list(dir: &Path) -> Result<Vec<SegmentFile>, LogError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let first_seq = stem.parse::<u64>().map_err(|_| LogError::Damaged {
            path: path.clone(),
            offset: 0,
            source: FormatError::Malformed {
                what: "segment file name",
                detail: format!("{stem:?} is not a sequence number"),
            },
        })?;
        out.push(SegmentFile { first_seq, path });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            table_id: 7,
            shard: 3,
            first_seq: 1_000_001,
            created_us: 1_764_075_845_250_000,
        }
    }

    #[test]
    fn round_trip() {
        let h = header();
        assert_eq!(SegmentHeader::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = header().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes;
            bad[i] ^= 0x80;
            let err = SegmentHeader::decode(&bad).expect_err("flip undetected");
            assert!(
                matches!(
                    err,
                    FormatError::BadMagic { .. } | FormatError::ChecksumMismatch { .. }
                ),
                "byte {i}: {err}"
            );
        }
    }

    #[test]
    fn newer_version_is_reported_as_such() {
        let mut bytes = header().encode();
        bytes[7] = 2;
        let sum = xxh3_64(&bytes[0..56]);
        bytes[56..64].copy_from_slice(&sum.to_le_bytes());
        let err = SegmentHeader::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            FormatError::BadVersion {
                what: "segment",
                found: 2,
                supported: 1
            }
        );
    }

    #[test]
    fn salts_differ_between_segments() {
        let a = header();
        let b = SegmentHeader {
            first_seq: a.first_seq + 1,
            ..a
        };
        let c = SegmentHeader { shard: 4, ..a };
        assert_ne!(a.salt(), b.salt());
        assert_ne!(a.salt(), c.salt());
    }

    #[test]
    fn cut_bisects_by_creation_time() {
        let spans: Vec<SegmentSpan> = (0..10u64)
            .map(|i| SegmentSpan {
                first_seq: i * 100 + 1,
                created_us: i * 1000,
            })
            .collect();
        assert_eq!(cut(&spans, 0), 1);
        assert_eq!(cut(&spans, 999), 1);
        assert_eq!(cut(&spans, 1000), 2);
        assert_eq!(cut(&spans, u64::MAX), 10);
        assert_eq!(cut(&[], 5), 0);
    }

    #[test]
    fn names_sort_in_log_order_and_list_parses_them() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [10u64, 9, 100_000] {
            std::fs::write(dir.path().join(file_name(seq)), b"").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        let got: Vec<u64> = list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_seq)
            .collect();
        assert_eq!(got, vec![9, 10, 100_000]);
        std::fs::write(dir.path().join("junk.seg"), b"").unwrap();
        assert!(list(dir.path()).is_err());
    }
}
