//! What a run prints and writes: one live line a second, the summary table, and a JSON file
//! in memtier_benchmark's `--json-out-file` layout (latencies in milliseconds).

use serde_json::{json, Map, Value};

use crate::stats::{summarize, Stats, Summary, COMMANDS};

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `[  3s]  512,345 ops/s  p50 0.231 ms  p99 0.902 ms  p99.9 1.503 ms  errors 0`.
pub fn live_line(second: u64, s: &Stats) -> String {
    let sum = summarize(&s.total());
    format!(
        "[{second:>4}s] {:>10} ops/s  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  errors {}",
        group(sum.count),
        ms(sum.p50),
        ms(sum.p99),
        ms(sum.p999),
        s.error_count()
    )
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The final table: one row per command and a total, then errors by kind.
pub fn summary_table(total: &Stats, seconds: f64) -> String {
    summary_table_named(total, seconds, &COMMANDS)
}

/// [`summary_table`] with other names for the commands (`PutItem GetItem Query`).
pub fn summary_table_named(total: &Stats, seconds: f64, names: &[&str; 3]) -> String {
    let mut out = String::from(
        "command      ops/s      mean ms   p50 ms    p90 ms    p99 ms    p99.9 ms  p99.99 ms max ms\n",
    );
    let row = |name: &str, s: Summary| {
        format!(
            "{name:<8} {:>12} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
            group((s.count as f64 / seconds.max(1e-9)) as u64),
            s.mean / 1000.0,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.p999),
            ms(s.p9999),
            ms(s.max)
        )
    };
    for (i, name) in names.iter().enumerate() {
        if !total.latency[i].is_empty() {
            out += &row(name, summarize(&total.latency[i]));
        }
    }
    out += &row("TOTAL", summarize(&total.total()));
    if total.errors.is_empty() {
        out += "errors: none\n";
    } else {
        for (k, n) in &total.errors {
            out += &format!("errors {k}: {n}\n");
        }
    }
    out
}

/// Percentiles written as the latency distribution (for percentile plots): denser towards
/// the tail, as HdrHistogram's percentile plots are.
const DISTRIBUTION: [f64; 20] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99,
    99.995, 99.999, 99.9995, 99.9999, 100.0,
];

/// `[[percentile, latency ms], ...]` of a histogram of microseconds (a rewind-loadgen
/// extension of memtier's layout).
fn distribution(h: &hdrhistogram::Histogram<u64>) -> Value {
    let points: Vec<Value> = DISTRIBUTION
        .iter()
        .map(|&p| json!([p, ms(h.value_at_quantile(p / 100.0))]))
        .collect();
    Value::Array(points)
}

fn stats_json(s: &Summary, seconds: f64, series: Option<Value>) -> Value {
    let mut v = json!({
        "Count": s.count,
        "Ops/sec": s.count as f64 / seconds.max(1e-9),
        "Average Latency": s.mean / 1000.0,
        "Min Latency": ms(s.min),
        "Max Latency": ms(s.max),
        "Percentile Latencies": {
            "p50.00": ms(s.p50),
            "p90.00": ms(s.p90),
            "p99.00": ms(s.p99),
            "p99.90": ms(s.p999),
            "p99.99": ms(s.p9999),
        },
    });
    if let Some(ts) = series {
        v["Time-Serie"] = ts;
    }
    v
}

fn series(per_second: &[Stats], pick: impl Fn(&Stats) -> hdrhistogram::Histogram<u64>) -> Value {
    let mut m = Map::new();
    for (i, s) in per_second.iter().enumerate() {
        let sum = summarize(&pick(s));
        m.insert(
            i.to_string(),
            json!({
                "Count": sum.count,
                "Average Latency": sum.mean / 1000.0,
                "Min Latency": ms(sum.min),
                "Max Latency": ms(sum.max),
                "p50.00": ms(sum.p50),
                "p99.00": ms(sum.p99),
                "p99.90": ms(sum.p999),
            }),
        );
    }
    Value::Object(m)
}

