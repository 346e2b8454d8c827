//! Crash recovery of one shard's log: find where it ends, cut a torn tail, refuse real damage.
//!
//! Only the newest segment can have a torn tail: a segment is synced before the next one is
//! created. In it, a bad block is a torn tail when nothing valid follows it (the file ends
//! inside the block, or the block is the last one, or no valid block header can be found after
//! it); then the file is cut back to the last whole block, synced, and the cut is reported.
//! Anything else is damage, reported with file and offset. Older segments are checked by the
//! reader when they are replayed.
//!
//! Prepared segments (`segment_prep.rs`): the writer starts a segment by writing its header
//! into a file made ahead (`next.seg-prepared`) and renaming it, syncing neither: the first
//! block's sync carries the header, and no block is acknowledged before that sync. So after a
//! power cut a started segment may still have the prepared name (it is renamed now), or its
//! name but zeros where the header goes. A file whose header is zeros holds nothing that was
//! acknowledged: with zeros after it too, it is unused (a prepared one is kept for reuse, a
//! named one removed); with its whole first page zeros (the header shares that page with
//! the first block) and bytes after it, it is moved aside as `<name>.headerless-<unix µs>`
//! (kept, never deleted) and reported. Anything else is damage (`--recovery tolerant` moves a
//! damaged prepared file aside). Closed segments a crash caught before the helper sealed
//! them (no index file) are sealed here.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::block::BlockDecoder;
use super::direct::DirectTail;
use super::error::{FormatError, LogError};
use super::fsutil::{rename_noreplace, sync_dir, write_atomic};
use super::index::SecondIndex;
use super::segment::{self, SegmentFile, SegmentHeader, SEGMENT_HEADER_LEN};
use super::segment_prep::Room;
use super::segment_prep::PREPARED_NAME;
use super::stream::{check_order, next_header, zeros_to, BlockStream, StreamError};

/// The segment the writer continues in.
#[derive(Debug)]
pub struct ActiveSegment {
    pub path: PathBuf,
    pub file: File,
    pub header: SegmentHeader,
    pub len: u64,
    /// File size as the writer last saw it: bytes past `len` are preallocated zeros. The
    /// helper may have grown the file since ([`Room`] has the truth).
    pub alloc_end: u64,
    pub room: Arc<Room>,
    /// A file handle of the helper's own on this segment, opened when the segment started
    /// (so it names this file even if the name is later reused): zeros the helper writes
    /// ahead go through it, and a writeback error it meets is still reported to the
    /// writer's handle (Linux reports one once per open file). `None`: the writer extends.
    pub helper_file: Option<Arc<File>>,
    /// The size the helper was last asked to extend the file to.
    pub ahead_asked: u64,
    pub index: SecondIndex,
    /// The direct handle and tail page, when blocks go out with `O_DIRECT` (`direct.rs`).
    pub direct: Option<DirectTail>,
}

impl ActiveSegment {
    pub fn new(
        path: PathBuf,
        file: File,
        header: SegmentHeader,
        len: u64,
        alloc_end: u64,
    ) -> ActiveSegment {
        ActiveSegment {
            path,
            file,
            header,
            len,
            alloc_end,
            room: Room::new(alloc_end),
            helper_file: None,
            ahead_asked: alloc_end,
            index: SecondIndex::new(),
            direct: None,
        }
    }

