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
    let errors = r.total.error_count();
    let pass = errors == 0
        && achieved >= 0.95 * rate
        && cfg
            .slos
            .iter()
            .zip(&measured_us)
            .all(|(s, &m)| m <= s.limit_us);
    Ok(Step {
        rate,
        achieved,
        measured_us,
        errors,
        pass,
    })
}

/// Climbs and searches; returns the highest passing rate (None if even the first failed) and
/// every step measured, in order.
pub fn capacity(
    cfg: &CapacityConfig,
    mut report: impl FnMut(&Step),
) -> Result<(Option<f64>, Vec<Step>), String> {
    if cfg.slos.is_empty() || cfg.start <= 0.0 || cfg.step <= 0.0 {
        return Err("capacity needs at least one --slo, and positive --start and --step".into());
    }
    let mut steps = Vec::new();
    let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = cfg.start;
    while rate <= cfg.max {
        let s = try_rate(cfg, rate)?;
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
            let s = try_rate(cfg, mid)?;
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
}
