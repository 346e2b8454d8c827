//! Redis's `instantaneous_*` figures: a sampler every 100 ms keeps the last 16 readings of
//! the running totals; a rate is the newest reading minus the oldest, over the time between
//! them (about 1.6 s, as Redis averages its own 16 samples).

use std::collections::VecDeque;
use std::time::Instant;

use parking_lot::Mutex;

pub const SAMPLES: usize = 16;
pub const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    calls: u64,
    input_bytes: u64,
    output_bytes: u64,
}

#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<VecDeque<Sample>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Instantaneous {
    pub ops_per_sec: f64,
    pub input_kbps: f64,
    pub output_kbps: f64,
}

impl Rates {
    pub fn sample(&self, at: Instant, calls: u64, input_bytes: u64, output_bytes: u64) {
        let mut s = self.samples.lock();
        if s.len() == SAMPLES {
            s.pop_front();
        }
        s.push_back(Sample {
            at,
            calls,
            input_bytes,
            output_bytes,
        });
    }

    pub fn now(&self) -> Instantaneous {
        let s = self.samples.lock();
        let (Some(a), Some(b)) = (s.front(), s.back()) else {
            return Instantaneous::default();
        };
        let secs = b.at.saturating_duration_since(a.at).as_secs_f64();
        if secs <= 0.0 {
            return Instantaneous::default();
        }
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        Instantaneous {
            ops_per_sec: per(a.calls, b.calls),
            input_kbps: per(a.input_bytes, b.input_bytes) / 1024.0,
            output_kbps: per(a.output_bytes, b.output_bytes) / 1024.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_span_the_kept_samples() {
        let r = Rates::default();
        assert_eq!(r.now(), Instantaneous::default());
        let t0 = Instant::now();
        for i in 0..20u64 {
            let at = t0 + Duration::from_millis(100 * i);
            r.sample(at, 1000 * i, 2048 * i, 0);
        }
        // Samples 4..=19 kept: 15 intervals of 100 ms.
        let now = r.now();
        assert!((now.ops_per_sec - 10_000.0).abs() < 1e-6, "{now:?}");
        assert!((now.input_kbps - 20.0).abs() < 1e-6, "{now:?}");
        assert_eq!(now.output_kbps, 0.0);
    }
}
