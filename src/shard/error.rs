//! Errors of the table layer.

use std::path::PathBuf;

use crate::log::{FormatError, LogError};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog {path} is damaged: {source}. Nothing was changed. Rebuild it from the tables' own metadata with `rewind recover-catalog --data-dir {dir}` (the damaged file is kept beside it)")]
    Catalog {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error("catalog {path} is missing, but {dir}/tables holds {tables} entries. Nothing was changed. Rebuild the catalog from the tables' own metadata with `rewind recover-catalog --data-dir {dir}`, or move {dir}/tables away to start empty")]
    CatalogMissing {
        path: PathBuf,
        dir: PathBuf,
        tables: usize,
    },
    #[error("recover-catalog: {0}")]
    Recover(String),
    #[error("data directory {dir} is in use by another rewind process ({holder}); stop it or use another --data-dir")]
    Locked { dir: PathBuf, holder: String },
    #[error("table '{0}' already exists")]
    TableExists(String),
    #[error("table '{0}' does not exist")]
    NoSuchTable(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("table '{0}' is the connection default and cannot be dropped")]
    ProtectedTable(String),
    #[error("table '{0}' is {1}")]
    NotActive(String, &'static str),
    #[error("point-in-time recovery is not enabled for table '{0}' (PITR.ENABLE {0})")]
    PitrDisabled(String),
    #[error("invalid recovery period {0}: days must be 1 to 35")]
    BadPeriod(u64),
    #[error("{0}")]
    BadTime(String),
    #[error("{0}")]
    Internal(String),
}

impl DbError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DbError::Io {
            path: path.into(),
            source,
        }
    }
}
