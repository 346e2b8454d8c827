//! The archive against a real S3 protocol server (s3s-fs, which .ci/run installs): a restore
//! from the archive alone after the host's data is gone, an archive outage, and fencing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::writers::{check_restored, now_us, writer, History};
use common::{start_with, try_start_env, Client, Server, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A loopback s3s-fs over a directory, with bucket `bkt`.
struct S3 {
    child: Child,
    root: PathBuf,
    port: u16,
}

fn s3s_fs() -> PathBuf {
    let on_path = Command::new("s3s-fs").arg("--version").output().is_ok();
    if on_path {
        return PathBuf::from("s3s-fs");
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = Path::new(&home).join(".cargo/bin/s3s-fs");
    assert!(
        p.exists(),
        "s3s-fs is not installed: cargo install s3s-fs --version 0.14.1 --features binary --locked (.ci/run does)"
    );
    p
}

impl S3 {
    fn start(root: &Path, port: u16) -> S3 {
        std::fs::create_dir_all(root.join("bkt")).unwrap();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "AK", "--secret-key", "SK"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !common::port_open(port) {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        S3 {
            child,
            root: root.to_path_buf(),
            port,
        }
    }

    fn new(root: &Path) -> S3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        S3::start(root, port)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "AK".into()),
            ("AWS_SECRET_ACCESS_KEY", "SK".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(dir: &Path, s3: &S3, url: &str, extra: &[&str]) -> Result<Server, String> {
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec!["--archive", url, "--archive-lag", "200ms", "--shards", "2"];
    args.extend_from_slice(extra);
    try_start_env(dir, "epoll", &args, &env)
}

fn describe(c: &mut Client) -> Value {
    c.cmd(&["PITR.DESCRIBE", "default"])
}

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("{other:?}"),
    }
}

/// Waits (bounded) until `ok` holds for PITR.DESCRIBE.
fn wait_for(c: &mut Client, what: &str, secs: u64, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let d = describe(c);
        if ok(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "{what}: still {d:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn caught_up(d: &Value) -> bool {
    text(&d.field("archive_lag_seconds")) == "0.000" && text(&d.field("archive_status")) == "ok"
}

/// Runs `rewind restore --archive` of `default` into table `back` of a fresh directory and
/// serves it.
fn restore_from(s3: &S3, url: &str, into: &Path, at: Option<u64>) -> Server {
    restore_as(s3, url, into, at, "back")
}

fn restore_as(s3: &S3, url: &str, into: &Path, at: Option<u64>, target: &str) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rewind"));
    cmd.args(["restore", "--archive", url, "--data-dir"])
        .arg(into)
        .args(["--source", "default", "--target", target]);
    match at {
        Some(t) => cmd.args(["--at", &format!("{}.{:06}", t / 1_000_000, t % 1_000_000)]),
        None => cmd.arg("--latest"),
    };
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    start_with(into, &["--listen", "127.0.0.1:0", "--shards", "2"])
}

fn rewind_cli(s3: &S3, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rewind"));
    cmd.args(args);
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn write_for(port: u16, ms: u64, seed: u64, ids: std::ops::Range<u64>) -> History {
    let stop = Arc::new(AtomicBool::new(false));
    let ws: Vec<_> = ids
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(port, "default", w, 25, seed + w, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(ms));
    stop.store(true, Ordering::Relaxed);
    let mut h = History::default();
    for w in ws {
        h.merge(w.join().unwrap());
    }
    h
}

#[test]
fn the_archive_alone_restores_every_moment_after_the_host_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3::new(&tmp.path().join("s3"));
    let url = "s3://bkt/prod/east";
    let data = tmp.path().join("data");
    let srv = serve(&data, &s3, url, &[]).unwrap();
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let t0 = now_us();
    let h = write_for(srv.port, 1500, 7, 0..5);
    assert!(
        h.keys.len() >= 100,
        "the writers wrote {} keys",
        h.keys.len()
    );
    let d = wait_for(&mut c, "archive catching up", 60, caught_up);
    let latest = d.field("archive_latest_restorable_unix_us").as_int() as u64;
    assert!(latest >= t0, "{d:?}");
    let info = c.cmd(&["INFO", "archive"]);
    let info = text(&info);
    assert!(info.contains("archive_status:ok"), "{info}");
    srv.kill9();
    std::fs::remove_dir_all(&data).unwrap();

    // What the archive holds, without a server or a data directory.
    let out = rewind_cli(&s3, &["inspect", "--archive", url]);
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("table 'default'") && listing.contains("restorable 20"),
        "{listing}"
    );
    // A moment the archive cannot reach is refused with the window.
    let before = t0 - 3_600_000_000;
    let out = rewind_cli(
        &s3,
        &[
            "restore",
            "--archive",
            url,
            "--data-dir",
            tmp.path().join("refused").to_str().unwrap(),
            "--source",
            "default",
            "--target",
            "back",
            "--at",
            &format!("{}", before / 1_000_000),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("outside what the archive can restore"),
        "{err}"
    );

    let mut rng = SmallRng::seed_from_u64(13);
    let mut times: Vec<Option<u64>> = (0..3).map(|_| Some(rng.gen_range(t0..=latest))).collect();
    times.push(Some(latest));
    times.push(None);
    for (i, t) in times.into_iter().enumerate() {
        let into = tmp.path().join(format!("restored{i}"));
        let back = restore_from(&s3, url, &into, t);
        let mut c = back.client();
        // --latest: every acknowledged write, once the archive had caught up.
        check_restored(
            &mut c,
            "back",
            t.unwrap_or_else(now_us),
            &h,
            &format!("restore {i} to {t:?}"),
        );
        back.stop();
    }

    // The host replaced: `default` into a new directory (which would otherwise start with an
    // empty `default` of its own), with PITR on as it was, so the new server archives it.
    let into = tmp.path().join("new-host");
    let back = restore_as(&s3, url, &into, None, "default");
    let mut c = back.client();
    check_restored(&mut c, "default", now_us(), &h, "default on a new host");
    let d = describe(&mut c);
    assert_eq!(text(&d.field("status")), "ENABLED", "{d:?}");
    back.stop();
}

#[test]
fn writes_go_on_while_the_archive_is_down_and_it_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s3 = S3::new(&tmp.path().join("s3"));
    let url = "s3://bkt/outage";
    let data = tmp.path().join("data");
    let srv = serve(&data, &s3, url, &[]).unwrap();
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let mut h = write_for(srv.port, 500, 1, 0..3);
    wait_for(&mut c, "archive catching up", 60, caught_up);
    s3.stop();
    // Every write during the outage is acknowledged (the writers panic otherwise).
    h.merge(write_for(srv.port, 1500, 2, 3..6));
    let d = wait_for(&mut c, "the outage being reported", 60, |d| {
        text(&d.field("archive_status")).starts_with("error")
    });
    let lag: f64 = text(&d.field("archive_lag_seconds")).parse().unwrap();
    assert!(lag > 0.0, "{d:?}");
    let info = text(&c.cmd(&["INFO", "archive"]));
    assert!(!info.contains("archive_errors:0\r"), "{info}");
    // Nothing local went meanwhile, and the archive takes it all once it is back.
    let s3 = S3::start(&s3.root, s3.port);
    let d = wait_for(
        &mut c,
        "archive catching up after the outage",
        90,
        caught_up,
    );
    assert!(d.field("archive_latest_restorable_unix_us").as_int() > 0);
    srv.kill9();
    let back = restore_from(&s3, url, &tmp.path().join("restored"), None);
    check_restored(&mut back.client(), "back", now_us(), &h, "after the outage");
}

#[test]
fn a_second_server_on_the_prefix_is_refused_until_it_takes_over() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3::new(&tmp.path().join("s3"));
    let url = "s3://bkt/shared";
    let a = serve(&tmp.path().join("a"), &s3, url, &[]).unwrap();
    let mut ca = a.client();
    ca.cmd(&["PITR.ENABLE", "default"]);
    let err = match serve(&tmp.path().join("b"), &s3, url, &[]) {
        Ok(_) => panic!("a second server archived to the same prefix"),
        Err(e) => e,
    };
    assert!(
        err.contains("is held by generation") && err.contains("--archive-takeover"),
        "{err}"
    );
    // The same server restarted keeps its generation.
    a.stop();
    let a = serve(&tmp.path().join("a"), &s3, url, &[]).unwrap();
    let mut ca = a.client();
    let b = serve(&tmp.path().join("b"), &s3, url, &["--archive-takeover"]).unwrap();
    wait_for(&mut ca, "the old server noticing the takeover", 60, |d| {
        text(&d.field("archive_status")).starts_with("fenced")
    });
    // The new generation holds the lease but has not archived `default` (PITR is off on b):
    // a restore does not quietly take the old generation's copy.
    let restore_default = |into: &str| {
        let dir = tmp.path().join(into);
        rewind_cli(
            &s3,
            &[
                "restore",
                "--archive",
                url,
                "--data-dir",
                dir.to_str().unwrap(),
                "--source",
                "default",
                "--target",
                "back",
                "--latest",
            ],
        )
    };
    let out = restore_default("too-early");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("pass --generation"),
        "{err}"
    );
    let mut cb = b.client();
    cb.cmd(&["PITR.ENABLE", "default"]);
    cb.cmd(&["SET", "k", "v"]);
    wait_for(&mut cb, "the new server archiving", 60, caught_up);
    let out = restore_default("after");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_server_starts_and_serves_while_its_archive_is_unreachable() {
    let tmp = tempfile::tempdir().unwrap();
    // The S3 server's port, with nothing listening there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = tmp.path().join("s3");
    let down = S3 {
        child: Command::new("true").spawn().unwrap(),
        root: root.clone(),
        port,
    };
    let url = "s3://bkt/late";
    let srv = serve(&tmp.path().join("data"), &down, url, &[]).unwrap();
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let h = write_for(srv.port, 300, 3, 0..2);
    assert!(text(&describe(&mut c).field("archive_status")).starts_with("error"));
    let s3 = S3::start(&root, port);
    let d = wait_for(
        &mut c,
        "archive catching up once it is there",
        90,
        caught_up,
    );
    assert!(d.field("archive_latest_restorable_unix_us").as_int() > 0);
    srv.kill9();
    let back = restore_from(&s3, url, &tmp.path().join("restored"), None);
    check_restored(
        &mut back.client(),
        "back",
        now_us(),
        &h,
        "archive reached late",
    );
}
