//! The catalog file.
//!
//! ```text
//! catalog := header table*count trailer
//!
//! header (little-endian)
//! | off | size | field          | meaning                                  |
//! |-----|------|----------------|------------------------------------------|
//! |   0 |    7 | magic          | b"RWNDCAT"                               |
//! |   7 |    1 | version        | 1                                        |
//! |   8 |    8 | next_table_id  | id the next table gets                   |
//! |  16 |    4 | count          | number of tables                         |
//! |  20 |    4 | reserved       | zero                                     |
//!
//! table
//! |   0 |    8 | id             |                                          |
//! |   8 |    4 | shards         | 1..=64                                   |
//! |  12 |    1 | status         | 0 ACTIVE, 1 RESTORING, 2 FAILED, 3 DROPPED |
//! |  13 |    1 | pitr_days      | 0 = PITR off, else 1..=35                |
//! |  14 |    2 | name_len       | 3..=255                                  |
//! |  16 |    8 | created_us     | Unix µs                                  |
//! |  24 |    8 | pitr_since_us  | when PITR was enabled, 0 if off          |
//! |  32 |    8 | dropped_us     | when dropped (DROPPED), else 0           |
//! |  40 |    8 | restore_source | source table id of a restore, else 0     |
//! |  48 |    8 | restore_at_us  | time that restore reproduces, else 0     |
//! |  56 |  n   | name           | name_len bytes                           |
//!
//! trailer
//! |   0 |    8 | checksum       | xxh3-64 of everything before it          |
//! ```

use xxhash_rust::xxh3::xxh3_64;

use super::{validate_table_name, Catalog, TableMeta, TableStatus};
use crate::log::FormatError;

pub const CATALOG_MAGIC: [u8; 7] = *b"RWNDCAT";
pub const CATALOG_VERSION: u8 = 1;
const HEADER_LEN: usize = 24;
const TABLE_FIXED_LEN: usize = 56;

