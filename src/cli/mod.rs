//! The offline subcommands: `restore`, `inspect`, `verify` and `recover-catalog` on a data
//! directory.

mod archive;
mod history;
mod inspect;
mod restore;
mod verify;

pub use archive::{inspect_archive, restore_from_archive};
pub use history::{diff, history, KeyArg};
pub use inspect::inspect;
pub use restore::restore;
pub use verify::verify;

use std::path::Path;

use crate::catalog::{self, Catalog};
use crate::shard::DbError;

/// Reads and checks the catalog of a data directory.
pub fn load_catalog(data_dir: &Path) -> Result<Catalog, DbError> {
    let path = data_dir.join("catalog");
    let bytes = std::fs::read(&path).map_err(|e| DbError::io(&path, e))?;
    catalog::decode(&bytes).map_err(|source| DbError::Catalog {
        path,
        dir: data_dir.to_path_buf(),
        source,
    })
}

/// The report `rewind recover-catalog` prints.
pub fn describe_recovery(data_dir: &Path, r: &crate::shard::Recovered) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(kept) = &r.damaged_kept {
        let _ = writeln!(out, "the damaged catalog is kept as {}", kept.display());
    }
    let _ = writeln!(
        out,
        "rebuilt {} with {} tables:",
        data_dir.join("catalog").display(),
        r.tables.len()
    );
    for t in &r.tables {
        let pitr = if t.pitr_days > 0 {
            format!("PITR {} days", t.pitr_days)
        } else {
            "PITR off".to_string()
        };
        let _ = writeln!(
            out,
            "  id {:<4} {:<24} {:<9} {} shards, {pitr}",
            t.id,
            t.name,
            t.status.as_str(),
            t.shards
        );
    }
    if r.added_default {
        let _ = writeln!(
            out,
            "  (no 'default' table was found: an empty one was added)"
        );
    }
    for (dir, why) in &r.skipped {
        let _ = writeln!(
            out,
            "not recovered: {} ({why}); the next start moves it to {}/",
            dir.display(),
            crate::shard::LOST_AND_FOUND
        );
    }
    out
}
