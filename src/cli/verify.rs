//! `rewind verify`: every checksum of a data directory — catalog, table metadata, segments,
//! indexes, checkpoints, key indexes. Reports every damaged file with its offset; the caller exits non-zero.

use std::path::Path;

use super::load_catalog;
use crate::log::index::SecondIndex;
use crate::log::{checkpoint, segment, verify_shard, LogError};
use crate::shard::{shard_dir, DbError, DirLock};

/// What verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files: u64,
    pub records: u64,
    pub damage: Vec<String>,
    /// Torn tails a restart's recovery will cut (not damage).
    pub torn: Vec<String>,
}

pub fn verify(data_dir: &Path) -> Result<VerifyReport, DbError> {
    let _lock = DirLock::acquire(data_dir)?;
    let mut report = VerifyReport::default();
    let catalog = match load_catalog(data_dir) {
        Ok(c) => c,
        Err(e) => {
            report.damage.push(e.to_string());
            return Ok(report);
        }
    };
    report.files += 1;
    for meta in &catalog.tables {
        let tdir = data_dir.join("tables").join(meta.id.to_string());
        match crate::catalog::read_table_file(&tdir) {
            Ok(Some(_)) => report.files += 1,
            Ok(None) => {}
            Err(e) => report
                .damage
                .push(format!("{e} (start-up rewrites it from the catalog)")),
        }
        for k in 0..meta.shards {
            let dir = shard_dir(&tdir, k);
            match verify_shard(&dir, meta.id, k) {
                Ok(s) => report.records += s.records,
                Err(e @ LogError::TornTail { .. }) => report.torn.push(e.to_string()),
                Err(e) => report.damage.push(e.to_string()),
            }
            let segs = segment::list(&dir)?;
            report.files += segs.len() as u64;
            // Closed segments have index files; each must match its segment.
            for s in segs.iter().take(segs.len().saturating_sub(1)) {
                let idx = s.index_path();
                let Ok(bytes) = std::fs::read(&idx) else {
                    continue;
                };
                report.files += 1;
                let Ok(seg) = std::fs::read(&s.path) else {
                    continue;
                };
                let Ok(h) = segment::SegmentHeader::decode(&seg) else {
                    continue;
                };
                if let Err(e) = SecondIndex::decode(&bytes, h.salt(), seg.len() as u64) {
                    report.damage.push(format!(
                        "{}: {e} (rebuildable from its segment)",
                        idx.display()
                    ));
                }
            }
            check_prepared(&dir, (meta.id, k), &segs, &mut report);
            for (_, path) in checkpoint::list(&dir)? {
                report.files += 1;
                if let Err(e) = checkpoint::read(&path, meta.id, k, |_, _| {}) {
                    report.damage.push(e.to_string());
                }
            }
            verify_key_indexes(&dir, (meta.id, k), &segs, &mut report)?;
        }
    }
    Ok(report)
}

/// Each key index beside a sealed segment or checkpoint must decode (every checksum) and
/// list exactly what its file holds. Damage there is reported as rebuildable: a history
/// question rebuilds a damaged or stale index from its file.
fn verify_key_indexes(
    dir: &Path,
    (table_id, shard): (u64, u32),
    segs: &[segment::SegmentFile],
    report: &mut VerifyReport,
) -> Result<(), DbError> {
    use crate::history::{build, keyindex};
    let mut files: Vec<(std::path::PathBuf, Result<keyindex::KeyIndex, LogError>)> = Vec::new();
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        if keyindex::path_for(&s.path).exists() {
            let built = build::index_segment(&s.path, table_id, shard, s.first_seq);
            files.push((s.path.clone(), built));
        }
    }
    for (_, path) in checkpoint::list(dir)? {
        if keyindex::path_for(&path).exists() {
            let built = build::index_checkpoint(&path, table_id, shard).map(|(k, _)| k);
            files.push((path, built));
        }
    }
    for (file, built) in files {
        let kix = keyindex::path_for(&file);
        report.files += 1;
        let bytes = std::fs::read(&kix).map_err(|e| DbError::io(&kix, e))?;
        let problem = match (keyindex::KeyIndex::decode(&bytes), built) {
            (Err(e), _) => Some(e.to_string()),
            // The file itself is damaged: already reported above.
            (Ok(_), Err(_)) => None,
            (Ok(got), Ok(want)) if got != want => Some(format!(
                "does not match {} (it lists {} (key, block) pairs, the file holds {})",
                file.display(),
                got.len(),
                want.len()
            )),
            (Ok(_), Ok(_)) => None,
        };
        if let Some(p) = problem {
            report.damage.push(format!(
                "{}: {p} (rebuildable from its file: delete it)",
                kix.display()
            ));
        }
    }
    Ok(())
}

/// The shard's prepared segment file (made ahead for the next roll), if there is one: all
/// zeros, or a segment whose rename a crash cut off (start-up gives it its name). Anything
/// else is reported: start-up refuses it, or moves it aside when its first page is zeros.
fn check_prepared(
    dir: &Path,
    (table_id, shard): (u64, u32),
    segs: &[segment::SegmentFile],
    report: &mut VerifyReport,
) {
    let path = dir.join(crate::log::segment_prep::PREPARED_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            report.damage.push(format!(
                "{}: cannot read: {e} (start-up fails on it too)",
                path.display()
            ));
            return;
        }
    };
    report.files += 1;
    let Some(at) = bytes.iter().position(|&b| b != 0) else {
        return;
    };
    if let Ok(h) = segment::SegmentHeader::decode(&bytes) {
        let newest = segs.last().map_or(0, |s| s.first_seq);
        let refused = "start-up refuses it (--recovery tolerant moves it aside)";
        if h.table_id != table_id || h.shard != shard {
            report.damage.push(format!(
                "{}: a prepared segment of table {} shard {}, not of this shard; {refused}",
                path.display(),
                h.table_id,
                h.shard
            ));
        } else if h.first_seq <= newest {
            report.damage.push(format!(
                "{}: a prepared segment from sequence {}, which segment {newest} already \
                 covers; {refused}",
                path.display(),
                h.first_seq
            ));
        } else {
            report.torn.push(format!(
                "{}: a segment started just before a crash; start-up gives it its segment \
                 name and then checks its blocks",
                path.display()
            ));
        }
        return;
    }
    let what = if at >= 4096 {
        "start-up moves it aside as headerless (kept)"
    } else {
        "start-up refuses it (--recovery tolerant moves it aside)"
    };
    report.damage.push(format!(
        "{}: byte {at} of a prepared segment file is not zero and it has no valid segment header; {what}",
        path.display()
    ));
}