    /// Opens the helper's own handle on the segment, by its name, which must be this file's.
    pub fn open_helper_file(mut self) -> ActiveSegment {
        self.helper_file = match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                tracing::warn!(
                    "no helper handle on {} ({e}): the writer extends it itself",
                    self.path.display()
                );
                None
            }
        };
        self
    }

    /// Cuts the file back to `offset` (a failed write's remains), under the room lock.
    pub fn cut_to(&mut self, offset: u64) -> std::io::Result<()> {
        let mut end = self.room.lock();
        self.alloc_end = offset;
        self.ahead_asked = offset;
        *end = offset;
        self.file.set_len(offset)
    }
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
    /// An unused, zero-filled prepared segment file is there for the writer to reuse.
    pub prepared: bool,
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
    let prepared = recover_prepared(dir, table_id, shard, tolerant)?;
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
                prepared,
            });
        };
        match recover_last(&last, table_id, shard, tolerant)? {
            Tail::Active(active, last_commit_us, next_seq, cut) => {
                seal_closed(&segments[..segments.len() - 1]);
                // Continuing in a sealed segment (the newer one was removed or set aside):
                // its per-second and key indexes are derived and about to go stale; the next
                // seal writes the first again, the maintenance pass the second (`.kix`, named
                // by `history::keyindex`, which this module does not depend on).
                let mut removed = false;
                for derived in [last.index_path(), last.path.with_extension("kix")] {
                    match std::fs::remove_file(&derived) {
                        Ok(()) => removed = true,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(LogError::io(&derived, e)),
                    }
                }
                if removed {
                    sync_dir(dir)?;
                }
                return Ok(Recovered {
                    next_seq,
                    last_commit_us,
                    segments: segments.len(),
                    active: Some(active),
                    torn: cut.or(torn),
                    prepared,
                });
            }
            Tail::HeaderTorn(cut) => {
                // Crash while the segment was being created: it holds nothing but zeros past
                // its header. Remove it and continue in the previous one.
                std::fs::remove_file(&last.path).map_err(|e| LogError::io(&last.path, e))?;
                sync_dir(dir)?;
                tracing::warn!("removed half-created segment {}", last.path.display());
                torn = Some(cut);
                segments.pop();
            }
            Tail::Headerless(cut) => {
                set_aside(dir, &last.path, "headerless")?;
                torn = Some(cut);
                segments.pop();
            }
        }
    }
}

/// What zeros say about a file whose header did not decode.
enum Zeros {
    /// Nothing but zeros: unused.
    All,
    /// Its first page (header and the start of the first block) is zeros, other bytes
    /// follow: blocks whose header never reached the disk.
    FirstPage,
    /// Other bytes in the first page: not a state a crash leaves.
    No,
}

const PAGE: u64 = 4096;

fn zeros_of(file: &File, path: &Path, len: u64) -> Result<Zeros, LogError> {
    let io = |e| LogError::io(path, e);
    if !zeros_to(file, 0, len.min(PAGE)).map_err(io)? {
        return Ok(Zeros::No);
    }
    Ok(if zeros_to(file, PAGE, len).map_err(io)? {
        Zeros::All
    } else {
        Zeros::FirstPage
    })
}

/// Settles the prepared segment file after a crash (see the module notes). True when an
/// unused, zero-filled one is left for reuse.
fn recover_prepared(
    dir: &Path,
    table_id: u64,
    shard: u32,
    tolerant: bool,
) -> Result<bool, LogError> {
    let path = dir.join(PREPARED_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(LogError::io(&path, e)),
    };
    let len = file.metadata().map_err(|e| LogError::io(&path, e))?.len();
    let mut head = vec![0u8; SEGMENT_HEADER_LEN.min(len as usize)];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0)
        .map_err(|e| LogError::io(&path, e))?;
    if head.iter().all(|&b| b == 0) {
        match zeros_of(&file, &path, len)? {
            Zeros::All => return Ok(true),
            Zeros::FirstPage => {
                drop(file);
                set_aside(dir, &path, "headerless")?;
                return Ok(false);
            }
            Zeros::No => {}
        }
    }
    let refuse = |source: FormatError| -> Result<bool, LogError> {
        if tolerant {
            set_aside(dir, &path, "damaged")?;
            return Ok(false);
        }
        Err(damaged(&path, 0, source))
    };
    let header = match SegmentHeader::decode(&head) {
        Ok(h) => h,
        Err(e) => return refuse(e),
    };
    let malformed = |detail: String| FormatError::Malformed {
        what: "prepared segment",
        detail,
    };
    if header.table_id != table_id || header.shard != shard {
        return refuse(malformed(format!(
            "it belongs to table {} shard {}, not table {table_id} shard {shard}; \
             move it out of this directory",
            header.table_id, header.shard
        )));
    }
    let target = dir.join(segment::file_name(header.first_seq));
    let newest = segment::list(dir)?.last().map(|s| s.first_seq);
    if target.exists() || newest.is_some_and(|n| n >= header.first_seq) {
        return refuse(malformed(format!(
            "it starts at sequence {}, which segment {} already covers; compare the two \
             and move the one to drop out of this directory",
            header.first_seq,
            newest.unwrap_or(header.first_seq)
        )));
    }
    rename_noreplace(&path, &target)?;
    sync_dir(dir)?;
    tracing::warn!(
        "a segment started just before a crash still had its prepared name: renamed to {}",
        target.display()
    );
    Ok(false)
}

