//! Writing a whole checkpoint on several threads, from a source that splits into chunks.
//!
//! Each worker takes the next chunk, walks it, frames its entries into blocks and compresses
//! them; the writer appends the finished blocks in chunk order. The layout is the one in
//! `checkpoint.rs`, read by the same readers; blocks end at chunk ends (and at [`CUT_BYTES`]
//! within a chunk), so the bytes differ from what `put` one entry at a time writes, but they
//! are the same whatever the number of workers.
//!
//! A source knows how many entries each chunk holds before it is walked, so every block's
//! `first_seq` is fixed up front and no worker waits for another's count. At most
//! `2 × workers` chunks are out at once (walked, compressed, waiting for their turn). A map's
//! chunk is about one block of raw entries, or one lock stripe where a stripe holds more
//! (a shard over about 1 GiB of keys and values: a stripe is 1/1024 of it), so the writer holds
//! at most `2 × workers` compressed blocks or stripes.
//!
//! Used for a restore's target checkpoint: the map is the restore's own, nothing writes to it,
//! and walking it was one thread's work (the map walk and framing capped a one-shard restore's
//! checkpoint at one core however many compressed).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::unbounded;

use super::{CheckpointWriter, BLOCK_TARGET};
use crate::log::block::BlockEncoder;
use crate::log::error::LogError;
use crate::log::record::RecordBatch;

/// Entries that can be handed out in numbered chunks, each walked on any thread.
pub trait ChunkSource: Sync {
    /// Number of chunks; they are written in the order `0..chunks()`.
    fn chunks(&self) -> usize;
    /// Entries in `chunk`, known before it is walked: a walk that finds another number fails
    /// the checkpoint.
    fn entries(&self, chunk: usize) -> u64;
    /// Calls `put` for every entry of `chunk`.
    fn walk(&self, chunk: usize, put: &mut dyn FnMut(&[u8], &[u8]));
}

/// A worker cuts a block once its framed entries reach this many bytes. Sources size chunks
/// by key and value bytes (about [`BLOCK_TARGET`]), which framing makes a little larger: the
/// margin keeps such a chunk one block instead of a full one and a sliver.
const CUT_BYTES: usize = BLOCK_TARGET + BLOCK_TARGET / 2;

/// What a worker hands back: a chunk's number and its blocks, in order.
type Done = (usize, io::Result<Vec<Vec<u8>>>);

