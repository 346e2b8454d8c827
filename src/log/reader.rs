//! Reading a shard's log: every record from a sequence number up to a commit time, with
//! every checksum verified.
//!
//! Segments are skipped by sequence (the next segment starts after the wanted one) and by time
//! (a segment created after the target holds nothing at or before it). In a closed segment the
//! per-second index gives where to start and where the target's second ends, so no byte after
//! the cut is read; blocks inside the target's own second are filtered by commit time.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::block::BlockDecoder;
use super::error::{FormatError, LogError};
use super::index::{load_or_rebuild, IndexSource};
use super::record::{RecordIter, RecordRef};
use super::recovery::check_identity;
use super::segment::{self, SegmentHeader, SEGMENT_HEADER_LEN};
use super::stream::{check_order, next_header, BlockStream, StreamError};

/// Which records to read: sequences from `from_seq`, commit times up to `until_us` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRange {
    pub from_seq: u64,
    pub until_us: u64,
    /// Last sequence to read (inclusive): nothing after it is even looked at, so a scan can
    /// run beside the writer up to what is known durable.
    pub until_seq: u64,
}

impl ScanRange {
    pub const ALL: ScanRange = ScanRange {
        from_seq: 0,
        until_us: u64::MAX,
        until_seq: u64::MAX,
    };

    /// Everything committed at or before `t_us`.
    pub fn until(t_us: u64) -> Self {
        ScanRange {
            until_us: t_us,
            ..Self::ALL
        }
    }
}

/// Counters a long scan updates as it goes, for progress reports.
#[derive(Debug, Default)]
pub struct ScanProgress {
    /// Stored bytes of the blocks read so far.
    pub stored_bytes: AtomicU64,
    pub records: AtomicU64,
    /// Commit time of the last block read.
    pub commit_us: AtomicU64,
}

/// How to scan: stop at damage or step over it, where to report progress, and a flag that
/// ends the scan early (checked before each segment and block: a visitor that failed sets it,
/// and the rest of the log is not read for nothing). A stopped scan returns `Ok` with what it
/// read so far: the caller that set the flag knows why.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanOptions<'p> {
    pub tolerant: bool,
    pub progress: Option<&'p ScanProgress>,
    pub stop: Option<&'p AtomicBool>,
}

/// What a scan read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub segments: usize,
    pub blocks: u64,
    pub records: u64,
    /// Logical (decompressed payload) bytes of the blocks decoded.
    pub raw_bytes: u64,
    /// Bytes of the blocks decoded as stored on disk, headers included.
    pub stored_bytes: u64,
    /// Sequence and commit time of the last record handed to the visitor (0 if none).
    pub last_seq: u64,
    pub last_commit_us: u64,
}

/// Reads the shard log in `dir` and calls `visit(seq, commit_us, record)` for every record in
/// `range`, in log order. Stops with an error naming the file and offset at the first damaged
/// byte; a torn tail is reported as [`LogError::TornTail`] (recovery cuts those first).
pub fn scan_shard(
    dir: &Path,
    table_id: u64,
    shard: u32,
    range: ScanRange,
    visit: impl FnMut(u64, u64, RecordRef<'_>),
) -> Result<ScanStats, LogError> {
    scan_shard_with(dir, table_id, shard, range, ScanOptions::default(), visit)
        .map(|(stats, _)| stats)
}

/// Records a tolerant scan had to skip because their bytes were damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    pub path: std::path::PathBuf,
    /// Byte range skipped in the file.
    pub offset: u64,
    pub end: u64,
    /// First and last sequence lost, where the surrounding blocks tell them.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Commit times of the last good block before and the first good block after.
    pub after_us: u64,
    pub before_us: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for LostRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes {}..{}",
            self.path.display(),
            self.offset,
            self.end
        )?;
        let show = |s: Option<u64>| s.map_or("?".to_string(), |s| s.to_string());
        write!(
            f,
            ", sequences {}..={}",
            show(self.first_seq),
            show(self.last_seq)
        )?;
        write!(f, ", committed after {} us", self.after_us)?;
        if let Some(b) = self.before_us {
            write!(f, " and at or before {b} us")?;
        }
        write!(f, " ({})", self.reason)
    }
}

