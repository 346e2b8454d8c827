//! Measuring primitives shared by every layer (the log's sync latency, the server's command
//! latency). What is exported and how lives with the server (`server/observe/`).

pub mod histogram;

pub use histogram::Histogram;
