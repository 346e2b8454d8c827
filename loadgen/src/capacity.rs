//! `capacity`: the highest open-loop rate that meets every latency SLO. The rate climbs in
//! steps (each `dwell` long after a warm-up that is discarded) until a step fails, then a
//! binary search between the last passing and the first failing rate narrows it down.

use std::time::Duration;

use crate::run::{run, RunConfig};

/// `p99=1ms`: the 99th percentile must stay at or under 1 ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub label: String,
    pub quantile: f64,
    pub limit_us: u64,
}

impl std::str::FromStr for Slo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad SLO {s:?}: want e.g. p99=1ms, p999=5ms, p50=300us");
        let (p, limit) = s.split_once('=').ok_or_else(bad)?;
        let digits = p.strip_prefix('p').ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // p99 = 0.99, p999 = 0.999, p9999 = 0.9999, p50 = 0.5
        let quantile: f64 = format!("0.{digits}").parse().map_err(|_| bad())?;
        let limit = humantime::parse_duration(limit).map_err(|_| bad())?;
        Ok(Slo {
            label: p.to_string(),
            quantile,
            limit_us: limit.as_micros() as u64,
        })
    }
}

#[derive(Debug, Clone)]
pub struct CapacityConfig {
    /// Connections, pipeline, keys ... of each step; its rate, duration and warm-up are set here.
    pub base: RunConfig,
    pub slos: Vec<Slo>,
    pub start: f64,
    pub step: f64,
    pub max: f64,
    pub dwell: Duration,
    pub warmup: Duration,
    /// Binary-search rounds after the climb.
    pub search: usize,
}

/// One measured rate.
#[derive(Debug, Clone)]
pub struct Step {
    pub rate: f64,
    pub achieved: f64,
    /// Each SLO's measured value, in µs, in the order given.
    pub measured_us: Vec<u64>,
    pub errors: u64,
    pub pass: bool,
}

/// Runs one open-loop step at `rate` against the server and judges it.
fn try_rate(cfg: &CapacityConfig, rate: f64) -> Result<Step, String> {
    let mut rc = cfg.base.clone();
    rc.rate = Some(rate);
    rc.duration = cfg.dwell;
    rc.warmup = cfg.warmup;
    rc.live = false;
    rc.requests = None;
    let r = run(&rc)?;
    let total = r.total.total();
    let measured_us: Vec<u64> = cfg
        .slos
        .iter()
        .map(|s| {
            if total.is_empty() {
                u64::MAX
            } else {
                total.value_at_quantile(s.quantile)
            }
        })
        .collect();
    let achieved = r.total.ops() as f64 / r.seconds.max(1e-9);
    Ok(judge(
        &cfg.slos,
        rate,
        achieved,
        measured_us,
        r.total.error_count(),
    ))
}

/// A step passes when it had no errors, reached 95% of its rate and met every SLO.
pub fn judge(slos: &[Slo], rate: f64, achieved: f64, measured_us: Vec<u64>, errors: u64) -> Step {
    let pass = errors == 0
        && achieved >= 0.95 * rate
        && slos.iter().zip(&measured_us).all(|(s, &m)| m <= s.limit_us);
    Step {
        rate,
        achieved,
        measured_us,
        errors,
        pass,
    }
}

/// Climbs and searches; returns the highest passing rate (None if even the first failed) and
/// every step measured, in order.
pub fn capacity(
    cfg: &CapacityConfig,
    report: impl FnMut(&Step),
) -> Result<(Option<f64>, Vec<Step>), String> {
    search(cfg, |rate| try_rate(cfg, rate), report)
}

