//! Reading a whole checkpoint on several threads: one thread streams the blocks and checks
//! their numbering, workers verify, decompress and visit them. For loading a table shard's
//! map at start-up, where one thread decompressing a large checkpoint was the wait.
//!
//! Entries reach the visitor from several threads in no set order. That is right for a
//! checkpoint: it holds every key once (it is a map's image), so the order puts land in
//! changes nothing. The checks are those of `read`: every checksum, each block's first entry
//! number, each block's entry count against its header, and the footer's total.

use std::sync::atomic::{AtomicBool, Ordering};
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
    let failed = AtomicBool::new(false);
    // Every failure with its offset: the first in the file is the one reported.
    let errors: Mutex<Vec<(u64, LogError)>> = Mutex::new(Vec::new());
    let fail = |at: u64, e: LogError| {
        failed.store(true, Ordering::Relaxed);
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
            let (rx, failed, fail) = (rx.clone(), &failed, &fail);
            s.spawn(move || {
                let mut dec = match BlockDecoder::new() {
                    Ok(d) => d,
                    Err(e) => return fail(0, LogError::io(path, e)),
                };
                for (at, h, payload) in rx {
                    if failed.load(Ordering::Relaxed) {
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
        while !failed.load(Ordering::Relaxed) {
            let block = match stream.next_block() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(StreamError::Io(e)) => return fail(u64::MAX, LogError::io(path, e)),
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
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = (0..errors.len()).min_by_key(|&i| errors[i].0) {
        return Err(errors.swap_remove(i).1);
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
            assert!(
                load(&path, 3).is_err(),
                "flip at {i} of {} undetected",
                good.len()
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
}
