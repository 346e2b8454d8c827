//! Injected disk faults (run with `--features failpoints`): a write is never acknowledged
//! unless durable; after a failed fdatasync the shard refuses writes until restarted; a full
//! disk fails writes with a clear error, reads go on, and writes resume once it passes.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::{Arc, Mutex};

use common::{start, Value};
use rewind::log::failpoint::{arm_sync_eio, arm_write_enospc};
use rewind::log::{
    scan_shard, CommitError, IoMode, LogConfig, Record, ScanRange, ShardLog, SystemClock,
};

/// The failpoints are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn open(dir: &std::path::Path, io: IoMode) -> ShardLog {
    let mut c = LogConfig::new(dir, 1, 0);
    c.io = io;
    ShardLog::open(c, Arc::new(SystemClock), None).unwrap().0
}

fn put(i: u32) -> Vec<Record> {
    vec![Record::put(format!("k{i}").into_bytes(), b"v".to_vec())]
}

#[test]
fn enospc_fails_the_write_cleanly_and_writes_resume() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for io in [IoMode::Std, IoMode::Auto] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), io);
        log.append(put(0)).unwrap();
        arm_write_enospc(2);
        for i in 1..3 {
            match log.append(put(i)) {
                Err(CommitError::WriteFailed(e)) => {
                    assert!(e.to_string().contains("No space left"), "{e}")
                }
                other => panic!("{other:?}"),
            }
        }
        let ok = log.append(put(3)).unwrap();
        assert_eq!(ok.first_seq, 2, "failed writes use no sequence numbers");
        log.close();
        let mut got = Vec::new();
        scan_shard(dir.path(), 1, 0, ScanRange::ALL, |s, _, r| {
            got.push((s, r.key().to_vec()))
        })
        .unwrap();
        assert_eq!(got, vec![(1, b"k0".to_vec()), (2, b"k3".to_vec())]);
    }
}

#[test]
fn a_failed_sync_poisons_the_shard_until_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), IoMode::Std);
    log.append(put(0)).unwrap();
    arm_sync_eio(1);
    assert!(matches!(log.append(put(1)), Err(CommitError::Poisoned(_))));
    // No fault armed any more, but the shard does not pretend earlier data is safe.
    assert!(matches!(log.append(put(2)), Err(CommitError::Poisoned(_))));
    log.close();
    // After a restart the log is whatever is valid on disk; acknowledged writes are there.
    let log = open(dir.path(), IoMode::Std);
    log.append(put(3)).unwrap();
    log.close();
    let mut keys = Vec::new();
    scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, r| {
        keys.push(r.key().to_vec())
    })
    .unwrap();
    assert_eq!(keys.first(), Some(&b"k0".to_vec()));
    assert_eq!(keys.last(), Some(&b"k3".to_vec()));
    assert!(
        !keys.contains(&b"k2".to_vec()),
        "a write refused after the failed sync reached the log"
    );
}

#[test]
fn a_full_disk_answers_clients_with_an_error_and_reads_go_on() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("REWIND_FAILPOINTS", "write_enospc=1");
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "epoll", &["--shards", "1"]);
    std::env::remove_var("REWIND_FAILPOINTS");
    let mut c = srv.client();
    let r = c.cmd(&["SET", "a", "1"]);
    assert!(
        r.err_text().contains("not committed") && r.err_text().contains("No space left"),
        "{r:?}"
    );
    assert_eq!(
        c.cmd(&["GET", "a"]),
        Value::Null,
        "the refused write is not visible"
    );
    assert_eq!(c.cmd(&["SET", "a", "2"]), Value::ok(), "writes resume");
    assert_eq!(c.cmd(&["GET", "a"]), Value::bulk("2"));
}
