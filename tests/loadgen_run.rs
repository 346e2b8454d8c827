//! `rewind-loadgen run` against a real rewind server: closed loop with pipelining into a
//! table, open loop at a fixed rate, and the binary's JSON output.

mod common;

use std::time::Duration;

use common::start;
use rewind_loadgen::keys::{KeyDist, ValueSize};
use rewind_loadgen::run::{run, RunConfig};

fn config(port: u16) -> RunConfig {
    RunConfig {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        connections: 8,
        threads: 2,
        pipeline: 8,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        set_ratio: 0.5,
        keys: 1000,
        key_dist: KeyDist::Zipf(0.99),
        value_size: ValueSize { min: 50, max: 150 },
        table: Some("loadtest".into()),
        rate: None,
        seed: 9,
        requests: None,
        live: false,
        dynamo: None,
    }
}

#[test]
fn closed_and_open_loop_runs_against_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "loadtest"]);

    let closed = run(&config(srv.port)).unwrap();
    assert_eq!(closed.total.error_count(), 0, "{:?}", closed.total.errors);
    // Both commands ran (how many depends on the machine, so only "some").
    assert!(!closed.total.latency[0].is_empty() && !closed.total.latency[1].is_empty());
    // The measured window is the configured 1.5 s, cut short only if every connection stops.
    assert!(
        closed.seconds > 1.0 && closed.seconds <= 1.5 + 1e-6,
        "{}",
        closed.seconds
    );
    c.cmd(&["TABLE.USE", "loadtest"]);
    assert!(
        c.cmd(&["DBSIZE"]).as_int() > 0,
        "the SETs reached the table"
    );

    // Open loop: the count follows the rate, not the server's speed: never more than the
    // schedule holds (2000/s over the 1.5 s measured and the 0.3 s warm-up, whose late
    // requests may complete inside the window, plus one pipeline per connection).
    let mut open = config(srv.port);
    open.rate = Some(2000.0);
    open.pipeline = 4;
    let r = run(&open).unwrap();
    let ops = r.total.ops() as f64;
    assert!(
        ops > 0.0 && ops <= 2000.0 * 1.8 + 8.0 * 4.0,
        "{ops} requests at 2000/s for 1.5 s"
    );

    // A request budget ends the run early.
    let mut budget = config(srv.port);
    budget.requests = Some(400);
    budget.warmup = Duration::ZERO;
    budget.duration = Duration::from_secs(30);
    let t = std::time::Instant::now();
    let r = run(&budget).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(r.total.ops() <= 400);
}

#[test]
fn a_server_that_goes_away_ends_the_run_on_time_with_the_errors_counted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut cfg = config(srv.port);
    cfg.table = None;
    cfg.warmup = Duration::ZERO;
    cfg.duration = Duration::from_secs(10);
    // Kill once the load has made progress (not after a fixed time, which a busy machine
    // may spend before the first reply): each connection sends its next pipeline only after
    // the last one's replies, so over 2 x 8 x 8 commands processed means replies arrived.
    let killer = std::thread::spawn(move || {
        let mut probe = srv.client();
        let processed = |c: &mut common::Client| {
            let common::Value::Bulk(info) = c.cmd(&["INFO", "stats"]) else {
                panic!("INFO")
            };
            let info = String::from_utf8(info).unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix("total_commands_processed:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let t = std::time::Instant::now();
        while processed(&mut probe) < 200 && t.elapsed() < Duration::from_secs(8) {
            std::thread::sleep(Duration::from_millis(20));
        }
        srv.kill9();
    });
    let t = std::time::Instant::now();
    let r = run(&cfg).unwrap();
    killer.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the run ends on its own at its 10 s, the server gone"
    );
    assert!(r.total.ops() > 0);
    assert!(
        r.total.error_count() > 0,
        "disconnects are counted, never hidden"
    );
}

#[test]
fn json_and_hdr_outputs_of_a_real_run() {
    use rewind_loadgen::report::{json_report, summary_table, write_hdr_log};
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut cfg = config(srv.port);
    cfg.table = None;
    cfg.warmup = Duration::ZERO;
    cfg.duration = Duration::from_millis(2200);
    let r = run(&cfg).unwrap();
    assert!(summary_table(&r.total, r.seconds).contains("TOTAL"));
    let doc = json_report(
        serde_json::json!({"clients": 8}),
        &r.total,
        &r.per_second,
        r.seconds,
        r.start_unix_ms,
    );
    assert!(doc["ALL STATS"]["Totals"]["Ops/sec"].as_f64().unwrap() > 0.0);
    let series = doc["ALL STATS"]["Totals"]["Time-Serie"]
        .as_object()
        .unwrap();
    assert!(series.contains_key("1"), "a series entry per second");
    let counted: u64 = series.values().map(|v| v["Count"].as_u64().unwrap()).sum();
    assert_eq!(counted, r.total.ops(), "the series adds up to the total");
    let hlog = dir.path().join("out.hlog");
    write_hdr_log(&hlog, &r.per_second, r.start_unix_ms).unwrap();
    let text = std::fs::read_to_string(&hlog).unwrap();
    assert!(
        text.starts_with('#') && text.contains("Tag=GET,") && text.contains("Tag=SET,"),
        "{text}"
    );
}

