//! The archive: every PITR table's history shipped to object storage (S3 and its
//! compatibles, or another mount), and restores from it on any host.
//!
//! - `layout.rs`: object names; listing a prefix gives the restore plan.
//! - `part.rs`: the part object (a run of whole log blocks).
//! - `store.rs`: the object store behind a URL.

pub mod error;
pub mod fetch;
pub mod layout;
pub mod lease;
pub mod part;
pub mod plan;
pub mod retain;
pub mod ship;
pub mod store;
pub mod tail;

pub use error::ArchiveError;
pub use layout::{CkpName, Layout, Object, PartName};
pub use store::{Archive, Created, Listed};