/// The climb and the binary search over any way of measuring a step: [`capacity`] runs real
/// load; tests pass a model of a server, so the search itself is checked without timing.
pub fn search(
    cfg: &CapacityConfig,
    mut measure: impl FnMut(f64) -> Result<Step, String>,
    mut report: impl FnMut(&Step),
) -> Result<(Option<f64>, Vec<Step>), String> {
    if cfg.slos.is_empty() || cfg.start <= 0.0 || cfg.step <= 0.0 {
        return Err("capacity needs at least one --slo, and positive --start and --step".into());
    }
    let mut steps = Vec::new();
    let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = cfg.start;
    while rate <= cfg.max {
        let s = measure(rate)?;
        report(&s);
        let ok = s.pass;
        steps.push(s);
        if ok {
            pass = Some(rate);
            rate += cfg.step;
        } else {
            fail = Some(rate);
            break;
        }
    }
    if let (Some(mut lo), Some(mut hi)) = (pass, fail) {
        for _ in 0..cfg.search {
            let mid = (lo + hi) / 2.0;
            let s = measure(mid)?;
            report(&s);
            if s.pass {
                lo = mid;
            } else {
                hi = mid;
            }
            steps.push(s);
        }
        pass = Some(lo);
    }
    Ok((pass, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_parse() {
        let s: Slo = "p99=1ms".parse().unwrap();
        assert_eq!((s.quantile, s.limit_us), (0.99, 1000));
        let s: Slo = "p999=5ms".parse().unwrap();
        assert_eq!((s.quantile, s.limit_us), (0.999, 5000));
        let s: Slo = "p50=300us".parse().unwrap();
        assert_eq!((s.quantile, s.limit_us), (0.5, 300));
        for bad in ["99=1ms", "p99", "p99=fast", "pxx=1ms"] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
    }

    fn cfg(slo: &str, start: f64, step: f64, max: f64, search: usize) -> CapacityConfig {
        let base = RunConfig {
            addr: "127.0.0.1:1".parse().unwrap(),
            connections: 1,
            threads: 1,
            pipeline: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            set_ratio: 0.5,
            keys: 10,
            key_dist: crate::keys::KeyDist::Uniform,
            value_size: crate::keys::ValueSize { min: 1, max: 1 },
            table: None,
            rate: None,
            seed: 1,
            requests: None,
            live: false,
            dynamo: None,
        };
        CapacityConfig {
            base,
            slos: vec![slo.parse().unwrap()],
            start,
            step,
            max,
            dwell: Duration::from_secs(1),
            warmup: Duration::ZERO,
            search,
        }
    }

    /// A model server: p99 latency 100 µs up to `knee` requests/s, then 100 ms; it keeps up
    /// with any rate up to `ceiling`.
    fn model(
        cfg: &CapacityConfig,
        knee: f64,
        ceiling: f64,
    ) -> impl FnMut(f64) -> Result<Step, String> + '_ {
        move |rate| {
            let p99 = if rate <= knee { 100 } else { 100_000 };
            Ok(judge(&cfg.slos, rate, rate.min(ceiling), vec![p99], 0))
        }
    }

    #[test]
    fn the_climb_stops_at_the_first_failing_step_and_the_search_narrows_it() {
        let c = cfg("p99=1ms", 1000.0, 1000.0, 10_000.0, 3);
        let mut reported = 0;
        let (best, steps) = search(&c, model(&c, 4300.0, f64::MAX), |_| reported += 1).unwrap();
        let rates: Vec<f64> = steps.iter().map(|s| s.rate).collect();
        // 1k..4k pass, 5k fails; then 4.5k (fail), 4.25k (pass), 4.375k (fail).
        assert_eq!(
            rates,
            [1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 4500.0, 4250.0, 4375.0]
        );
        assert_eq!(best, Some(4250.0));
        assert_eq!(reported, steps.len());
    }

    #[test]
    fn every_step_passing_gives_the_top_of_the_range_without_a_search() {
        let c = cfg("p99=1ms", 1000.0, 1000.0, 3000.0, 2);
        let (best, steps) = search(&c, model(&c, f64::MAX, f64::MAX), |_| {}).unwrap();
        assert_eq!((best, steps.len()), (Some(3000.0), 3));
        assert!(steps.iter().all(|s| s.pass));
    }

    #[test]
    fn a_first_failing_step_gives_no_answer() {
        let c = cfg("p99=1ms", 1000.0, 1000.0, 3000.0, 2);
        let (best, steps) = search(&c, model(&c, 10.0, f64::MAX), |_| {}).unwrap();
        assert_eq!((best, steps.len()), (None, 1));
    }

    #[test]
    fn a_server_that_falls_behind_fails_the_step_even_with_good_latency() {
        let c = cfg("p99=1ms", 1000.0, 1000.0, 5000.0, 0);
        let (best, steps) = search(&c, model(&c, f64::MAX, 2500.0), |_| {}).unwrap();
        assert_eq!(best, Some(2000.0));
        assert_eq!(steps.len(), 3);
        assert!(!steps[2].pass && steps[2].achieved == 2500.0);
        let errors = judge(&c.slos, 1000.0, 1000.0, vec![1], 1);
        assert!(!errors.pass, "a step with errors fails");
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut c = cfg("p99=1ms", 0.0, 1000.0, 3000.0, 2);
        assert!(search(&c, |_| unreachable!(), |_| {}).is_err());
        c.start = 1.0;
        c.slos.clear();
        assert!(search(&c, |_| unreachable!(), |_| {}).is_err());
    }
}