/// [`scan_shard`], optionally tolerant: a damaged block (or run of bytes) is skipped and
/// reported instead of stopping the scan. The reader picks up at the next valid block header.
pub fn scan_shard_with(
    dir: &Path,
    table_id: u64,
    shard: u32,
    range: ScanRange,
    opts: ScanOptions<'_>,
    mut visit: impl FnMut(u64, u64, RecordRef<'_>),
) -> Result<(ScanStats, Vec<LostRange>), LogError> {
    let tolerant = opts.tolerant;
    let segments = segment::list(dir)?;
    let mut lost: Vec<LostRange> = Vec::new();
    let mut stats = ScanStats::default();
    let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(dir, e))?;
    // The sequence the next block must start with, once known.
    let mut expected: Option<u64> = None;
    let mut last_commit_us = 0u64;
    for (i, seg) in segments.iter().enumerate() {
        if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok((stats, lost));
        }
        let is_last = i + 1 == segments.len();
        if segments
            .get(i + 1)
            .is_some_and(|n| n.first_seq <= range.from_seq)
        {
            expected = None; // skipped a whole segment: continuity restarts at the next one
            continue;
        }
        let path = &seg.path;
        let file = File::open(path).map_err(|e| LogError::io(path, e))?;
        let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        let header = read_header(&file, path)?;
        check_identity(&header, seg, table_id, shard)?;
        if header.created_us > range.until_us || header.first_seq > range.until_seq {
            break;
        }
        if let Some(want) = expected.filter(|&w| w != header.first_seq) {
            return Err(LogError::SequenceGap {
                path: path.clone(),
                offset: 0,
                expected: want,
                found: header.first_seq,
            });
        }
        // The newest segment has no index file yet; its scan stops on commit time instead.
        let (mut start, mut end) = (SEGMENT_HEADER_LEN as u64, len);
        let needs_index = range.from_seq > header.first_seq || range.until_us != u64::MAX;
        if needs_index && !is_last {
            let (index, source) = load_or_rebuild(&seg.index_path(), &file, path, &header, len)?;
            if let IndexSource::Rebuilt(why) = source {
                tracing::warn!("rebuilt the index of {} in memory: {why}", path.display());
            }
            start = index.start_for_seq(range.from_seq);
            end = index.cut_after(range.until_us).unwrap_or(len);
            if start != SEGMENT_HEADER_LEN as u64 {
                expected = None;
            }
        }
        stats.segments += 1;
        let salt = header.salt();
        let mut stream = BlockStream::new(&file, salt, start, end);
        loop {
            if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok((stats, lost));
            }
            let block = match stream.next_block() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(StreamError::Io(e)) => return Err(LogError::io(path, e)),
                Err(StreamError::Format { offset, error }) if tolerant => {
                    let next = next_header(&file, salt, offset + 1, end)
                        .map_err(|e| LogError::io(path, e))?;
                    lost.push(LostRange {
                        path: path.clone(),
                        offset,
                        end: next.unwrap_or(end),
                        first_seq: expected,
                        last_seq: None,
                        after_us: last_commit_us,
                        before_us: None,
                        reason: error.to_string(),
                    });
                    expected = None;
                    match next {
                        Some(n) => {
                            stream.seek(n);
                            continue;
                        }
                        None => break,
                    }
                }
                Err(StreamError::Format { offset, error }) => {
                    return Err(stream_error(path, offset, error))
                }
            };
            let h = block.header;
            if let Some(l) = lost.last_mut().filter(|l| l.before_us.is_none()) {
                // The first good block after a skipped run bounds what was lost.
                l.before_us = Some(h.commit_us);
                if l.last_seq.is_none() {
                    l.last_seq = h.first_seq.checked_sub(1);
                }
            }
            check_order(path, block.offset, &h, expected, last_commit_us)?;
            if h.commit_us > range.until_us || h.first_seq > range.until_seq {
                return Ok((stats, lost));
            }
            last_commit_us = h.commit_us;
            expected = Some(h.last_seq() + 1);
            if h.last_seq() < range.from_seq {
                continue;
            }
            let damaged = |source| LogError::Damaged {
                path: path.clone(),
                offset: block.offset,
                source,
            };
            // Tolerant scans check a block's records before visiting any, so a damaged block
            // is skipped whole; strict scans stop at the first bad byte anyway.
            let checked = decoder.decode(&h, block.payload, salt).and_then(|raw| {
                if tolerant {
                    check_records(raw, &h)?;
                }
                Ok(raw)
            });
            let raw = match checked {
                Ok(raw) => raw,
                Err(error) if tolerant => {
                    lost.push(LostRange {
                        path: path.clone(),
                        offset: block.offset,
                        end: block.offset + h.block_len(),
                        first_seq: Some(h.first_seq),
                        last_seq: Some(h.last_seq()),
                        after_us: h.commit_us.saturating_sub(1),
                        before_us: Some(h.commit_us),
                        reason: error.to_string(),
                    });
                    continue;
                }
                Err(error) => return Err(damaged(error)),
            };
            let mut seq = h.first_seq;
            for r in RecordIter::new(raw) {
                let r = r.map_err(damaged)?;
                if seq >= range.from_seq {
                    visit(seq, h.commit_us, r);
                    stats.records += 1;
                }
                seq += 1;
            }
            if seq != h.last_seq() + 1 {
                return Err(damaged(FormatError::Malformed {
                    what: "block payload",
                    detail: format!(
                        "{} records, header says {}",
                        seq - h.first_seq,
                        h.record_count
                    ),
                }));
            }
            stats.blocks += 1;
            stats.raw_bytes += h.raw_len as u64;
            stats.stored_bytes += h.block_len();
            stats.last_seq = h.last_seq();
            stats.last_commit_us = h.commit_us;
            if let Some(p) = opts.progress {
                p.stored_bytes.fetch_add(h.block_len(), Ordering::Relaxed);
                p.records
                    .fetch_add(h.record_count as u64, Ordering::Relaxed);
                p.commit_us.store(h.commit_us, Ordering::Relaxed);
            }
            if h.last_seq() >= range.until_seq {
                return Ok((stats, lost));
            }
        }
    }
    Ok((stats, lost))
}

