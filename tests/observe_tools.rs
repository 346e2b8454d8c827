//! The tools an operator already runs, pointed at rewind: redis_exporter (Debian's
//! prometheus-redis-exporter) reading INFO, a real Prometheus server scraping `/metrics`
//! during a rewind-loadgen run, the Python Prometheus client's OpenMetrics parser, JSON
//! logs, and settings from a config file, REWIND_* variables and flags in that order.
//! `.ci/run` installs the tools; a missing one fails the test with its name.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::start;
use rewind_loadgen::keys::{KeyDist, ValueSize};
use rewind_loadgen::run::{run, RunConfig};

/// A child process killed when the test ends, pass or fail.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed (.ci/run installs it: Debian prometheus-redis-exporter, prometheus)"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.0: the status and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Polls `f` every 200 ms for up to 60 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of the sample `name` (labels included, as written) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn redis_exporter_reads_rewind_as_it_reads_redis() {
    let exporter = tool("prometheus-redis-exporter");
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    for i in 0..20 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    c.cmd(&["GET", "k1"]);
    c.cmd(&["GET", "nope"]);
    let port = free_port();
    let _exp = Guard(
        Command::new(exporter)
            .args([
                "-redis.addr",
                &format!("redis://{}", srv.addr()),
                "-web.listen-address",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let text = eventually("redis_exporter's /metrics", || {
        http_get(port, "/metrics")
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    });
    let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    assert_eq!(get("redis_up"), 1.0);
    assert_eq!(get("redis_exporter_last_scrape_error{err=\"\"}"), 0.0);
    assert_eq!(get("redis_commands_total{cmd=\"set\"}"), 20.0);
    assert!(get("redis_commands_duration_seconds_total{cmd=\"set\"}") > 0.0);
    assert_eq!(get("redis_db_keys{db=\"db0\"}"), 20.0);
    assert_eq!(get("redis_keyspace_hits_total"), 1.0);
    assert_eq!(get("redis_keyspace_misses_total"), 1.0);
    assert!(get("redis_memory_used_bytes") > 1e6);
    assert!(get("redis_connected_clients") >= 1.0);
    assert!(get("redis_net_input_bytes_total") > 0.0);
    get("redis_uptime_in_seconds");
    get("redis_config_maxclients");
}

fn load(port: u16, secs: u64) -> RunConfig {
    RunConfig {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        connections: 4,
        threads: 1,
        pipeline: 4,
        duration: Duration::from_secs(secs),
        warmup: Duration::ZERO,
        set_ratio: 0.5,
        keys: 1000,
        key_dist: KeyDist::Uniform,
        value_size: ValueSize { min: 50, max: 150 },
        table: None,
        rate: Some(2000.0),
        seed: 3,
        requests: None,
        live: false,
        dynamo: None,
    }
}

/// Parses OpenMetrics text with the Python Prometheus client (strict: a malformed line,
/// a missing `# EOF` or a counter without `_total` is an error) and prints `name value`
/// for every sample of the families asked.
fn parse_with_python(text: &str) -> Vec<(String, f64)> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out.append(f"{s.name}{{{labels}}} {s.value}")
print("\n".join(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} among {} samples", samples.len()))
        .1
}

#[test]
fn prometheus_scrapes_metrics_that_move_during_a_load_run() {
    let prometheus = tool("prometheus");
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &["--metrics-listen", "127.0.0.1:0"]);
    let mport = srv.metrics_port.expect("the metrics port in the log");
    let before = parse_with_python(&http_get(mport, "/metrics").unwrap().1);
    // A bounded open-loop run at 2,000 requests/s for 3 s, scraped once its SETs show.
    let set = r#"rewind_commands_total{cmd="set"}"#;
    let get = r#"rewind_commands_total{cmd="get"}"#;
    let cfg = load(srv.port, 3);
    let runner = std::thread::spawn(move || run(&cfg));
    let mid = eventually("the run's first SETs in /metrics", || {
        let (status, during) = http_get(mport, "/metrics").ok()?;
        assert_eq!(status, 200);
        let samples = parse_with_python(&during);
        samples.iter().any(|(k, _)| k == set).then_some(samples)
    });
    let result = runner.join().unwrap().unwrap();
    assert_eq!(result.total.error_count(), 0);
    // One more of each through a client, so the counters have moved since `mid` however
    // much of the run came before it.
    let mut c = srv.client();
    assert_eq!(c.cmd(&["SET", "after", "1"]), common::Value::ok());
    c.cmd(&["GET", "after"]);
    let after = parse_with_python(&http_get(mport, "/metrics").unwrap().1);
    assert!(
        !before.iter().any(|(k, _)| k == set),
        "no SET before the run"
    );
    assert!(value(&mid, set) > 0.0 && value(&after, set) > value(&mid, set));
    assert!(value(&after, get) > value(&mid, get));
    let syncs = "rewind_log_syncs_total{}";
    assert!(value(&after, syncs) > value(&mid, syncs));
    // Every SET that ran is in the duration histogram once.
    let count = r#"rewind_command_duration_seconds_count{cmd="set"}"#;
    assert_eq!(value(&after, count), value(&after, set));
    let inf = r#"rewind_command_duration_seconds_bucket{cmd="set",le="+Inf"}"#;
    assert_eq!(value(&after, inf), value(&after, count));
    assert!(value(&after, r#"rewind_table_keys{table="default"}"#) > 0.0);
    assert!(value(&after, "rewind_log_sync_duration_seconds_count{}") > 0.0);
    assert!(value(&after, "rewind_memory_used_bytes{}") > 1e6);
    assert!(
        value(&after, "rewind_net_input_bytes_total{}")
            > value(&mid, "rewind_net_input_bytes_total{}")
    );
    assert_eq!(http_get(mport, "/nothing").unwrap().0, 404);

    // A real Prometheus server scrapes it once a second.
    let pdir = tempfile::tempdir().unwrap();
    let config = pdir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rewind\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .unwrap();
    let pport = free_port();
    let _prom = Guard(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                pdir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let targets = eventually("Prometheus to scrape rewind", || {
        let (s, body) = http_get(pport, "/api/v1/targets").ok()?;
        (s == 200 && body.contains(r#""health":"up""#)).then_some(body)
    });
    assert!(targets.contains(r#""lastError":"""#), "{targets}");
    let query = eventually("rewind's SET count in Prometheus", || {
        let (s, body) = http_get(
            pport,
            "/api/v1/query?query=rewind_commands_total%7Bcmd%3D%22set%22%7D",
        )
        .ok()?;
        (s == 200 && body.contains(r#""cmd":"set""#)).then_some(body)
    });
    let scraped: f64 = query
        .rsplit_once(",\"")
        .and_then(|(_, v)| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{query}"));
    assert_eq!(scraped, value(&after, set), "{query}");

    // The Grafana dashboard in docs/ uses only families rewind exports, in queries that
    // Prometheus accepts.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana-rewind.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 10);
    let exposition = http_get(mport, "/metrics").unwrap().1;
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let Some(name) = word.strip_prefix("rewind_").map(|_| word) else {
                continue;
            };
            let family = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            if family.starts_with("rewind_archive_") {
                continue; // exported with --archive only
            }
            assert!(
                exposition.contains(&format!("# TYPE {family} ")),
                "the dashboard's {name} is not exported"
            );
        }
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        let encoded: String = q
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = http_get(pport, &format!("/api/v1/query?query={encoded}")).unwrap();
        assert_eq!(
            status, 200,
            "Prometheus refused the dashboard's {q}: {body}"
        );
    }
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = start(dir.path(), "auto", &["--log-format", "json"]);
    // The lines after the ready line: shutting down, and complete.
    let rx = std::mem::replace(&mut srv.log, std::sync::mpsc::channel().1);
    assert!(srv.stop().success());
    let lines: Vec<String> = rx.iter().collect();
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("shutdown complete")),
        "{lines:?}"
    );
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("serve")
        .args(args)
        .arg("--print-config")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn setting(out: &std::process::Output, key: &str) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn flags_beat_environment_beats_config_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rewind.toml");
    std::fs::write(
        &file,
        "shards = 3\nzstd-level = 4\nmax-clients = 50\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = print_config(&["--config", f], &[]);
    assert_eq!(setting(&out, "shards"), "3");
    assert_eq!(setting(&out, "fsync"), "\"always\"", "a default");
    let env = [("REWIND_SHARDS", "4"), ("REWIND_ZSTD_LEVEL", "5")];
    let out = print_config(&["--config", f], &env);
    assert_eq!(
        setting(&out, "shards"),
        "4",
        "the environment beats the file"
    );
    assert_eq!(setting(&out, "zstd-level"), "5");
    assert_eq!(
        setting(&out, "max-clients"),
        "50",
        "the file beats the default"
    );
    let out = print_config(&["--config", f, "--shards", "6"], &env);
    assert_eq!(setting(&out, "shards"), "6", "a flag beats the environment");
    // The config file named by the environment.
    let out = print_config(&[], &[("REWIND_CONFIG", f)]);
    assert_eq!(setting(&out, "shards"), "3");
    // An unknown key is an error naming it and the file.
    std::fs::write(&file, "shard = 3\n").unwrap();
    let out = print_config(&["--config", f], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key 'shard'") && err.contains("rewind.toml"),
        "{err}"
    );
    // A bad value in the environment is named like a bad flag.
    let out = print_config(&[], &[("REWIND_SHARDS", "0")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shards"));

    // A server started from a config file serves with its settings.
    std::fs::write(&file, "shards = 3\nmax-clients = 50\n").unwrap();
    let srv = start(dir.path().join("data").as_path(), "auto", &["--config", f]);
    let mut c = srv.client();
    let all = c.cmd(&["CONFIG", "GET", "shards", "maxclients"]).fields();
    let get = |k: &str| {
        all.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("shards"), common::Value::bulk("3"));
    assert_eq!(get("maxclients"), common::Value::bulk("50"));
    let info = c.cmd(&["INFO", "server"]);
    let common::Value::Bulk(info) = info else {
        panic!()
    };
    assert!(String::from_utf8_lossy(&info).contains(&format!("config_file:{f}")));
}

/// The log's segment and space counters, in INFO and in `/metrics`: rolls into prepared files,
/// segments sealed, and the space ahead made by writing zeros (`fsync always`) or reserved
/// with `fallocate` (the relaxed policies).
#[test]
fn info_and_metrics_count_segment_rolls_and_the_space_ahead() {
    for fsync in ["always", "never"] {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(
            dir.path(),
            "auto",
            &[
                "--fsync",
                fsync,
                "--shards",
                "1",
                "--segment-mib",
                "1",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
        );
        let mut c = srv.client();
        // 320 values of 16 KiB of letters (about 3.2 MiB once compressed): two rolls at least.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..320 {
            let value: String = (0..16 << 10)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (b'a' + (x % 26) as u8) as char
                })
                .collect();
            assert_eq!(
                c.cmd(&["SET", &format!("k{i}"), &value]),
                common::Value::ok()
            );
        }
        let field = |info: &str, name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("INFO has no {name}:\n{info}"))
        };
        // Sealing runs on the helper thread after the roll: wait for the first.
        let info = eventually("a sealed segment", || {
            let common::Value::Bulk(b) = c.cmd(&["INFO", "persistence"]) else {
                return None;
            };
            let info = String::from_utf8(b).unwrap();
            (field(&info, "log_segments_sealed") >= 1).then_some(info)
        });
        let created = field(&info, "log_segments_created");
        let prepared = field(&info, "log_segment_rolls_prepared");
        let inline = field(&info, "log_segment_rolls_inline");
        assert!(created >= 3, "{fsync}: {info}");
        // Each segment, the first too, started in a file the helper prepared, unless the
        // helper fell behind (then the writer made it inline, and counted it).
        assert_eq!(prepared + inline, created, "{fsync}: {info}");
        let zeroed = field(&info, "log_space_zeroed_bytes");
        let reserved = field(&info, "log_space_reserved_bytes");
        if fsync == "always" {
            assert!(zeroed >= 2 << 20 && reserved == 0, "{fsync}: {info}");
        } else {
            assert!(reserved >= 2 << 20 && zeroed == 0, "{fsync}: {info}");
        }
        let metrics = http_get(srv.metrics_port.unwrap(), "/metrics").unwrap().1;
        for (name, at_least) in [
            ("rewind_log_segment_rolls_prepared_total{}", prepared),
            ("rewind_log_segments_sealed_total{}", 1),
            ("rewind_log_space_zeroed_bytes_total{}", zeroed),
            ("rewind_log_space_reserved_bytes_total{}", reserved),
        ] {
            let got = sample(&metrics, name).unwrap_or_else(|| panic!("no {name}:\n{metrics}"));
            assert!(got >= at_least as f64, "{fsync}: {name} {got} < {at_least}");
        }
        assert!(sample(&metrics, "rewind_log_segment_rolls_inline_total{}").is_some());
    }
}
