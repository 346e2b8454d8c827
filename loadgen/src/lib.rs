//! `rewind-loadgen`: load for any RESP server (rewind, Redis) with honest latencies.
//!
//! - `keys`: key choice (uniform, zipf, sequential) and values, seeded.
//! - `schedule`: intended send times for open-loop runs (coordinated-omission safe).
//! - `resp`: request encoding and an incremental reply reader.
//! - `dynamo`: the DynamoDB mode's HTTP requests and responses, and its table.
//! - `stats`: per-command HDR histograms and error counts.
//! - `report`: the live line, the summary table and the JSON file.
//! - `run`: connections, threads, the run itself.
//! - `verify`: the PITR oracle against a running rewind.
//! - `capacity`: the highest rate that meets latency SLOs.

pub mod capacity;
pub mod client;
pub mod dynamo;
pub mod keys;
pub mod report;
pub mod resp;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod verify;
