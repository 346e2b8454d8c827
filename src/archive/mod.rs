//! The archive: every PITR table's history shipped to object storage (S3 and its
//! compatibles, or another mount), and restores from it on any host.
//!
//! - `layout.rs`: object names; listing a prefix gives the restore plan.
//! - `part.rs`: the part object (a run of whole log blocks).
//! - `store.rs`: the object store behind a URL.
//! - `lease.rs`: fencing a second server (the lease and the generation).
//! - `tail.rs`: new durable blocks of a shard's local log, read beside its writer.
//! - `ship.rs`: one pass of shipping; `runner.rs`: the thread that runs passes.
//! - `plan.rs`: restore plans and retention from a listing; `retain.rs`: the retention pass.
//! - `fetch.rs`: what a restore from the archive downloads, and the download.

pub mod error;
pub mod fetch;
pub mod layout;
pub mod lease;
pub mod part;
pub mod plan;
pub mod retain;
pub mod runner;
pub mod ship;
pub mod store;
pub mod tail;

pub use error::ArchiveError;
pub use layout::{CkpName, Layout, Object, PartName};
pub use store::{Archive, Created, Listed};
