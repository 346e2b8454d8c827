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
use super::writer::Submission;

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
    /// Whether the key existed when it was read.
    pub existed: bool,
    pub decision: RmwDecision,
}

/// Shows a key's current value on the writer thread to `visit` (what the shard's map holds,
/// every committed block applied), without copying it.
pub type ReadHook = Box<dyn FnMut(&[u8], &mut dyn FnMut(Option<&[u8]>)) + Send>;

/// Where a key's latest write in the gathered batch is: a put's value as (submission, byte
/// range in its records), or a delete.
type Latest = Option<(usize, std::ops::Range<usize>)>;

/// The records of the batch being gathered, by key (last write wins), built the first time
/// a read-modify-write joins the batch and kept up to date until the batch is committed. It
/// holds positions in the gathered submissions, never copies of values.
#[derive(Default)]
pub(crate) struct Overlay {
    built: bool,
    latest: HashMap<Vec<u8>, Latest>,
}

/// The byte range of `part` inside `whole` (`part` is a sub-slice of it).
fn range_in(whole: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .filter(|s| s + part.len() <= whole.len())
        .expect("a record's value lies inside its batch");
    start..start + part.len()
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

    /// Builds the overlay from the submissions gathered so far.
    pub fn build(&mut self, gathered: &[Submission]) {
        self.latest.clear();
        self.built = true;
        for (i, s) in gathered.iter().enumerate() {
            self.add(i, &s.batch);
        }
    }

    /// Notes submission `index` of the gathered batch, which joined after the overlay was built.
    pub fn add(&mut self, index: usize, batch: &RecordBatch) {
        let bytes = batch.bytes();
        for r in batch.iter().flatten() {
            match r {
                RecordRef::Put { key, value } => {
                    self.latest
                        .insert(key.to_vec(), Some((index, range_in(bytes, value))));
                }
                RecordRef::Delete { key } => {
                    self.latest.insert(key.to_vec(), None);
                }
            }
        }
    }

    /// Resolves `ops` in order against the gathered batch, then `read`; returns the records
    /// they write and what each saw and decided. Operations of one submission on one key see
    /// each other.
    pub fn resolve(
        &self,
        ops: Vec<RmwOp>,
        gathered: &[Submission],
        mut read: Option<&mut ReadHook>,
    ) -> (RecordBatch, Vec<RmwOutcome>) {
        debug_assert!(self.built, "build the overlay first");
        let mut batch = RecordBatch::new();
        let mut outcomes = Vec::with_capacity(ops.len());
        // This submission's own writes so far: positions in `batch`.
        let mut own: HashMap<Vec<u8>, Option<std::ops::Range<usize>>> = HashMap::new();
        for op in ops {
            let mut decide = Some(op.decide);
            let mut outcome = None;
            let mut run = |cur: Option<&[u8]>| {
                if let Some(d) = decide.take() {
                    outcome = Some(RmwOutcome {
                        existed: cur.is_some(),
                        decision: d(cur),
                    });
                }
            };
            match own.get(&op.key) {
                Some(Some(r)) => run(Some(&batch.bytes()[r.clone()])),
                Some(None) => run(None),
                None => match self.latest.get(&op.key) {
                    Some(Some((i, r))) => run(Some(&gathered[*i].batch.bytes()[r.clone()])),
                    Some(None) => run(None),
                    None => match read.as_mut() {
                        Some(read) => read(&op.key, &mut run),
                        None => run(None),
                    },
                },
            }
            let outcome = match outcome {
                Some(o) => o,
                // A reader that never showed the value: decide as if the key were absent.
                None => RmwOutcome {
                    existed: false,
                    decision: (decide.take().expect("not run"))(None),
                },
            };
            match &outcome.decision {
                RmwDecision::Put(v) => {
                    batch.put(&op.key, v);
                    let end = batch.bytes().len();
                    own.insert(op.key, Some(end - v.len()..end));
                }
                RmwDecision::Delete => {
                    batch.delete(&op.key);
                    own.insert(op.key, None);
                }
                RmwDecision::Keep | RmwDecision::Fail(_) => {}
            }
            outcomes.push(outcome);
        }
        (batch, outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::writer::Ack;

    fn add(n: i64) -> RmwOp {
        RmwOp::new(b"k", move |cur| {
            let v: i64 = cur.map_or(0, |c| std::str::from_utf8(c).unwrap().parse().unwrap());
            RmwDecision::Put((v + n).to_string().into_bytes())
        })
    }

    fn submission(batch: RecordBatch) -> Submission {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        Submission {
            batch,
            ack: Ack::Plain(tx),
        }
    }

    fn map_holding(v: &'static [u8]) -> ReadHook {
        Box::new(move |_, visit| visit(Some(v)))
    }

    #[test]
    fn operations_see_the_batch_before_them_then_the_map() {
        let mut earlier = RecordBatch::new();
        earlier.put(b"other", b"x");
        earlier.put(b"k", b"10");
        let mut gathered = vec![submission(earlier)];
        let mut o = Overlay::default();
        o.build(&gathered);
        let mut map = map_holding(b"1000");
        let (batch, out) = o.resolve(vec![add(1), add(2)], &gathered, Some(&mut map));
        assert!(out[0].existed);
        assert_eq!(out[0].decision, RmwDecision::Put(b"11".to_vec()));
        assert_eq!(out[1].decision, RmwDecision::Put(b"13".to_vec()));
        assert_eq!(batch.len(), 2);
        o.add(1, &batch);
        gathered.push(submission(batch));
        // A later plain write joins the overlay.
        let mut later = RecordBatch::new();
        later.delete(b"k");
        o.add(2, &later);
        gathered.push(submission(later));
        let (_, out) = o.resolve(vec![add(5)], &gathered, Some(&mut map));
        assert!(!out[0].existed);
        assert_eq!(out[0].decision, RmwDecision::Put(b"5".to_vec()));
        // Once the batch is committed, the map is the truth.
        o.clear();
        o.build(&[]);
        let (_, out) = o.resolve(vec![add(1)], &[], Some(&mut map));
        assert_eq!(out[0].decision, RmwDecision::Put(b"1001".to_vec()));
        let (_, out) = o.resolve(vec![add(1)], &[], None);
        assert_eq!(out[0].decision, RmwDecision::Put(b"1".to_vec()));
    }

    #[test]
    fn keep_and_fail_log_nothing() {
        let mut o = Overlay::default();
        o.build(&[]);
        let ops = vec![
            RmwOp::new(b"a", |_| RmwDecision::Keep),
            RmwOp::new(b"b", |_| RmwDecision::Fail("ERR no".into())),
        ];
        let (batch, out) = o.resolve(ops, &[], None);
        assert!(batch.is_empty());
        assert_eq!(out[1].decision, RmwDecision::Fail("ERR no".into()));
    }
}
