//! Per-command counters: calls, latency, failures and rejections, kept per net thread so
//! the threads never write the same cache lines, and added up when INFO or `/metrics` reads
//! them. Each slot has one writer, its net thread, so a count is a plain load and store,
//! not a locked read-modify-write; `CONFIG RESETSTAT` therefore never writes a counter: it
//! keeps a baseline that readings subtract.
//!
//! A command's latency runs from its dispatch until its reply is ready. For a write that is
//! until the log block holding it is durable (its sync included, with `--fsync always`),
//! which Redis's `usec` leaves out: Redis syncs its AOF after answering the command's
//! execution, in `beforeSleep`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::histogram::{add_one_writer, Histogram, Snapshot};

thread_local! {
    /// The stats slot of the current net thread (0 elsewhere).
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Called once by each net thread as it starts.
pub fn set_thread_slot(slot: usize) {
    SLOT.with(|s| s.set(slot));
}

pub fn thread_slot() -> usize {
    SLOT.with(|s| s.get())
}

/// 128-byte aligned: the last command of one thread's array and the first of the next
/// thread's never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counters {
    latency: Histogram,
    /// The command ran and answered with an error.
    failed: AtomicU64,
    /// The command was refused before it ran (arity, authentication).
    rejected: AtomicU64,
}

/// One net thread's counters, and the connection-level ones of that thread (128-byte
/// aligned, as is each command's counters: two threads never write one cache line).
#[derive(Debug)]
#[repr(align(128))]
struct Slot {
    commands: Vec<Counters>,
    net_input_bytes: AtomicU64,
    net_output_bytes: AtomicU64,
    /// Commands not in the command table.
    unknown: AtomicU64,
    keyspace_hits: AtomicU64,
    keyspace_misses: AtomicU64,
}

#[derive(Debug)]
pub struct CommandStats {
    slots: Vec<Slot>,
    /// The readings at the last `CONFIG RESETSTAT`, subtracted from every reading.
    baseline: parking_lot::RwLock<Option<Baseline>>,
}

#[derive(Debug)]
struct Baseline {
    commands: Vec<CommandTotals>,
    net: NetTotals,
}

/// One command's counters added over every net thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandTotals {
    pub latency: Snapshot,
    pub failed: u64,
    pub rejected: u64,
}

impl CommandTotals {
    /// Calls that ran (refused ones are counted in `rejected`, as Redis counts them).
    pub fn calls(&self) -> u64 {
        self.latency.count()
    }
}

/// The connection-level counters added over every net thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetTotals {
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub unknown_commands: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
}

impl CommandStats {
    /// Counters for `commands` commands on each of `threads` net threads.
    pub fn new(commands: usize, threads: usize) -> Self {
        let slots = (0..threads.max(1))
            .map(|_| Slot {
                commands: (0..commands).map(|_| Counters::default()).collect(),
                net_input_bytes: AtomicU64::new(0),
                net_output_bytes: AtomicU64::new(0),
                unknown: AtomicU64::new(0),
                keyspace_hits: AtomicU64::new(0),
                keyspace_misses: AtomicU64::new(0),
            })
            .collect();
        CommandStats {
            slots,
            baseline: parking_lot::RwLock::new(None),
        }
    }

    fn slot(&self) -> &Slot {
        &self.slots[thread_slot() % self.slots.len()]
    }

    pub fn record(&self, cmd: usize, us: u64, failed: bool) {
        let c = &self.slot().commands[cmd];
        c.latency.observe_us_one_writer(us);
        if failed {
            add_one_writer(&c.failed, 1);
        }
    }

    pub fn reject(&self, cmd: usize) {
        add_one_writer(&self.slot().commands[cmd].rejected, 1);
    }

    pub fn unknown_command(&self) {
        add_one_writer(&self.slot().unknown, 1);
    }

    pub fn net_input(&self, bytes: usize) {
        add_one_writer(&self.slot().net_input_bytes, bytes as u64);
    }

    pub fn net_output(&self, bytes: usize) {
        add_one_writer(&self.slot().net_output_bytes, bytes as u64);
    }

    /// A read of `found` keys out of `asked`.
    pub fn keyspace(&self, asked: usize, found: usize) {
        let s = self.slot();
        if found > 0 {
            add_one_writer(&s.keyspace_hits, found as u64);
        }
        if asked > found {
            add_one_writer(&s.keyspace_misses, (asked - found) as u64);
        }
    }

