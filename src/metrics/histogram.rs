//! A lock-free latency histogram: fixed bucket bounds in microseconds, one relaxed atomic
//! add per observation for the bucket and one for the sum. Readers (INFO, LATENCY,
//! `/metrics`) add the buckets up; a reading taken while writers run may be a few
//! observations behind in one field, never torn within a field.
//!
//! The bounds are Prometheus's customary 1-2.5-5 steps from 10 µs to 10 s: a log sync on
//! NVMe (~20 µs) and on a cloud disk (~1 ms) and a slow request (~100 ms) each land in a
//! bucket of their own.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of the finite buckets, in microseconds; the last bucket holds the rest.
pub const BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Buckets: one per bound, and one past the last.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket (not cumulative).
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// `a += n` for a counter only the calling thread writes.
#[inline]
pub fn add_one_writer(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

/// The bucket an observation of `us` microseconds belongs to: the first bound at or above it.
pub fn bucket_of(us: u64) -> usize {
    BOUNDS_US.partition_point(|&b| b < us)
}

impl Histogram {
    pub fn observe_us(&self, us: u64) {
        self.counts[bucket_of(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// [`Histogram::observe_us`] for a histogram only one thread ever observes into: plain
    /// loads and stores instead of locked read-modify-writes (readers still see whole
    /// values). With two writers, observations would be lost, never torn.
    pub fn observe_us_one_writer(&self, us: u64) {
        add_one_writer(&self.counts[bucket_of(us)], 1);
        add_one_writer(&self.sum_us, us);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram's numbers at one moment; snapshots of several histograms add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub counts: [u64; BUCKETS],
    pub sum_us: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            counts: [0; BUCKETS],
            sum_us: 0,
        }
    }
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was observed since `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            counts: std::array::from_fn(|i| self.counts[i].saturating_sub(earlier.counts[i])),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    pub fn add(&mut self, other: &Snapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    /// Cumulative counts at each finite bound, as Prometheus writes `_bucket{le=...}`.
    pub fn cumulative(&self) -> [(u64, u64); BOUNDS_US.len()] {
        let mut run = 0;
        std::array::from_fn(|i| {
            run += self.counts[i];
            (BOUNDS_US[i], run)
        })
    }

    /// The bound of the bucket holding the `q` quantile (0 < q <= 1): the true value is at
    /// most this. `None` with no observations; `u64::MAX` when it lies past the last bound.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut run = 0;
        for (i, c) in self.counts.iter().enumerate() {
            run += c;
            if run >= rank {
                return Some(BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10), 0);
        assert_eq!(bucket_of(11), 1);
        assert_eq!(bucket_of(10_000_000), BOUNDS_US.len() - 1);
        assert_eq!(bucket_of(10_000_001), BOUNDS_US.len());
        assert_eq!(bucket_of(u64::MAX), BOUNDS_US.len());
    }

    #[test]
    fn snapshots_count_sum_accumulate_and_bound_quantiles() {
        let h = Histogram::default();
        for us in [5, 20, 20, 900, 30_000_000] {
            h.observe_us(us);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 5);
        assert_eq!(s.sum_us, 5 + 20 + 20 + 900 + 30_000_000);
        let cum = s.cumulative();
        assert_eq!(cum[0], (10, 1));
        assert_eq!(cum[1], (25, 3));
        assert_eq!(cum[6], (1_000, 4));
        assert_eq!(cum[BOUNDS_US.len() - 1], (10_000_000, 4));
        assert_eq!(s.quantile_bound_us(0.5), Some(25));
        assert_eq!(s.quantile_bound_us(0.8), Some(1_000));
        assert_eq!(s.quantile_bound_us(1.0), Some(u64::MAX));
        let mut t = Snapshot::default();
        assert_eq!(t.quantile_bound_us(0.5), None);
        t.add(&s);
        t.add(&s);
        assert_eq!(t.count(), 10);
        assert_eq!(t.sum_us, 2 * s.sum_us);
    }
}
