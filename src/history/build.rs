//! Reading a segment or checkpoint for history: one block at an offset, every block of a
//! file (to build its key index), and the index of the open segment, kept up to date in
//! memory as the log grows.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::keyindex::{key_hash, KeyIndex, Kind, KixHeader};
use crate::log::block::{BlockDecoder, BlockHeader};
use crate::log::checkpoint::{self, CheckpointHeader};
use crate::log::record::{RecordIter, RecordRef};
use crate::log::segment::{SegmentHeader, SEGMENT_HEADER_LEN};
use crate::log::stream::{BlockStream, StreamError};
use crate::log::{FormatError, LogError};

fn damaged(path: &Path, offset: u64, source: FormatError) -> LogError {
    LogError::Damaged {
        path: path.to_path_buf(),
        offset,
        source,
    }
}

fn stream_error(path: &Path, e: StreamError) -> LogError {
    match e {
        StreamError::Io(e) => LogError::io(path, e),
        StreamError::Format { offset, error } => damaged(path, offset, error),
    }
}

/// A segment's header, checked against the table and shard it should belong to.
pub fn segment_header(
    file: &File,
    path: &Path,
    table_id: u64,
    shard: u32,
) -> Result<SegmentHeader, LogError> {
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| LogError::io(path, e))?;
    let h = SegmentHeader::decode(&buf).map_err(|e| damaged(path, 0, e))?;
    if h.table_id != table_id || h.shard != shard {
        let detail = format!(
            "belongs to table {} shard {}, expected table {table_id} shard {shard}",
            h.table_id, h.shard
        );
        return Err(damaged(
            path,
            0,
            FormatError::Malformed {
                what: "segment header",
                detail,
            },
        ));
    }
    Ok(h)
}

