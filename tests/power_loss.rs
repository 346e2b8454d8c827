//! Power cuts: the server runs on a file system that forgets everything never synced
//! (`tests/power_loss/volatile_fs.py`, FUSE: a file's bytes survive only once it is fsynced,
//! fdatasynced or written `O_DSYNC`/`RWF_DSYNC`; a name only once its directory is fsynced).
//! Writers run, the server is killed, the file system is unmounted with only its durable
//! state kept, mounted again, and the restarted server must hold every acknowledged write.
//! It runs on every log engine (direct `pwritev2`, direct through io_uring, direct through
//! the net threads' rings, buffered io_uring), with 1 MiB segments so cuts land around rolls.
//! A run with `--fsync never` must lose writes: the check that the file system really forgets.
//!
//! Needs root, /dev/fuse and fusepy (`.ci/run` installs it); without them each test says so
//! and passes without running.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start_with, try_start, Client, Value};

const WRITERS: u64 = 4;
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
        if let Some(mut d) = self.daemon.take() {
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
            assert!(status.success(), "volatile_fs.py exited with {status}");
        }
    }
}

impl Drop for Volatile {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            if let Some(mut d) = self.daemon.take() {
                let _ = d.kill();
                let _ = d.wait();
            }
        }
    }
}

/// Writers on `WRITERS` connections until the server dies; each returns how many of its
/// SETs (keys `w<w>-<i>`, i from 0) were acknowledged.
fn run_writers(port: u16, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<u64>> {
    (0..WRITERS)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut acked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}-{acked}");
                    c.send(&[b"SET", key.as_bytes(), value(w, acked).as_bytes()]);
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

/// Runs writers against a server on the volatile file system, kills it once `target`
/// writes were acknowledged, cuts the power, restarts, and returns (acknowledged, found).
fn cut_while_writing(io: &str, flags: &[&str], target: u64) -> Option<(u64, u64)> {
    if let Some(why) = missing_prerequisite() {
        eprintln!("power-loss test NOT RUN on this machine: {why}");
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let mut fs = Volatile::mount(root.path());
    let data = fs.mnt.join("data");
    let mut args = vec!["--segment-mib", "1", "--shards", "2"];
    args.extend_from_slice(flags);
    let server = try_start(&data, io, &args).unwrap_or_else(|e| panic!("{io}: {e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = run_writers(server.port, stop.clone());
    let began = Instant::now();
    let mut c = server.client();
    loop {
        let n = c.cmd(&["DBSIZE"]).as_int() as u64;
        if n >= target {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(180),
            "{io}: only {n} of {target} writes in 180 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = c.cmd(&["INFO", "persistence"]);
    let Value::Bulk(info) = info else {
        panic!("INFO answered {info:?}")
    };
    let direct_blocks: u64 = String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("log_blocks_direct:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO persistence has log_blocks_direct");
    let want_direct = flags.contains(&"always") && !flags.contains(&"off");
    assert_eq!(
        direct_blocks > 0,
        want_direct,
        "{io} {flags:?}: {direct_blocks} blocks written direct"
    );
    drop(c);
    // SIGKILL with writes in flight, then the power cut.
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    fs.power_cycle();
    let server = start_with(&data, &["--listen", "127.0.0.1:0"]);
    let mut c = server.client();
    let (mut total, mut found) = (0u64, 0u64);
    for (w, &n) in acked.iter().enumerate() {
        for i in 0..n {
            total += 1;
            match c.cmd(&["GET", &format!("w{w}-{i}")]) {
                Value::Bulk(v) => {
                    assert_eq!(v, value(w as u64, i).into_bytes(), "{io}: w{w}-{i} changed");
                    found += 1;
                }
                Value::Null => {}
                other => panic!("{io}: GET w{w}-{i} answered {other:?}"),
            }
        }
    }
    server.stop();
    fs.unmount();
    eprintln!("{io} {flags:?}: {found} of {total} acknowledged writes after the power cut");
    Some((total, found))
}

fn every_acknowledged_write_survives(io: &str, flags: &[&str]) {
    let mut all = vec!["--fsync", "always"];
    all.extend_from_slice(flags);
    if let Some((acked, found)) = cut_while_writing(io, &all, 4000) {
        assert!(acked >= 4000, "{io}: {acked} acknowledged");
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
    every_acknowledged_write_survives("mixed", &["--log-direct", "off"]);
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
    if let Some((acked, found)) = cut_while_writing("epoll", &["--fsync", "never"], 400) {
        assert!(
            found < acked,
            "fsync never: all {acked} acknowledged writes survived the power cut"
        );
    }
}