impl CheckpointWriter {
    /// Writes every entry of `src` on `workers` threads, then the footer, and puts the file in
    /// place as [`CheckpointWriter::finish`] does. For a writer nothing was put into yet.
    pub fn write_chunks(
        mut self,
        src: &dyn ChunkSource,
        workers: usize,
    ) -> Result<(PathBuf, u64), LogError> {
        assert!(
            self.count == 0 && self.batch.is_empty(),
            "write_chunks starts from an empty writer"
        );
        let n = src.chunks();
        let mut first = Vec::with_capacity(n);
        let mut total = 0u64;
        for i in 0..n {
            first.push(total + 1);
            total += src.entries(i);
        }
        let workers = workers.clamp(1, n.max(1));
        let window = 2 * workers;
        let (salt, commit_us) = (self.salt, self.header.end_us);
        let tmp = self.tmp.clone();
        let io_err = |e: io::Error| LogError::io(&tmp, e);
        let mut encoders = Vec::with_capacity(workers);
        for _ in 0..workers {
            encoders.push(BlockEncoder::new(self.zstd_level, 256).map_err(io_err)?);
        }
        let (job_tx, job_rx) = unbounded::<usize>();
        let (done_tx, done_rx) = unbounded::<Done>();
        // Set when the write fails: chunks still queued are then skipped, not walked.
        let abort = AtomicBool::new(false);
        std::thread::scope(|s| -> Result<(), LogError> {
            // Dropped when this closure returns, early or not: idle workers then stop.
            let job_tx = job_tx;
            let _abort_on_return = AbortOnDrop(&abort);
            for (w, mut enc) in encoders.into_iter().enumerate() {
                let (rx, tx, first, abort) = (job_rx.clone(), done_tx.clone(), &first, &abort);
                std::thread::Builder::new()
                    .name(format!("ckp-chunk-{w}"))
                    .spawn_scoped(s, move || {
                        let mut batch = RecordBatch::with_capacity(CUT_BYTES + (64 << 10));
                        for i in rx {
                            if abort.load(Ordering::Relaxed) {
                                return;
                            }
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                let at = (first[i], salt, commit_us);
                                encode_chunk(src, i, at, &mut enc, &mut batch)
                            }))
                            .unwrap_or_else(|p| {
                                Err(io::Error::other(format!(
                                    "checkpoint chunk {i} panicked: {}",
                                    crate::log::error::panic_message(p.as_ref())
                                )))
                            });
                            let failed = r.is_err();
                            if tx.send((i, r)).is_err() || failed {
                                return;
                            }
                        }
                    })
                    .map_err(io_err)?;
            }
            // Only workers hold senders now: if every one stops, `recv` says so.
            drop(done_tx);
            let (mut sent, mut written) = (0usize, 0usize);
            let mut ready: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
            while written < n {
                while sent < n && sent < written + window {
                    // The receiver `job_rx` lives as long as this scope: `send` cannot fail.
                    job_tx.send(sent).expect("job receiver is alive");
                    sent += 1;
                }
                let (i, r) = done_rx
                    .recv()
                    .map_err(|_| io_err(io::Error::other("every checkpoint thread stopped")))?;
                ready.insert(i, r.map_err(io_err)?);
                while let Some(blocks) = ready.remove(&written) {
                    for b in &blocks {
                        self.write_block(b)?;
                    }
                    written += 1;
                }
            }
            Ok(())
        })?;
        self.count = total;
        self.first = total + 1;
        self.finish()
    }
}

