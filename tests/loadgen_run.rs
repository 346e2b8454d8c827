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
fn the_binary_writes_memtier_style_json() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let json = dir.path().join("out.json");
    let loadgen =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/rewind-loadgen");
    if !loadgen.exists() {
        // `cargo test` builds this package's binaries, not the workspace's other ones.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "rewind-loadgen", "--bin", "rewind-loadgen"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let out = std::process::Command::new(&loadgen)
        .args([
            "run",
            "--addr",
            &srv.addr(),
            "--connections",
            "4",
            "--pipeline",
            "4",
            "--duration",
            "1s",
            "--json",
        ])
        .arg(&json)
        .output();
    let out = out.unwrap_or_else(|e| panic!("{}: {e}", loadgen.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TOTAL") && text.contains("ops/s"), "{text}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(doc["ALL STATS"]["Totals"]["Ops/sec"].as_f64().unwrap() > 0.0);
    assert!(
        doc["ALL STATS"]["Totals"]["Time-Serie"]["0"]["Count"]
            .as_u64()
            .unwrap()
            > 0
    );
}