/// Moves a file out of the log, keeping it, as `<name>.<why>-<unix µs>`.
fn set_aside(dir: &Path, path: &Path, why: &str) -> Result<(), LogError> {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{why}-{now_us}"));
    let aside = path.with_file_name(name);
    rename_noreplace(path, &aside)?;
    sync_dir(dir)?;
    if why == "headerless" {
        tracing::error!(
            "{} has no header (a segment started just before a power cut; none of its \
             blocks was acknowledged as durable): moved aside as {}",
            path.display(),
            aside.display()
        );
    } else {
        tracing::error!(
            "tolerant recovery moved {} aside as {}: its header is damaged",
            path.display(),
            aside.display()
        );
    }
    Ok(())
}

/// Finishes sealing closed segments that a crash caught before the helper did (they have no
/// index file): cuts the zeros after the last block, syncs, writes the index. One that does
/// not read cleanly is left as it is, for the readers to report.
fn seal_closed(segments: &[SegmentFile]) {
    for s in segments {
        if s.index_path().exists() {
            continue;
        }
        if let Err(e) = seal_one(s) {
            tracing::warn!("could not seal {}: {e}", s.path.display());
        }
    }
}

fn seal_one(s: &SegmentFile) -> Result<(), LogError> {
    let path = &s.path;
    let io = |e| LogError::io(path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).map_err(io)?;
    let header = SegmentHeader::decode(&head).map_err(|e| damaged(path, 0, e))?;
    let mut index = SecondIndex::new();
    let mut stream = BlockStream::new(&file, header.salt(), SEGMENT_HEADER_LEN as u64, len);
    loop {
        match stream.next_block() {
            Ok(Some(b)) => index.note_block(b.header.commit_us, b.offset, b.header.first_seq),
            Ok(None) => break,
            Err(StreamError::Io(e)) => return Err(io(e)),
            Err(StreamError::Format { offset, error }) => return Err(damaged(path, offset, error)),
        }
    }
    if let Some(end) = stream.zero_tail() {
        file.set_len(end).map_err(io)?;
    }
    file.sync_data().map_err(io)?;
    write_atomic(&s.index_path(), &index.encode(header.salt()))?;
    tracing::info!(
        "sealed {} (a crash came before its helper did)",
        path.display()
    );
    Ok(())
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
    /// Nothing but zeros past a header that did not decode: remove it.
    HeaderTorn(TornTail),
    /// A zero header with bytes after it: set it aside.
    Headerless(TornTail),
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
        Err(e) => {
            let cut = TornTail {
                path: path.clone(),
                offset: 0,
                bytes_cut: file_len,
                reason: e.to_string(),
            };
            // A segment with no room for a block can only be a crash during its creation;
            // so is a started one whose first page did not reach the disk.
            if file_len <= SEGMENT_HEADER_LEN as u64 {
                return Ok(Tail::HeaderTorn(cut));
            }
            return match zeros_of(&file, path, file_len)? {
                Zeros::All => Ok(Tail::HeaderTorn(cut)),
                Zeros::FirstPage => Ok(Tail::Headerless(cut)),
                Zeros::No => Err(damaged(path, 0, e)),
            };
        }
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
    let mut active =
        ActiveSegment::new(path.clone(), file, header, len, alloc_end).open_helper_file();
    active.index = index;
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
