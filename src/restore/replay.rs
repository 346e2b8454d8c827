//! Replaying one source shard up to a time, into a fresh map.
//!
//! The newest checkpoint that may stand in for the log at `at_us` (its `end_us <= at_us`) is
//! loaded first, then the log from the checkpoint's `start_seq + 1` up to `at_us` and to the
//! last sequence known durable when the restore began. Records of one shard are applied in log
//! order, so the last write wins; shards hold disjoint keys and run in parallel.

use std::path::Path;

use crate::log::{
    checkpoint, scan_shard_with, segment, LogError, RecordRef, ScanOptions, ScanProgress, ScanRange,
};
use crate::shard::{apply_ref, with_capacity, KvMap};

/// Most keys a replay map is sized for up front.
const MAX_PRESIZE: usize = 16 << 20;

/// Where one shard's replay starts and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub checkpoint: Option<std::path::PathBuf>,
    pub from_seq: u64,
    pub until_us: u64,
    pub until_seq: u64,
    /// Stored bytes of the segments the replay will read, for progress.
    pub bytes: u64,
}

/// Plans the replay of `dir` (one source shard) to `at_us`, reading no sequence past
/// `until_seq`.
pub fn plan(dir: &Path, at_us: u64, until_seq: u64) -> Result<ShardPlan, LogError> {
    let mut ckp = None;
    let mut from_seq = 0;
    for (_, path) in checkpoint::list(dir)?.into_iter().rev() {
        let h = checkpoint::read_header(&path)?;
        if h.end_us <= at_us && h.end_seq <= until_seq {
            from_seq = h.start_seq + 1;
            ckp = Some(path);
            break;
        }
    }
    // Bisect the segments by creation time for the cut; count the bytes between the start and
    // the cut for progress.
    let segs = segment::list(dir)?;
    let mut spans = Vec::with_capacity(segs.len());
    let mut sizes = Vec::with_capacity(segs.len());
    for s in &segs {
        let (created_us, len) = segment_head(&s.path)?;
        spans.push(segment::SegmentSpan {
            first_seq: s.first_seq,
            created_us,
        });
        sizes.push(len);
    }
    let end = segment::cut(&spans, at_us);
    let mut bytes = 0;
    for i in 0..end {
        let past_start = spans.get(i + 1).is_none_or(|n| n.first_seq > from_seq);
        if past_start && spans[i].first_seq <= until_seq {
            bytes += sizes[i];
        }
    }
    Ok(ShardPlan {
        checkpoint: ckp,
        from_seq,
        until_us: at_us,
        until_seq,
        bytes,
    })
}

/// Runs a shard's plan into a new map.
pub fn replay(
    dir: &Path,
    table_id: u64,
    shard: u32,
    plan: &ShardPlan,
    progress: &ScanProgress,
) -> Result<KvMap, LogError> {
    // Size the map for the records the log holds (about 64 stored bytes or more each), so a
    // large restore does not rehash as it grows; capped to bound what a guess can waste.
    let map = with_capacity(((plan.bytes / 64) as usize).min(MAX_PRESIZE));
    if let Some(path) = &plan.checkpoint {
        checkpoint::read(path, table_id, shard, |k, v| {
            apply_ref(&map, RecordRef::Put { key: k, value: v });
        })?;
    }
    let range = ScanRange {
        from_seq: plan.from_seq,
        until_us: plan.until_us,
        until_seq: plan.until_seq,
    };
    let opts = ScanOptions {
        tolerant: false,
        progress: Some(progress),
    };
    scan_shard_with(dir, table_id, shard, range, opts, |_, _, r| {
        #[cfg(feature = "failpoints")]
        crate::log::failpoint::restore_delay();
        #[cfg(feature = "failpoints")]
        if crate::log::failpoint::restore_panic() {
            panic!("injected restore panic (failpoint restore_panic)");
        }
        apply_ref(&map, r);
    })?;
    Ok(map)
}

/// A segment's creation time and file size, from its header.
fn segment_head(path: &Path) -> Result<(u64, u64), LogError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| LogError::io(path, e))?;
    let len = f.metadata().map_err(|e| LogError::io(path, e))?.len();
    let mut head = [0u8; segment::SEGMENT_HEADER_LEN];
    let n = f.read_at(&mut head, 0).map_err(|e| LogError::io(path, e))?;
    let h = segment::SegmentHeader::decode(&head[..n]).map_err(|source| LogError::Damaged {
        path: path.to_path_buf(),
        offset: 0,
        source,
    })?;
    Ok((h.created_us, len))
}
