//! The key index (`*.kix`): for one sealed segment or one checkpoint, which blocks hold each
//! key, so a history question decodes only the blocks of the key it asks about.
//!
//! It is derived data, like the per-second index: built from its file (by the maintenance
//! pass after a segment is sealed or a checkpoint written, or by the first question that
//! needs it), replaced atomically, checked whole when loaded, and rebuilt when missing,
//! damaged, or stale (its file grew). Losing it costs time, never answers.
//!
//! ```text
//! kix := header:[u8; 64] entry* footer:[u8; 16]
//!
//! header (little-endian)
//! | off | size | field       | meaning                                                   |
//! |-----|------|-------------|-----------------------------------------------------------|
//! |   0 |    7 | magic       | b"RWNDKIX"                                                |
//! |   7 |    1 | version     | 1                                                         |
//! |   8 |    1 | kind        | 1 segment, 2 checkpoint                                   |
//! |   9 |    7 | reserved    | zero                                                      |
//! |  16 |    8 | table_id    |                                                           |
//! |  24 |    4 | shard       |                                                           |
//! |  28 |    4 | reserved    | zero                                                      |
//! |  32 |    8 | file_id     | the segment's first sequence / the checkpoint's end_seq   |
//! |  40 |    8 | covered_len | bytes of the file indexed (its length when built)         |
//! |  48 |    8 | entries     | number of entries                                         |
//! |  56 |    8 | header_sum  | xxh3-64 of bytes 0..56                                    |
//!
//! entry (16 bytes), sorted by key_hash, then offset; one per (key, block) pair
//! |   0 |    8 | key_hash    | xxh3-64 of the key                                        |
//! |   8 |    8 | offset      | file offset of a block holding a record of the key        |
//!
//! footer
//! |   0 |    8 | entries_sum | xxh3-64 of the entries, seeded with header_sum            |
//! |   8 |    8 | magic       | b"RWKIXEND"                                               |
//! ```
//!
//! File name: the indexed file's name with the extension `kix` (`<first_seq>.kix` beside
//! `<first_seq>.seg`, `ckp-<end_seq>.kix` beside `ckp-<end_seq>.ckp`). A hash names a key
//! only probably: every block found is decoded and its records compared by key.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::log::FormatError;

pub const KIX_MAGIC: [u8; 7] = *b"RWNDKIX";
pub const KIX_END: [u8; 8] = *b"RWKIXEND";
pub const KIX_VERSION: u8 = 1;
pub const KIX_EXT: &str = "kix";
pub const HEADER_LEN: usize = 64;
pub const FOOTER_LEN: usize = 16;
const ENTRY_LEN: usize = 16;

/// What a key index indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Segment = 1,
    Checkpoint = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KixHeader {
    pub kind: Kind,
    pub table_id: u64,
    pub shard: u32,
    pub file_id: u64,
    pub covered_len: u64,
}

/// A loaded key index: entries sorted by key hash, then offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    pub header: KixHeader,
    entries: Vec<(u64, u64)>,
}

