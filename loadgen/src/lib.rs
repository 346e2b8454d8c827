//! `rewind-loadgen`: load for any RESP server (rewind, Redis) with honest latencies.
//!
//! - `keys`: key choice (uniform, zipf, sequential) and values, seeded.
//! - `schedule`: intended send times for open-loop runs (coordinated-omission safe).
//! - `resp`: request encoding and an incremental reply reader.
//! - `stats`: per-command HDR histograms and error counts.
//! - `report`: the live line, the summary table and the JSON file.
//! - `run`: connections, threads, the run itself.

pub mod keys;
pub mod report;
pub mod resp;
pub mod run;
pub mod schedule;
pub mod stats;
