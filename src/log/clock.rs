//! Commit timestamps: wall-clock microseconds that never go backwards within a shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time. Injected so tests can step the clock back and forth.
pub trait Clock: Send + Sync + 'static {
    fn now_us(&self) -> u64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// A clock a test sets by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(us: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(us)))
    }
    pub fn set(&self, us: u64) {
        self.0.store(us, Ordering::SeqCst);
    }
    pub fn advance(&self, us: u64) {
        self.0.fetch_add(us, Ordering::SeqCst);
    }

    /// The time it is set to.
    pub fn now_us_for_test(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Hands out commit times for one shard: the wall clock, clamped to the last time handed out
/// when the clock steps back.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitClock {
    last_us: u64,
}

impl CommitClock {
    /// Starts after `last_us`, the newest commit time already in the log.
    pub fn starting_after(last_us: u64) -> Self {
        CommitClock { last_us }
    }

    pub fn next(&mut self, wall_us: u64) -> u64 {
        self.last_us = self.last_us.max(wall_us);
        self.last_us
    }

    pub fn last_us(&self) -> u64 {
        self.last_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_the_clock_does() {
        let wall = ManualClock::new(5_000_000);
        let mut c = CommitClock::starting_after(0);
        assert_eq!(c.next(wall.now_us()), 5_000_000);
        wall.set(4_000_000); // NTP steps the clock back a second
        assert_eq!(c.next(wall.now_us()), 5_000_000);
        wall.set(5_000_001);
        assert_eq!(c.next(wall.now_us()), 5_000_001);
    }

    #[test]
    fn resumes_after_the_newest_logged_time() {
        let mut c = CommitClock::starting_after(9_000_000);
        assert_eq!(c.next(1), 9_000_000);
    }
}
