//! RESP over TLS (`--tls-listen`): redis-cli and redis-py (RESP3) over TLS with a certificate
//! they trust; an untrusted certificate, a plaintext client and a half-done handshake are
//! refused without disturbing anyone; the plaintext port keeps working; bad certificate
//! files stop the server at start-up with the file named.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::{start, try_start, Value};

struct Certs {
    _dir: tempfile::TempDir,
    cert: String,
    key: String,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    Certs {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        _dir: dir,
    }
}

fn tls_flags(c: &Certs) -> Vec<&str> {
    vec![
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert-file",
        &c.cert,
        "--tls-key-file",
        &c.key,
    ]
}

fn redis_cli(port: u16, extra: &[&str], args: &[&str]) -> std::process::Output {
    Command::new("redis-cli")
        .args(["--tls", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .args(args)
        .output()
        .expect("redis-cli (Debian redis-tools) is installed")
}

const REDIS_PY: &str = r#"
import ssl, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), protocol=3, ssl=True,
                ssl_ca_certs=sys.argv[2], ssl_cert_reqs=ssl.CERT_REQUIRED, ssl_check_hostname=False)
assert r.set("py", "over tls") is True
assert r.get("py") == b"over tls", r.get("py")
assert r.mset({"a": "1", "b": "2"}) is True
assert r.mget("a", "b", "nope") == [b"1", b"2", None]
print("ok")
"#;

/// QUIT over TLS, then read to the end: without the server's close_notify, Python's ssl
/// module (ragged EOFs not suppressed) raises SSLEOFError instead of returning b"".
const QUIT_PY: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
# suppress_ragged_eofs=False: a TCP close without close_notify raises SSLEOFError.
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), suppress_ragged_eofs=False)
s.sendall(b"*1\r\n$4\r\nQUIT\r\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
assert data == b"+OK\r\n", data
print("ok")
"#;

#[test]
fn redis_cli_and_redis_py_speak_resp_over_tls() {
    let c = certs();
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &tls_flags(&c));
    let port = srv.tls_port.expect("the server logs its TLS port");
    // redis-cli trusting the certificate: a write over TLS, read back.
    let out = redis_cli(port, &["--cacert", &c.cert], &["SET", "k", "v"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
    let out = redis_cli(port, &["--cacert", &c.cert], &["GET", "k"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v", "{out:?}");
    // The same data on the plaintext port.
    let mut plain = srv.client();
    assert_eq!(plain.cmd(&["GET", "k"]), Value::bulk("v"));
    // redis-py 8 with RESP3 over TLS, verifying the certificate.
    python_ok(REDIS_PY, port, &c.cert);
    assert_eq!(plain.cmd(&["GET", "py"]), Value::bulk("over tls"));
    // QUIT ends the TLS session cleanly (close_notify), not with a bare TCP close.
    python_ok(QUIT_PY, port, &c.cert);
}

/// Runs a Python script with the TLS port and CA file; it must exit 0 and print "ok".
fn python_ok(script: &str, port: u16, ca: &str) {
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string(), ca])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn untrusted_plaintext_and_stalled_clients_are_refused_and_others_go_on() {
    let c = certs();
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "epoll", &tls_flags(&c));
    let port = srv.tls_port.unwrap();
    // A client that does not trust the certificate fails its handshake.
    let out = redis_cli(port, &[], &["PING"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PONG"),
        "{out:?}"
    );
    // Plain RESP sent to the TLS port is not a handshake: the connection is closed.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(
        !buf[..n].windows(4).any(|w| w == b"PONG"),
        "{:?}",
        &buf[..n]
    );
    // A client that connects and never handshakes does not hold up anyone else.
    let _stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let out = redis_cli(port, &["--cacert", &c.cert], &["PING"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PONG",
        "{out:?}"
    );
    assert_eq!(srv.client().cmd(&["PING"]), Value::Simple("PONG".into()));
}

#[test]
fn bad_certificate_files_and_uring_sockets_are_refused_at_start_up() {
    let c = certs();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem").display().to_string();
    let err = try_start(
        dir.path(),
        "auto",
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert-file",
            &missing,
            "--tls-key-file",
            &c.key,
        ],
    )
    .err()
    .expect("a missing certificate file stops the server");
    assert!(err.contains("nope.pem"), "{err}");
    let err = try_start(
        dir.path(),
        "auto",
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert-file",
            &c.cert,
            "--tls-key-file",
            &c.cert,
        ],
    )
    .err()
    .expect("a certificate given as the key stops the server");
    assert!(err.contains("private key"), "{err}");
    let err = try_start(dir.path(), "uring", &tls_flags(&c))
        .err()
        .expect("TLS on io_uring sockets is refused");
    assert!(err.contains("epoll"), "{err}");
}
