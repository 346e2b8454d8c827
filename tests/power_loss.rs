//! Power cuts: the server runs on a file system that forgets everything never synced
//! (`tests/power_loss/volatile_fs.py`, FUSE: a file's bytes survive only once it is fsynced,
//! fdatasynced or written `O_DSYNC`/`RWF_DSYNC`; a name only once its directory is fsynced).
//! Writers run, the server is killed, the file system is unmounted with only its durable
//! state kept and mounted again, twice (the second round continues in what the first cut
//! left), and the restarted server must hold every acknowledged write of both rounds.
//! It runs on every log engine (direct `pwritev2`, direct through io_uring, direct through
//! the net threads' rings, buffered io_uring), with 1 MiB segments so cuts land around rolls.
//! A run with `--fsync never` must lose writes: the check that the file system really forgets.
//!
//! Needs root, /dev/fuse and fusepy (`.ci/run` installs it); without them each test says so
//! and passes without running, unless `REWIND_REQUIRE_POWER_LOSS` is set (as `.ci/run` does).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start_with, try_start, Client, Value};

const WRITERS: u64 = 4;
const SHARDS: u64 = 2;
const VALUE_LEN: usize = 900;

fn value(w: u64, i: u64) -> String {
    let mut v = format!("w{w}-{i}:");
    let mut x = w * 1_000_003 + i;
    while v.len() < VALUE_LEN {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((b'a' + (x >> 59) as u8 % 26) as char);
    }
    v
}

/// Why this machine cannot run the test, if it cannot.
fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (mounting FUSE needs it)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    let ok = Command::new("python3")
        .args(["-c", "import fuse"])
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| "python3 cannot import fuse (pip install fusepy; Debian libfuse2)".into())
}

struct Volatile {
    mnt: PathBuf,
    state: PathBuf,
    daemon: Option<Child>,
}

fn is_mounted(mnt: &Path) -> bool {
    let m = mnt.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(m.as_str()))
}

impl Volatile {
    fn mount(root: &Path) -> Volatile {
        let mnt = root.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mut v = Volatile {
            mnt,
            state: root.join("durable.state"),
            daemon: None,
        };
        v.start_daemon();
        v
    }

