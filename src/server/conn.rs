//! One client connection's command execution: dispatch, pipelined writes, ordered replies.
//!
//! Writes (`SET`, `MSET`, `DEL`) are gathered per shard while a pipeline is parsed and handed
//! to each shard's log as one submission; their replies wait in order. Any command that reads
//! or answers anything else first commits what is pending, so a connection always sees its own
//! writes and replies leave in the order the commands came.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use xxhash_rust::xxh3::xxh3_64;

use super::commands::{self, Kind, COMMANDS};
use super::observe::{slowlog, ClientInfo};
use super::state::ServerState;
use crate::log::record::RecordBatch;
use crate::log::CommitError;
use crate::protocol::{Proto, ReplyWriter};
use crate::shard::Table;

pub struct Session {
    pub id: u64,
    pub table: Arc<Table>,
    pub proto: Proto,
    /// This connection's entry in `CLIENT LIST` (its name among other things).
    pub info: Arc<ClientInfo>,
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

/// No command to account for: a read answered ahead was counted when it ran.
const NO_COMMAND: u16 = u16::MAX;

/// A deferred reply, the shards (bit mask) it waits on, and what its command's latency and
/// slow-log entry need once it is answered.
struct Waiting {
    reply: Deferred,
    shards: u64,
    cmd: u16,
    started: Instant,
    /// Its arguments in `Pending::slow_args` (empty when the slow log is off).
    args: (usize, usize),
}

#[derive(Default)]
pub struct Pending {
    /// Records waiting to be submitted, per shard of the current table.
    batches: Vec<RecordBatch>,
    /// Replies in command order.
    replies: Vec<Waiting>,
    /// Arguments of the pending writes, kept for the slow log (`slowlog::stash_args`).
    slow_args: Vec<u8>,
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
    /// The command running and when it started, for `defer`.
    current: (u16, Instant),
    /// The running command's arguments were stashed and its reply deferred.
    current_deferred: bool,
    /// The running command answered with an error.
    failed: bool,
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
            current: (NO_COMMAND, Instant::now()),
            current_deferred: false,
            failed: false,
        }
    }

    /// Reply bytes waiting to be written, those of reads answered ahead of writes included.
    pub fn buffered_bytes(&self) -> usize {
        self.out.len() + self.pending.ready.len()
    }

    pub fn reply(&mut self) -> ReplyWriter<'_> {
        ReplyWriter::new(&mut self.out, self.session.proto)
    }

    /// Answers the running command with an error (counted in its `failed_calls`).
    pub fn error(&mut self, msg: &str) {
        self.failed = true;
        self.reply().error(msg);
    }

    /// Answers with an error a command refused before it ran (its `rejected_calls`).
    async fn reject(&mut self, cmd: Option<usize>, msg: &str) {
        match cmd {
            Some(c) => self.state.stats.reject(c),
            None => self.state.stats.unknown_command(),
        }
        self.commit().await;
        self.reply().error(msg);
    }

    /// Runs one command. Writes may stay pending until [`Conn::commit`].
    pub async fn execute(&mut self, args: &[&[u8]]) {
        let Some(name) = args.first() else {
            return; // an empty command line is ignored, as Redis does
        };
        let started = Instant::now();
        let Some(id) = commands::lookup(name) else {
            let msg = commands::unknown_command(args);
            return self.reject(None, &msg).await;
        };
        let spec = &COMMANDS[id];
        self.session.info.touch(id, started);
        if !self.session.authenticated && !matches!(spec.name, "auth" | "hello" | "quit") {
            return self
                .reject(Some(id), "NOAUTH Authentication required.")
                .await;
        }
        if !commands::arity_ok(spec, args.len()) {
            let msg = format!("ERR wrong number of arguments for '{}' command", spec.name);
            return self.reject(Some(id), &msg).await;
        }
        // A read that touches no pending key runs now and queues its reply behind the pending
        // writes; anything else commits them first.
        let read_ahead = spec.kind == Kind::Read
            && !self.pending.is_empty()
            && commands::read_keys(spec.name, args).is_some_and(|keys| {
                keys.iter()
                    .all(|k| !self.pending.keys.contains(&xxh3_64(k)))
            });
        self.current = (id as u16, started);
        if self.session.table.is_dropped() && matches!(spec.kind, Kind::Read | Kind::Write) {
            self.commit().await; // the replies of the writes before it go first
            self.failed = false;
            let msg = format!(
                "ERR table '{}' was dropped; TABLE.USE another table",
                self.session.table.name()
            );
            self.error(&msg);
            return self.finish(id, args);
        }
        if spec.kind != Kind::Write && !read_ahead {
            // Its latency starts once the writes ahead of it are answered (commit restarts
            // `current`'s clock when it waited).
            self.commit().await;
        }
        self.current_deferred = false;
        self.failed = false;
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
                self.pending.replies.push(Waiting {
                    reply: Deferred::Ready(start, end),
                    shards: 0,
                    cmd: NO_COMMAND,
                    started: self.current.1,
                    args: (0, 0),
                });
            }
            Kind::Read => commands::exec_read(self, spec.name, args),
            Kind::Table => commands::exec_table(self, spec.name, args).await,
            Kind::Admin => commands::exec_admin(self, spec.name, args),
            Kind::Pitr => commands::exec_pitr(self, spec.name, args).await,
        }
        if self.current_deferred {
            // Counted when its write commits.
            return;
        }
        self.finish(id, args);
    }

    /// Counts the running command, which has its answer, and logs it if it was slow. Its
    /// time runs from its dispatch, or from the end of the last commit it waited for (a
    /// DEL or INCR commits the writes ahead of it first).
    fn finish(&mut self, cmd: usize, args: &[&[u8]]) {
        let us = self.current.1.elapsed().as_micros() as u64;
        self.state.stats.record(cmd, us, self.failed);
        if self.state.slowlog.is_slow(us) {
            let kept = match COMMANDS[cmd].name {
                // Passwords never reach the slow log (Redis redacts these too).
                "auth" | "hello" => slowlog::redacted_args(args),
                _ => slowlog::trimmed_args(args),
            };
            self.log_slow(us, kept);
        }
    }

    fn log_slow(&self, us: u64, args: Vec<Vec<u8>>) {
        let info = &self.session.info;
        // An entry keeps at most 128 bytes of the client's name, as of each argument.
        let mut name = info.name().unwrap_or_default();
        if name.len() > slowlog::MAX_ARG_BYTES {
            let mut cut = slowlog::MAX_ARG_BYTES;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        self.state.slowlog.push(us, args, info.addr_string(), name);
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

    /// Queues the `+OK` of the running write command, answered (and counted) when the
    /// shards it staged records on commit. `args` are the command's, for the slow log.
    pub fn defer_ok(&mut self, shards: u64, args: &[&[u8]]) {
        let (cmd, started) = self.current;
        let stashed = if self.state.slowlog.enabled() {
            slowlog::stash_args(&mut self.pending.slow_args, args)
        } else {
            (0, 0)
        };
        self.pending.replies.push(Waiting {
            reply: Deferred::Ok,
            shards,
            cmd,
            started,
            args: stashed,
        });
        self.current_deferred = true;
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
        self.session.info.set_table(table.name());
        self.session.table = table;
    }

    /// Submits every pending batch (one submission per shard), waits for all of them, and
    /// writes the deferred replies in order. Returns whether anything was pending.
    pub async fn commit(&mut self) -> bool {
        if self.pending.replies.is_empty() {
            return false;
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
        let done = Instant::now();
        let mut replies = std::mem::take(&mut self.pending.replies);
        let ready = std::mem::take(&mut self.pending.ready);
        self.pending.keys.clear();
        for w in replies.drain(..) {
            let not_committed = failed.iter().find(|(bit, _)| w.shards & bit != 0);
            match not_committed {
                Some((_, e)) => {
                    let msg = format!("ERR write not committed: {e}");
                    self.reply().error(&msg);
                }
                None => match w.reply {
                    Deferred::Ok => self.reply().ok(),
                    Deferred::Ready(a, b) => self.out.extend_from_slice(&ready[a..b]),
                },
            }
            if w.cmd != NO_COMMAND {
                let us = done.saturating_duration_since(w.started).as_micros() as u64;
                self.state
                    .stats
                    .record(w.cmd as usize, us, not_committed.is_some());
                if self.state.slowlog.is_slow(us) {
                    let args = match w.args {
                        // Not kept (the slow log was off when it was staged): its name.
                        (0, 0) => vec![COMMANDS[w.cmd as usize].name.as_bytes().to_vec()],
                        (a, b) => slowlog::unstash_args(&self.pending.slow_args[a..b]),
                    };
                    self.log_slow(us, args);
                }
            }
        }
        // Keep the buffers' room for the next pipeline.
        self.pending.replies = replies;
        self.pending.slow_args.clear();
        let mut ready = ready;
        ready.clear();
        self.pending.ready = ready;
        // A command that waited for this commit takes its time from here.
        self.current.1 = Instant::now();
        true
    }
}
