//! Leader-based group commit: whoever finds a shard's log idle writes everything queued.
//!
//! Producers push submissions onto the shard's queue. One of them at a time *leads*: it owns
//! the writer's state, gathers what is queued into one block, writes and syncs it, applies
//! it and answers every producer, and goes on while more is queued. So at most one write is
//! in flight per log, and whatever arrives meanwhile forms the next block, with no timer.
//!
//! Who leads: a net thread's flusher (`local.rs`) at the end of its tick, for the writes its
//! connections gathered in that tick, so a request is parsed, logged, synced and answered on
//! one thread with no hop; a blocking caller (`ShardLog::append`, `flush`, shutdown) itself;
//! and the shard's background thread when a leader on a net thread hands over (it leads at
//! most [`MAX_NET_ROUNDS`] blocks in a row, so other threads' writes cannot keep one net
//! thread's clients waiting), when a producer has no flusher, and for `everysec` syncs.
//!
//! The `leading` flag lives under the queue's lock: a producer that finds it set knows the
//! leader will see its submission, because a leader stops only after seeing the queue empty
//! under that same lock.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::block::MAX_BLOCK_PAYLOAD;
use super::error::{CommitError, LogError};
use super::writer::{Msg, Submission};
use super::writer_core::WriterCore;

/// Blocks a net thread's flusher commits in a row before it hands the log to the shard's
/// background thread (its own connections wait while it leads).
pub const MAX_NET_ROUNDS: usize = 4;

struct Queue {
    msgs: VecDeque<Msg>,
    /// Someone owns the writer and will look at the queue again before letting go.
    leading: bool,
    /// Shut down: nothing more is taken.
    closed: bool,
    /// Set when the writer's state was lost to a panic: every submission is refused.
    broken: Option<std::sync::Arc<LogError>>,
}

pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled whenever a leader lets go.
    idle: Condvar,
    /// Signalled when a leader takes from a full queue.
    room: Condvar,
    /// Only the leader touches it (the lock is never contended).
    core: Mutex<WriterCore>,
    /// Wakes the background thread.
    wake: Sender<()>,
    /// Producers block (leading themselves) past this many queued submissions.
    depth: usize,
}

/// Why a push was refused.
pub(crate) enum Refused {
    Closed(Msg),
    Broken(Msg, std::sync::Arc<LogError>),
}

