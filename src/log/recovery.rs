//! Crash recovery of one shard's log: find where it ends, cut a torn tail, refuse real damage.
//!
//! Only the newest segment can have a torn tail: a segment is synced before the next one is
//! created. In it, a bad block is a torn tail when nothing valid follows it (the file ends
//! inside the block, or the block is the last one, or no valid block header can be found after
//! it); then the file is cut back to the last whole block, synced, and the cut is reported.
//! Anything else is damage, reported with file and offset. Older segments are checked by the
//! reader when they are replayed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::block::BlockDecoder;
use super::error::{FormatError, LogError};
use super::fsutil::sync_dir;
use super::index::SecondIndex;
use super::segment::{self, SegmentFile, SegmentHeader, SEGMENT_HEADER_LEN};
use super::stream::{check_order, next_header, BlockStream, StreamError};

/// The segment the writer continues in.
#[derive(Debug)]
pub struct ActiveSegment {
    pub path: PathBuf,
    pub file: File,
    pub header: SegmentHeader,
    pub len: u64,
    /// File size: bytes past `len` are preallocated zeros.
    pub alloc_end: u64,
    pub index: SecondIndex,
}

/// Where a torn tail was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes_cut: u64,
    pub reason: String,
}

#[derive(Debug)]
pub struct Recovered {
    /// The sequence number the next record gets (sequences start at 1).
    pub next_seq: u64,
    /// Commit time of the newest block, 0 for an empty log.
    pub last_commit_us: u64,
    pub segments: usize,
    pub active: Option<ActiveSegment>,
    pub torn: Option<TornTail>,
}

/// Recovers the shard log in `dir`, created for `table_id`/`shard`. Cuts a torn tail.
///
/// With `tolerant`, damage before the tail is stepped over (logged with its byte range and,
/// where known, its sequences) instead of refusing; the damaged bytes stay in the file.
pub fn recover_shard(
    dir: &Path,
    table_id: u64,
    shard: u32,
    tolerant: bool,
) -> Result<Recovered, LogError> {
    let mut segments = segment::list(dir)?;
    let mut torn = None;
    loop {
        let Some(last) = segments.last().cloned() else {
            return Ok(Recovered {
                next_seq: 1,
                last_commit_us: 0,
                segments: 0,
                active: None,
                torn,
            });
        };
        match recover_last(&last, table_id, shard, tolerant)? {
            Tail::Active(active, last_commit_us, next_seq, cut) => {
                return Ok(Recovered {
                    next_seq,
                    last_commit_us,
                    segments: segments.len(),
                    active: Some(active),
                    torn: cut.or(torn),
                })
            }
            Tail::HeaderTorn(cut) => {
                // Crash while the segment was being created: it holds no block. Remove it
                // and continue in the previous one.
                std::fs::remove_file(&last.path).map_err(|e| LogError::io(&last.path, e))?;
                sync_dir(dir)?;
                tracing::warn!("removed half-created segment {}", last.path.display());
                torn = Some(cut);
                segments.pop();
            }
        }
    }
}

/// A bad spot a tolerant recovery stepped over.
struct Skipped {
    offset: u64,
    end: u64,
    error: FormatError,
    /// The sequences it held, when its header was readable.
    seqs: Option<(u64, u64)>,
}

enum Tail {
    Active(ActiveSegment, u64, u64, Option<TornTail>),
    HeaderTorn(TornTail),
}

fn damaged(path: &Path, offset: u64, source: FormatError) -> LogError {
    LogError::Damaged {
        path: path.to_path_buf(),
        offset,
        source,
    }
}

