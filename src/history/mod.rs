//! Answers about history without a restore: a key's writes (`PITR.HISTORY`), its value at a
//! moment (`PITR.GET`), what changed between two moments (`PITR.DIFF`, and `PITR.REVERT`
//! built on it), and a table's digest (`TABLE.DIGEST`).
//!
//! It reads shard directories beside the writer (bounded by the durable sequence) and
//! knows nothing of the engine: callers hand it the directories, the table id and what is
//! durable. Sealed segments and checkpoints get key indexes (`keyindex.rs`, `.kix` files)
//! so a question about one key decodes only the blocks holding that key.

pub mod build;
pub mod cache;
pub mod glob;
pub mod keyindex;
pub mod reader;

pub use cache::IndexCache;
pub use glob::Glob;
pub use reader::{ShardSource, Write};
pub mod table;
pub use table::{Change, DiffPage, HistoryError, TableSource, MAX_CHANGED_KEYS};

/// Builds the missing key indexes of one shard's sealed segments and checkpoints, at most
/// `budget` of them (for the maintenance pass: a question then finds them ready). Returns
/// how many it built.
pub fn index_shard(
    dir: &std::path::Path,
    (table_id, shard): (u64, u32),
    cache: &IndexCache,
    budget: usize,
) -> Result<usize, crate::log::LogError> {
    use keyindex::{Kind, KixHeader};
    let mut built = 0;
    let segs = crate::log::segment::list(dir)?;
    // The newest segment is open: its index lives in memory.
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        if built >= budget {
            return Ok(built);
        }
        let want = KixHeader {
            kind: Kind::Segment,
            table_id,
            shard,
            file_id: s.first_seq,
            covered_len: 0,
        };
        let path = &s.path;
        built += cache.ensure_file(path, want, || {
            build::index_segment(path, table_id, shard, s.first_seq)
        })? as usize;
    }
    for (end_seq, path) in crate::log::checkpoint::list(dir)? {
        if built >= budget {
            return Ok(built);
        }
        let want = KixHeader {
            kind: Kind::Checkpoint,
            table_id,
            shard,
            file_id: end_seq,
            covered_len: 0,
        };
        built += cache.ensure_file(&path, want, || {
            build::index_checkpoint(&path, table_id, shard).map(|(k, _)| k)
        })? as usize;
    }
    Ok(built)
}
