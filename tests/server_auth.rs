//! --requirepass: nothing but AUTH/HELLO/QUIT before authenticating; redis-cli and redis-py
//! log in; protected mode; files readable by their owner only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{start, Value};

#[test]
fn a_password_guards_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &["--requirepass", "s3cret"]);
    let mut c = srv.client();
    assert_eq!(
        c.cmd(&["GET", "k"]).err_text(),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        c.cmd(&["PING"]).err_text(),
        "NOAUTH Authentication required."
    );
    assert!(c.cmd(&["HELLO", "3"]).err_text().starts_with("NOAUTH"));
    assert!(c.cmd(&["AUTH", "nope"]).err_text().starts_with("WRONGPASS"));
    assert!(c
        .cmd(&["AUTH", "admin", "s3cret"])
        .err_text()
        .starts_with("WRONGPASS"));
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), Value::ok());
    // HELLO with AUTH logs in and switches protocol at once.
    let mut d = srv.client();
    assert!(d
        .cmd(&["HELLO", "3", "AUTH", "default", "wrong"])
        .err_text()
        .starts_with("WRONGPASS"));
    let h = d.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]);
    assert_eq!(h.field("proto"), Value::Int(3));
    assert_eq!(d.cmd(&["GET", "k"]), Value::bulk("v"));
    // redis-cli and redis-py with the password.
    if std::env::var("REWIND_SKIP_REAL_CLIENTS").is_ok_and(|v| v == "1") {
        return;
    }
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &srv.port.to_string(),
            "-a",
            "s3cret",
            "--no-auth-warning",
            "GET",
            "k",
        ])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    let py = "import sys, redis\nr = redis.Redis(port=int(sys.argv[1]), password='s3cret', protocol=3)\nassert r.get('k') == b'v'\ntry:\n    redis.Redis(port=int(sys.argv[1]), password='bad', protocol=3).ping()\n    raise SystemExit('bad password accepted')\nexcept redis.AuthenticationError:\n    print('ok')\n";
    let out = Command::new("python3")
        .args(["-c", py, &srv.port.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn protected_mode_and_owner_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    // Without a password, a non-loopback address is refused...
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir", d])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--requirepass"));
    // ...with one it is allowed (the test only talks to it over loopback).
    let srv = try_start_any(&data, &["--listen", "0.0.0.0:0", "--requirepass", "pw"]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["AUTH", "pw"]), Value::ok());
    c.cmd(&["PITR.ENABLE", "default"]);
    c.cmd(&["SET", "k", "v"]);
    c.cmd(&["PITR.RESTORE", "default", "copy", "LATEST", "SYNC"]);
    drop(c);
    assert!(srv.stop().success());
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        if p.is_dir() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
            files += 1;
        }
    }
    assert!(files >= 5, "segments, checkpoints, catalog, lock");
}

/// Starts the server with its own --listen.
fn try_start_any(data: &std::path::Path, args: &[&str]) -> common::Server {
    common::start_with(data, args)
}

/// Before AUTH, Redis's limits: at most 10 arguments and 16 KiB per bulk string; past them a
/// protocol error and the connection closed. After AUTH the configured limits apply.
#[test]
fn unauthenticated_clients_get_small_limits() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &["--requirepass", "s3cret"]);
    let refused = |frame: Vec<u8>| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // Only the header: the server must refuse before the body arrives.
        let _ = s.write_all(&frame);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let reply = refused(b"*11\r\n".to_vec());
    assert!(
        reply.starts_with("-ERR Protocol error") && reply.contains("unauthenticated"),
        "{reply}"
    );
    let reply = refused(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n".to_vec());
    assert!(reply.contains("bulk length 16385"), "{reply}");
    // Ten arguments and 16 KiB are fine (the command itself then wants AUTH).
    let mut c = srv.client();
    let big = vec![b'x'; 16 << 10];
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    for _ in 0..9 {
        args.push(&big);
    }
    assert!(c.cmd_bytes(&args).err_text().starts_with("NOAUTH"));
    // After AUTH, large requests are served.
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), Value::ok());
    let huge = vec![b'y'; 1 << 20];
    assert_eq!(c.cmd_bytes(&[b"SET", b"k", &huge]), Value::ok());
    let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for i in 0..50 {
        args.push(format!("k{i}").into_bytes());
        args.push(b"v".to_vec());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    assert_eq!(c.cmd_bytes(&refs), Value::ok());
}