    /// `CONFIG RESETSTAT`: every reading starts again from zero.
    pub fn reset(&self) {
        let n = self.slots.first().map_or(0, |s| s.commands.len());
        let b = Baseline {
            commands: (0..n).map(|c| self.raw_command(c)).collect(),
            net: self.raw_net(),
        };
        *self.baseline.write() = Some(b);
    }

    pub fn command(&self, cmd: usize) -> CommandTotals {
        // The baseline first: counters only grow, so a reading taken after it is never
        // below it, whatever a reset racing this does.
        let baseline = self.baseline.read();
        let t = self.raw_command(cmd);
        match &*baseline {
            None => t,
            Some(b) => {
                let was = &b.commands[cmd];
                CommandTotals {
                    latency: t.latency.since(&was.latency),
                    failed: t.failed.saturating_sub(was.failed),
                    rejected: t.rejected.saturating_sub(was.rejected),
                }
            }
        }
    }

    fn raw_command(&self, cmd: usize) -> CommandTotals {
        let mut t = CommandTotals::default();
        for s in &self.slots {
            let c = &s.commands[cmd];
            t.latency.add(&c.latency.snapshot());
            t.failed += c.failed.load(Relaxed);
            t.rejected += c.rejected.load(Relaxed);
        }
        t
    }

    /// Every command's calls that ran, added up.
    pub fn total_calls(&self) -> u64 {
        let n = self.slots.first().map_or(0, |s| s.commands.len());
        (0..n).map(|c| self.command(c).calls()).sum()
    }

    pub fn net(&self) -> NetTotals {
        let baseline = self.baseline.read();
        let t = self.raw_net();
        match &*baseline {
            None => t,
            Some(b) => NetTotals {
                input_bytes: t.input_bytes.saturating_sub(b.net.input_bytes),
                output_bytes: t.output_bytes.saturating_sub(b.net.output_bytes),
                unknown_commands: t.unknown_commands.saturating_sub(b.net.unknown_commands),
                keyspace_hits: t.keyspace_hits.saturating_sub(b.net.keyspace_hits),
                keyspace_misses: t.keyspace_misses.saturating_sub(b.net.keyspace_misses),
            },
        }
    }

    fn raw_net(&self) -> NetTotals {
        let mut t = NetTotals::default();
        for s in &self.slots {
            t.input_bytes += s.net_input_bytes.load(Relaxed);
            t.output_bytes += s.net_output_bytes.load(Relaxed);
            t.unknown_commands += s.unknown.load(Relaxed);
            t.keyspace_hits += s.keyspace_hits.load(Relaxed);
            t.keyspace_misses += s.keyspace_misses.load(Relaxed);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_every_thread_add_up() {
        let stats = std::sync::Arc::new(CommandStats::new(3, 2));
        let threads: Vec<_> = (0..2)
            .map(|slot| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    set_thread_slot(slot);
                    for i in 0..100 {
                        stats.record(1, 30, i % 10 == 0);
                    }
                    stats.reject(2);
                    stats.unknown_command();
                    stats.net_input(10);
                    stats.net_output(7);
                    stats.keyspace(3, 1);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = stats.command(1);
        assert_eq!(c.calls(), 200);
        assert_eq!(c.latency.sum_us, 200 * 30);
        assert_eq!(c.failed, 20);
        assert_eq!(stats.command(2).rejected, 2);
        assert_eq!(stats.command(2).calls(), 0);
        assert_eq!(stats.total_calls(), 200);
        let n = stats.net();
        assert_eq!(
            (n.input_bytes, n.output_bytes, n.unknown_commands),
            (20, 14, 2)
        );
        assert_eq!((n.keyspace_hits, n.keyspace_misses), (2, 4));
        stats.reset();
        assert_eq!(stats.total_calls(), 0);
        assert_eq!(stats.command(1).failed, 0);
        assert_eq!(stats.net().input_bytes, 0);
        // Counting goes on from the reset.
        set_thread_slot(1);
        stats.record(1, 40, true);
        stats.net_input(5);
        let c = stats.command(1);
        assert_eq!((c.calls(), c.failed, c.latency.sum_us), (1, 1, 40));
        assert_eq!(stats.net().input_bytes, 5);
    }
}
