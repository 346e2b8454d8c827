//! Shared by the server integration tests: start the real `rewind` binary on an ephemeral
//! port, talk RESP to it over real TCP, kill it.

#![allow(dead_code)]

pub mod dynamo_http;
pub mod resp;
pub mod writers;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use resp::{Client, Value};

/// The I/O paths server tests run on: `uring` (io_uring sockets and logs), `epoll` (epoll
/// sockets, pwrite logs; what `--io auto` picks), `mixed` (epoll sockets, buffered io_uring
/// logs, write linked to `fdatasync`: `--io auto --log-io uring --log-direct off`) and
/// `inline` (epoll sockets, each net thread writing and syncing the log itself through its
/// own io_uring ring: `--commit inline`). With `--fsync always` (the default) every mode but
/// `mixed` writes blocks direct (`O_DIRECT` + `RWF_DSYNC`).
pub const IO_MODES: [&str; 4] = ["uring", "epoll", "mixed", "inline"];

pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The DynamoDB API's port, when started with `--dynamodb-listen`.
    pub dynamodb_port: Option<u16>,
    /// The `--metrics-listen` port, when the server was given one.
    #[allow(dead_code)] // not every test binary uses it
    pub metrics_port: Option<u16>,
    /// The `--tls-listen` port, when the server was given one.
    #[allow(dead_code)] // not every test binary uses it
    pub tls_port: Option<u16>,
    pub dir: PathBuf,
    /// Lines the server logged after the ready line, for tests that check messages.
    pub log: mpsc::Receiver<String>,
}

/// Starts `rewind serve` on `dir` and waits for its ready line.
pub fn start(dir: &Path, io: &str, extra: &[&str]) -> Server {
    try_start(dir, io, extra).unwrap_or_else(|e| panic!("server did not start: {e}"))
}

/// Like [`start`], but returns what the server printed if it exits instead of getting ready.
pub fn try_start(dir: &Path, io: &str, extra: &[&str]) -> Result<Server, String> {
    try_start_env(dir, io, extra, &[])
}

/// [`try_start`] with environment variables for the server process alone.
pub fn try_start_env(
    dir: &Path,
    io: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Server, String> {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    match io {
        "mixed" => args.extend(["--io", "auto", "--log-io", "uring", "--log-direct", "off"]),
        "inline" => args.extend(["--io", "auto", "--commit", "inline"]),
        io => args.extend(["--io", io]),
    }
    args.extend_from_slice(extra);
    spawn(dir, &args, env)
}

/// Starts `rewind serve` with exactly these flags (plus the data directory).
pub fn start_with(dir: &Path, args: &[&str]) -> Server {
    spawn(dir, args, &[]).unwrap_or_else(|e| panic!("server did not start: {e}"))
}

fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .envs(env.iter().copied())
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rewind");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut dynamodb_port = None;
    let mut tls_port = None;
    let mut metrics_port = None;
    let port_after = |line: &str, marker: &str| -> Option<u16> {
        let rest = line.split(marker).nth(1)?;
        let addr = rest.split_whitespace().next()?;
        addr.rsplit(':').next()?.parse().ok()
    };
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                dynamodb_port =
                    dynamodb_port.or(port_after(&line, "DynamoDB API listening on http://"));
                tls_port = tls_port.or(port_after(&line, "TLS listening on "));
                metrics_port = metrics_port.or(port_after(
                    &line.replace("/metrics", " "),
                    "metrics at http://",
                ));
                if let Some(rest) = line.split("ready to accept connections on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap();
                    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
                    return Ok(Server {
                        child,
                        port,
                        dynamodb_port,
                        metrics_port,
                        tls_port,
                        dir: dir.to_path_buf(),
                        log: rx,
                    });
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(seen.join("\n"));
            }
        }
    }
}

impl Server {
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in KiB (`VmRSS`).
    #[allow(dead_code)] // not every test binary uses it
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to sync or clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if something is listening on the port.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}
