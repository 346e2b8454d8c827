//! Engine settings shared by every table.

use crate::log::{DirectMode, FsyncPolicy, IoMode};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shards for new tables (existing tables keep the count they were created with).
    pub shards: u32,
    pub fsync: FsyncPolicy,
    pub io: IoMode,
    /// `O_DIRECT` + `RWF_DSYNC` log writes with `fsync always`.
    pub direct: DirectMode,
    pub zstd_level: i32,
    pub segment_max_bytes: u64,
    /// Start despite damaged log blocks, skipping them and reporting what was lost.
    pub tolerant: bool,
    /// A shard is checkpointed once this many log bytes were written since its last one...
    pub checkpoint_bytes: u64,
    /// ...or this long after it (if anything was written).
    pub checkpoint_interval_us: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            fsync: FsyncPolicy::Always,
            io: IoMode::Auto,
            direct: DirectMode::Auto,
            zstd_level: 1,
            segment_max_bytes: 64 << 20,
            tolerant: false,
            checkpoint_bytes: 256 << 20,
            checkpoint_interval_us: 3_600_000_000,
        }
    }
}