/// Sets the flag when dropped: the writer's scope returning, done or failed, stops the
/// workers from starting another chunk (after success there is none left).
struct AbortOnDrop<'a>(&'a AtomicBool);

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Walks chunk `i` into blocks whose entries are numbered from `at.0` (salt `at.1`, commit
/// time `at.2`); checks the walk found the entries the source promised.
fn encode_chunk(
    src: &dyn ChunkSource,
    i: usize,
    at: (u64, u64, u64),
    enc: &mut BlockEncoder,
    batch: &mut RecordBatch,
) -> io::Result<Vec<Vec<u8>>> {
    let (first_seq, salt, commit_us) = at;
    let mut blocks = Vec::new();
    let mut next = first_seq;
    let mut failed: Option<io::Error> = None;
    batch.clear();
    let mut seal = |batch: &mut RecordBatch, next: &mut u64| -> io::Result<()> {
        let count = batch.len();
        let block = enc.encode_parts(salt, *next, commit_us, count, &[batch.bytes()])?;
        blocks.push(block.to_vec());
        *next += count as u64;
        batch.clear();
        Ok(())
    };
    src.walk(i, &mut |k, v| {
        if failed.is_some() {
            return;
        }
        batch.put(k, v);
        if batch.bytes().len() >= CUT_BYTES {
            if let Err(e) = seal(batch, &mut next) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if !batch.is_empty() {
        seal(batch, &mut next)?;
    }
    let (seen, expected) = (next - first_seq, src.entries(i));
    if seen != expected {
        return Err(io::Error::other(format!(
            "checkpoint chunk {i} held {seen} entries, its source said {expected}"
        )));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::super::{read, write, CheckpointHeader};
    use super::*;

    /// Chunks as lists of entries; `lie` adds one to the count a chunk claims, `panic_at`
    /// makes walking that chunk panic.
    struct Lists {
        chunks: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
        lie: Option<usize>,
        panic_at: Option<usize>,
    }

    impl ChunkSource for Lists {
        fn chunks(&self) -> usize {
            self.chunks.len()
        }
        fn entries(&self, c: usize) -> u64 {
            self.chunks[c].len() as u64 + u64::from(self.lie == Some(c))
        }
        fn walk(&self, c: usize, put: &mut dyn FnMut(&[u8], &[u8])) {
            assert!(self.panic_at != Some(c), "walk of chunk {c} fails");
            for (k, v) in &self.chunks[c] {
                put(k, v);
            }
        }
    }

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            table_id: 4,
            shard: 2,
            start_seq: 0,
            end_seq: 0,
            end_us: 77,
            created_us: 78,
        }
    }

    /// Empty chunks, small ones, and one of 5 MiB that takes several blocks.
    fn lists() -> Lists {
        let mut chunks = vec![Vec::new()];
        for c in 0..30u32 {
            let n = if c == 7 {
                40_000
            } else {
                (c as usize * 37) % 300
            };
            let value_len = if c == 7 { 120 } else { c as usize };
            chunks.push(
                (0..n)
                    .map(|i| {
                        (
                            format!("c{c}-k{i}").into_bytes(),
                            vec![b'a' + (i % 26) as u8; value_len],
                        )
                    })
                    .collect(),
            );
            if c % 9 == 0 {
                chunks.push(Vec::new());
            }
        }
        Lists {
            chunks,
            lie: None,
            panic_at: None,
        }
    }

    fn read_all(path: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        read(path, 4, 2, |k, v| out.push((k.to_vec(), v.to_vec()))).unwrap();
        out
    }

    #[test]
    fn chunks_written_on_any_number_of_threads_read_back_in_order() {
        let src = lists();
        let all: Vec<_> = src.chunks.iter().flatten().cloned().collect();
        assert!(all.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > 4 * BLOCK_TARGET);
        let dir = tempfile::tempdir().unwrap();
        let (one_path, _) =
            write(dir.path(), &header(), 1, all.iter().map(|(k, v)| (k, v))).unwrap();
        let one = std::fs::read(&one_path).unwrap();
        let mut files = Vec::new();
        for workers in [1, 2, 5] {
            let d = tempfile::tempdir().unwrap();
            let w = CheckpointWriter::create(d.path(), &header(), 1).unwrap();
            let (path, n) = w.write_chunks(&src, workers).unwrap();
            assert_eq!(n, all.len() as u64, "{workers} workers");
            assert_eq!(read_all(&path), all, "{workers} workers");
            assert_eq!(
                std::fs::read_dir(d.path()).unwrap().count(),
                1,
                "no temporary file"
            );
            let file = std::fs::read(&path).unwrap();
            // Header and footer as the entry-at-a-time writer makes them.
            assert_eq!(file[..64], one[..64]);
            assert_eq!(file[file.len() - 24..], one[one.len() - 24..]);
            files.push(file);
        }
        assert!(
            files.windows(2).all(|w| w[0] == w[1]),
            "the same bytes whatever the threads"
        );
        // No chunks at all (a source with nothing) is an empty checkpoint.
        let none = Lists {
            chunks: Vec::new(),
            lie: None,
            panic_at: None,
        };
        let d = tempfile::tempdir().unwrap();
        let (path, n) = CheckpointWriter::create(d.path(), &header(), 1)
            .unwrap()
            .write_chunks(&none, 3)
            .unwrap();
        assert_eq!((n, read_all(&path).len()), (0, 0));
    }

    #[test]
    fn a_chunk_that_miscounts_or_panics_fails_the_checkpoint_and_leaves_nothing() {
        for (lie, panic_at) in [(Some(7), None), (Some(0), None), (None, Some(12))] {
            let src = Lists {
                lie,
                panic_at,
                ..lists()
            };
            let d = tempfile::tempdir().unwrap();
            let err = CheckpointWriter::create(d.path(), &header(), 1)
                .unwrap()
                .write_chunks(&src, 3)
                .unwrap_err()
                .to_string();
            let why = if lie.is_some() {
                "its source said"
            } else {
                "panicked"
            };
            assert!(err.contains(why), "{err}");
            assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0, "{err}");
        }
    }
}
