//! Limits and bad input: clear errors, no crash, the server keeps serving.

mod common;

use common::{start, try_start, Client, Value, IO_MODES};

#[test]
fn key_and_value_limits_are_reported() {
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(
            dir.path(),
            io,
            &["--max-key-bytes", "10", "--max-value-bytes", "100"],
        );
        let mut c = srv.client();
        let r = c.cmd(&["SET", "a-very-long-key", "v"]);
        assert!(r.err_text().contains("over the limit of 10 bytes"), "{r:?}");
        let r = c.cmd(&["SET", "k", &"x".repeat(101)]);
        assert!(
            r.err_text().contains("over the limit of 100 bytes"),
            "{r:?}"
        );
        assert_eq!(c.cmd(&["SET", "k", &"x".repeat(100)]), Value::ok());
        assert_eq!(c.cmd(&["DBSIZE"]).as_int(), 1);
    }
}

#[test]
fn protocol_errors_close_only_that_connection() {
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), io, &["--max-request-bytes", "1000"]);
        for bad in [
            &b"*1\r\n$-7\r\n"[..],
            b"*2\r\n$3\r\nGET\r\n:1\r\n",
            b"*1\r\n$2000\r\n",
            b"*99999999999\r\n",
            // Nested arrays are not requests.
            b"*1\r\n*1\r\n$1\r\nx\r\n",
            // A header line one past the limit (it once looked incomplete forever).
            b"*1111111111111111111111111\r\n",
            b"*1\r\n$1111111111111111111111111\r\n",
        ] {
            let mut c = srv.client();
            c.send_raw(bad);
            let r = c.read();
            assert!(r.err_text().starts_with("ERR Protocol error"), "{r:?}");
            assert!(
                c.try_read().is_err(),
                "connection not closed after protocol error"
            );
        }
        let mut c = srv.client();
        assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    }
}

#[test]
fn connections_over_the_limit_are_refused() {
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), io, &["--max-clients", "3"]);
        let mut held: Vec<Client> = (0..3).map(|_| srv.client()).collect();
        for c in held.iter_mut() {
            assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
        }
        let mut extra = srv.client();
        assert_eq!(extra.read().err_text(), "ERR max number of clients reached");
        drop(held.pop());
        // The slot frees once the server notices the close.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut c = srv.client();
            c.send(&[b"PING"]);
            match c.read() {
                Value::Simple(s) if s == "PONG" => break,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "still refused: {other:?}"
                ),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "epoll", &[]);
    let out = try_start(dir.path(), "epoll", &[])
        .err()
        .expect("second server must not start");
    let pid = srv.child.id().to_string();
    assert!(
        out.contains("in use by another rewind process") && out.contains(&pid),
        "{out}"
    );
}

#[test]
fn non_loopback_listen_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a password"));
}

#[test]
fn idle_clients_and_clients_that_never_read_are_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "auto",
        &["--timeout", "1", "--write-timeout", "1"],
    );
    // Idle: closed after about a second.
    let mut idle = srv.client();
    assert_eq!(idle.cmd(&["PING"]), Value::Simple("PONG".into()));
    std::thread::sleep(std::time::Duration::from_millis(1600));
    assert!(idle.try_read().is_err(), "idle connection still open");
    // Never reading: a 4 MiB value asked for 64 times fills the socket; the server gives up.
    let mut c = srv.client();
    let big = "x".repeat(4 << 20);
    assert_eq!(c.cmd(&["SET", "big", &big]), Value::ok());
    for _ in 0..64 {
        c.send(&[b"GET", b"big"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Everyone else is still served, and the stuck client was disconnected.
    let mut other = srv.client();
    assert_eq!(other.cmd(&["PING"]), Value::Simple("PONG".into()));
    let mut drained = 0usize;
    while let Ok(v) = c.try_read() {
        drained += 1;
        assert!(matches!(v, Value::Bulk(_)));
    }
    assert!(
        drained < 64,
        "all 64 replies arrived: the client was never let go"
    );
}

#[test]
fn a_pipeline_of_large_reads_is_answered_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    let big = "x".repeat(4 << 20);
    assert_eq!(c.cmd(&["SET", "big", &big]), Value::ok());
    let base_kb = srv.rss_kb();
    // 2,000 GETs of a 4 MiB value (8 GB of replies) in one write, not read for a while:
    // without a bound the server would build gigabytes of replies from one read.
    let mut wire = Vec::new();
    for _ in 0..2000 {
        wire.extend(common::resp::encode(&[b"GET", b"big"]));
    }
    c.send_raw(&wire);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let held_kb = srv.rss_kb();
    assert!(
        held_kb < base_kb + 64 * 1024,
        "server grew from {base_kb} KiB to {held_kb} KiB for one unread pipeline"
    );
    // Every reply still arrives, in order, once the client reads.
    for i in 0..2000 {
        match c.read() {
            Value::Bulk(b) => assert_eq!(b.len(), 4 << 20, "reply {i}"),
            other => panic!("reply {i}: {other:?}"),
        }
    }
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
}

#[test]
fn declared_lengths_reserve_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let base_kb = srv.rss_kb();
    // 300 clients each announce a 500 MB value (under the 512 MB bulk limit) and a
    // million-argument command, then send a few bytes and wait: 150 GB declared.
    let mut held = Vec::new();
    for i in 0..300 {
        let mut c = srv.client();
        if i % 2 == 0 {
            c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\nabc");
        } else {
            c.send_raw(b"*1000000\r\n$4\r\nPING\r\n");
        }
        held.push(c);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let kb = srv.rss_kb();
    assert!(
        kb < base_kb + 32 * 1024,
        "server grew from {base_kb} KiB to {kb} KiB on declared lengths"
    );
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(c.cmd(&["EXISTS", "k"]).as_int(), 0);
}
