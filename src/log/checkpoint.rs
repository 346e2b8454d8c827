//! Checkpoints: a compressed, checksummed image of one table shard's map.
//!
//! A checkpoint taken while writes go on ("fuzzy") holds, for every key, a value from some
//! moment between sequences `start_seq` and `end_seq`. Replaying the log from `start_seq + 1`
//! over it gives the exact state; it can stand in for the log only for times at or after
//! `end_us`, the commit time of `end_seq`. A restored table starts from a checkpoint with
//! `start_seq = end_seq = 0`: its own log begins at sequence 1.
//!
//! ```text
//! checkpoint := header:[u8; 64] block* footer:[u8; 24]
//!
//! header (little-endian)
//! | off | size | field       | meaning                                                |
//! |-----|------|-------------|--------------------------------------------------------|
//! |   0 |    7 | magic       | b"RWNDCKP"                                             |
//! |   7 |    1 | version     | 1                                                      |
//! |   8 |    8 | table_id    |                                                        |
//! |  16 |    4 | shard       |                                                        |
//! |  20 |    4 | reserved    | zero                                                   |
//! |  24 |    8 | start_seq   | the log is replayed from start_seq + 1 over the image  |
//! |  32 |    8 | end_seq     | every record up to here is in the image                |
//! |  40 |    8 | end_us      | commit time of end_seq: usable for times >= end_us     |
//! |  48 |    8 | created_us  | when the checkpoint was written                        |
//! |  56 |    8 | header_sum  | xxh3-64 of bytes 0..56                                 |
//!
//! blocks: the segment block format (see block.rs), holding only puts; `first_seq` counts
//! entries from 1 and `commit_us` is `end_us`.
//!
//! footer
//! |   0 |    7 | magic       | b"RWCKEND"                                             |
//! |   7 |    1 | version     | 1                                                      |
//! |   8 |    8 | entries     | number of entries                                      |
//! |  16 |    8 | footer_sum  | xxh3-64 of bytes 0..16, seeded with the salt           |
//! ```
//!
//! File name: `ckp-<end_seq as 20 digits>.ckp`, written to a temporary name, synced, renamed
//! and the directory synced, so a checkpoint file is whole or absent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::block::{u64_at, BlockDecoder, BlockEncoder};
use super::error::{FormatError, LogError};
use super::fsutil::sync_dir;
use super::record::{RecordBatch, RecordIter};
use super::stream::{BlockStream, StreamError};

mod chunks;
mod load;
mod out;
pub use chunks::ChunkSource;
pub use load::read_parallel;
use out::CheckpointOut;
pub use out::CHECKPOINT_SYNC_EVERY_BYTES;

pub const CHECKPOINT_MAGIC: [u8; 7] = *b"RWNDCKP";
pub const FOOTER_MAGIC: [u8; 7] = *b"RWCKEND";
pub const CHECKPOINT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 64;
pub const FOOTER_LEN: usize = 24;
/// Raw bytes of entries per block.
pub const BLOCK_TARGET: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    pub table_id: u64,
    pub shard: u32,
    pub start_seq: u64,
    pub end_seq: u64,
    pub end_us: u64,
    pub created_us: u64,
}

impl CheckpointHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..7].copy_from_slice(&CHECKPOINT_MAGIC);
        h[7] = CHECKPOINT_VERSION;
        h[8..16].copy_from_slice(&self.table_id.to_le_bytes());
        h[16..20].copy_from_slice(&self.shard.to_le_bytes());
        h[24..32].copy_from_slice(&self.start_seq.to_le_bytes());
        h[32..40].copy_from_slice(&self.end_seq.to_le_bytes());
        h[40..48].copy_from_slice(&self.end_us.to_le_bytes());
        h[48..56].copy_from_slice(&self.created_us.to_le_bytes());
        let sum = xxh3_64(&h[0..56]);
        h[56..64].copy_from_slice(&sum.to_le_bytes());
        h
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        if b.len() < HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "checkpoint header",
                need: HEADER_LEN as u64,
                have: b.len() as u64,
            });
        }
        if b[0..7] != CHECKPOINT_MAGIC {
            return Err(FormatError::BadMagic {
                expected: CHECKPOINT_MAGIC.to_vec(),
                found: b[0..7].to_vec(),
            });
        }
        let (got, expected) = (xxh3_64(&b[0..56]), u64_at(b, 56));
        if got != expected {
            return Err(FormatError::ChecksumMismatch {
                what: "checkpoint header",
                got,
                expected,
            });
        }
        if b[7] != CHECKPOINT_VERSION {
            return Err(FormatError::BadVersion {
                what: "checkpoint",
                found: b[7],
                supported: CHECKPOINT_VERSION,
            });
        }
        Ok(CheckpointHeader {
            table_id: u64_at(b, 8),
            shard: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
            start_seq: u64_at(b, 24),
            end_seq: u64_at(b, 32),
            end_us: u64_at(b, 40),
            created_us: u64_at(b, 48),
        })
    }

    /// Seeds the checksums of the blocks and the footer. It leaves out `end_seq` and
    /// `end_us`, which a fuzzy checkpoint learns only once its entries are written.
    pub fn salt(&self) -> u64 {
        let h = self.encode();
        let mut id = [0u8; 32];
        id[..24].copy_from_slice(&h[8..32]);
        id[24..].copy_from_slice(&h[48..56]);
        xxh3_64_with_seed(&id, 0x636b_7074)
    }
}

