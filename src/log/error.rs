//! Errors of the log layer.
//!
//! Two enums, one per level: [`FormatError`] says what is wrong with a byte slice (it knows no
//! files), [`LogError`] says where: it carries the file and the byte offset. Checksum
//! mismatches, torn tails and unsupported versions are distinct variants so callers (recovery,
//! `rewind verify`) can treat them differently.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// What is wrong with a slice of on-disk bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad magic: expected {expected:02x?}, found {found:02x?}")]
    BadMagic { expected: Vec<u8>, found: Vec<u8> },
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    BadVersion {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("{what} checksum mismatch: got {got:#018x}, expected {expected:#018x}")]
    ChecksumMismatch {
        what: &'static str,
        got: u64,
        expected: u64,
    },
    /// The slice ends before the structure does: at the end of a file this is a torn tail.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// An error of the log layer, with the file and offset it concerns where there is one.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Damage that is not a torn tail: recovery stops here.
    #[error("{path}: damaged at offset {offset}: {source}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        #[source]
        source: FormatError,
    },
    /// An incomplete block at the very end of a segment (a crash mid-write). Recovery cuts it.
    #[error("{path}: torn tail at offset {offset}: {source}")]
    TornTail {
        path: PathBuf,
        offset: u64,
        #[source]
        source: FormatError,
    },
    #[error("{path}: sequence gap at offset {offset}: expected {expected}, found {found}")]
    SequenceGap {
        path: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error(
        "{path}: commit time goes backwards at offset {offset}: {found_us} after {previous_us}"
    )]
    TimeRegression {
        path: PathBuf,
        offset: u64,
        previous_us: u64,
        found_us: u64,
    },
    #[error("io_uring was demanded but cannot be set up: {0}")]
    UringUnavailable(#[source] io::Error),
    #[error("invalid log configuration: {0}")]
    Config(String),
    #[error("a worker panicked: {0}")]
    Panicked(String),
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl LogError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why an append was not acknowledged. Cheap to clone: one failure is sent to every producer
/// of the batch it hit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// Writing the block failed; it was cut off again and the log is healthy (e.g. ENOSPC).
    #[error("write failed, nothing from this batch was kept: {0}")]
    WriteFailed(Arc<LogError>),
    /// A sync failed (or a failed write could not be undone): the shard accepts no more writes,
    /// because the kernel may have dropped dirty pages it reported as written.
    #[error("log is failed and accepts no more writes: {0}")]
    Poisoned(Arc<LogError>),
    #[error("record batch of {size} bytes exceeds the block limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("log writer is shut down")]
    Closed,
}