#[test]
fn verify_finds_no_mismatch_on_a_correct_server() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let cfg = rewind_loadgen::verify::VerifyConfig {
        addr: srv.addr().parse().unwrap(),
        duration: Duration::from_millis(1200),
        restores: 4,
        writers: 3,
        keys_per_writer: 20,
        seed: 5,
    };
    let r = rewind_loadgen::verify::verify(&cfg).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert_eq!(r.restores, 4);
    assert!(r.writes > 0 && r.keys_checked > 0, "{r:?}");
}

/// Against a real server the answer depends on the machine, so this checks what does not:
/// each step ran real load and was judged by the rule, and the answer agrees with the steps.
/// The search itself is checked exactly, with a model server, in `capacity.rs`'s unit tests.
#[test]
fn capacity_runs_real_steps_and_reports_what_they_measured() {
    use rewind_loadgen::capacity::{capacity, judge, CapacityConfig, Slo};
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut base = config(srv.port);
    base.table = None;
    let cfg = CapacityConfig {
        base: base.clone(),
        slos: vec!["p99=10s".parse::<Slo>().unwrap()],
        start: 200.0,
        step: 200.0,
        max: 400.0,
        dwell: Duration::from_millis(600),
        warmup: Duration::from_millis(200),
        search: 1,
    };
    let mut reported = 0;
    let (best, steps) = capacity(&cfg, |_| reported += 1).unwrap();
    assert_eq!(reported, steps.len());
    assert!(!steps.is_empty() && steps[0].rate == 200.0);
    for s in &steps {
        assert_eq!(s.errors, 0, "{s:?}");
        assert!(s.achieved > 0.0 && s.measured_us.len() == 1, "{s:?}");
        let again = judge(
            &cfg.slos,
            s.rate,
            s.achieved,
            s.measured_us.clone(),
            s.errors,
        );
        assert_eq!(again.pass, s.pass, "{s:?}");
    }
    let highest_pass = steps
        .iter()
        .filter(|s| s.pass)
        .map(|s| s.rate)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    assert_eq!(best, highest_pass, "{steps:?}");
    // An impossible SLO (half the requests answered within 1 µs) fails at once.
    let cfg = CapacityConfig {
        slos: vec!["p50=1us".parse::<Slo>().unwrap()],
        ..cfg
    };
    let (best, steps) = capacity(&cfg, |_| {}).unwrap();
    assert_eq!((best, steps.len()), (None, 1));
    assert!(steps[0].measured_us[0] > 1, "{steps:?}");
}

#[test]
fn dynamodb_mode_puts_gets_and_queries_through_the_http_front_door() {
    use rewind_loadgen::dynamo::DynamoTarget;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &["--dynamodb-listen", "127.0.0.1:0"]);
    let port = srv.dynamodb_port.expect("DynamoDB port");
    let target = |query_ratio| DynamoTarget {
        host: format!("127.0.0.1:{port}"),
        table: "loadgen_items".into(),
        partition_items: 10,
        query_ratio,
    };
    let mut cfg = config(port);
    cfg.table = None;
    cfg.keys = 100;
    cfg.key_dist = KeyDist::Sequential;
    cfg.set_ratio = 1.0;
    cfg.warmup = Duration::ZERO;
    cfg.duration = Duration::from_secs(60);
    cfg.requests = Some(400);
    cfg.dynamo = Some(target(0.0));
    // Puts first (the table is made, with pk and sk as its key): one connection going
    // through the 100 keys in order 4 times writes every one. Then a mix with queries.
    cfg.connections = 1;
    let fill = run(&cfg).unwrap();
    cfg.connections = 8;
    assert_eq!(fill.total.error_count(), 0, "{:?}", fill.total.errors);
    assert!(!fill.total.latency[0].is_empty(), "PutItem ran");
    cfg.set_ratio = 0.5;
    cfg.dynamo = Some(target(0.3));
    let mix = run(&cfg).unwrap();
    assert_eq!(mix.total.error_count(), 0, "{:?}", mix.total.errors);
    for (i, op) in ["PutItem", "GetItem", "Query"].iter().enumerate() {
        assert!(!mix.total.latency[i].is_empty(), "{op} ran");
    }
    assert!(mix.total.ops() <= 400);
    // The items are there, as the DynamoDB mode names them: key number 37 is (p3, 7).
    let mut c = srv.client();
    c.cmd(&["TABLE.USE", "loadgen_items"]);
    let key = b"\x01S\x00\x02p3N7";
    let got = c.cmd_bytes(&[b"EXISTS", key]);
    assert_eq!(got.as_int(), 1, "item (p3, 7) written");
    // A table with another key schema is refused by name.
    let mut other = config(port);
    other.table = None;
    other.requests = Some(10);
    let mut t = target(0.0);
    t.table = "default".into();
    other.dynamo = Some(t);
    let err = run(&other).unwrap_err();
    assert!(err.contains("default"), "{err}");
    // So is one with the key names the mode uses but a string sort key.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let create = serde_json::json!({
        "TableName": "typed_wrong",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    let (status, reply) =
        rewind_loadgen::dynamo::call(addr, &addr.to_string(), "CreateTable", &create).unwrap();
    assert_eq!(status, 200, "{reply}");
    let mut t = target(0.0);
    t.table = "typed_wrong".into();
    other.dynamo = Some(t);
    let err = run(&other).unwrap_err();
    assert!(
        err.contains("typed_wrong") && err.contains("(N) RANGE"),
        "{err}"
    );
}
