//! Latencies per command in HDR histograms (microseconds, 3 significant digits, up to an
//! hour), and errors counted by kind.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Histogram slots: `SET` (or `PutItem`), `GET` (or `GetItem`), `QUERY` (DynamoDB `Query`).
pub const COMMANDS: [&str; 3] = ["SET", "GET", "QUERY"];
const MAX_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds")
}

/// What one interval (or a whole run) saw.
#[derive(Debug, Clone)]
pub struct Stats {
    pub latency: [Histogram<u64>; 3],
    pub errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: [histogram(), histogram(), histogram()],
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, cmd: usize, latency_us: u64) {
        self.latency[cmd].saturating_record(latency_us.clamp(1, MAX_US));
    }

    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            a.add(b).expect("same bounds");
        }
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
    }

    pub fn ops(&self) -> u64 {
        self.latency.iter().map(|h| h.len()).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// All commands together.
    pub fn total(&self) -> Histogram<u64> {
        let mut h = histogram();
        for l in &self.latency {
            h.add(l).expect("same bounds");
        }
        h
    }

    pub fn clear(&mut self) {
        for h in &mut self.latency {
            h.reset();
        }
        self.errors.clear();
    }
}

/// The figures a summary line reports, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    pub min: u64,
}

pub fn summarize(h: &Histogram<u64>) -> Summary {
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    Summary {
        count: h.len(),
        mean: if h.is_empty() { 0.0 } else { h.mean() },
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        max: if h.is_empty() { 0 } else { h.max() },
        min: if h.is_empty() { 0 } else { h.min() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut s = Stats::default();
        for us in 1..=10_000 {
            s.record(0, us);
        }
        let sum = summarize(&s.latency[0]);
        assert_eq!(sum.count, 10_000);
        // Three significant digits: within 0.1%.
        let near =
            |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001 + 1.0;
        assert!(near(sum.p50, 5_000), "{sum:?}");
        assert!(near(sum.p90, 9_000), "{sum:?}");
        assert!(near(sum.p99, 9_900), "{sum:?}");
        assert!(near(sum.p999, 9_990), "{sum:?}");
        assert!(near(sum.max, 10_000), "{sum:?}");
        assert!((sum.mean - 5_000.5).abs() < 10.0);
    }

    #[test]
    fn merging_adds_counts_and_errors() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.record(0, 10);
        b.record(1, 20);
        b.error("ERR");
        b.error("ERR");
        a.merge(&b);
        assert_eq!((a.ops(), a.error_count()), (2, 2));
        assert_eq!(a.total().len(), 2);
        assert_eq!(summarize(&Histogram::<u64>::new(3).unwrap()).count, 0);
    }
}
