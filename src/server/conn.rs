//! One client connection's command execution: dispatch, pipelined writes, ordered replies.
//!
//! Writes (`SET`, `MSET`, `DEL`) are gathered per shard while a pipeline is parsed and handed
//! to each shard's log as one submission; their replies wait in order. Any command that reads
//! or answers anything else first commits what is pending, so a connection always sees its own
//! writes and replies leave in the order the commands came.

use std::sync::Arc;

use bytes::BytesMut;
use xxhash_rust::xxh3::xxh3_64;

use super::commands::{self, Kind, COMMANDS};
use super::state::ServerState;
use crate::log::record::RecordBatch;
use crate::log::CommitError;
use crate::protocol::{Proto, ReplyWriter};
use crate::shard::Table;

pub struct Session {
    pub id: u64,
    pub table: Arc<Table>,
    pub proto: Proto,
    pub name: Option<String>,
    /// Set by `QUIT`: close once the replies are out.
    pub closing: bool,
    /// False until AUTH succeeds when the server has a password.
    pub authenticated: bool,
}

/// A reply that waits its turn behind pending writes.
pub enum Deferred {
    /// A write's answer, given once every shard it touched has committed.
    Ok,
    /// A read answered already (it touched no pending key): these bytes of `Pending::ready`.
    Ready(usize, usize),
}

#[derive(Default)]
pub struct Pending {
    /// Records waiting to be submitted, per shard of the current table.
    batches: Vec<RecordBatch>,
    /// Replies in command order, with the shards (bit mask) each one waits on.
    replies: Vec<(Deferred, u64)>,
    /// Encoded replies of reads that ran while writes were pending.
    ready: BytesMut,
    /// Hashes of the keys with pending writes: a read of one of them commits first.
    keys: std::collections::HashSet<u64>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

pub struct Conn<'s> {
    pub state: &'s ServerState,
    pub session: Session,
    pub out: BytesMut,
    pending: Pending,
}

impl<'s> Conn<'s> {
    pub fn new(state: &'s ServerState, session: Session) -> Self {
        let shards = session.table.shards.len();
        Conn {
            state,
            session,
            out: BytesMut::with_capacity(1024),
            pending: Pending {
                batches: (0..shards).map(|_| RecordBatch::new()).collect(),
                ..Pending::default()
            },
        }
    }

    /// Reply bytes waiting to be written, those of reads answered ahead of writes included.
    pub fn buffered_bytes(&self) -> usize {
        self.out.len() + self.pending.ready.len()
    }

