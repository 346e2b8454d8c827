//! What the server knows about itself, for people and tools: per-command counters and
//! latency, the slow log, the connected clients, memory, rates, and their export as INFO
//! (`commands/info.rs`) and Prometheus text (`prometheus.rs`, `endpoint.rs`).

pub mod clients;
pub mod cmdstats;
pub mod endpoint;
pub mod memory;
pub mod prometheus;
pub mod rate;
pub mod slowlog;

pub use clients::{ClientInfo, Clients, KillFilter};
pub use cmdstats::CommandStats;
pub use rate::Rates;
pub use slowlog::SlowLog;
