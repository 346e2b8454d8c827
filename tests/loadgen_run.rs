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
    assert!(closed.total.latency[0].len() > 100 && closed.total.latency[1].len() > 100);
    assert!((1.3..1.7).contains(&closed.seconds), "{}", closed.seconds);
    c.cmd(&["TABLE.USE", "loadtest"]);
    assert!(
        c.cmd(&["DBSIZE"]).as_int() > 100,
        "the SETs reached the table"
    );

    // Open loop: the count follows the rate, not the server's speed.
    let mut open = config(srv.port);
    open.rate = Some(2000.0);
    open.pipeline = 4;
    let r = run(&open).unwrap();
    let ops = r.total.ops() as f64;
    assert!(
        (2000.0 * 1.2..=2000.0 * 1.8).contains(&ops),
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
    cfg.duration = Duration::from_secs(2);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        srv.kill9();
    });
    let t = std::time::Instant::now();
    let r = run(&cfg).unwrap();
    killer.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the run ends on its own"
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
    assert!(
        doc["ALL STATS"]["Totals"]["Time-Serie"]["1"]["Count"]
            .as_u64()
            .unwrap()
            > 0
    );
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
    assert!(r.writes > 100 && r.keys_checked >= 4 * 50, "{r:?}");
}

#[test]
fn capacity_climbs_and_reports_the_highest_passing_rate() {
    use rewind_loadgen::capacity::{capacity, CapacityConfig, Slo};
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut base = config(srv.port);
    base.table = None;
    // A generous SLO on a tiny range: every step passes, the answer is the top of the range.
    let cfg = CapacityConfig {
        base: base.clone(),
        slos: vec!["p99=200ms".parse::<Slo>().unwrap()],
        start: 1000.0,
        step: 1000.0,
        max: 3000.0,
        dwell: Duration::from_millis(600),
        warmup: Duration::from_millis(200),
        search: 2,
    };
    let (best, steps) = capacity(&cfg, |_| {}).unwrap();
    assert_eq!(best, Some(3000.0));
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s.pass && s.achieved > 900.0));
    // An impossible SLO fails at once.
    let cfg = CapacityConfig {
        slos: vec!["p50=1us".parse::<Slo>().unwrap()],
        ..cfg
    };
    let (best, steps) = capacity(&cfg, |_| {}).unwrap();
    assert_eq!((best, steps.len()), (None, 1));
}
