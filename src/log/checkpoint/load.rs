//! Reading a whole checkpoint on several threads: one thread streams the blocks and checks
//! their numbering, workers verify, decompress and visit them. For loading a table shard's
//! map at start-up, where one thread decompressing a large checkpoint was the wait.
//!
//! Entries reach the visitor from several threads in no set order. That is right for a
//! checkpoint: it holds every key once (it is a map's image), so the order puts land in
//! changes nothing (start-up also checks the map ends with as many keys as the footer counts).
//! The checks are those of `read`: every checksum, each block's first entry number, each
//! block's entry count against its header, and the footer's total. For damage a checksum
//! finds, the error reported is the one `read` would give: a worker skips only blocks after
//! the lowest failing offset known, so every block before the first damage is verified.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crossbeam_channel::bounded;

use super::{damaged, malformed, open_checked, read, CheckpointHeader, HEADER_LEN};
use crate::log::block::{BlockDecoder, BlockHeader};
use crate::log::error::{FormatError, LogError};
use crate::log::record::RecordIter;
use crate::log::stream::{BlockStream, StreamError};
use crate::log::RecordRef;

/// A block read off the file: its offset, header and payload.
type Job = (u64, BlockHeader, Vec<u8>);

/// [`read`] on `workers` threads; `visit` may be called from any of them, in any order.
pub fn read_parallel(
    path: &std::path::Path,
    table_id: u64,
    shard: u32,
    workers: usize,
    visit: &(dyn Fn(&[u8], &[u8]) + Sync),
) -> Result<CheckpointHeader, LogError> {
    if workers <= 1 {
        return read(path, table_id, shard, |k, v| visit(k, v));
    }
    let opened = open_checked(path, table_id, shard)?;
    let (salt, footer_at) = (opened.salt, opened.footer_at);
    // The lowest offset that failed (`u64::MAX`: none yet).
    let first_bad = AtomicU64::new(u64::MAX);
    // Every failure with its offset: the first in the file is the one reported.
    let errors: Mutex<Vec<(u64, LogError)>> = Mutex::new(Vec::new());
    let fail = |at: u64, e: LogError| {
        first_bad.fetch_min(at, Ordering::Relaxed);
        errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at, e));
    };
    let (tx, rx) = bounded::<Job>(workers * 2);
    let mut seen = 0u64;
    std::thread::scope(|s| {
        let tx = tx;
        for _ in 0..workers {
            let (rx, first_bad, fail) = (rx.clone(), &first_bad, &fail);
            s.spawn(move || {
                let mut dec = match BlockDecoder::new() {
                    Ok(d) => d,
                    Err(e) => return fail(0, LogError::io(path, e)),
                };
                for (at, h, payload) in rx {
                    // A block after a known failure cannot change which error is reported.
                    if at > first_bad.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Err(e) = visit_block(path, &mut dec, salt, at, &h, &payload, visit) {
                        fail(at, e);
                    }
                }
            });
        }
        drop(rx);
        let mut stream = BlockStream::new(&opened.file, salt, HEADER_LEN as u64, footer_at);
        // Every block not yet sent lies after any failure: stop streaming at the first.
        while first_bad.load(Ordering::Relaxed) == u64::MAX {
            let next_at = stream.position();
            let block = match stream.next_block() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(StreamError::Io(e)) => return fail(next_at, LogError::io(path, e)),
                Err(StreamError::Format { offset, error }) => {
                    return fail(offset, damaged(path, offset, error))
                }
            };
            let (at, h) = (block.offset, block.header);
            if h.first_seq != seen + 1 {
                let detail = format!(
                    "block starts at entry {}, expected {}",
                    h.first_seq,
                    seen + 1
                );
                return fail(at, malformed(path, at, detail));
            }
            seen += u64::from(h.record_count);
            if tx.send((at, h, block.payload.to_vec())).is_err() {
                // Every worker is gone: only a panic does that, and the scope re-raises it.
                return;
            }
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some((_, e)) = errors.into_iter().min_by_key(|(at, _)| *at) {
        return Err(e);
    }
    if seen != opened.entries {
        let detail = format!("{seen} entries, footer says {}", opened.entries);
        let e = FormatError::Malformed {
            what: "checkpoint",
            detail,
        };
        return Err(damaged(path, footer_at, e));
    }
    Ok(opened.header)
}

/// Verifies and decompresses one block and visits its entries; checks their number.
fn visit_block(
    path: &std::path::Path,
    dec: &mut BlockDecoder,
    salt: u64,
    at: u64,
    h: &BlockHeader,
    payload: &[u8],
    visit: &(dyn Fn(&[u8], &[u8]) + Sync),
) -> Result<(), LogError> {
    let raw = dec
        .decode(h, payload, salt)
        .map_err(|e| damaged(path, at, e))?;
    let mut n = 0u32;
    for r in RecordIter::new(raw) {
        match r.map_err(|e| damaged(path, at, e))? {
            RecordRef::Put { key, value } => visit(key, value),
            RecordRef::Delete { .. } => {
                return Err(malformed(path, at, "a delete in a checkpoint".into()));
            }
        }
        n += 1;
    }
    if n != h.record_count {
        let detail = format!(
            "block holds {n} entries, its header says {}",
            h.record_count
        );
        return Err(malformed(path, at, detail));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use xxhash_rust::xxh3::xxh3_64_with_seed;

    use super::super::{write, FOOTER_LEN};
    use super::*;

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            table_id: 5,
            shard: 3,
            start_seq: 10,
            end_seq: 20,
            end_us: 30,
            created_us: 40,
        }
    }

    type Entries = Vec<(Vec<u8>, Vec<u8>)>;

    fn entries(n: usize) -> Entries {
        (0..n)
            .map(|i| {
                let value = format!("{i}-{}", "x".repeat(i % 90));
                (format!("k{i}").into_bytes(), value.into_bytes())
            })
            .collect()
    }

    fn load(path: &std::path::Path, workers: usize) -> Result<Entries, LogError> {
        let out = Mutex::new(Vec::new());
        read_parallel(path, 5, 3, workers, &|k, v| {
            out.lock().unwrap().push((k.to_vec(), v.to_vec()))
        })?;
        let mut out = out.into_inner().unwrap();
        out.sort();
        Ok(out)
    }

    #[test]
    fn parallel_read_visits_what_the_sequential_read_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = entries(60_000);
        let (path, _) = write(dir.path(), &header(), 1, e.iter().map(|(k, v)| (k, v))).unwrap();
        let raw: usize = e.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(
            raw > 2 * super::super::BLOCK_TARGET,
            "several blocks: {raw} bytes"
        );
        e.sort();
        for workers in [1, 2, 4] {
            assert_eq!(load(&path, workers).unwrap(), e, "{workers} workers");
        }
        let h = read_parallel(&path, 5, 3, 3, &|_, _| {}).unwrap();
        assert_eq!(h, header());
        let err = read_parallel(&path, 5, 4, 3, &|_, _| {}).unwrap_err();
        assert!(
            err.to_string().contains("expected table 5 shard 4"),
            "{err}"
        );
    }

    #[test]
    fn every_flipped_byte_is_detected_by_the_parallel_read() {
        let dir = tempfile::tempdir().unwrap();
        // Blocks hold about 1 MiB: 25,000 entries of ~50 bytes make two.
        let e = entries(25_000);
        let raw: usize = e.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(raw > super::super::BLOCK_TARGET, "two blocks: {raw} bytes");
        let (path, _) = write(dir.path(), &header(), 1, e.iter().map(|(k, v)| (k, v))).unwrap();
        let good = std::fs::read(&path).unwrap();
        for i in (0..good.len()).step_by(good.len() / 300) {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            std::fs::write(&path, &bad).unwrap();
            let got = load(&path, 3).expect_err("a flipped byte is detected");
            let want = read(&path, 5, 3, |_, _| {}).unwrap_err();
            assert_eq!(
                got.to_string(),
                want.to_string(),
                "flip at {i}: the error `read` gives"
            );
        }
        // Each block's header is covered, not only the first.
        let at = HEADER_LEN + 8;
        let payload = u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
        let first_len = crate::log::block::BLOCK_HEADER_LEN + payload;
        assert!(
            HEADER_LEN + first_len + 100 < good.len() - FOOTER_LEN,
            "a second block"
        );
        for i in [HEADER_LEN + first_len, HEADER_LEN + first_len + 20] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(load(&path, 3).is_err(), "flip at {i} in the second block");
        }
        std::fs::write(&path, &good[..good.len() - FOOTER_LEN]).unwrap();
        assert!(load(&path, 3).is_err(), "no footer");
    }

    /// Files whose checksums all hold but whose numbering does not: only the parallel read's
    /// own checks (block numbering, the footer's total) can find these.
    #[test]
    fn a_missing_block_or_a_wrong_total_with_valid_checksums_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = entries(60_000);
        let (path, _) = write(dir.path(), &header(), 1, e.iter().map(|(k, v)| (k, v))).unwrap();
        let good = std::fs::read(&path).unwrap();
        let block_len = |at: usize| {
            let payload = u32::from_le_bytes(good[at + 8..at + 12].try_into().unwrap()) as usize;
            crate::log::block::BLOCK_HEADER_LEN + payload
        };
        let second = HEADER_LEN + block_len(HEADER_LEN);
        let third = second + block_len(second);
        assert!(third < good.len() - FOOTER_LEN, "three blocks or more");
        // The second block cut out, everything else (footer included) kept.
        let cut = [&good[..second], &good[third..]].concat();
        std::fs::write(&path, &cut).unwrap();
        let err = load(&path, 3).unwrap_err().to_string();
        assert!(err.contains("block starts at entry"), "{err}");
        // The footer's total one too many, its checksum recomputed.
        let mut wrong = good.clone();
        let f = wrong.len() - FOOTER_LEN;
        let total = u64::from_le_bytes(wrong[f + 8..f + 16].try_into().unwrap());
        wrong[f + 8..f + 16].copy_from_slice(&(total + 1).to_le_bytes());
        let sum = xxh3_64_with_seed(&wrong[f..f + 16], header().salt());
        wrong[f + 16..f + 24].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&path, &wrong).unwrap();
        let err = load(&path, 3).unwrap_err().to_string();
        assert!(err.contains("footer says 60001"), "{err}");
        std::fs::write(&path, &good).unwrap();
        assert_eq!(load(&path, 3).unwrap().len(), 60_000);
    }
}
