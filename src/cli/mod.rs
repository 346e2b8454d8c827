//! The offline subcommands: `restore`, `inspect` and `verify` on a data directory.

mod inspect;
mod restore;
mod verify;

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
    catalog::decode(&bytes).map_err(|source| DbError::Catalog { path, source })
}
