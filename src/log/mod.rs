//! The durable log: segment files of checksummed, compressed blocks, one per committed batch,
//! a per-second index per segment, a group-committing writer per shard, a verifying reader,
//! and crash recovery. See `docs/FORMAT.md` for the byte layouts.
//!
//! Files of one shard live in one directory:
//!
//! ```text
//! <dir>/00000000000000000001.seg   blocks from sequence 1
//! <dir>/00000000000000000001.idx   its per-second index (written when the segment closes)
//! <dir>/00000000000000052113.seg   the next segment, and so on
//! <dir>/next.seg-prepared          zeros made ahead for the next segment (`segment_prep.rs`)
//! ```

pub mod block;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod direct;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod fsutil;
pub mod index;
pub mod io;
mod leader;
pub mod local;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod rmw;
pub mod segment;
pub mod segment_prep;
pub mod stream;
pub mod varint;
pub mod writer;
mod writer_core;
mod writer_stage;

pub use clock::{Clock, ManualClock, SystemClock};

/// The log directory of shard `shard` of the table in `table_dir`.
pub fn shard_dir(table_dir: &std::path::Path, shard: u32) -> std::path::PathBuf {
    table_dir.join(format!("shard-{shard}"))
}
pub use config::{FsyncPolicy, LogConfig};
pub use direct::DirectMode;
pub use error::{CommitError, FormatError, LogError};
pub use io::IoMode;
pub use reader::{
    scan_shard, scan_shard_with, verify_shard, LostRange, ScanOptions, ScanProgress, ScanRange,
    ScanStats,
};
pub use record::{Record, RecordRef};
pub use rmw::{ReadHook, RmwDecision, RmwOp, RmwOutcome};
pub use writer::{CommitHook, CommitInfo, OpenReport, RmwResult, ShardLog, StatsSnapshot};

#[cfg(test)]
mod prepared_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod segment_prep_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod writer_tests;
