//! The data plane: tables split into shards, each shard an in-memory map fed by its own log.

mod archive_state;
mod catalog_cell;
mod config;
mod db;
mod error;
mod history;
mod lock;
mod maintain;
mod pitr;
mod recover;
mod retention;
mod startup;
mod table;

pub use archive_state::{ArchiveState, Floor};
pub use config::EngineConfig;
pub use history::HistoryCtx;

/// Most shards a table may have.
pub use crate::catalog::MAX_SHARDS;
pub use crate::map::Entry;
pub use crate::map::{apply_ref, new_map, with_capacity, KvMap, ValueRef};
pub use db::{Db, OpenSummary, DEFAULT_TABLE};
pub use error::DbError;
pub use lock::DirLock;
pub use maintain::{checkpoint_shard, MaintainActivity, MaintainReport};
pub use pitr::{RestoreAt, RestoreHandle, Window, MAX_DAYS, US_PER_DAY};
pub use recover::{recover_catalog, Recovered};
pub use startup::LOST_AND_FOUND;
pub use table::{shard_dir, Table, TableShard};