/// Checks that a raw payload holds exactly the header's records, all well formed.
fn check_records(raw: &[u8], h: &super::block::BlockHeader) -> Result<(), FormatError> {
    let mut n = 0u64;
    for r in RecordIter::new(raw) {
        r?;
        n += 1;
    }
    if n != h.record_count as u64 {
        return Err(FormatError::Malformed {
            what: "block payload",
            detail: format!("{n} records, header says {}", h.record_count),
        });
    }
    Ok(())
}

/// Checks every checksum and record of a shard log without keeping anything.
pub fn verify_shard(dir: &Path, table_id: u64, shard: u32) -> Result<ScanStats, LogError> {
    scan_shard(dir, table_id, shard, ScanRange::ALL, |_, _, _| {})
}

/// A segment file's header, checked.
pub(crate) fn read_header(file: &File, path: &Path) -> Result<SegmentHeader, LogError> {
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| LogError::io(path, e))?;
    SegmentHeader::decode(&buf[..n]).map_err(|source| LogError::Damaged {
        path: path.to_path_buf(),
        offset: 0,
        source,
    })
}

/// A block that runs past the end of the range read is a torn tail; anything else is damage.
fn stream_error(path: &Path, offset: u64, error: FormatError) -> LogError {
    match error {
        FormatError::Truncated { .. } => LogError::TornTail {
            path: path.to_path_buf(),
            offset,
            source: error,
        },
        _ => LogError::Damaged {
            path: path.to_path_buf(),
            offset,
            source: error,
        },
    }
}