impl Shared {
    pub fn new(core: WriterCore, depth: usize) -> (Shared, Receiver<()>) {
        let (wake, rx) = crossbeam_channel::bounded(1);
        (
            Shared {
                queue: Mutex::new(Queue {
                    msgs: VecDeque::new(),
                    leading: false,
                    closed: false,
                    broken: None,
                }),
                idle: Condvar::new(),
                room: Condvar::new(),
                core: Mutex::new(core),
                wake,
                depth,
            },
            rx,
        )
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the queue's lock; a poisoned one is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message. Returns whether someone is leading (else the caller must see that
    /// someone will). With `may_block`, waits for room while the queue is full (leading
    /// itself when nobody leads). A net thread never waits: the lead it would wait for may be
    /// its own, in flight on its ring; what it can queue is bounded by its connections (one
    /// submission per shard each) instead.
    pub fn push(&self, msg: Msg, may_block: bool) -> Result<bool, Refused> {
        let mut q = self.queue();
        loop {
            if let Some(e) = &q.broken {
                return Err(Refused::Broken(msg, e.clone()));
            }
            if q.closed {
                return Err(Refused::Closed(msg));
            }
            if !may_block || q.msgs.len() < self.depth {
                break;
            }
            if q.leading {
                q = self.room.wait(q).unwrap_or_else(|p| p.into_inner());
            } else {
                drop(q);
                self.lead_blocking();
                q = self.queue();
            }
        }
        q.msgs.push_back(msg);
        Ok(q.leading)
    }

    /// Wakes the background thread to lead (cheap when it is awake already).
    pub fn wake_background(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }

    /// Leads if nobody is, for at most [`MAX_NET_ROUNDS`] blocks, then hands over to the
    /// background thread if more is queued. For net threads: never waits for another leader.
    pub fn lead(&self) {
        if !self.begin(false) {
            return;
        }
        self.run_rounds(Some(MAX_NET_ROUNDS));
    }

    /// Waits for any other leader, then leads until the queue is empty.
    pub fn lead_blocking(&self) {
        self.begin(true);
        self.run_rounds(None);
    }

    /// Runs `f` on the writer's state as the leader, once every earlier submission is
    /// committed (for flush and shutdown). `None` when the state was lost to a panic.
    pub fn with_core<T>(&self, f: impl FnOnce(&mut WriterCore) -> T) -> Option<T> {
        self.begin(true);
        self.run_rounds_then(None, f)
    }

    /// Takes the lead: `wait` blocks until the current leader lets go, else returns false
    /// when someone leads.
    fn begin(&self, wait: bool) -> bool {
        let mut q = self.queue();
        while q.leading {
            if !wait {
                return false;
            }
            q = self.idle.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.leading = true;
        true
    }

    fn run_rounds(&self, limit: Option<usize>) {
        self.run_rounds_then(limit, |_| ());
    }

    /// Commits blocks while anything is queued (at most `limit`), runs `then`, and lets go.
    fn run_rounds_then<T>(
        &self,
        limit: Option<usize>,
        then: impl FnOnce(&mut WriterCore) -> T,
    ) -> Option<T> {
        if self.queue().broken.is_some() {
            self.fail_all("the log writer panicked earlier");
            return None;
        }
        let mut core = match self.core.lock() {
            Ok(c) => c,
            Err(_) => {
                self.fail_all("the log writer panicked earlier");
                return None;
            }
        };
        let mut rounds = 0;
        let mut then = Some(then);
        let mut out = None;
        loop {
            if limit.is_some_and(|l| rounds >= l) {
                break;
            }
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit_round(self, &mut core)
            }));
            match caught {
                Ok(true) => rounds += 1,
                Ok(false) => {
                    if let Some(f) = then.take() {
                        out = Some(f(&mut core));
                    }
                    // Looked again under the queue's lock: stop only when it is empty.
                    let mut q = self.queue();
                    if q.msgs.is_empty() {
                        q.leading = false;
                        drop(q);
                        self.idle.notify_all();
                        return out;
                    }
                }
                Err(p) => {
                    let why = super::error::panic_message(p.as_ref());
                    tracing::error!("log writer panicked: {why}; the shard refuses writes");
                    drop(core);
                    // The state may be half-changed: `broken` refuses everything from now on
                    // (every path to the state checks it first).
                    self.fail_all(&format!("the log writer panicked: {why}"));
                    return None;
                }
            }
        }
        // The round limit: another leader takes over the rest.
        let mut q = self.queue();
        q.leading = false;
        let more = !q.msgs.is_empty();
        drop(q);
        self.idle.notify_all();
        if more {
            self.wake_background();
        }
        // Only a limited run gets here, and `with_core` never sets a limit.
        out
    }

    /// Refuses everything queued and everything later, after the writer's state was lost.
    pub(crate) fn fail_all(&self, why: &str) {
        let err = std::sync::Arc::new(LogError::Panicked(why.to_string()));
        let mut q = self.queue();
        q.broken.get_or_insert(err.clone());
        q.leading = false;
        let msgs: Vec<Msg> = q.msgs.drain(..).collect();
        drop(q);
        self.idle.notify_all();
        self.room.notify_all();
        for m in msgs {
            refuse(m, CommitError::Poisoned(err.clone()));
        }
    }

    fn pop(&self) -> Option<Msg> {
        let mut q = self.queue();
        let full = q.msgs.len() >= self.depth;
        let m = q.msgs.pop_front();
        drop(q);
        if full {
            self.room.notify_all();
        }
        m
    }

    fn push_front(&self, m: Msg) {
        self.queue().msgs.push_front(m);
    }

    /// Stops taking submissions; what is queued is still committed by the next leader.
    pub fn close(&self) {
        self.queue().closed = true;
        self.room.notify_all();
        self.wake_background();
    }

    pub fn is_closed(&self) -> bool {
        self.queue().closed
    }
}

/// Answers a message that will not be committed.
pub(crate) fn refuse(m: Msg, e: CommitError) {
    match m {
        Msg::Append(s) => s.ack.err(e),
        Msg::Rmw(r) => {
            let _ = r.ack.send(Err(e));
        }
    }
}

/// Gathers one block's worth of the queue and commits it. False when the queue was empty.
fn commit_round(shared: &Shared, core: &mut WriterCore) -> bool {
    match gather(shared, core) {
        None => {
            end_batch(shared, core);
            false
        }
        Some(mut batch) => {
            if !batch.is_empty() {
                core.commit(&mut batch);
            }
            end_batch(shared, core);
            true
        }
    }
}

