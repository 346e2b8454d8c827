//! 10,000 concurrent connections on loopback, each answered; the server's memory is reported.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::start;

#[test]
fn ten_thousand_connections_are_held_and_answered() {
    const N: usize = 10_000;
    // SAFETY: raising this process's own open-file limit up to its hard limit.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let need = N as u64 + 500;
        if lim.rlim_max < need {
            // Raising the hard limit needs CAP_SYS_RESOURCE (root, as in CI); without it the
            // test fails rather than pass having tested nothing.
            lim.rlim_max = need;
        }
        lim.rlim_cur = lim.rlim_max;
        let rc = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        assert_eq!(
            rc,
            0,
            "cannot raise the open-file limit to {need} for {N} connections ({}): run as root \
             or raise `ulimit -Hn`",
            std::io::Error::last_os_error()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &["--max-clients", "12000"]);
    let before = srv.rss_kb();
    let mut conns: Vec<TcpStream> = (0..N)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", srv.port))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    for c in &mut conns {
        c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut buf = [0u8; 7];
        c.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(&buf, b"+PONG\r\n");
    }
    let mut probe = srv.client();
    let info = probe.cmd(&["INFO", "clients"]);
    let common::Value::Bulk(info) = info else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains(&format!("connected_clients:{}", N + 1)),
        "{info}"
    );
    let after = srv.rss_kb();
    eprintln!(
        "{N} connections: server RSS {before} kB before, {after} kB with them ({:.1} kB each)",
        (after - before) as f64 / N as f64
    );
    assert!(
        after - before < 1_000_000,
        "over 100 kB per idle connection"
    );
}
