//! Blocks: one committed batch of records, the unit of checksumming and group commit.
//!
//! ```text
//! block := header:[u8; 56] payload:[u8; payload_len]
//!
//! header (little-endian)
//! | off | size | field         | meaning                                                   |
//! |-----|------|---------------|-----------------------------------------------------------|
//! |   0 |    4 | magic         | b"RWBK"                                                   |
//! |   4 |    1 | codec         | 0 = raw, 1 = zstd                                         |
//! |   5 |    3 | reserved      | zero                                                      |
//! |   8 |    4 | payload_len   | stored payload bytes (compressed size for zstd)           |
//! |  12 |    4 | raw_len       | payload bytes after decompression                         |
//! |  16 |    4 | record_count  | >= 1                                                      |
//! |  20 |    4 | reserved      | zero                                                      |
//! |  24 |    8 | first_seq     | sequence of the first record; record i is first_seq + i   |
//! |  32 |    8 | commit_us     | commit time, Unix microseconds, one per block             |
//! |  40 |    8 | payload_sum   | xxh3-64 of the stored payload, seeded with the segment salt |
//! |  48 |    8 | header_sum    | xxh3-64 of bytes 0..48, seeded with the segment salt      |
//! ```
//!
//! The seed ("salt") is derived from the segment header (table, shard, first sequence,
//! creation time), so a block copied into another segment fails its checks. The block layout
//! is versioned by the segment header's version byte.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::error::FormatError;
use super::record::Record;

pub const BLOCK_MAGIC: [u8; 4] = *b"RWBK";
pub const BLOCK_HEADER_LEN: usize = 56;
/// Largest payload, raw or stored, that a block may hold. Bounds what a reader allocates.
pub const MAX_BLOCK_PAYLOAD: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub codec: Codec,
    pub payload_len: u32,
    pub raw_len: u32,
    pub record_count: u32,
    pub first_seq: u64,
    pub commit_us: u64,
    pub payload_sum: u64,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

impl BlockHeader {
    pub fn block_len(&self) -> u64 {
        BLOCK_HEADER_LEN as u64 + self.payload_len as u64
    }

    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.record_count as u64 - 1
    }

    pub fn encode(&self, salt: u64) -> [u8; BLOCK_HEADER_LEN] {
        debug_assert!(self.record_count >= 1, "a block holds at least one record");
        let mut h = [0u8; BLOCK_HEADER_LEN];
        h[0..4].copy_from_slice(&BLOCK_MAGIC);
        h[4] = self.codec as u8;
        h[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.record_count.to_le_bytes());
        h[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        h[32..40].copy_from_slice(&self.commit_us.to_le_bytes());
        h[40..48].copy_from_slice(&self.payload_sum.to_le_bytes());
        let sum = xxh3_64_with_seed(&h[0..48], salt);
        h[48..56].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// Decodes and checks a header. Checks run magic, then checksum, then field sanity, so a
    /// flipped byte anywhere in the header is reported as a checksum mismatch or bad magic.
    pub fn decode(b: &[u8], salt: u64) -> Result<Self, FormatError> {
        if b.len() < BLOCK_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "block header",
                need: BLOCK_HEADER_LEN as u64,
                have: b.len() as u64,
            });
        }
        if b[0..4] != BLOCK_MAGIC {
            return Err(FormatError::BadMagic {
                expected: BLOCK_MAGIC.to_vec(),
                found: b[0..4].to_vec(),
            });
        }
        let expected = u64_at(b, 48);
        let got = xxh3_64_with_seed(&b[0..48], salt);
        if got != expected {
            return Err(FormatError::ChecksumMismatch {
                what: "block header",
                got,
                expected,
            });
        }
        let codec = match b[4] {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            other => {
                return Err(FormatError::Malformed {
                    what: "block header",
                    detail: format!("unknown codec {other}"),
                })
            }
        };
        let header = BlockHeader {
            codec,
            payload_len: u32_at(b, 8),
            raw_len: u32_at(b, 12),
            record_count: u32_at(b, 16),
            first_seq: u64_at(b, 24),
            commit_us: u64_at(b, 32),
            payload_sum: u64_at(b, 40),
        };
        let sane = header.record_count >= 1
            && header.payload_len as u64 <= MAX_BLOCK_PAYLOAD
            && header.raw_len as u64 <= MAX_BLOCK_PAYLOAD
            && (codec != Codec::Raw || header.raw_len == header.payload_len)
            && header
                .first_seq
                .checked_add(header.record_count as u64)
                .is_some();
        if !sane {
            return Err(FormatError::Malformed {
                what: "block header",
                detail: format!("inconsistent fields {header:?}"),
            });
        }
        Ok(header)
    }
}

/// Turns batches of records into blocks, reusing its buffers from one block to the next.
pub struct BlockEncoder {
    raw: Vec<u8>,
    compressed: Vec<u8>,
    block: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    min_compress_len: usize,
}

