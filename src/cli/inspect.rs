//! `rewind inspect`: what a data directory holds, per table and shard: segments, their
//! sequence and time ranges, index markers, compression, checkpoints.

use std::fmt::Write;
use std::path::Path;

use super::load_catalog;
use crate::log::index::load_or_rebuild;
use crate::log::{checkpoint, segment, verify_shard};
use crate::restore::format_time;
use crate::shard::{shard_dir, DbError, DirLock};

/// A readable report of `data_dir` (`table`: only that one).
pub fn inspect(data_dir: &Path, table: Option<&str>) -> Result<String, DbError> {
    let _lock = DirLock::acquire(data_dir)?;
    let catalog = load_catalog(data_dir)?;
    let mut out = String::new();
    for meta in catalog
        .tables
        .iter()
        .filter(|t| table.is_none_or(|n| n == t.name))
    {
        let pitr = match meta.pitr_days {
            0 => "PITR off".to_string(),
            d => format!("PITR {d} days since {}", format_time(meta.pitr_since_us)),
        };
        let _ = writeln!(
            out,
            "table {} (id {}, {}, {} shards, {pitr})",
            meta.name,
            meta.id,
            meta.status.as_str(),
            meta.shards
        );
        let tdir = data_dir.join("tables").join(meta.id.to_string());
        for k in 0..meta.shards {
            let dir = shard_dir(&tdir, k);
            let segs = segment::list(&dir)?;
            let mut markers = 0;
            let mut first_us = None;
            for s in &segs {
                let Ok(f) = std::fs::File::open(&s.path) else {
                    continue;
                };
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                let mut head = [0u8; segment::SEGMENT_HEADER_LEN];
                if std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0).is_err() {
                    continue;
                }
                let Ok(h) = segment::SegmentHeader::decode(&head) else {
                    continue;
                };
                first_us.get_or_insert(h.created_us);
                if let Ok((idx, _)) = load_or_rebuild(&s.index_path(), &f, &s.path, &h, len) {
                    markers += idx.len();
                }
            }
            let _ = write!(out, "  shard {k}: {} segments", segs.len());
            match verify_shard(&dir, meta.id, k) {
                Ok(st) if st.blocks > 0 => {
                    let _ = write!(
                        out,
                        ", sequences {}..={}, {} .. {}, {} records in {} blocks, {} logical bytes in {} on disk ({:.3}), {markers} second markers",
                        segs.first().map_or(0, |s| s.first_seq),
                        st.last_seq,
                        format_time(first_us.unwrap_or(0)),
                        format_time(st.last_commit_us),
                        st.records,
                        st.blocks,
                        st.raw_bytes,
                        st.stored_bytes,
                        st.stored_bytes as f64 / st.raw_bytes.max(1) as f64
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = write!(out, ", unreadable: {e}");
                }
            }
            out.push('\n');
            for (_, p) in checkpoint::list(&dir)? {
                match checkpoint::read_header(&p) {
                    Ok(h) => {
                        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                        let _ = writeln!(
                            out,
                            "    checkpoint {}: sequences {}..={}, usable from {}, {size} bytes",
                            p.file_name().unwrap_or_default().to_string_lossy(),
                            h.start_seq,
                            h.end_seq,
                            format_time(h.end_us)
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(out, "    checkpoint {}: {e}", p.display());
                    }
                }
            }
        }
    }
    Ok(out)
}
