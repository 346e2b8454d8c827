//! `tables/<id>/table.meta`: each table directory's own description, so a lost or damaged
//! catalog can be rebuilt from the tables themselves (`rewind recover-catalog`).
//!
//! ```text
//! table.meta := magic version entry checksum
//!
//! | off | size | field    | meaning                                                   |
//! |-----|------|----------|-----------------------------------------------------------|
//! |   0 |    7 | magic    | b"RWNDTBM"                                                |
//! |   7 |    1 | version  | 1                                                         |
//! |   8 | 56+n | entry    | the catalog's table entry (id, shards, status, PITR, ...) |
//! | end |    8 | checksum | xxh3-64 of everything before it                           |
//! ```
//!
//! Written with an atomic replace (temp, fsync, rename, fsync the directory) whenever the
//! catalog's entry for the table changes, and brought up to date at every start. The catalog
//! stays the authority while it is readable; this file is what rebuilds it.

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::format::{check_frame, decode_table, encode_table};
use super::TableMeta;
use crate::log::FormatError;

pub const TABLE_FILE: &str = "table.meta";
pub const TABLE_FILE_MAGIC: [u8; 7] = *b"RWNDTBM";
pub const TABLE_FILE_VERSION: u8 = 1;

pub fn encode_table_file(t: &TableMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 56 + t.name.len() + 8);
    out.extend_from_slice(&TABLE_FILE_MAGIC);
    out.push(TABLE_FILE_VERSION);
    encode_table(&mut out, t);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

pub fn decode_table_file(b: &[u8]) -> Result<TableMeta, FormatError> {
    const WHAT: &str = "table metadata";
    let body = check_frame(b, WHAT, &TABLE_FILE_MAGIC, TABLE_FILE_VERSION, 16)?;
    let (meta, end) = decode_table(WHAT, body, 8, 0)?;
    if end != body.len() {
        return Err(FormatError::Malformed {
            what: WHAT,
            detail: format!("{} trailing bytes", body.len() - end),
        });
    }
    Ok(meta)
}

/// Reads `dir/table.meta`: `Ok(None)` when there is none.
pub fn read_table_file(dir: &Path) -> Result<Option<TableMeta>, ReadTableFileError> {
    let path = dir.join(TABLE_FILE);
    match std::fs::read(&path) {
        Ok(b) => decode_table_file(&b)
            .map(Some)
            .map_err(|e| ReadTableFileError::Format(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadTableFileError::Io(path, e)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadTableFileError {
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, #[source] std::io::Error),
    #[error("{0} is damaged: {1}")]
    Format(std::path::PathBuf, #[source] FormatError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableStatus;

    fn sample() -> TableMeta {
        TableMeta {
            id: 7,
            name: "orders".into(),
            shards: 4,
            status: TableStatus::Dropped,
            created_us: 1_764_075_600_000_000,
            pitr_days: 35,
            pitr_since_us: 1_764_075_600_000_005,
            dropped_us: 1_764_075_700_000_000,
            restore_source_id: 3,
            restore_at_us: 1_764_075_500_000_000,
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(
            decode_table_file(&encode_table_file(&sample())).unwrap(),
            sample()
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = encode_table_file(&sample());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode_table_file(&bad).is_err(), "flip at {i} undetected");
        }
        for n in 0..bytes.len() {
            assert!(decode_table_file(&bytes[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn errors_stay_distinct() {
        let bytes = encode_table_file(&sample());
        let mut bad = bytes.clone();
        bad[20] ^= 0xff;
        assert!(matches!(
            decode_table_file(&bad),
            Err(FormatError::ChecksumMismatch { .. })
        ));
        let mut newer = bytes.clone();
        newer[7] = 2;
        let n = newer.len() - 8;
        let sum = xxh3_64(&newer[..n]);
        newer[n..].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            decode_table_file(&newer),
            Err(FormatError::BadVersion { found: 2, .. })
        ));
        assert!(matches!(
            decode_table_file(&bytes[..10]),
            Err(FormatError::Truncated { .. })
        ));
        let mut magic = bytes;
        magic[0] = b'X';
        assert!(matches!(
            decode_table_file(&magic),
            Err(FormatError::BadMagic { .. })
        ));
    }
}
