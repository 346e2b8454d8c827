//! Settings of one shard's log writer.

use std::path::PathBuf;

use super::direct::DirectMode;
use super::io::IoMode;

/// When the writer calls `fdatasync`, named as Redis names its `appendfsync` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Every batch is synced before any write in it is acknowledged.
    #[default]
    Always,
    /// Batches are acknowledged once written; a sync runs at least once a second.
    EverySec,
    /// Only segment changes and shutdown sync.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "never" | "no" => Ok(FsyncPolicy::Never),
            other => Err(format!(
                "unknown fsync policy {other:?}: expected always, everysec or never"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The shard's directory; created if missing.
    pub dir: PathBuf,
    pub table_id: u64,
    pub shard: u32,
    /// A segment is closed once it reaches this size (and at every UTC hour).
    pub segment_max_bytes: u64,
    /// zstd level for block payloads; 0 stores them raw.
    pub zstd_level: i32,
    /// Payloads shorter than this are stored raw.
    pub min_compress_len: usize,
    pub fsync: FsyncPolicy,
    pub io: IoMode,
    /// With `fsync always`, write blocks with `O_DIRECT` + `RWF_DSYNC` (no `fdatasync`).
    pub direct: DirectMode,
    /// A batch stops taking more submissions once its records reach this many bytes.
    pub max_batch_bytes: usize,
    /// Submissions that may wait for the writer; producers block beyond it.
    pub queue_depth: usize,
    /// The open segment is extended with zeros this many bytes at a time, so appends do not
    /// grow the file (0 turns it off).
    pub preallocate_bytes: u64,
    /// Recovery steps over damage before the tail (logging what was lost) instead of refusing.
    pub tolerant: bool,
}

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>, table_id: u64, shard: u32) -> Self {
        LogConfig {
            dir: dir.into(),
            table_id,
            shard,
            segment_max_bytes: 64 << 20,
            zstd_level: 1,
            min_compress_len: 256,
            fsync: FsyncPolicy::Always,
            io: IoMode::Auto,
            direct: DirectMode::Auto,
            max_batch_bytes: 4 << 20,
            queue_depth: 16_384,
            preallocate_bytes: 1 << 20,
            tolerant: false,
        }
    }
}
