pub mod catalog;
pub mod log;
pub mod protocol;
pub mod server;
pub mod shard;