impl BlockEncoder {
    /// `zstd_level` 0 stores every block raw. Payloads shorter than `min_compress_len` are
    /// stored raw too, and so is any payload that zstd would not shrink.
    pub fn new(zstd_level: i32, min_compress_len: usize) -> std::io::Result<Self> {
        let compressor = if zstd_level == 0 {
            None
        } else {
            Some(zstd::bulk::Compressor::new(zstd_level)?)
        };
        Ok(BlockEncoder {
            raw: Vec::new(),
            compressed: Vec::new(),
            block: Vec::new(),
            compressor,
            min_compress_len,
        })
    }

    /// Encodes one block from records. `records` must be non-empty; its raw size must not
    /// exceed [`MAX_BLOCK_PAYLOAD`] (the writer checks before it gets here).
    pub fn encode<'r>(
        &mut self,
        salt: u64,
        first_seq: u64,
        commit_us: u64,
        records: impl IntoIterator<Item = &'r Record>,
    ) -> std::io::Result<&[u8]> {
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let mut count: u32 = 0;
        for r in records {
            r.encode(&mut raw);
            count += 1;
        }
        let result = self.finish(salt, first_seq, commit_us, count, &raw);
        self.raw = raw;
        result.map(|_| &self.block[..])
    }

    /// Encodes one block from payload parts already in the record format (see
    /// [`super::record::RecordBatch`]), holding `count` records in all. A single part is
    /// compressed where it lies; several are joined first.
    pub fn encode_parts(
        &mut self,
        salt: u64,
        first_seq: u64,
        commit_us: u64,
        count: u32,
        parts: &[&[u8]],
    ) -> std::io::Result<&[u8]> {
        if let [one] = parts {
            self.finish(salt, first_seq, commit_us, count, one)?;
        } else {
            let mut raw = std::mem::take(&mut self.raw);
            raw.clear();
            for p in parts {
                raw.extend_from_slice(p);
            }
            let result = self.finish(salt, first_seq, commit_us, count, &raw);
            self.raw = raw;
            result?;
        }
        Ok(&self.block)
    }

    /// Moves the last encoded block out (for I/O that outlives the borrow); hand the buffer
    /// back with [`BlockEncoder::reuse`] to keep its capacity.
    pub fn take_block(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.block)
    }

    /// Gives a buffer from [`BlockEncoder::take_block`] back for the next block.
    pub fn reuse(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > self.block.capacity() {
            buf.clear();
            self.block = buf;
        }
    }

    fn finish(
        &mut self,
        salt: u64,
        first_seq: u64,
        commit_us: u64,
        count: u32,
        raw: &[u8],
    ) -> std::io::Result<()> {
        assert!(count >= 1, "empty block");
        assert!(raw.len() as u64 <= MAX_BLOCK_PAYLOAD, "block over limit");
        let raw_len = raw.len();
        let mut codec = Codec::Raw;
        if let Some(c) = self
            .compressor
            .as_mut()
            .filter(|_| raw_len >= self.min_compress_len)
        {
            self.compressed.clear();
            self.compressed
                .reserve(zstd::zstd_safe::compress_bound(raw_len));
            c.compress_to_buffer(raw, &mut self.compressed)?;
            if self.compressed.len() < raw_len {
                codec = Codec::Zstd;
            }
        }
        let payload: &[u8] = match codec {
            Codec::Raw => raw,
            Codec::Zstd => &self.compressed,
        };
        let header = BlockHeader {
            codec,
            payload_len: payload.len() as u32,
            raw_len: raw_len as u32,
            record_count: count,
            first_seq,
            commit_us,
            payload_sum: xxh3_64_with_seed(payload, salt),
        };
        self.block.clear();
        self.block.extend_from_slice(&header.encode(salt));
        self.block.extend_from_slice(payload);
        Ok(())
    }
}

