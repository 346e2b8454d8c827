//! The in-memory map of a table shard (`kv.rs`), its entries (`entry.rs`), its chunks for
//! checkpoints written on several threads (`chunks.rs`), checkpoints loaded into it (`load.rs`) and the ordered index of its DynamoDB
//! items (`ordered.rs`): beneath both the data plane (`shard`), which serves from it, and
//! `restore`, which builds one, so neither depends on the other for it.

mod chunks;
mod entry;
mod kv;
mod load;
pub mod ordered;

pub use chunks::MapChunks;
pub use entry::Entry;
pub use kv::{apply_ref, new_map, shard_of, with_capacity, KvMap, ValueRef};
pub use load::{load_checkpoint, Keep};
pub use ordered::OrderedKeys;
