//! Which files of one shard no restorable time needs any more.
//!
//! A table with PITR and window `W` keeps the newest checkpoint at or before
//! `earliest = max(enabled_at, now - W)` and everything after it; a table without PITR keeps
//! its newest checkpoint and the log after it (what crash recovery needs). "After" a
//! checkpoint means from its `start_seq + 1`: the log between its start and end is replayed
//! over it. Without such a checkpoint nothing is deleted. The open segment is never deleted.

use std::path::{Path, PathBuf};

use super::Floor;
use crate::log::checkpoint::{self, CheckpointHeader};
use crate::log::{segment, LogError};

/// Files to delete in `dir`. `earliest_us`: `Some` for a PITR table (the start of its
/// window), `None` for a table without PITR. `archived`: what the archive holds of the shard
/// when it is archived; nothing it has not got is deleted.
pub fn plan(
    dir: &Path,
    earliest_us: Option<u64>,
    archived: Option<Floor>,
) -> Result<Vec<PathBuf>, LogError> {
    let ckps: Vec<(PathBuf, CheckpointHeader)> = checkpoint::list(dir)?
        .into_iter()
        .map(|(_, p)| checkpoint::read_header(&p).map(|h| (p, h)))
        .collect::<Result<_, _>>()?;
    let keep = ckps
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (_, h))| earliest_us.is_none_or(|e| h.end_us <= e));
    let Some((keep_at, (_, kept))) = keep else {
        return Ok(Vec::new());
    };
    let mut doomed: Vec<PathBuf> = ckps[..keep_at]
        .iter()
        .filter(|(_, h)| archived.is_none_or(|a| a.checkpoint_end.is_some_and(|e| h.end_seq <= e)))
        .map(|(p, _)| p.clone())
        .collect();
    let segs = segment::list(dir)?;
    for pair in segs.windows(2) {
        // Every record of pair[0] is at or before the checkpoint's start: not needed (once
        // the archive has every one of them).
        let shipped = archived.is_none_or(|a| pair[1].first_seq - 1 <= a.log_seq);
        if pair[1].first_seq <= kept.start_seq + 1 && shipped {
            doomed.push(pair[0].path.clone());
            doomed.push(pair[0].index_path());
        }
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::checkpoint::CheckpointWriter;

    fn ckp(dir: &Path, start_seq: u64, end_seq: u64, end_us: u64) {
        let h = CheckpointHeader {
            table_id: 1,
            shard: 0,
            start_seq,
            end_seq,
            end_us,
            created_us: end_us,
        };
        CheckpointWriter::create(dir, &h, 1)
            .unwrap()
            .finish()
            .unwrap();
    }

    fn seg(dir: &Path, first_seq: u64) {
        std::fs::write(dir.join(segment::file_name(first_seq)), b"").unwrap();
    }

    fn names(v: &[PathBuf]) -> Vec<String> {
        let mut n: Vec<String> = v
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn keeps_the_checkpoint_at_the_window_start_and_the_log_after_it() {
        let dir = tempfile::tempdir().unwrap();
        for s in [1, 100, 200, 300] {
            seg(dir.path(), s);
        }
        ckp(dir.path(), 150, 180, 1_000);
        ckp(dir.path(), 210, 250, 2_000);
        // Window starts at 1500: keep ckp(150..180); replay starts at 151, so segment 1
        // (records 1..=99) goes and segment 100 (100..=199) stays.
        let d = plan(dir.path(), Some(1_500), None).unwrap();
        assert_eq!(
            names(&d),
            vec!["00000000000000000001.idx", "00000000000000000001.seg"]
        );
        // Window starts at 2500: keep ckp(210..250), drop the older checkpoint and segments
        // 1 and 100 (records up to 199 <= 211); 200 holds 211, kept.
        let d = plan(dir.path(), Some(2_500), None).unwrap();
        assert_eq!(
            names(&d),
            vec![
                "00000000000000000001.idx",
                "00000000000000000001.seg",
                "00000000000000000100.idx",
                "00000000000000000100.seg",
                "ckp-00000000000000000180.ckp"
            ]
        );
        // Window before every checkpoint: nothing can go.
        assert!(plan(dir.path(), Some(500), None).unwrap().is_empty());
        // Without PITR: the newest checkpoint rules.
        assert_eq!(plan(dir.path(), None, None).unwrap().len(), 5);
    }

    #[test]
    fn nothing_the_archive_lacks_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        for s in [1, 100, 200, 300] {
            seg(dir.path(), s);
        }
        ckp(dir.path(), 150, 180, 1_000);
        ckp(dir.path(), 210, 250, 2_000);
        let floor = |log_seq, checkpoint_end: u64| {
            Some(Floor {
                log_seq,
                checkpoint_end: (checkpoint_end > 0).then_some(checkpoint_end),
                ..Floor::default()
            })
        };
        // The archive has nothing: nothing goes.
        assert!(plan(dir.path(), Some(2_500), floor(0, 0))
            .unwrap()
            .is_empty());
        // It has the log to 150 and no checkpoint: segment 1 (1..=99) may go, not 100.
        assert_eq!(
            names(&plan(dir.path(), Some(2_500), floor(150, 0)).unwrap()),
            vec!["00000000000000000001.idx", "00000000000000000001.seg"]
        );
        // Everything: as without an archive.
        assert_eq!(
            plan(dir.path(), Some(2_500), floor(u64::MAX, u64::MAX)).unwrap(),
            plan(dir.path(), Some(2_500), None).unwrap()
        );
    }

    #[test]
    fn the_open_segment_is_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        seg(dir.path(), 1);
        ckp(dir.path(), 500, 600, 10);
        assert!(plan(dir.path(), None, None).unwrap().is_empty());
    }
}
