//! Reading what a shard's local log holds past what the archive has: the next run of whole,
//! durable blocks of one segment, as the bytes of that segment file.
//!
//! Blocks up to the durable sequence are whole on disk before that sequence is published, so
//! they are read beside the writer without locks; anything past it is not looked at.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::error::ArchiveError;
use super::part::PartHeader;
use crate::log::reader::read_header;
use crate::log::segment::{self, SEGMENT_HEADER_LEN};
use crate::log::stream::{BlockStream, StreamError};
use crate::log::LogError;

/// Bytes read at a time: what a second of writes usually adds, not the reader's 8 MiB.
const TAIL_CHUNK: usize = 1 << 20;

/// Where shipping of one shard stands: the next byte of which segment, and the next sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub segment_seq: u64,
    pub offset: u64,
    /// First sequence not in the archive.
    pub next_seq: u64,
    /// Commit time and header checksum of the last block in the archive.
    pub last_us: u64,
    pub last_block_sum: u64,
}

/// What the local log has next.
#[derive(Debug)]
pub enum Step {
    /// Blocks to ship as one part, and the cursor once they are shipped.
    Part {
        header: PartHeader,
        payload: Vec<u8>,
        next: Cursor,
    },
    /// The cursor's segment is sealed and shipped to its end: go on with the next one.
    /// Carries the sealed segment (for its index) and the new cursor.
    Sealed { segment_seq: u64, next: Cursor },
    /// The local log no longer holds sequences `missing` (deleted while the table had PITR
    /// off): the archive goes on after the gap, from the next segment.
    Gap { missing: (u64, u64), next: Cursor },
    /// Nothing durable past the cursor.
    Idle,
}

/// The cursor for a shard whose archive is empty: the start of its oldest local segment.
pub fn start(dir: &Path) -> Result<Option<Cursor>, ArchiveError> {
    Ok(segment::list(dir)?.first().map(|s| Cursor {
        segment_seq: s.first_seq,
        offset: 0,
        next_seq: s.first_seq,
        last_us: 0,
        last_block_sum: 0,
    }))
}