fn recover_last(
    seg: &SegmentFile,
    table_id: u64,
    shard: u32,
    tolerant: bool,
) -> Result<Tail, LogError> {
    let path = &seg.path;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| LogError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    let mut head = vec![0u8; SEGMENT_HEADER_LEN.min(file_len as usize)];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0)
        .map_err(|e| LogError::io(path, e))?;
    let header = match SegmentHeader::decode(&head) {
        Ok(h) => h,
        // A segment with no room for a block can only be a crash during its creation.
        Err(e) if file_len <= SEGMENT_HEADER_LEN as u64 => {
            return Ok(Tail::HeaderTorn(TornTail {
                path: path.clone(),
                offset: 0,
                bytes_cut: file_len,
                reason: e.to_string(),
            }))
        }
        Err(e) => return Err(damaged(path, 0, e)),
    };
    check_identity(&header, seg, table_id, shard)?;
    let salt = header.salt();
    let mut index = SecondIndex::new();
    let mut next_seq = header.first_seq;
    let mut last_commit_us = 0;
    let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(path, e))?;
    let mut stream = BlockStream::new(&file, salt, SEGMENT_HEADER_LEN as u64, file_len);
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut resync = false;
    let stop = loop {
        let block = match stream.next_block() {
            Ok(Some(b)) => b,
            Ok(None) => break None,
            Err(StreamError::Io(e)) => return Err(LogError::io(path, e)),
            Err(StreamError::Format { offset, error }) => {
                if matches!(error, FormatError::Truncated { .. }) {
                    break Some((offset, error));
                }
                let next = next_header(&file, salt, offset + 1, file_len)
                    .map_err(|e| LogError::io(path, e))?;
                match next {
                    // Nothing valid follows: a torn tail.
                    None => break Some((offset, error)),
                    Some(n) if tolerant => {
                        skipped.push(Skipped {
                            offset,
                            end: n,
                            error,
                            seqs: None,
                        });
                        stream.seek(n);
                        resync = true;
                        continue;
                    }
                    Some(_) => return Err(damaged(path, offset, error)),
                }
            }
        };
        let h = block.header;
        if let Err(error) = decoder.decode(&h, block.payload, salt) {
            let end = block.offset + h.block_len();
            let later =
                next_header(&file, salt, end, file_len).map_err(|e| LogError::io(path, e))?;
            if later.is_none() {
                break Some((block.offset, error)); // nothing valid after it: torn
            }
            if !tolerant {
                return Err(damaged(path, block.offset, error));
            }
            let end = block.offset + h.block_len();
            skipped.push(Skipped {
                offset: block.offset,
                end,
                error,
                seqs: Some((h.first_seq, h.last_seq())),
            });
            resync = true;
            continue;
        }
        if resync && h.first_seq >= next_seq {
            resync = false;
            next_seq = h.first_seq;
        }
        check_order(path, block.offset, &h, Some(next_seq), last_commit_us)?;
        index.note_block(h.commit_us, block.offset, h.first_seq);
        next_seq = h.last_seq() + 1;
        last_commit_us = h.commit_us;
    };
    for Skipped {
        offset,
        end,
        error,
        seqs,
    } in &skipped
    {
        let seqs = seqs.map_or("unknown sequences".to_string(), |(a, b)| {
            format!("sequences {a}..={b}")
        });
        tracing::error!(
            "tolerant recovery skipped damaged bytes {offset}..{end} of {} ({seqs}): {error}",
            path.display()
        );
    }
    // Without a torn tail the log ends at the preallocated zeros, or at the end of the file.
    let mut len = stream.zero_tail().unwrap_or(file_len);
    let mut alloc_end = file_len;
    let mut cut = None;
    if let Some((offset, error)) = stop {
        file.set_len(offset)
            .and_then(|_| file.sync_all())
            .map_err(|e| LogError::io(path, e))?;
        tracing::warn!(
            "cut torn tail of {} at offset {offset} ({} bytes): {error}",
            path.display(),
            file_len - offset
        );
        cut = Some(TornTail {
            path: path.clone(),
            offset,
            bytes_cut: file_len - offset,
            reason: error.to_string(),
        });
        len = offset;
        alloc_end = offset;
    }
    let active = ActiveSegment {
        path: path.clone(),
        file,
        header,
        len,
        alloc_end,
        index,
    };
    Ok(Tail::Active(active, last_commit_us, next_seq, cut))
}

/// Checks that a segment's header matches its file name and its shard.
pub fn check_identity(
    header: &SegmentHeader,
    seg: &SegmentFile,
    table_id: u64,
    shard: u32,
) -> Result<(), LogError> {
    if header.first_seq != seg.first_seq || header.table_id != table_id || header.shard != shard {
        return Err(damaged(
            &seg.path,
            0,
            FormatError::Malformed {
                what: "segment header",
                detail: format!(
                    "belongs to table {} shard {} from sequence {}, expected table {table_id} shard {shard} from sequence {}",
                    header.table_id, header.shard, header.first_seq, seg.first_seq
                ),
            },
        ));
    }
    Ok(())
}
