//! Errors of the archive layer.

use crate::log::{FormatError, LogError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("bad archive URL '{url}': {why} (use s3://bucket/prefix or file:///path)")]
    BadUrl { url: String, why: String },
    #[error("{0}")]
    Config(String),
    /// The store could not be reached or refused a request (network, credentials, 5xx).
    #[error("archive {op} {name}: {source}")]
    Store {
        op: &'static str,
        name: String,
        #[source]
        source: object_store::Error,
    },
    #[error("archive object {name} is damaged: {source}")]
    Damaged {
        name: String,
        #[source]
        source: FormatError,
    },
    /// Another server's generation holds the lease on this prefix.
    #[error(
        "archive {url} is held by generation {generation} (host {host}, pid {pid}, data dir {data_dir}, since {since}); \
         two servers must not archive to one prefix. If that server is gone for good (its host was replaced), \
         start this one with --archive-takeover"
    )]
    Fenced {
        url: String,
        generation: String,
        host: String,
        pid: u32,
        data_dir: String,
        since: String,
    },
    /// The lease this server held is gone: it stops archiving rather than race a server that
    /// may create it anew.
    #[error(
        "the lease object {0} is gone or unreadable; archiving stopped (restart to take it again)"
    )]
    LeaseLost(String),
    /// The archive's history and the local log disagree (a crash lost writes that had been
    /// shipped, possible only without --fsync always).
    #[error("table {table} shard {shard}: {detail}")]
    Diverged {
        table: u64,
        shard: u32,
        detail: String,
    },
    /// What a restore needs is not in the archive.
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    /// Errors after which this server must stop archiving.
    pub fn is_fencing(&self) -> bool {
        matches!(
            self,
            ArchiveError::Fenced { .. } | ArchiveError::LeaseLost(_)
        )
    }

    pub fn store(op: &'static str, name: &str, source: object_store::Error) -> Self {
        ArchiveError::Store {
            op,
            name: name.to_string(),
            source,
        }
    }

    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