    pub fn reply(&mut self) -> ReplyWriter<'_> {
        ReplyWriter::new(&mut self.out, self.session.proto)
    }

    pub fn error(&mut self, msg: &str) {
        self.reply().error(msg);
    }

    /// Runs one command. Writes may stay pending until [`Conn::commit`].
    pub async fn execute(&mut self, args: &[&[u8]]) {
        let Some(name) = args.first() else {
            return; // an empty command line is ignored, as Redis does
        };
        let Some(id) = commands::lookup(name) else {
            self.commit().await;
            let msg = commands::unknown_command(args);
            return self.error(&msg);
        };
        let spec = &COMMANDS[id];
        self.state.count_call(id);
        if !self.session.authenticated && !matches!(spec.name, "auth" | "hello" | "quit") {
            self.commit().await;
            return self.error("NOAUTH Authentication required.");
        }
        if !commands::arity_ok(spec, args.len()) {
            self.commit().await;
            let msg = format!("ERR wrong number of arguments for '{}' command", spec.name);
            return self.error(&msg);
        }
        // A read that touches no pending key runs now and queues its reply behind the pending
        // writes; anything else commits them first.
        let read_ahead = spec.kind == Kind::Read
            && !self.pending.is_empty()
            && commands::read_keys(spec.name, args).is_some_and(|keys| {
                keys.iter()
                    .all(|k| !self.pending.keys.contains(&xxh3_64(k)))
            });
        if spec.kind != Kind::Write && !read_ahead {
            self.commit().await;
        }
        if self.session.table.is_dropped() && matches!(spec.kind, Kind::Read | Kind::Write) {
            let msg = format!(
                "ERR table '{}' was dropped; TABLE.USE another table",
                self.session.table.name()
            );
            return self.error(&msg);
        }
        match spec.kind {
            Kind::Write => commands::exec_write(self, spec.name, args).await,
            Kind::Read if read_ahead => {
                let start = self.pending.ready.len();
                let mut out = std::mem::take(&mut self.pending.ready);
                std::mem::swap(&mut self.out, &mut out);
                commands::exec_read(self, spec.name, args);
                std::mem::swap(&mut self.out, &mut out);
                self.pending.ready = out;
                let end = self.pending.ready.len();
                self.pending.replies.push((Deferred::Ready(start, end), 0));
            }
            Kind::Read => commands::exec_read(self, spec.name, args),
            Kind::Table => commands::exec_table(self, spec.name, args).await,
            Kind::Admin => commands::exec_admin(self, spec.name, args),
            Kind::Pitr => commands::exec_pitr(self, spec.name, args).await,
        }
    }

    /// Adds a put to the pending batch of its shard; returns the shard's bit.
    pub fn stage_put(&mut self, key: &[u8], value: &[u8]) -> u64 {
        let shard = self.note_pending(key);
        self.pending.batches[shard].put(key, value);
        1u64 << shard
    }

    /// Remembers a key as pending and returns its shard: one hash serves both (the shard is
    /// the same xxh3 of the key, modulo the shard count).
    fn note_pending(&mut self, key: &[u8]) -> usize {
        let h = xxh3_64(key);
        self.pending.keys.insert(h);
        let shard = (h % self.session.table.shards.len() as u64) as usize;
        debug_assert_eq!(shard, self.session.table.shard_for(key));
        shard
    }

    /// Queues the reply of a staged write.
    pub fn defer(&mut self, reply: Deferred, shards: u64) {
        self.pending.replies.push((reply, shards));
    }

    /// Switches the current table. Pending writes must have been committed.
    pub fn use_table(&mut self, table: Arc<Table>) {
        assert!(
            self.pending.is_empty(),
            "switch tables only between batches"
        );
        self.pending.batches = (0..table.shards.len())
            .map(|_| RecordBatch::new())
            .collect();
        self.session.table = table;
    }

    /// Submits every pending batch (one submission per shard), waits for all of them, and
    /// writes the deferred replies in order.
    pub async fn commit(&mut self) {
        if self.pending.replies.is_empty() {
            return;
        }
        let table = self.session.table.clone();
        let mut waits = Vec::new();
        for (shard, batch) in self.pending.batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                let records = std::mem::take(batch);
                waits.push((shard, table.shards[shard].log.submit_batch(records)));
            }
        }
        let mut failed: Vec<(u64, CommitError)> = Vec::new();
        for (shard, rx) in waits {
            let result = rx.await.unwrap_or(Err(CommitError::Closed));
            if let Err(e) = result {
                failed.push((1u64 << shard, e));
            }
        }
        let replies = std::mem::take(&mut self.pending.replies);
        let ready = std::mem::take(&mut self.pending.ready);
        self.pending.keys.clear();
        for (reply, shards) in replies {
            match failed.iter().find(|(bit, _)| shards & bit != 0) {
                Some((_, e)) => {
                    let msg = format!("ERR write not committed: {e}");
                    self.error(&msg);
                }
                None => match reply {
                    Deferred::Ok => self.reply().ok(),
                    Deferred::Ready(a, b) => self.out.extend_from_slice(&ready[a..b]),
                },
            }
        }
        // Keep the buffer's room for the next pipeline.
        let mut ready = ready;
        ready.clear();
        self.pending.ready = ready;
    }
}