/// The JSON document: `configuration`, `run information`, and `ALL STATS` with `Sets`,
/// `Gets`, `Queries` (DynamoDB mode, when any ran) and `Totals` (each with `Time-Serie` per second) plus `Errors` by kind.
pub fn json_report(
    config: Value,
    total: &Stats,
    per_second: &[Stats],
    seconds: f64,
    start_ms: u64,
) -> Value {
    let names = ["Sets", "Gets", "Queries"];
    let mut all = Map::new();
    for (i, name) in names.iter().enumerate() {
        // Queries only when there were some: RESP runs keep memtier's layout.
        if i == 2 && total.latency[2].is_empty() {
            continue;
        }
        let ts = series(per_second, |s| s.latency[i].clone());
        let mut v = stats_json(&summarize(&total.latency[i]), seconds, Some(ts));
        v["Percentile Distribution"] = distribution(&total.latency[i]);
        all.insert(name.to_string(), v);
    }
    let ts = series(per_second, |s| s.total());
    let mut v = stats_json(&summarize(&total.total()), seconds, Some(ts));
    v["Percentile Distribution"] = distribution(&total.total());
    all.insert("Totals".into(), v);
    all.insert("Errors".into(), json!(total.errors));
    json!({
        "configuration": config,
        "run information": {
            "Total duration": (seconds * 1000.0) as u64,
            "Start time": start_ms,
            "Finish time": start_ms + (seconds * 1000.0) as u64,
        },
        "ALL STATS": Value::Object(all),
    })
}

/// Writes an HdrHistogram interval log (the format HdrHistogram's tools read): one
/// histogram per second per command, tagged `SET` or `GET`, latencies in microseconds.
pub fn write_hdr_log(
    path: &std::path::Path,
    per_second: &[Stats],
    start_unix_ms: u64,
) -> Result<(), String> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut serializer = V2DeflateSerializer::new();
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_millis(start_unix_ms);
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("rewind-loadgen latencies in microseconds")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut file, &mut serializer)
        .map_err(|e| e.to_string())?;
    for (i, s) in per_second.iter().enumerate() {
        for (c, name) in COMMANDS.iter().enumerate() {
            if s.latency[c].is_empty() {
                continue;
            }
            log.write_histogram(
                &s.latency[c],
                std::time::Duration::from_secs(i as u64),
                std::time::Duration::from_secs(1),
                Tag::new(name),
            )
            .map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_memtiers_layout() {
        let mut total = Stats::default();
        for us in [100, 200, 300] {
            total.record(0, us);
        }
        total.record(1, 50);
        total.error("ERR");
        let secs = vec![total.clone(), Stats::default()];
        let j = json_report(json!({"clients": 4}), &total, &secs, 2.0, 1_000);
        let all = &j["ALL STATS"];
        assert_eq!(all["Sets"]["Count"], 3);
        assert_eq!(all["Sets"]["Ops/sec"], 1.5);
        assert_eq!(all["Gets"]["Count"], 1);
        assert_eq!(all["Totals"]["Count"], 4);
        assert!(
            all["Totals"]["Percentile Latencies"]["p99.00"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        assert_eq!(all["Totals"]["Time-Serie"]["1"]["Count"], 0);
        // The distribution runs from the fastest to the slowest SET, never decreasing.
        let d = all["Sets"]["Percentile Distribution"].as_array().unwrap();
        let lat: Vec<f64> = d.iter().map(|p| p[1].as_f64().unwrap()).collect();
        assert!(lat.windows(2).all(|w| w[0] <= w[1]), "{lat:?}");
        assert!((lat[0] - 0.1).abs() < 0.001 && (lat[lat.len() - 1] - 0.3).abs() < 0.001);
        assert_eq!(d.last().unwrap()[0], 100.0);
        assert_eq!(all["Errors"]["ERR"], 1);
        assert_eq!(j["run information"]["Total duration"], 2000);
        assert_eq!(j["configuration"]["clients"], 4);
    }

    #[test]
    fn table_and_live_line() {
        let mut s = Stats::default();
        s.record(0, 1000);
        assert!(live_line(3, &s).starts_with("[   3s]          1 ops/s  p50 1.000 ms"));
        let t = summary_table(&s, 1.0);
        assert!(
            t.contains("SET") && t.contains("TOTAL") && t.contains("errors: none"),
            "{t}"
        );
        assert_eq!(group(1234567), "1,234,567");
    }
}