/// The cursor after the archive's last part of a shard (segment `segment_seq`, ending at
/// `last_seq` with a block whose header sums to `last_block_sum`), found in the local log.
/// A local log that does not hold that block is a diverged history.
pub fn resume(
    dir: &Path,
    ids: (u64, u32),
    segment_seq: u64,
    last_seq: u64,
    last_block_sum: u64,
) -> Result<Cursor, ArchiveError> {
    let diverged = |detail: String| ArchiveError::Diverged {
        table: ids.0,
        shard: ids.1,
        detail,
    };
    let segs = segment::list(dir)?;
    let Some(seg) = segs.iter().find(|s| s.first_seq == segment_seq) else {
        // Sealed and shipped whole, then removed locally: the next local segment must carry on.
        return match segs.iter().find(|s| s.first_seq > segment_seq) {
            // Removed locally once shipped (the next segment carries on), or while the
            // table had PITR off (a gap: the archive goes on after it).
            Some(s) if s.first_seq > last_seq => {
                if s.first_seq > last_seq.saturating_add(1) {
                    tracing::warn!(
                        "archive: table id {} shard {}: sequences {}..={} were deleted locally before they were archived (PITR was off); the archive goes on from {}",
                        ids.0,
                        ids.1,
                        last_seq.saturating_add(1),
                        s.first_seq - 1,
                        s.first_seq
                    );
                }
                Ok(Cursor {
                    segment_seq: s.first_seq,
                    offset: 0,
                    next_seq: s.first_seq,
                    last_us: 0,
                    last_block_sum,
                })
            }
            _ => Err(diverged(format!(
                "the archive ends at sequence {last_seq} in segment {segment_seq}, which the local log no longer holds"
            ))),
        };
    };
    let file = File::open(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
    let header = read_header(&file, &seg.path)?;
    let salt = header.salt();
    let len = file
        .metadata()
        .map_err(|e| LogError::io(&seg.path, e))?
        .len();
    let mut stream = BlockStream::new(&file, salt, SEGMENT_HEADER_LEN as u64, len);
    while let Ok(Some(b)) = stream.next_block() {
        let h = b.header;
        if h.last_seq() == last_seq {
            let sum = xxh3_64(&h.encode(salt));
            if sum != last_block_sum {
                return Err(diverged(format!(
                    "the block ending at sequence {last_seq} differs from the archive's (header sum {sum:#x}, archived {last_block_sum:#x}); \
                     writes the archive holds were lost locally (a crash without --fsync always)"
                )));
            }
            return Ok(Cursor {
                segment_seq,
                offset: b.offset + h.block_len(),
                next_seq: last_seq.saturating_add(1),
                last_us: h.commit_us,
                last_block_sum: sum,
            });
        }
        if h.first_seq > last_seq {
            break;
        }
    }
    Err(diverged(format!(
        "the archive ends at sequence {last_seq}, which is not the end of a block in {}; \
         writes the archive holds were lost locally (a crash without --fsync always)",
        seg.path.display()
    )))
}

/// The next step for a shard at `cur`, reading no sequence past `bound` and at most about
/// `max_bytes` of blocks.
pub fn next(
    dir: &Path,
    ids: (u64, u32),
    cur: &Cursor,
    bound: u64,
    max_bytes: u64,
) -> Result<Step, ArchiveError> {
    let segs = segment::list(dir)?;
    // Nothing new is durable: not a byte read (this runs for every shard every interval),
    // unless the next segment already starts where the cursor stands (this one is sealed).
    if cur.next_seq > bound {
        let pos = segs.iter().position(|s| s.first_seq == cur.segment_seq);
        let later = pos.and_then(|i| segs.get(i + 1)).map(|s| s.first_seq);
        return Ok(match later {
            Some(l) if l == cur.next_seq => Step::Sealed {
                segment_seq: cur.segment_seq,
                next: Cursor {
                    segment_seq: l,
                    offset: 0,
                    ..*cur
                },
            },
            _ => Step::Idle,
        });
    }
    let Some(i) = segs.iter().position(|s| s.first_seq == cur.segment_seq) else {
        // Gone locally: shipped to its end and then removed by retention (the next segment
        // carries on), or removed while the table had PITR off (a gap in the archive).
        return Ok(match segs.iter().find(|s| s.first_seq > cur.segment_seq) {
            Some(n) if n.first_seq == cur.next_seq => Step::Sealed {
                segment_seq: cur.segment_seq,
                next: Cursor {
                    segment_seq: n.first_seq,
                    offset: 0,
                    ..*cur
                },
            },
            Some(n) if n.first_seq > cur.next_seq => Step::Gap {
                missing: (cur.next_seq, n.first_seq - 1),
                next: Cursor {
                    segment_seq: n.first_seq,
                    offset: 0,
                    next_seq: n.first_seq,
                    ..*cur
                },
            },
            _ => Step::Idle,
        });
    };
    let later = segs.get(i + 1).map(|s| s.first_seq);
    let path = &segs[i].path;
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let header = read_header(&file, path)?;
    if header.table_id != ids.0 || header.shard != ids.1 {
        return Err(ArchiveError::Diverged {
            table: ids.0,
            shard: ids.1,
            detail: format!(
                "{} belongs to table {} shard {}",
                path.display(),
                header.table_id,
                header.shard
            ),
        });
    }
    let salt = header.salt();
    let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    let from = cur.offset.max(SEGMENT_HEADER_LEN as u64);
    let mut stream = BlockStream::new(&file, salt, from, len).with_chunk(TAIL_CHUNK);
    let (mut end, mut first, mut last) = (from, None, None);
    let mut next_seq = cur.next_seq;
    loop {
        // Past the durable end, or a part's worth: stop before reading on (into the
        // preallocated zeros, or a block being written).
        if end - from >= max_bytes || next_seq > bound {
            break;
        }
        let b = match stream.next_block() {
            Ok(Some(b)) => b,
            Ok(None) => {
                if first.is_none() {
                    if let Some(l) = later {
                        if l != next_seq {
                            return Err(gap(ids, path, end, next_seq, l));
                        }
                        return Ok(Step::Sealed {
                            segment_seq: cur.segment_seq,
                            next: Cursor {
                                segment_seq: l,
                                offset: 0,
                                ..*cur
                            },
                        });
                    }
                }
                break;
            }
            // Past what is durable a block may be half written: that is the end for now.
            Err(_) if next_seq > bound => break,
            Err(StreamError::Io(e)) => return Err(LogError::io(path, e).into()),
            Err(StreamError::Format { offset, error }) => {
                return Err(LogError::Damaged {
                    path: path.clone(),
                    offset,
                    source: error,
                }
                .into())
            }
        };
        let h = b.header;
        if h.first_seq > bound {
            break;
        }
        if h.first_seq != next_seq {
            return Err(gap(ids, path, b.offset, next_seq, h.first_seq));
        }
        let got = xxh3_64_with_seed(b.payload, salt);
        if got != h.payload_sum {
            return Err(LogError::Damaged {
                path: path.clone(),
                offset: b.offset,
                source: crate::log::FormatError::ChecksumMismatch {
                    what: "block payload",
                    got,
                    expected: h.payload_sum,
                },
            }
            .into());
        }
        first.get_or_insert((h.first_seq, h.commit_us));
        last = Some((h.last_seq(), h.commit_us, xxh3_64(&h.encode(salt))));
        next_seq = h.last_seq() + 1;
        end = b.offset + h.block_len();
    }
    let (Some((first_seq, first_us)), Some((last_seq, last_us, last_block_sum))) = (first, last)
    else {
        return Ok(Step::Idle);
    };
    let mut payload = vec![0u8; (end - cur.offset) as usize];
    file.read_exact_at(&mut payload, cur.offset)
        .map_err(|e| LogError::io(path, e))?;
    Ok(Step::Part {
        header: PartHeader {
            table_id: ids.0,
            shard: ids.1,
            segment_seq: cur.segment_seq,
            offset: cur.offset,
            first_seq,
            last_seq,
            first_us,
            last_us,
            last_block_sum,
            payload_len: 0,
            payload_sum: 0,
        },
        payload,
        next: Cursor {
            segment_seq: cur.segment_seq,
            offset: end,
            next_seq,
            last_us,
            last_block_sum,
        },
    })
}

fn gap(ids: (u64, u32), path: &Path, offset: u64, expected: u64, found: u64) -> ArchiveError {
    let _ = ids;
    LogError::SequenceGap {
        path: path.to_path_buf(),
        offset,
        expected,
        found,
    }
    .into()
}