/// Ends a batch; wakes the background thread when an `everysec` sync needs its timer.
pub(crate) fn end_batch(shared: &Shared, core: &mut WriterCore) {
    if core.end_batch() {
        shared.wake_background();
    }
}

/// Takes one block's worth of submissions off the queue, resolving read-modify-writes
/// against what was gathered before them. `None` when the queue was empty; the batch may be
/// empty when all it took were refused read-modify-writes. The caller commits the batch,
/// then calls `end_batch`.
pub(crate) fn gather(shared: &Shared, core: &mut WriterCore) -> Option<Vec<Submission>> {
    let mut batch: Vec<Submission> = Vec::new();
    let mut bytes = 0usize;
    let mut took = false;
    let max_batch = core.max_batch_bytes();
    while let Some(m) = shared.pop() {
        took = true;
        let s = match m {
            // Resolved only where it will be committed: with room in this block, or first
            // in the next one (after this one's commit, which it may read).
            Msg::Rmw(r) if !batch.is_empty() && bytes as u64 >= MAX_BLOCK_PAYLOAD / 2 => {
                shared.push_front(Msg::Rmw(r));
                break;
            }
            Msg::Rmw(r) => match core.resolve(&batch, r) {
                Some(s) => s,
                // Refused (answered already): over half a block.
                None => continue,
            },
            Msg::Append(s) => s,
        };
        let len = s.batch.bytes().len();
        if !batch.is_empty() && (bytes + len) as u64 > MAX_BLOCK_PAYLOAD {
            shared.push_front(Msg::Append(s));
            break;
        }
        bytes += len;
        core.note_gathered(batch.len(), &s);
        batch.push(s);
        if bytes >= max_batch {
            break;
        }
    }
    took.then_some(batch)
}

/// The lead of one log, held across awaits by a net thread's asynchronous flusher: only
/// its holder touches the writer's state. Dropped without [`Lead::finish`] (its task was
/// cancelled), it lets go and hands what is queued to the background thread.
pub(crate) struct Lead {
    shared: std::sync::Arc<Shared>,
    held: bool,
}

impl Lead {
    /// Takes the lead unless someone holds it (who will then see what is queued).
    pub fn try_begin(shared: &std::sync::Arc<Shared>) -> Option<Lead> {
        shared.begin(false).then(|| Lead {
            shared: shared.clone(),
            held: true,
        })
    }

    pub fn shared(&self) -> &std::sync::Arc<Shared> {
        &self.shared
    }

    /// The writer's state; `None` once it was lost to a panic (everything is refused then).
    pub fn core(&self) -> Option<MutexGuard<'_, WriterCore>> {
        if self.shared.queue().broken.is_some() {
            return None;
        }
        self.shared.core.lock().ok()
    }

    /// Lets go if nothing is queued (checked under the queue's lock); else keeps the lead.
    pub fn finish(mut self) -> Option<Lead> {
        let shared = self.shared.clone();
        let mut q = shared.queue();
        if !q.msgs.is_empty() && q.broken.is_none() {
            return Some(self);
        }
        q.leading = false;
        drop(q);
        self.held = false;
        self.shared.idle.notify_all();
        None
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let mut q = self.shared.queue();
        q.leading = false;
        let more = !q.msgs.is_empty();
        drop(q);
        self.shared.idle.notify_all();
        if more {
            self.shared.wake_background();
        }
    }
}

/// The body of a shard's background thread: leads when woken (a net thread handed over, a
/// producer without a flusher, shutdown) and runs `everysec` syncs on time. Returns after
/// shutdown, once everything queued is committed and the log is closed.
pub(crate) fn run_background(shared: &Shared, wake: Receiver<()>) {
    loop {
        let due = shared.with_core(|c| c.sync_due_in()).flatten();
        let woke = match due {
            Some(d) => wake.recv_timeout(d).is_ok(),
            None => wake.recv().is_ok(),
        };
        if shared.is_closed() || !woke {
            // Closed, or an everysec sync is due (with_core syncs it in end_batch).
            if shared.is_closed() {
                shared.with_core(|c| c.close());
                return;
            }
            shared.with_core(|c| c.sync_if_due());
            continue;
        }
        shared.lead_blocking();
    }
}
