//! A part object: a run of whole blocks of one shard's segment, shipped as one PUT.
//!
//! ```text
//! part := header payload
//! payload := the segment file's bytes [offset, offset + payload_len)
//!            (from offset 0 it begins with the segment header)
//! ```
//!
//! | offset | size | field          | meaning                                             |
//! |-------:|-----:|----------------|-----------------------------------------------------|
//! | 0      | 7    | magic          | `RWNDARP`                                           |
//! | 7      | 1    | version        | `1`                                                 |
//! | 8      | 8    | table_id       |                                                     |
//! | 16     | 4    | shard          |                                                     |
//! | 20     | 4    | reserved       | zero                                                |
//! | 24     | 8    | segment_seq    | first sequence of the segment the bytes come from   |
//! | 32     | 8    | offset         | where the payload starts in that segment file       |
//! | 40     | 8    | first_seq      | first record of the payload's first block           |
//! | 48     | 8    | last_seq       | last record of its last block                       |
//! | 56     | 8    | first_us       | commit time of the first block                      |
//! | 64     | 8    | last_us        | commit time of the last block                       |
//! | 72     | 8    | last_block_sum | header checksum of the last block (continuity)      |
//! | 80     | 8    | payload_len    | bytes after the header                              |
//! | 88     | 8    | payload_sum    | xxh3-64 of the payload                              |
//! | 96     | 8    | header_sum     | xxh3-64 of bytes 0..96                              |
//!
//! The blocks inside keep their own checksums (seeded with the segment's salt); the payload
//! checksum lets a download be refused before anything is rebuilt from it.

use xxhash_rust::xxh3::xxh3_64;

use crate::log::FormatError;

pub const PART_MAGIC: &[u8; 7] = b"RWNDARP";
pub const PART_VERSION: u8 = 1;
pub const PART_HEADER_LEN: usize = 104;

/// What a part holds, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHeader {
    pub table_id: u64,
    pub shard: u32,
    pub segment_seq: u64,
    pub offset: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_us: u64,
    pub last_us: u64,
    pub last_block_sum: u64,
    pub payload_len: u64,
    pub payload_sum: u64,
}

impl PartHeader {
    pub fn encode(&self) -> [u8; PART_HEADER_LEN] {
        let mut b = [0u8; PART_HEADER_LEN];
        b[..7].copy_from_slice(PART_MAGIC);
        b[7] = PART_VERSION;
        b[8..16].copy_from_slice(&self.table_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.shard.to_le_bytes());
        let fields = [
            self.segment_seq,
            self.offset,
            self.first_seq,
            self.last_seq,
            self.first_us,
            self.last_us,
            self.last_block_sum,
            self.payload_len,
            self.payload_sum,
        ];
        for (i, v) in fields.iter().enumerate() {
            b[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = xxh3_64(&b[..96]);
        b[96..104].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Checks magic, then the header checksum, then the version.
    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        if b.len() < PART_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "archive part header",
                need: PART_HEADER_LEN as u64,
                have: b.len() as u64,
            });
        }
        if &b[..7] != PART_MAGIC {
            return Err(FormatError::BadMagic {
                expected: PART_MAGIC.to_vec(),
                found: b[..7].to_vec(),
            });
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let (got, expected) = (xxh3_64(&b[..96]), u64_at(96));
        if got != expected {
            return Err(FormatError::ChecksumMismatch {
                what: "archive part header",
                got,
                expected,
            });
        }
        if b[7] != PART_VERSION {
            return Err(FormatError::BadVersion {
                what: "archive part",
                found: b[7],
                supported: PART_VERSION,
            });
        }
        let h = PartHeader {
            table_id: u64_at(8),
            shard: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
            segment_seq: u64_at(24),
            offset: u64_at(32),
            first_seq: u64_at(40),
            last_seq: u64_at(48),
            first_us: u64_at(56),
            last_us: u64_at(64),
            last_block_sum: u64_at(72),
            payload_len: u64_at(80),
            payload_sum: u64_at(88),
        };
        if h.last_seq < h.first_seq || h.first_seq < h.segment_seq || h.last_us < h.first_us {
            return Err(FormatError::Malformed {
                what: "archive part header",
                detail: format!(
                    "sequences {}..={} of segment {}, times {}..={}",
                    h.first_seq, h.last_seq, h.segment_seq, h.first_us, h.last_us
                ),
            });
        }
        Ok(h)
    }
}

/// Builds a part object from a header (its length and checksum are filled in) and payload.
pub fn encode(mut header: PartHeader, payload: &[u8]) -> Vec<u8> {
    header.payload_len = payload.len() as u64;
    header.payload_sum = xxh3_64(payload);
    let mut out = Vec::with_capacity(PART_HEADER_LEN + payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out
}

/// [`encode`] without copying the payload: the header and the payload as two pieces of one
/// object.
pub fn encode_pieces(mut header: PartHeader, payload: Vec<u8>) -> Vec<bytes::Bytes> {
    header.payload_len = payload.len() as u64;
    header.payload_sum = xxh3_64(&payload);
    vec![
        bytes::Bytes::copy_from_slice(&header.encode()),
        bytes::Bytes::from(payload),
    ]
}

/// Checks a whole part object and returns its header and payload.
pub fn decode(b: &[u8]) -> Result<(PartHeader, &[u8]), FormatError> {
    let h = PartHeader::decode(b)?;
    let payload = &b[PART_HEADER_LEN..];
    if payload.len() as u64 != h.payload_len {
        return Err(FormatError::Truncated {
            what: "archive part payload",
            need: h.payload_len,
            have: payload.len() as u64,
        });
    }
    let got = xxh3_64(payload);
    if got != h.payload_sum {
        return Err(FormatError::ChecksumMismatch {
            what: "archive part payload",
            got,
            expected: h.payload_sum,
        });
    }
    Ok((h, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PartHeader {
        PartHeader {
            table_id: 7,
            shard: 3,
            segment_seq: 100,
            offset: 64,
            first_seq: 120,
            last_seq: 180,
            first_us: 1_000,
            last_us: 2_000,
            last_block_sum: 0xfeed,
            payload_len: 0,
            payload_sum: 0,
        }
    }

    #[test]
    fn round_trip() {
        let obj = encode(sample(), b"some block bytes");
        let (h, p) = decode(&obj).unwrap();
        assert_eq!(p, b"some block bytes");
        assert_eq!(h.payload_len, 16);
        assert_eq!(
            PartHeader {
                payload_len: 0,
                payload_sum: 0,
                ..h
            },
            sample()
        );
    }

    #[test]
    fn pieces_are_the_same_object() {
        let a = encode(sample(), b"abc");
        assert_eq!(encode_pieces(sample(), b"abc".to_vec()).concat(), a);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let obj = encode(sample(), b"payload bytes here");
        for i in 0..obj.len() {
            let mut bad = obj.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i} was accepted");
        }
    }

    #[test]
    fn errors_stay_distinct() {
        let obj = encode(sample(), b"xyz");
        // A newer version with a valid checksum is a version error, not a checksum error.
        let mut v2 = obj.clone();
        v2[7] = 2;
        let sum = xxh3_64(&v2[..96]);
        v2[96..104].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            decode(&v2),
            Err(FormatError::BadVersion { found: 2, .. })
        ));
        assert!(matches!(
            decode(&obj[..obj.len() - 1]),
            Err(FormatError::Truncated { .. })
        ));
        let mut flipped = obj.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode(&flipped),
            Err(FormatError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            decode(b"RWNDSEG\x01"),
            Err(FormatError::Truncated { .. })
        ));
    }
}
