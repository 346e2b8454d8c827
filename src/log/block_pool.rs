//! Compressing a checkpoint's blocks on several threads, written in their order.
//!
//! A restore writes its target's first checkpoint, the whole table, while nothing else runs:
//! compression is most of that work, so it is spread over the cores a restore has. Blocks
//! are numbered as they are handed in and come back in that order; at most two per worker
//! are in flight, so memory stays bounded (each block is about 1 MiB of records).

use std::collections::BTreeMap;
use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::block::BlockEncoder;

/// One block to compress: its place, its header fields and its raw records.
pub struct Job {
    pub salt: u64,
    pub first_seq: u64,
    pub commit_us: u64,
    pub count: u32,
    pub raw: Vec<u8>,
}

type Done = (u64, io::Result<Vec<u8>>);

pub struct BlockPool {
    jobs: Option<Sender<(u64, Job)>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    submitted: u64,
    written: u64,
    done: BTreeMap<u64, io::Result<Vec<u8>>>,
    in_flight_max: u64,
}

impl BlockPool {
    pub fn new(workers: usize, zstd_level: i32, min_compress_len: usize) -> io::Result<Self> {
        let workers = workers.max(1);
        let (jobs, job_rx) = bounded::<(u64, Job)>(workers * 2);
        let (done_tx, results) = bounded::<Done>(workers * 2);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let mut enc = BlockEncoder::new(zstd_level, min_compress_len)?;
            let (rx, tx) = (job_rx.clone(), done_tx.clone());
            let h = std::thread::Builder::new()
                .name(format!("ckp-zstd-{i}"))
                .spawn(move || {
                    for (n, j) in rx {
                        // A panic comes back as this block's error: the writer waits for
                        // every block in order and must not wait for one that never comes.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            enc.encode_parts(j.salt, j.first_seq, j.commit_us, j.count, &[&j.raw])
                                .map(|b| b.to_vec())
                        }))
                        .unwrap_or_else(|p| {
                            Err(io::Error::other(format!(
                                "checkpoint compression panicked: {}",
                                crate::log::error::panic_message(p.as_ref())
                            )))
                        });
                        let failed = r.is_err();
                        if tx.send((n, r)).is_err() || failed {
                            return;
                        }
                    }
                })?;
            handles.push(h);
        }
        Ok(BlockPool {
            jobs: Some(jobs),
            results,
            workers: handles,
            submitted: 0,
            written: 0,
            done: BTreeMap::new(),
            in_flight_max: (workers * 2) as u64,
        })
    }

    /// Hands a block in; returns the blocks that are next in order and ready (to be written
    /// now, in the order given). Waits while too many are in flight.
    pub fn submit(&mut self, job: Job) -> io::Result<Vec<Vec<u8>>> {
        let mut ready = Vec::new();
        while self.submitted - self.written >= self.in_flight_max {
            ready.extend(self.take_ready(true)?);
        }
        let jobs = self.jobs.as_ref().expect("open until drained");
        jobs.send((self.submitted, job))
            .map_err(|_| io::Error::other("a checkpoint compression thread stopped"))?;
        self.submitted += 1;
        ready.extend(self.take_ready(false)?);
        Ok(ready)
    }

    /// Every block still outstanding, in order.
    pub fn drain(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut ready = Vec::new();
        while self.written < self.submitted {
            ready.extend(self.take_ready(true)?);
        }
        Ok(ready)
    }

    /// Collects finished blocks (waiting for one if `wait`) and returns those next in order.
    fn take_ready(&mut self, wait: bool) -> io::Result<Vec<Vec<u8>>> {
        if wait && !self.done.contains_key(&self.written) {
            let (n, r) = self
                .results
                .recv()
                .map_err(|_| io::Error::other("a checkpoint compression thread stopped"))?;
            self.done.insert(n, r);
        }
        while let Ok((n, r)) = self.results.try_recv() {
            self.done.insert(n, r);
        }
        let mut out = Vec::new();
        while let Some(r) = self.done.remove(&self.written) {
            out.push(r?);
            self.written += 1;
        }
        Ok(out)
    }
}

impl Drop for BlockPool {
    fn drop(&mut self) {
        self.jobs.take();
        // Unblock workers waiting to hand a result back.
        while self.results.try_recv().is_ok() {}
        for h in self.workers.drain(..) {
            while !h.is_finished() {
                let _ = self
                    .results
                    .recv_timeout(std::time::Duration::from_millis(10));
            }
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(count: u32, raw: Vec<u8>) -> Job {
        Job {
            salt: 1,
            first_seq: 1,
            commit_us: 1,
            count,
            raw,
        }
    }

    #[test]
    fn blocks_come_back_in_order() {
        let mut pool = BlockPool::new(3, 1, 256).unwrap();
        let mut inline = BlockEncoder::new(1, 256).unwrap();
        let mut got = Vec::new();
        let mut want = Vec::new();
        for i in 0..40u32 {
            let mut batch = crate::log::record::RecordBatch::new();
            for k in 0..(i * 7 + 1) {
                batch.put(format!("k{k}").as_bytes(), &vec![b'x'; (i * 13) as usize]);
            }
            want.push(
                inline
                    .encode_parts(1, 1, 1, batch.len(), &[batch.bytes()])
                    .unwrap()
                    .to_vec(),
            );
            got.extend(pool.submit(job(batch.len(), batch.into_bytes())).unwrap());
        }
        got.extend(pool.drain().unwrap());
        assert_eq!(got, want);
    }

    /// A block whose compression panics (here: a block of no records, which debug builds
    /// assert against) fails the checkpoint instead of leaving it waiting for ever.
    #[cfg(debug_assertions)]
    #[test]
    fn a_panicking_block_is_an_error_not_a_hang() {
        let mut pool = BlockPool::new(2, 1, 256).unwrap();
        let r = pool.submit(job(0, Vec::new())).and_then(|_| pool.drain());
        assert!(r.is_err());
    }
}
