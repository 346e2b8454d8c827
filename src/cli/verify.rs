//! `rewind verify`: every checksum of a data directory — catalog, table metadata, segments,
//! indexes, checkpoints. Reports every damaged file with its offset; the caller exits non-zero.

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
            for (_, path) in checkpoint::list(&dir)? {
                report.files += 1;
                if let Err(e) = checkpoint::read(&path, meta.id, k, |_, _| {}) {
                    report.damage.push(e.to_string());
                }
            }
        }
    }
    Ok(report)
}