/// The hash a key index files a key under.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The key index file of a segment or checkpoint file.
pub fn path_for(file: &Path) -> PathBuf {
    file.with_extension(KIX_EXT)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn malformed(detail: String) -> FormatError {
    FormatError::Malformed {
        what: "key index",
        detail,
    }
}

impl KeyIndex {
    /// An index of `entries` ((key hash, block offset) pairs in any order, repeats allowed).
    pub fn new(header: KixHeader, mut entries: Vec<(u64, u64)>) -> KeyIndex {
        entries.sort_unstable();
        entries.dedup();
        KeyIndex { header, entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes it holds in memory.
    pub fn memory_bytes(&self) -> usize {
        self.entries.len() * ENTRY_LEN
    }

    /// Offsets of the blocks that may hold `key`, ascending.
    pub fn blocks_of(&self, key: &[u8]) -> impl Iterator<Item = u64> + '_ {
        let h = key_hash(key);
        let start = self.entries.partition_point(|&(eh, _)| eh < h);
        self.entries[start..]
            .iter()
            .take_while(move |&&(eh, _)| eh == h)
            .map(|&(_, off)| off)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * ENTRY_LEN + FOOTER_LEN);
        out.extend_from_slice(&KIX_MAGIC);
        out.push(KIX_VERSION);
        out.push(self.header.kind as u8);
        out.extend_from_slice(&[0u8; 7]);
        out.extend_from_slice(&self.header.table_id.to_le_bytes());
        out.extend_from_slice(&self.header.shard.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.header.file_id.to_le_bytes());
        out.extend_from_slice(&self.header.covered_len.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        let header_sum = xxh3_64(&out[..56]);
        out.extend_from_slice(&header_sum.to_le_bytes());
        for &(h, off) in &self.entries {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        let entries_sum = xxh3_64_with_seed(&out[HEADER_LEN..], header_sum);
        out.extend_from_slice(&entries_sum.to_le_bytes());
        out.extend_from_slice(&KIX_END);
        out
    }

    /// The header of the key index file at `path`, if it has a whole one (`None`: missing
    /// or unreadable; the body is checked only by [`KeyIndex::decode`]).
    pub fn read_header(path: &Path) -> Option<KixHeader> {
        use std::io::Read;
        let mut b = [0u8; HEADER_LEN];
        std::fs::File::open(path).ok()?.read_exact(&mut b).ok()?;
        if b[0..7] != KIX_MAGIC || b[7] != KIX_VERSION || xxh3_64(&b[..56]) != u64_at(&b, 56) {
            return None;
        }
        let kind = match b[8] {
            1 => Kind::Segment,
            2 => Kind::Checkpoint,
            _ => return None,
        };
        Some(KixHeader {
            kind,
            table_id: u64_at(&b, 16),
            shard: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
            file_id: u64_at(&b, 32),
            covered_len: u64_at(&b, 40),
        })
    }

    /// Decodes and checks a whole key index: magic, checksum, version (in that order), the
    /// entry count against the length, the entries' checksum and their order.
    pub fn decode(b: &[u8]) -> Result<KeyIndex, FormatError> {
        if b.len() < HEADER_LEN + FOOTER_LEN {
            return Err(FormatError::Truncated {
                what: "key index",
                need: (HEADER_LEN + FOOTER_LEN) as u64,
                have: b.len() as u64,
            });
        }
        if b[0..7] != KIX_MAGIC {
            return Err(FormatError::BadMagic {
                expected: KIX_MAGIC.to_vec(),
                found: b[0..7].to_vec(),
            });
        }
        let header_sum = xxh3_64(&b[..56]);
        if header_sum != u64_at(b, 56) {
            return Err(FormatError::ChecksumMismatch {
                what: "key index header",
                got: header_sum,
                expected: u64_at(b, 56),
            });
        }
        if b[7] != KIX_VERSION {
            return Err(FormatError::BadVersion {
                what: "key index",
                found: b[7],
                supported: KIX_VERSION,
            });
        }
        let kind = match b[8] {
            1 => Kind::Segment,
            2 => Kind::Checkpoint,
            k => return Err(malformed(format!("unknown kind {k}"))),
        };
        let entries = u64_at(b, 48);
        let need = (HEADER_LEN as u64)
            .checked_add(entries.saturating_mul(ENTRY_LEN as u64))
            .and_then(|n| n.checked_add(FOOTER_LEN as u64))
            .unwrap_or(u64::MAX);
        if need != b.len() as u64 {
            return Err(FormatError::Truncated {
                what: "key index entries",
                need,
                have: b.len() as u64,
            });
        }
        let body_end = b.len() - FOOTER_LEN;
        if b[body_end + 8..] != KIX_END {
            return Err(FormatError::BadMagic {
                expected: KIX_END.to_vec(),
                found: b[body_end + 8..].to_vec(),
            });
        }
        let got = xxh3_64_with_seed(&b[HEADER_LEN..body_end], header_sum);
        if got != u64_at(b, body_end) {
            return Err(FormatError::ChecksumMismatch {
                what: "key index entries",
                got,
                expected: u64_at(b, body_end),
            });
        }
        let list: Vec<(u64, u64)> = b[HEADER_LEN..body_end]
            .chunks_exact(ENTRY_LEN)
            .map(|e| (u64_at(e, 0), u64_at(e, 8)))
            .collect();
        if list.windows(2).any(|w| w[0] >= w[1]) {
            return Err(malformed("entries out of order".into()));
        }
        Ok(KeyIndex {
            header: KixHeader {
                kind,
                table_id: u64_at(b, 16),
                shard: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
                file_id: u64_at(b, 32),
                covered_len: u64_at(b, 40),
            },
            entries: list,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyIndex {
        let header = KixHeader {
            kind: Kind::Segment,
            table_id: 7,
            shard: 2,
            file_id: 101,
            covered_len: 4096,
        };
        let entries = vec![
            (key_hash(b"b"), 300),
            (key_hash(b"a"), 64),
            (key_hash(b"a"), 200),
            (key_hash(b"a"), 64),
        ];
        KeyIndex::new(header, entries)
    }

    #[test]
    fn round_trip_and_lookup() {
        let k = sample();
        assert_eq!(k.len(), 3, "repeats collapse");
        let back = KeyIndex::decode(&k.encode()).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.blocks_of(b"a").collect::<Vec<_>>(), vec![64, 200]);
        assert_eq!(back.blocks_of(b"b").collect::<Vec<_>>(), vec![300]);
        assert_eq!(back.blocks_of(b"c").count(), 0);
        let empty = KeyIndex::new(k.header, Vec::new());
        assert!(KeyIndex::decode(&empty.encode()).unwrap().is_empty());
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                KeyIndex::decode(&b).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert!(KeyIndex::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn magic_checksum_and_version_stay_distinct() {
        let bytes = sample().encode();
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(matches!(
            KeyIndex::decode(&b),
            Err(FormatError::BadMagic { .. })
        ));
        let mut b = bytes.clone();
        b[7] = 9;
        // The version sits under the header checksum: refix the checksum to reach it.
        let sum = xxh3_64(&b[..56]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            KeyIndex::decode(&b),
            Err(FormatError::BadVersion { found: 9, .. })
        ));
        let mut b = bytes;
        b[20] ^= 1;
        assert!(matches!(
            KeyIndex::decode(&b),
            Err(FormatError::ChecksumMismatch { .. })
        ));
    }
}