/// Verifies and decompresses payloads, reusing its buffer.
pub struct BlockDecoder {
    buf: Vec<u8>,
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl BlockDecoder {
    pub fn new() -> std::io::Result<Self> {
        Ok(BlockDecoder {
            buf: Vec::new(),
            decompressor: zstd::bulk::Decompressor::new()?,
        })
    }

    /// Checks the stored payload against the header and returns the raw payload.
    pub fn decode<'a>(
        &'a mut self,
        header: &BlockHeader,
        payload: &'a [u8],
        salt: u64,
    ) -> Result<&'a [u8], FormatError> {
        assert_eq!(
            payload.len(),
            header.payload_len as usize,
            "caller slices the payload"
        );
        let got = xxh3_64_with_seed(payload, salt);
        if got != header.payload_sum {
            return Err(FormatError::ChecksumMismatch {
                what: "block payload",
                got,
                expected: header.payload_sum,
            });
        }
        match header.codec {
            Codec::Raw => Ok(payload),
            Codec::Zstd => {
                self.buf.clear();
                self.buf.reserve(header.raw_len as usize);
                let n = self
                    .decompressor
                    .decompress_to_buffer(payload, &mut self.buf)
                    .map_err(|e| FormatError::Malformed {
                        what: "block payload",
                        detail: format!("zstd: {e}"),
                    })?;
                if n != header.raw_len as usize {
                    return Err(FormatError::Malformed {
                        what: "block payload",
                        detail: format!(
                            "decompressed to {n} bytes, header says {}",
                            header.raw_len
                        ),
                    });
                }
                Ok(&self.buf)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::RecordIter;

    const SALT: u64 = 0x5eed_5a17;

    fn sample(n: usize, value: &[u8]) -> Vec<Record> {
        (0..n)
            .map(|i| {
                if i % 5 == 4 {
                    Record::delete(format!("key:{i}").into_bytes())
                } else {
                    Record::put(format!("key:{i}").into_bytes(), value.to_vec())
                }
            })
            .collect()
    }

    fn decode_all(block: &[u8], salt: u64) -> Result<(BlockHeader, Vec<Record>), FormatError> {
        let h = BlockHeader::decode(block, salt)?;
        let payload = &block[BLOCK_HEADER_LEN..];
        if payload.len() != h.payload_len as usize {
            return Err(FormatError::Truncated {
                what: "block payload",
                need: h.payload_len as u64,
                have: payload.len() as u64,
            });
        }
        let mut dec = BlockDecoder::new().unwrap();
        let raw = dec.decode(&h, payload, salt)?;
        let recs = RecordIter::new(raw)
            .map(|r| r.map(|r| r.to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((h, recs))
    }

    #[test]
    fn round_trip_zstd_and_raw() {
        for (level, value, want) in [
            (1, vec![b'x'; 100], Codec::Zstd),
            (0, vec![b'x'; 100], Codec::Raw),
            (3, vec![b'x'; 100], Codec::Zstd),
            // zstd's fast levels (`--zstd-level -1` to `-7`) write ordinary zstd frames.
            (-1, vec![b'x'; 100], Codec::Zstd),
            (-7, vec![b'x'; 100], Codec::Zstd),
        ] {
            let records = sample(50, &value);
            let mut enc = BlockEncoder::new(level, 64).unwrap();
            let block = enc
                .encode(SALT, 1000, 1_764_075_845_250_000, &records)
                .unwrap()
                .to_vec();
            let (h, back) = decode_all(&block, SALT).unwrap();
            assert_eq!(h.codec, want);
            assert_eq!(h.first_seq, 1000);
            assert_eq!(h.last_seq(), 1049);
            assert_eq!(h.commit_us, 1_764_075_845_250_000);
            assert_eq!(back, records);
        }
    }

    #[test]
    fn tiny_and_incompressible_blocks_are_stored_raw() {
        let mut enc = BlockEncoder::new(1, 64).unwrap();
        let tiny = enc.encode(SALT, 1, 1, &sample(1, b"v")).unwrap().to_vec();
        assert_eq!(BlockHeader::decode(&tiny, SALT).unwrap().codec, Codec::Raw);
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let random = enc
            .encode(SALT, 1, 1, &[Record::put(&b"k"[..], noise)])
            .unwrap()
            .to_vec();
        let h = BlockHeader::decode(&random, SALT).unwrap();
        assert!(h.payload_len <= h.raw_len);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        for level in [0, 1] {
            let records = sample(20, &[b'v'; 100]);
            let mut enc = BlockEncoder::new(level, 64).unwrap();
            let block = enc.encode(SALT, 7, 42, &records).unwrap().to_vec();
            for i in 0..block.len() {
                let mut bad = block.clone();
                bad[i] ^= 0x01;
                let err = decode_all(&bad, SALT).expect_err(&format!("flip at {i} undetected"));
                if i < BLOCK_HEADER_LEN {
                    assert!(
                        matches!(
                            err,
                            FormatError::BadMagic { .. }
                                | FormatError::ChecksumMismatch {
                                    what: "block header",
                                    ..
                                }
                        ),
                        "byte {i}: {err}"
                    );
                } else {
                    assert!(
                        matches!(
                            err,
                            FormatError::ChecksumMismatch {
                                what: "block payload",
                                ..
                            }
                        ),
                        "byte {i}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn block_from_another_segment_fails() {
        let mut enc = BlockEncoder::new(1, 64).unwrap();
        let block = enc
            .encode(SALT, 1, 1, &sample(10, b"value"))
            .unwrap()
            .to_vec();
        let err = decode_all(&block, SALT ^ 1).unwrap_err();
        assert!(matches!(
            err,
            FormatError::ChecksumMismatch {
                what: "block header",
                ..
            }
        ));
    }

    #[test]
    fn short_header_is_truncated_not_corrupt() {
        let mut enc = BlockEncoder::new(1, 64).unwrap();
        let block = enc.encode(SALT, 1, 1, &sample(3, b"v")).unwrap().to_vec();
        let err = BlockHeader::decode(&block[..30], SALT).unwrap_err();
        assert!(matches!(err, FormatError::Truncated { .. }));
    }
}
