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
