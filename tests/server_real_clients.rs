//! The real clients people will point at rewind: redis-cli, redis-benchmark and redis-py.
//! They come from Debian's redis-tools and PyPI's `redis` (CI installs both). A missing tool
//! fails the test; set REWIND_SKIP_REAL_CLIENTS=1 to skip them on a machine without them.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{start, Value, IO_MODES};

fn skip() -> bool {
    std::env::var("REWIND_SKIP_REAL_CLIENTS").is_ok_and(|v| v == "1")
}

fn run(cmd: &mut Command, stdin: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (install it, see .ci/run): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

#[test]
fn redis_cli_session() {
    if skip() {
        return;
    }
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), io, &[]);
        let script = "PING\nSET greeting \"hello world\"\nGET greeting\nTABLE.CREATE cli_table\nTABLE.USE cli_table\nGET greeting\nMSET a 1 b 2\nMGET a b c\nINCR a\nDBSIZE\nTABLE.DESCRIBE cli_table\n";
        let out = run(
            Command::new("redis-cli").args(["-p", &srv.port.to_string()]),
            script,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "PONG", "{out}");
        assert_eq!(lines[1], "OK");
        assert_eq!(lines[2], "hello world");
        assert_eq!(&lines[3..5], ["OK", "OK"]);
        assert_eq!(lines[5], "", "GET in the new table is nil");
        assert_eq!(lines[6], "OK");
        assert_eq!(&lines[7..10], ["1", "2", ""]);
        assert_eq!(lines[10], "2");
        assert_eq!(lines[11], "2");
        assert!(out.contains("cli_table") && out.contains("ACTIVE"), "{out}");
        // RESP3 mode of redis-cli.
        let out = run(
            Command::new("redis-cli").args(["-3", "-p", &srv.port.to_string()]),
            "GET nothing\nTABLE.DESCRIBE default\n",
        );
        assert!(out.contains("(nil)") || out.starts_with('\n'), "{out}");
        assert!(out.contains("status") && out.contains("ACTIVE"), "{out}");
    }
}

#[test]
fn redis_benchmark_runs_clean() {
    if skip() {
        return;
    }
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), io, &[]);
        let out = run(
            Command::new("redis-benchmark").args([
                "-p",
                &srv.port.to_string(),
                "-t",
                "set,get,incr,mset",
                "-n",
                "20000",
                "-c",
                "50",
                "-P",
                "16",
                "-r",
                "10000",
                "-q",
            ]),
            "",
        );
        // Progress lines end in '\r'; the final line of each test ends in '\n'.
        let finals: Vec<&str> = out.split(['\r', '\n']).map(str::trim).collect();
        for test in ["SET:", "GET:", "INCR:", "MSET (10 keys):"] {
            assert!(
                finals
                    .iter()
                    .any(|l| l.starts_with(test) && l.contains("requests per second")),
                "{test} missing: {out}"
            );
        }
        assert!(!out.to_lowercase().contains("error"), "{out}");
        let mut c = srv.client();
        assert!(c.cmd(&["DBSIZE"]).as_int() > 1000);
        let Value::Bulk(info) = c.cmd(&["INFO", "persistence"]) else {
            panic!()
        };
        let info = String::from_utf8(info).unwrap();
        let per_sync: f64 = info
            .lines()
            .find_map(|l| l.strip_prefix("log_avg_records_per_sync:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            per_sync > 4.0,
            "group commit not grouping under -P 16: {info}"
        );
    }
}

const REDIS_PY: &str = r#"
import sys, redis
port = int(sys.argv[1])
for proto in (3, 2):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=proto, socket_timeout=10)
    assert r.ping()
    assert r.set("py:k", b"\x00bin\xff") is True
    assert r.get("py:k") == b"\x00bin\xff", r.get("py:k")
    assert r.get("py:missing") is None
    assert r.mget(["py:k", "py:missing"]) == [b"\x00bin\xff", None], r.mget(["py:k", "py:missing"])
    assert r.incr("py:n") >= 1
    assert r.exists("py:k", "py:missing") == 1
    assert r.delete("py:k") == 1
    assert r.get("py:k") is None
    d = r.execute_command("TABLE.DESCRIBE", "default")
    fields = d if isinstance(d, dict) else dict(zip(d[0::2], d[1::2]))
    assert fields[b"status"] == b"ACTIVE", fields
    try:
        r.set("py:k", "v", ex=10)
        raise SystemExit("SET EX was accepted")
    except redis.ResponseError as e:
        assert "EX" in str(e), e
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"py:p{i}", i)
    for i in range(200):
        p.get(f"py:p{i}")
    res = p.execute()
    assert res[:200] == [True] * 200 and res[200:] == [str(i).encode() for i in range(200)]
    print("proto", proto, "ok", r.connection_pool.connection_kwargs.get("protocol"))
"#;

#[test]
fn redis_py_with_resp3_and_resp2() {
    if skip() {
        return;
    }
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), io, &[]);
        let out = run(
            Command::new("python3").args(["-c", REDIS_PY, &srv.port.to_string()]),
            "",
        );
        assert!(
            out.contains("proto 3 ok") && out.contains("proto 2 ok"),
            "{out}"
        );
    }
}

/// `redis-cli` in a real terminal (tmux), as a person types into it: the prompt, typed
/// commands, and its rendering of replies.
#[test]
fn redis_cli_interactive_in_a_terminal() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let session = format!("rewind-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux (install it, see .ci/run): {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cli = format!("redis-cli -p {}", srv.port);
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "50",
        &cli,
    ]);
    let prompt = format!("127.0.0.1:{}>", srv.port);
    let screen = || tmux(&["capture-pane", "-t", &session, "-p"]);
    let wait_prompts = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let s = screen();
            if s.matches(&prompt).count() >= n {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "no prompt {n}:\n{s}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_prompts(1);
    let typed = [
        "SET greeting hello",
        "GET greeting",
        "GET nothing",
        "TABLE.DESCRIBE default",
    ];
    for (i, line) in typed.iter().enumerate() {
        tmux(&["send-keys", "-t", &session, line, "Enter"]);
        wait_prompts(i + 2);
    }
    let s = screen();
    tmux(&["kill-session", "-t", &session]);
    assert!(
        s.contains(&format!("{prompt} SET greeting hello\nOK")),
        "{s}"
    );
    assert!(s.contains("\"hello\""), "{s}");
    assert!(s.contains("(nil)"), "{s}");
    assert!(s.contains("\"status\"") && s.contains("\"ACTIVE\""), "{s}");
}