pub fn file_name(end_seq: u64) -> String {
    format!("ckp-{end_seq:020}.ckp")
}

/// The checkpoints in a shard directory, oldest first, by `end_seq` in the name.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let path = entry.map_err(|e| LogError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(seq) = name
            .strip_prefix("ckp-")
            .and_then(|n| n.strip_suffix(".ckp"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a checkpoint of `entries` into `dir` atomically; returns its path and entry count.
pub fn write(
    dir: &Path,
    header: &CheckpointHeader,
    zstd_level: i32,
    entries: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
) -> Result<(PathBuf, u64), LogError> {
    let mut w = CheckpointWriter::create(dir, header, zstd_level)?;
    for (k, v) in entries {
        w.put(k.as_ref(), v.as_ref())?;
    }
    w.finish()
}

/// Writes a checkpoint entry by entry: to a temporary file, renamed into place by `finish`.
pub struct CheckpointWriter {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    /// `None` once `finish` took it.
    out: Option<CheckpointOut>,
    /// True once the file is in place under its final name.
    renamed: bool,
    header: CheckpointHeader,
    salt: u64,
    encoder: BlockEncoder,
    batch: RecordBatch,
    first: u64,
    count: u64,
    zstd_level: i32,
}

impl CheckpointWriter {
    pub fn create(
        dir: &Path,
        header: &CheckpointHeader,
        zstd_level: i32,
    ) -> Result<Self, LogError> {
        let path = dir.join(file_name(header.end_seq));
        let tmp = dir.join(format!(
            "ckp-{}-{}.tmp",
            header.start_seq, header.created_us
        ));
        let mut out = CheckpointOut::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
        out.write_all(&header.encode())
            .map_err(|e| LogError::io(&tmp, e))?;
        let encoder = BlockEncoder::new(zstd_level, 256).map_err(|e| LogError::io(&tmp, e))?;
        Ok(CheckpointWriter {
            dir: dir.to_path_buf(),
            path,
            tmp,
            out: Some(out),
            renamed: false,
            header: *header,
            salt: header.salt(),
            encoder,
            batch: RecordBatch::new(),
            first: 1,
            count: 0,
            zstd_level,
        })
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), LogError> {
        self.batch.put(key, value);
        self.count += 1;
        if self.batch.bytes().len() >= BLOCK_TARGET {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), LogError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let count = self.batch.len();
        let batch = std::mem::take(&mut self.batch);
        let first = self.first;
        self.first = self.count + 1;
        let block = self
            .encoder
            .encode_parts(
                self.salt,
                first,
                self.header.end_us,
                count,
                &[batch.bytes()],
            )
            .map_err(|e| LogError::io(&self.tmp, e))?;
        let out = self.out.as_mut().expect("writer is open until finish");
        out.write_all(block).map_err(|e| LogError::io(&self.tmp, e))
    }

    fn write_block(&mut self, block: &[u8]) -> Result<(), LogError> {
        let out = self.out.as_mut().expect("writer is open until finish");
        out.write_all(block).map_err(|e| LogError::io(&self.tmp, e))
    }

    /// Like [`CheckpointWriter::finish`], first recording where a fuzzy checkpoint ended: the
    /// header is rewritten with `end_seq` and `end_us`, and the file named after `end_seq`.
    pub fn finish_at(mut self, end_seq: u64, end_us: u64) -> Result<(PathBuf, u64), LogError> {
        self.header.end_seq = end_seq;
        self.header.end_us = end_us;
        self.path = self.dir.join(file_name(end_seq));
        self.finish()
    }

    /// Writes the footer, syncs, renames into place and syncs the directory.
    pub fn finish(mut self) -> Result<(PathBuf, u64), LogError> {
        self.flush_block()?;
        #[cfg(feature = "failpoints")]
        if let Some(e) = super::failpoint::checkpoint_fault() {
            return Err(LogError::io(&self.tmp, e));
        }
        let mut footer = [0u8; FOOTER_LEN];
        footer[0..7].copy_from_slice(&FOOTER_MAGIC);
        footer[7] = CHECKPOINT_VERSION;
        footer[8..16].copy_from_slice(&self.count.to_le_bytes());
        let sum = xxh3_64_with_seed(&footer[0..16], self.salt);
        footer[16..24].copy_from_slice(&sum.to_le_bytes());
        let tmp = self.tmp.clone();
        let io = |e| LogError::io(&tmp, e);
        self.out().write_all(&footer).map_err(io)?;
        let out = self.out.take().expect("writer is open until finish");
        drop(out.finish(&self.header.encode()).map_err(io)?);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| LogError::io(&self.path, e))?;
        self.renamed = true;
        sync_dir(&self.dir)?;
        Ok((self.path.clone(), self.count))
    }

    fn out(&mut self) -> &mut CheckpointOut {
        self.out.as_mut().expect("writer is open until finish")
    }
}

impl Drop for CheckpointWriter {
    /// A checkpoint that failed or was abandoned leaves no temporary file behind.
    fn drop(&mut self) {
        if !self.renamed {
            // What is still gathered is dropped with the file about to go.
            drop(self.out.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn damaged(path: &Path, offset: u64, source: FormatError) -> LogError {
    LogError::Damaged {
        path: path.to_path_buf(),
        offset,
        source,
    }
}

fn malformed(path: &Path, offset: u64, detail: String) -> LogError {
    damaged(
        path,
        offset,
        FormatError::Malformed {
            what: "checkpoint",
            detail,
        },
    )
}

/// Reads the header of a checkpoint file.
pub fn read_header(path: &Path) -> Result<CheckpointHeader, LogError> {
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let mut buf = [0u8; HEADER_LEN];
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| LogError::io(path, e))?;
    CheckpointHeader::decode(&buf[..n]).map_err(|e| damaged(path, 0, e))
}

/// Reads a whole checkpoint, checking every checksum and the entry count, and calls
/// `visit(key, value)` for each entry. Checks it belongs to `table_id`/`shard`.
pub fn read(
    path: &Path,
    table_id: u64,
    shard: u32,
    mut visit: impl FnMut(&[u8], &[u8]),
) -> Result<CheckpointHeader, LogError> {
    read_with_offsets(path, table_id, shard, |_, k, v| visit(k, v))
}

/// A checkpoint whose header, table, shard and footer were checked: its blocks lie between
/// `HEADER_LEN` and `footer_at`.
struct Opened {
    header: CheckpointHeader,
    file: File,
    salt: u64,
    footer_at: u64,
    entries: u64,
}

fn open_checked(path: &Path, table_id: u64, shard: u32) -> Result<Opened, LogError> {
    let header = read_header(path)?;
    if header.table_id != table_id || header.shard != shard {
        let detail = format!(
            "belongs to table {} shard {}, expected table {table_id} shard {shard}",
            header.table_id, header.shard
        );
        return Err(damaged(
            path,
            0,
            FormatError::Malformed {
                what: "checkpoint header",
                detail,
            },
        ));
    }
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    if len < (HEADER_LEN + FOOTER_LEN) as u64 {
        let e = FormatError::Truncated {
            what: "checkpoint",
            need: (HEADER_LEN + FOOTER_LEN) as u64,
            have: len,
        };
        return Err(damaged(path, 0, e));
    }
    let salt = header.salt();
    let footer_at = len - FOOTER_LEN as u64;
    let mut footer = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut footer, footer_at)
        .map_err(|e| LogError::io(path, e))?;
    if footer[0..7] != FOOTER_MAGIC {
        let e = FormatError::BadMagic {
            expected: FOOTER_MAGIC.to_vec(),
            found: footer[0..7].to_vec(),
        };
        return Err(damaged(path, footer_at, e));
    }
    let (got, expected) = (xxh3_64_with_seed(&footer[0..16], salt), u64_at(&footer, 16));
    if got != expected {
        let e = FormatError::ChecksumMismatch {
            what: "checkpoint footer",
            got,
            expected,
        };
        return Err(damaged(path, footer_at, e));
    }
    let entries = u64_at(&footer, 8);
    Ok(Opened {
        header,
        file,
        salt,
        footer_at,
        entries,
    })
}

/// The number of entries a checkpoint's footer records, after checking its header and footer.
pub fn entry_count(path: &Path, table_id: u64, shard: u32) -> Result<u64, LogError> {
    Ok(open_checked(path, table_id, shard)?.entries)
}

/// Refuses a checkpoint whose `entries` loaded as fewer `distinct` keys: it held a key twice.
pub fn check_distinct(path: &Path, distinct: u64, entries: u64) -> Result<(), LogError> {
    if distinct == entries {
        return Ok(());
    }
    let detail = format!("{entries} entries hold {distinct} distinct keys: a key repeats");
    Err(malformed(path, 0, detail))
}

/// [`read`], telling `visit` the file offset of the block each entry is in.
pub fn read_with_offsets(
    path: &Path,
    table_id: u64,
    shard: u32,
    mut visit: impl FnMut(u64, &[u8], &[u8]),
) -> Result<CheckpointHeader, LogError> {
    let Opened {
        header,
        file,
        salt,
        footer_at,
        entries,
    } = open_checked(path, table_id, shard)?;
    let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(path, e))?;
    let mut stream = BlockStream::new(&file, salt, HEADER_LEN as u64, footer_at);
    let mut seen = 0u64;
    loop {
        let block = match stream.next_block() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(StreamError::Io(e)) => return Err(LogError::io(path, e)),
            Err(StreamError::Format { offset, error }) => return Err(damaged(path, offset, error)),
        };
        let at = block.offset;
        let h = block.header;
        if h.first_seq != seen + 1 {
            let detail = format!(
                "block starts at entry {}, expected {}",
                h.first_seq,
                seen + 1
            );
            return Err(malformed(path, at, detail));
        }
        let raw = decoder
            .decode(&h, block.payload, salt)
            .map_err(|e| damaged(path, at, e))?;
        for r in RecordIter::new(raw) {
            match r.map_err(|e| damaged(path, at, e))? {
                super::RecordRef::Put { key, value } => visit(at, key, value),
                super::RecordRef::Delete { .. } => {
                    return Err(malformed(path, at, "a delete in a checkpoint".into()));
                }
            }
            seen += 1;
        }
    }
    if seen != entries {
        let detail = format!("{seen} entries, footer says {entries}");
        return Err(damaged(
            path,
            footer_at,
            FormatError::Malformed {
                what: "checkpoint",
                detail,
            },
        ));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            table_id: 3,
            shard: 1,
            start_seq: 100,
            end_seq: 180,
            end_us: 1_764_075_600_000_000,
            created_us: 1_764_075_601_000_000,
        }
    }

    fn entries(n: usize) -> Entries {
        (0..n)
            .map(|i| {
                (
                    format!("key{i}").into_bytes(),
                    format!("value-{i}-{}", "v".repeat(i % 50)).into_bytes(),
                )
            })
            .collect()
    }

    type Entries = Vec<(Vec<u8>, Vec<u8>)>;

    fn read_all(path: &Path) -> Result<Entries, LogError> {
        let mut out = Vec::new();
        read(path, 3, 1, |k, v| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    #[test]
    fn header_round_trip_and_flips() {
        let h = header();
        assert_eq!(CheckpointHeader::decode(&h.encode()).unwrap(), h);
        for i in 0..HEADER_LEN {
            let mut b = h.encode();
            b[i] ^= 1;
            assert!(CheckpointHeader::decode(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn round_trip_many_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let e = entries(40_000);
        let (path, n) = write(dir.path(), &header(), 1, e.iter().map(|(k, v)| (k, v))).unwrap();
        assert_eq!(n, 40_000);
        assert_eq!(read_all(&path).unwrap(), e);
        assert_eq!(list(dir.path()).unwrap(), vec![(180, path.clone())]);
        let empty = CheckpointHeader {
            end_seq: 0,
            ..header()
        };
        let (p0, n0) = write(dir.path(), &empty, 1, Vec::<(&[u8], &[u8])>::new()).unwrap();
        assert_eq!((n0, read_all(&p0).unwrap().len()), (0, 0));
    }

    #[test]
    fn fuzzy_end_is_recorded_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let start = CheckpointHeader {
            end_seq: 0,
            end_us: 0,
            ..header()
        };
        let mut w = CheckpointWriter::create(dir.path(), &start, 1).unwrap();
        w.put(b"k", b"v").unwrap();
        let (path, n) = w.finish_at(250, 99).unwrap();
        assert_eq!(
            (n, path.file_name().unwrap().to_str().unwrap()),
            (1, "ckp-00000000000000000250.ckp")
        );
        let h = read(&path, 3, 1, |_, _| {}).unwrap();
        assert_eq!((h.start_seq, h.end_seq, h.end_us), (100, 250, 99));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn every_flipped_byte_of_a_real_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write(
            dir.path(),
            &header(),
            1,
            entries(300).iter().map(|(k, v)| (k, v)),
        )
        .unwrap();
        let good = std::fs::read(&path).unwrap();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                read_all(&path).is_err(),
                "flip at {i} of {} undetected",
                good.len()
            );
        }
        // Cut at a block boundary: the footer is gone, so it is refused.
        std::fs::write(&path, &good[..good.len() - FOOTER_LEN]).unwrap();
        assert!(read_all(&path).is_err());
        std::fs::write(&path, &good).unwrap();
        assert!(
            read(&path, 3, 2, |_, _| {}).is_err(),
            "another shard's checkpoint"
        );
    }
}
