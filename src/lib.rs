pub mod catalog;
pub mod cli;
pub mod dynamo;
pub mod log;
pub mod protocol;
pub mod restore;
pub mod server;
pub mod shard;
