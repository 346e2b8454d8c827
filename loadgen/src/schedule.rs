//! Intended send times for an open-loop run: request `i` of a connection is due at
//! `start + i / rate`. Latency is measured from that time, not from when the request was
//! really sent, so a stalled server cannot hide its stall (coordinated omission).

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
    issued: u64,
}

impl Schedule {
    /// `rate`: requests per second for this connection (> 0).
    pub fn new(start: Instant, rate: f64) -> Self {
        assert!(rate > 0.0, "open loop needs a positive rate");
        Schedule {
            start,
            interval_ns: 1e9 / rate,
            issued: 0,
        }
    }

    /// When request `i` is due.
    pub fn intended(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }

    /// The next request's intended time.
    pub fn next_due(&self) -> Instant {
        self.intended(self.issued)
    }

    /// Takes up to `max` requests due at `now`; returns their intended times.
    pub fn take_due(&mut self, now: Instant, max: usize, out: &mut Vec<Instant>) {
        out.clear();
        while out.len() < max {
            let t = self.intended(self.issued);
            if t > now {
                break;
            }
            out.push(t);
            self.issued += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_from_the_start() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000.0);
        assert_eq!(s.intended(0), t0);
        assert_eq!(s.intended(1) - t0, Duration::from_millis(1));
        assert_eq!(s.intended(2500) - t0, Duration::from_millis(2500));
    }

    #[test]
    fn a_late_sender_catches_up_with_the_requests_it_owes_and_keeps_their_times() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 100.0); // one per 10 ms
        let mut due = Vec::new();
        // The sender stalled 55 ms: six requests are due, each with its own intended time.
        s.take_due(t0 + Duration::from_millis(55), 100, &mut due);
        assert_eq!(due.len(), 6);
        assert_eq!(due[5] - t0, Duration::from_millis(50));
        // Pipeline depth caps a batch; the rest stay due.
        s.take_due(t0 + Duration::from_millis(95), 2, &mut due);
        assert_eq!(
            due.iter()
                .map(|t| (*t - t0).as_millis())
                .collect::<Vec<_>>(),
            vec![60, 70]
        );
        assert_eq!(s.next_due() - t0, Duration::from_millis(80));
    }
}