pub fn encode(c: &Catalog) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + c.tables.len() * 64 + 8);
    out.extend_from_slice(&CATALOG_MAGIC);
    out.push(CATALOG_VERSION);
    out.extend_from_slice(&c.next_table_id.to_le_bytes());
    out.extend_from_slice(&(c.tables.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for t in &c.tables {
        encode_table(&mut out, t);
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Appends one table entry (the `table` rows above).
pub(super) fn encode_table(out: &mut Vec<u8>, t: &TableMeta) {
    assert!(t.name.len() <= u16::MAX as usize, "names are validated");
    out.extend_from_slice(&t.id.to_le_bytes());
    out.extend_from_slice(&t.shards.to_le_bytes());
    out.push(t.status as u8);
    out.push(t.pitr_days);
    out.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
    out.extend_from_slice(&t.created_us.to_le_bytes());
    out.extend_from_slice(&t.pitr_since_us.to_le_bytes());
    out.extend_from_slice(&t.dropped_us.to_le_bytes());
    out.extend_from_slice(&t.restore_source_id.to_le_bytes());
    out.extend_from_slice(&t.restore_at_us.to_le_bytes());
    out.extend_from_slice(t.name.as_bytes());
}

/// Reads the table entry at `pos` of `body` (entry `i`, for messages) of a file named
/// `what`; returns it and the position after it.
pub(super) fn decode_table(
    what: &'static str,
    body: &[u8],
    pos: usize,
    i: u32,
) -> Result<(TableMeta, usize), FormatError> {
    let malformed = |detail: String| FormatError::Malformed { what, detail };
    let fixed = body
        .get(pos..pos + TABLE_FIXED_LEN)
        .ok_or_else(|| malformed(format!("table {i} runs past the end")))?;
    let name_len = u16::from_le_bytes([fixed[14], fixed[15]]) as usize;
    let name = body
        .get(pos + TABLE_FIXED_LEN..pos + TABLE_FIXED_LEN + name_len)
        .ok_or_else(|| malformed(format!("name of table {i} runs past the end")))?;
    let name = validate_table_name(name).map_err(&malformed)?.to_string();
    let status = TableStatus::from_u8(fixed[12])
        .ok_or_else(|| malformed(format!("table {name}: unknown status {}", fixed[12])))?;
    let meta = TableMeta {
        id: le_u64(fixed, 0),
        shards: u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes")),
        status,
        pitr_days: fixed[13],
        created_us: le_u64(fixed, 16),
        pitr_since_us: le_u64(fixed, 24),
        dropped_us: le_u64(fixed, 32),
        restore_source_id: le_u64(fixed, 40),
        restore_at_us: le_u64(fixed, 48),
        name,
    };
    if meta.shards == 0 || meta.shards > super::MAX_SHARDS || meta.id == 0 || meta.pitr_days > 35 {
        return Err(malformed(format!("table entry out of range: {meta:?}")));
    }
    Ok((meta, pos + TABLE_FIXED_LEN + name_len))
}

fn malformed(detail: String) -> FormatError {
    FormatError::Malformed {
        what: "catalog",
        detail,
    }
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks the frame both catalog files share — 7-byte magic, version byte, ..., xxh3-64 of
/// everything before it — in the order that keeps errors distinct (length, magic, checksum,
/// version); returns the bytes before the checksum.
pub(super) fn check_frame<'a>(
    b: &'a [u8],
    what: &'static str,
    magic: &[u8; 7],
    version: u8,
    min_len: usize,
) -> Result<&'a [u8], FormatError> {
    if b.len() < min_len {
        return Err(FormatError::Truncated {
            what,
            need: min_len as u64,
            have: b.len() as u64,
        });
    }
    if b[0..7] != magic[..] {
        return Err(FormatError::BadMagic {
            expected: magic.to_vec(),
            found: b[0..7].to_vec(),
        });
    }
    let body = &b[..b.len() - 8];
    let (got, expected) = (xxh3_64(body), le_u64(b, b.len() - 8));
    if got != expected {
        return Err(FormatError::ChecksumMismatch {
            what,
            got,
            expected,
        });
    }
    if b[7] != version {
        return Err(FormatError::BadVersion {
            what,
            found: b[7],
            supported: version,
        });
    }
    Ok(body)
}

pub fn decode(b: &[u8]) -> Result<Catalog, FormatError> {
    let body = check_frame(
        b,
        "catalog",
        &CATALOG_MAGIC,
        CATALOG_VERSION,
        HEADER_LEN + 8,
    )?;
    let next_table_id = le_u64(b, 8);
    let count = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
    let mut pos = HEADER_LEN;
    let mut tables = Vec::new();
    for i in 0..count {
        let (meta, next) = decode_table("catalog", body, pos, i)?;
        if meta.id >= next_table_id {
            return Err(malformed(format!("table entry out of range: {meta:?}")));
        }
        tables.push(meta);
        pos = next;
    }
    if pos != body.len() {
        return Err(malformed(format!("{} trailing bytes", body.len() - pos)));
    }
    Ok(Catalog {
        next_table_id,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalog {
        let mut c = Catalog::default();
        c.add("default", 2, 1_764_075_600_000_000);
        let t = c.add("orders", 4, 1_764_075_600_000_001);
        c.tables[1].pitr_days = 35;
        c.tables[1].pitr_since_us = t.created_us + 5;
        c.add("scratch", 1, 7);
        c.remove("scratch");
        let r = c.add("restored", 4, 9);
        let i = c.tables.iter().position(|t| t.id == r.id).unwrap();
        c.tables[i].status = TableStatus::Restoring;
        c.tables[i].restore_source_id = t.id;
        c.tables[i].restore_at_us = 8;
        c.tables[1].status = TableStatus::Dropped;
        c.tables[1].dropped_us = 10;
        c
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(decode(&encode(&c)).unwrap(), c);
        assert_eq!(
            decode(&encode(&Catalog::default())).unwrap(),
            Catalog::default()
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(decode(&bad).is_err(), "flip at {i} undetected");
        }
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn newer_version_is_named() {
        let mut bytes = encode(&sample());
        bytes[7] = 9;
        let n = bytes.len() - 8;
        let sum = xxh3_64(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(FormatError::BadVersion { found: 9, .. })
        ));
    }
}
