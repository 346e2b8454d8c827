//! Read-modify-write in the shard's commit order.
//!
//! A read-modify-write (`INCR`, a `DEL` that counts what it removed, later conditional and
//! update operations) is resolved on the shard's writer thread, between the submissions
//! before it and those after it: it reads the key as every earlier write left it (the map,
//! overlaid with the records of the batch being gathered that are not applied yet), decides,
//! and its decision becomes an ordinary record in the same block. No lock is held beside the
//! log and none across a sync; the answer is given once the block is durable, like any write.

use std::collections::HashMap;

use super::record::{RecordBatch, RecordRef};

/// What a read-modify-write does to its key, given the key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RmwDecision {
    /// Write this value.
    Put(Vec<u8>),
    /// Delete the key.
    Delete,
    /// Leave the key as it is (nothing is logged).
    Keep,
    /// Refuse, with this error for the client (nothing is logged).
    Fail(String),
}

/// Decides from the current value (`None`: the key is absent). Runs on the writer thread, so
/// it must be quick and must not block.
pub type RmwFn = Box<dyn FnOnce(Option<&[u8]>) -> RmwDecision + Send>;

/// One key's read-modify-write.
pub struct RmwOp {
    pub key: Vec<u8>,
    pub decide: RmwFn,
}

impl RmwOp {
    pub fn new(
        key: &[u8],
        decide: impl FnOnce(Option<&[u8]>) -> RmwDecision + Send + 'static,
    ) -> Self {
        RmwOp {
            key: key.to_vec(),
            decide: Box::new(decide),
        }
    }
}

/// What a read-modify-write saw and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmwOutcome {
    /// The value it read.
    pub old: Option<Vec<u8>>,
    pub decision: RmwDecision,
}

/// Reads a key's current value on the writer thread: what the shard's map holds, with every
/// committed block applied.
pub type ReadHook = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// The records of the batch being gathered, by key (last write wins), built the first time
/// a read-modify-write joins the batch and kept up to date until the batch is committed.
#[derive(Default)]
pub(crate) struct Overlay {
    built: bool,
    latest: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    /// Forgets the batch: its records are committed (or failed) and now read from the map.
    pub fn clear(&mut self) {
        self.built = false;
        self.latest.clear();
    }

    pub fn is_built(&self) -> bool {
        self.built
    }

    /// Builds the overlay from the records gathered so far.
    pub fn build<'a>(&mut self, batches: impl Iterator<Item = &'a RecordBatch>) {
        self.latest.clear();
        self.built = true;
        for b in batches {
            self.add(b);
        }
    }

    /// Notes a batch that joins after the overlay was built.
    pub fn add(&mut self, batch: &RecordBatch) {
        for r in batch.iter().flatten() {
            match r {
                RecordRef::Put { key, value } => {
                    self.latest.insert(key.to_vec(), Some(value.to_vec()));
                }
                RecordRef::Delete { key } => {
                    self.latest.insert(key.to_vec(), None);
                }
            }
        }
    }

    /// Resolves `ops` in order against the overlay, then `read`; returns the records they
    /// write and what each saw and decided. The overlay is updated as it goes, so two
    /// operations on one key see each other.
    pub fn resolve(
        &mut self,
        ops: Vec<RmwOp>,
        mut read: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> (RecordBatch, Vec<RmwOutcome>) {
        debug_assert!(self.built, "build the overlay first");
        let mut batch = RecordBatch::new();
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            let old = match self.latest.get(&op.key) {
                Some(v) => v.clone(),
                None => read(&op.key),
            };
            let decision = (op.decide)(old.as_deref());
            match &decision {
                RmwDecision::Put(v) => {
                    batch.put(&op.key, v);
                    self.latest.insert(op.key, Some(v.clone()));
                }
                RmwDecision::Delete => {
                    batch.delete(&op.key);
                    self.latest.insert(op.key, None);
                }
                RmwDecision::Keep | RmwDecision::Fail(_) => {}
            }
            outcomes.push(RmwOutcome { old, decision });
        }
        (batch, outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(n: i64) -> RmwOp {
        RmwOp::new(b"k", move |cur| {
            let v: i64 = cur.map_or(0, |c| std::str::from_utf8(c).unwrap().parse().unwrap());
            RmwDecision::Put((v + n).to_string().into_bytes())
        })
    }

    #[test]
    fn operations_see_the_batch_before_them_then_the_map() {
        let mut earlier = RecordBatch::new();
        earlier.put(b"k", b"10");
        let mut o = Overlay::default();
        o.build([&earlier].into_iter());
        let map = |_: &[u8]| Some(b"1000".to_vec());
        let (batch, out) = o.resolve(vec![add(1), add(2)], map);
        assert_eq!(out[0].old.as_deref(), Some(&b"10"[..]));
        assert_eq!(out[1].decision, RmwDecision::Put(b"13".to_vec()));
        assert_eq!(batch.len(), 2);
        // A later plain write joins the overlay.
        let mut later = RecordBatch::new();
        later.delete(b"k");
        o.add(&later);
        let (_, out) = o.resolve(vec![add(5)], map);
        assert_eq!(
            (out[0].old.clone(), out[0].decision.clone()),
            (None, RmwDecision::Put(b"5".to_vec()))
        );
        // Once the batch is committed, the map is the truth.
        o.clear();
        o.build(std::iter::empty());
        let (_, out) = o.resolve(vec![add(1)], map);
        assert_eq!(out[0].decision, RmwDecision::Put(b"1001".to_vec()));
    }

    #[test]
    fn keep_and_fail_log_nothing() {
        let mut o = Overlay::default();
        o.build(std::iter::empty());
        let ops = vec![
            RmwOp::new(b"a", |_| RmwDecision::Keep),
            RmwOp::new(b"b", |_| RmwDecision::Fail("ERR no".into())),
        ];
        let (batch, out) = o.resolve(ops, |_| None);
        assert!(batch.is_empty());
        assert_eq!(out[1].decision, RmwDecision::Fail("ERR no".into()));
    }
}