    fn start_daemon(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/power_loss/volatile_fs.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(&self.mnt)
            .arg("--state")
            .arg(&self.state)
            .stdout(Stdio::null())
            .spawn()
            .expect("start volatile_fs.py");
        self.daemon = Some(child);
        let began = Instant::now();
        while !is_mounted(&self.mnt) {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "FUSE mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The power cut: unmount (the daemon keeps only the durable state) and mount again.
    fn power_cycle(&mut self) {
        self.unmount();
        self.start_daemon();
    }

    fn unmount(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            let began = Instant::now();
            loop {
                let out = Command::new("umount").arg(&self.mnt).output().unwrap();
                if out.status.success() || !is_mounted(&self.mnt) {
                    break;
                }
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "umount: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let status = d.wait().unwrap();
            self.daemon = None;
            assert!(status.success(), "volatile_fs.py exited with {status}");
        }
    }
}

impl Drop for Volatile {
    /// A failed test leaves no mount behind.
    fn drop(&mut self) {
        if self.daemon.is_some() || is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// Writers on `WRITERS` connections until the server dies; each returns how many of its
/// SETs (keys `c<cycle>-w<w>-<i>`, i from 0) were acknowledged.
fn run_writers(port: u16, cycle: u64, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<u64>> {
    (0..WRITERS)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut acked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("c{cycle}-w{w}-{acked}");
                    c.send(&[
                        b"SET",
                        key.as_bytes(),
                        value(cycle * WRITERS + w, acked).as_bytes(),
                    ]);
                    match c.try_read() {
                        Ok(Value::Simple(s)) if s == "OK" => acked += 1,
                        Ok(other) => panic!("SET {key} answered {other:?}"),
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect()
}

/// Fields of one `INFO persistence` answer (one answer, so they agree with each other).
fn info_fields(c: &mut Client, names: &[&str]) -> Vec<u64> {
    let info = c.cmd(&["INFO", "persistence"]);
    let Value::Bulk(info) = info else {
        panic!("INFO answered {info:?}")
    };
    let text = String::from_utf8_lossy(&info);
    names
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("INFO persistence has no {name}"))
        })
        .collect()
}

/// Writes until `target` more SETs were acknowledged, then kills the server with writes in
/// flight; returns each writer's acknowledged count.
fn write_then_kill(
    server: common::Server,
    cycle: u64,
    target: u64,
    what: &str,
    direct: bool,
) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut c = server.client();
    let base = c.cmd(&["DBSIZE"]).as_int() as u64;
    let writers = run_writers(server.port, cycle, stop.clone());
    let began = Instant::now();
    loop {
        let n = c.cmd(&["DBSIZE"]).as_int() as u64 - base;
        if n >= target {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "{what}: only {n} of {target} writes in 300 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every block direct, or none. The two counters are read one after the other while
    // writers run, so each shard may have one block counted in one and not yet the other; a
    // direct write the file system refused (it takes only aligned ones) would have been
    // rewritten buffered, logged, and every later block counted apart.
    let f = info_fields(&mut c, &["log_blocks_direct", "log_blocks"]);
    let (direct_blocks, blocks) = (f[0], f[1]);
    let shown = format!("{what}: {direct_blocks} of {blocks} blocks written direct");
    if direct {
        assert!(
            direct_blocks.abs_diff(blocks) <= SHARDS && blocks > 100,
            "{shown}"
        );
        let refusals: Vec<String> = server
            .log
            .try_iter()
            .filter(|l| l.contains("writes buffered") || l.contains("direct write refused"))
            .collect();
        assert!(refusals.is_empty(), "{what}: {refusals:?}");
    } else {
        assert_eq!(direct_blocks, 0, "{shown}");
    }
    drop(c);
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Two rounds of: writers against a server on the volatile file system, killed once
/// `target` writes were acknowledged, then the power cut. The second round starts from what
/// the first cut left (recovery continues in a segment that ends mid-page). Returns
/// (acknowledged, found) over both rounds, counted after the second cut.
fn cut_while_writing(io: &str, flags: &[&str], target: u64) -> Option<(u64, u64)> {
    if let Some(why) = missing_prerequisite() {
        // CI sets this: there the tests must run.
        assert!(
            std::env::var_os("REWIND_REQUIRE_POWER_LOSS").is_none(),
            "REWIND_REQUIRE_POWER_LOSS is set but {why}"
        );
        eprintln!("power-loss test NOT RUN on this machine: {why}");
        return None;
    }
    let what = format!("{io} {flags:?}");
    let direct = io != "mixed" && flags.contains(&"always") && !flags.contains(&"off");
    let root = tempfile::tempdir().unwrap();
    let mut fs = Volatile::mount(root.path());
    let data = fs.mnt.join("data");
    let shards = SHARDS.to_string();
    let mut args = vec!["--segment-mib", "1", "--shards", &shards];
    args.extend_from_slice(flags);
    let mut acked = Vec::new();
    for cycle in 0..2u64 {
        let server = try_start(&data, io, &args).unwrap_or_else(|e| panic!("{what}: {e}"));
        acked.push(write_then_kill(server, cycle, target, &what, direct));
        fs.power_cycle();
    }
    let server = start_with(&data, &["--listen", "127.0.0.1:0"]);
    let mut c = server.client();
    let (mut total, mut found) = (0u64, 0u64);
    for (cycle, counts) in acked.iter().enumerate() {
        for (w, &n) in counts.iter().enumerate() {
            let id = cycle as u64 * WRITERS + w as u64;
            for i in 0..n {
                total += 1;
                let key = format!("c{cycle}-w{w}-{i}");
                match c.cmd(&["GET", &key]) {
                    Value::Bulk(v) => {
                        assert_eq!(v, value(id, i).into_bytes(), "{what}: {key} changed");
                        found += 1;
                    }
                    Value::Null => {}
                    other => panic!("{what}: GET {key} answered {other:?}"),
                }
            }
        }
    }
    server.stop();
    fs.unmount();
    eprintln!("{what}: {found} of {total} acknowledged writes after two power cuts");
    Some((total, found))
}

fn every_acknowledged_write_survives(io: &str, flags: &[&str]) {
    let mut all = vec!["--fsync", "always"];
    all.extend_from_slice(flags);
    if let Some((acked, found)) = cut_while_writing(io, &all, 3000) {
        // Each round stops at 3,000 applied; up to one write per writer was applied but not
        // yet acknowledged when the server died.
        assert!(acked >= 2 * (3000 - WRITERS), "{io}: {acked} acknowledged");
        assert_eq!(
            found, acked,
            "{io} {flags:?}: acknowledged writes lost in a power cut"
        );
    }
}

#[test]
fn power_cut_direct_pwrite() {
    every_acknowledged_write_survives("epoll", &[]);
}

#[test]
fn power_cut_direct_uring() {
    every_acknowledged_write_survives("uring", &[]);
}

#[test]
fn power_cut_direct_net_thread_rings() {
    every_acknowledged_write_survives("inline", &[]);
}

#[test]
fn power_cut_buffered_uring() {
    // `mixed` is the buffered io_uring log (`--log-io uring --log-direct off`).
    every_acknowledged_write_survives("mixed", &[]);
}

#[test]
fn power_cut_buffered_pwrite() {
    every_acknowledged_write_survives("epoll", &["--log-direct", "off"]);
}

/// The harness itself: with `--fsync never` nothing is synced between segment rolls, so a
/// power cut must lose acknowledged writes (if this fails, the file system does not forget
/// and the tests above prove nothing).
#[test]
fn power_cut_loses_unsynced_writes() {
    if let Some((acked, found)) = cut_while_writing("epoll", &["--fsync", "never"], 300) {
        assert!(
            found < acked,
            "fsync never: all {acked} acknowledged writes survived the power cut"
        );
    }
}