/// Decodes the block at `offset` (before `end`) and shows its header and each record to
/// `visit`. Every checksum is checked.
pub fn read_block(
    file: &File,
    path: &Path,
    salt: u64,
    range: (u64, u64),
    decoder: &mut BlockDecoder,
    visit: impl FnMut(&BlockHeader, RecordRef<'_>),
) -> Result<BlockHeader, LogError> {
    read_block_where(file, path, salt, range, decoder, |_| true, visit)
}

/// [`read_block`], decoding the payload only when `want` takes the block by its header.
pub fn read_block_where(
    file: &File,
    path: &Path,
    salt: u64,
    (offset, end): (u64, u64),
    decoder: &mut BlockDecoder,
    want: impl FnOnce(&BlockHeader) -> bool,
    mut visit: impl FnMut(&BlockHeader, RecordRef<'_>),
) -> Result<BlockHeader, LogError> {
    let mut stream = BlockStream::new(file, salt, offset, end).with_chunk(64 << 10);
    let block = stream
        .next_block()
        .map_err(|e| stream_error(path, e))?
        .ok_or_else(|| {
            damaged(
                path,
                offset,
                FormatError::Malformed {
                    what: "key index",
                    detail: "points past the last block".into(),
                },
            )
        })?;
    let header = block.header;
    if !want(&header) {
        return Ok(header);
    }
    let raw = decoder
        .decode(&header, block.payload, salt)
        .map_err(|e| damaged(path, offset, e))?;
    for r in RecordIter::new(raw) {
        visit(&header, r.map_err(|e| damaged(path, offset, e))?);
    }
    Ok(header)
}

/// Every block of a segment from `from` (a block boundary, where sequence `next_seq`
/// starts) to `end`, up to sequence `until_seq`: `visit(offset, header, record)`. A block
/// past `until_seq` is not even looked at (beside the writer it may be half-written), so the
/// walk stops where the next block would start past it. Returns where it stopped and the
/// sequence that starts there.
pub fn walk_segment(
    file: &File,
    path: &Path,
    header: &SegmentHeader,
    range: (u64, u64, u64),
    until_seq: u64,
    decoder: &mut BlockDecoder,
    visit: impl FnMut(u64, &BlockHeader, RecordRef<'_>),
) -> Result<(u64, u64), LogError> {
    walk_segment_where(
        file,
        path,
        header,
        range,
        until_seq,
        decoder,
        |_| true,
        visit,
    )
}

/// [`walk_segment`], decoding only the blocks `want` takes by their header (the others cost
/// a header read; their payloads are not even checked).
#[allow(clippy::too_many_arguments)]
pub fn walk_segment_where(
    file: &File,
    path: &Path,
    header: &SegmentHeader,
    (from, end, mut next_seq): (u64, u64, u64),
    until_seq: u64,
    decoder: &mut BlockDecoder,
    mut want: impl FnMut(&BlockHeader) -> bool,
    mut visit: impl FnMut(u64, &BlockHeader, RecordRef<'_>),
) -> Result<(u64, u64), LogError> {
    let salt = header.salt();
    let mut stream = BlockStream::new(file, salt, from, end);
    loop {
        let at = stream.position();
        if next_seq > until_seq {
            return Ok((at, next_seq));
        }
        let block = match stream.next_block() {
            Ok(Some(b)) => b,
            Ok(None) => return Ok((at, next_seq)),
            Err(e) => return Err(stream_error(path, e)),
        };
        let h = block.header;
        if h.first_seq != next_seq {
            let detail = format!(
                "block starts at sequence {}, expected {next_seq}",
                h.first_seq
            );
            return Err(damaged(
                path,
                block.offset,
                FormatError::Malformed {
                    what: "segment",
                    detail,
                },
            ));
        }
        next_seq = h.last_seq() + 1;
        if !want(&h) {
            continue;
        }
        let raw = decoder
            .decode(&h, block.payload, salt)
            .map_err(|e| damaged(path, block.offset, e))?;
        for r in RecordIter::new(raw) {
            visit(
                block.offset,
                &h,
                r.map_err(|e| damaged(path, block.offset, e))?,
            );
        }
    }
}

/// Builds the key index of a whole (sealed) segment.
pub fn index_segment(
    path: &Path,
    table_id: u64,
    shard: u32,
    first_seq: u64,
) -> Result<KeyIndex, LogError> {
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    let header = segment_header(&file, path, table_id, shard)?;
    let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(path, e))?;
    let mut entries = Vec::new();
    walk_segment(
        &file,
        path,
        &header,
        (SEGMENT_HEADER_LEN as u64, len, header.first_seq),
        u64::MAX,
        &mut decoder,
        |off, _, r| entries.push((key_hash(r.key()), off)),
    )?;
    Ok(KeyIndex::new(
        KixHeader {
            kind: Kind::Segment,
            table_id,
            shard,
            file_id: first_seq,
            covered_len: len,
        },
        entries,
    ))
}

/// Builds the key index of a checkpoint (reading it whole, every checksum checked).
pub fn index_checkpoint(
    path: &Path,
    table_id: u64,
    shard: u32,
) -> Result<(KeyIndex, CheckpointHeader), LogError> {
    let len = std::fs::metadata(path)
        .map_err(|e| LogError::io(path, e))?
        .len();
    let mut entries = Vec::new();
    let h = checkpoint::read_with_offsets(path, table_id, shard, |off, k, _| {
        entries.push((key_hash(k), off))
    })?;
    let kix = KeyIndex::new(
        KixHeader {
            kind: Kind::Checkpoint,
            table_id,
            shard,
            file_id: h.end_seq,
            covered_len: len,
        },
        entries,
    );
    Ok((kix, h))
}

/// The open segment's key index, in memory, extended to what is durable on each use.
#[derive(Debug, Default)]
pub struct OpenIndex {
    /// Where the next unread block starts, and its first sequence (0, 0: nothing read yet).
    pub covered: u64,
    pub next_seq: u64,
    pub blocks: HashMap<u64, Vec<u64>>,
}

impl OpenIndex {
    /// Reads the blocks written since the last call, up to `until_seq`.
    pub fn catch_up(
        &mut self,
        file: &File,
        path: &Path,
        header: &SegmentHeader,
        until_seq: u64,
        decoder: &mut BlockDecoder,
    ) -> Result<(), LogError> {
        let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        if self.covered == 0 {
            self.covered = SEGMENT_HEADER_LEN as u64;
            self.next_seq = header.first_seq;
        }
        // Gathered apart and added only once the walk succeeded: a failure leaves the index
        // as it was, so a retry does not add blocks twice.
        let mut found: Vec<(u64, u64)> = Vec::new();
        let (stop, next) = walk_segment(
            file,
            path,
            header,
            (self.covered, len, self.next_seq),
            until_seq,
            decoder,
            |off, _, r| found.push((key_hash(r.key()), off)),
        )?;
        for (h, off) in found {
            let offs = self.blocks.entry(h).or_default();
            if offs.last() != Some(&off) {
                offs.push(off);
            }
        }
        self.covered = stop;
        self.next_seq = next;
        Ok(())
    }

    pub fn blocks_of(&self, key: &[u8]) -> &[u64] {
        self.blocks
            .get(&key_hash(key))
            .map_or(&[], |v| v.as_slice())
    }

    pub fn memory_bytes(&self) -> usize {
        self.blocks.len() * 48 + self.blocks.values().map(|v| v.len() * 8).sum::<usize>()
    }
}
