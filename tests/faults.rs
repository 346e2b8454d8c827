//! Injected disk faults (run with `--features failpoints`): a write is never acknowledged
//! unless durable; after a failed fdatasync the shard refuses writes until restarted; a full
//! disk fails writes with a clear error, reads go on, and writes resume once it passes.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::{Arc, Mutex};

use common::{start, Value};
use rewind::log::failpoint::{
    arm_catalog_eio, arm_checkpoint_eio, arm_short_write, arm_sync_eio, arm_write_enospc,
};
use rewind::log::{
    scan_shard, CommitError, IoMode, LogConfig, ManualClock, Record, ScanRange, ShardLog,
    SystemClock,
};
use rewind::shard::{Db, EngineConfig, RestoreAt};

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

#[test]
fn a_short_write_is_cut_off_and_the_log_stays_whole() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for io in [IoMode::Std, IoMode::Uring] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), io);
        log.append(put(0)).unwrap();
        arm_short_write(1);
        assert!(
            matches!(log.append(put(1)), Err(CommitError::WriteFailed(_))),
            "{io:?}"
        );
        // The half block is gone: the next one follows the last good block.
        log.append(put(2)).unwrap();
        log.close();
        rewind::log::verify_shard(dir.path(), 1, 0).unwrap();
        let log = open(dir.path(), io);
        log.append(put(3)).unwrap();
        log.close();
        let mut keys = Vec::new();
        scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, r| {
            keys.push(String::from_utf8(r.key().to_vec()).unwrap())
        })
        .unwrap();
        assert_eq!(keys, ["k0", "k2", "k3"], "{io:?}");
    }
}

fn db_config() -> EngineConfig {
    EngineConfig {
        shards: 1,
        checkpoint_interval_us: 1_000_000,
        ..EngineConfig::default()
    }
}

fn table_contents(db: &Db, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let t = db.table(name).unwrap();
    let mut out = Vec::new();
    t.shards[0]
        .map
        .for_each(|k, v| out.push((k.to_vec(), v.to_vec())));
    out.sort();
    out
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        out.push(e.unwrap().file_name().to_string_lossy().into_owned());
    }
    out.sort();
    out
}

#[test]
fn a_failed_checkpoint_leaves_no_trace_and_the_next_one_succeeds() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_764_028_800_000_000);
    let (db, _) = Db::open(dir.path(), db_config(), Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    let table = db.create_table(b"tbl").unwrap();
    db.pitr_enable(b"tbl", 1).unwrap();
    for i in 0..100 {
        clock.advance(10_000);
        table.shards[0].log.append(put(i)).unwrap();
    }
    let mid = clock.now_us_for_test();
    clock.advance(2_000_000);
    arm_checkpoint_eio(1);
    let report = db.maintain().unwrap();
    assert!(report.checkpoints.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].contains("Input/output error"),
        "{report:?}"
    );
    let sdir = dir
        .path()
        .join("tables")
        .join(table.meta.id.to_string())
        .join("shard-0");
    assert!(
        !files_in(&sdir).iter().any(|f| f.starts_with("ckp-")),
        "failed checkpoint left {:?}",
        files_in(&sdir)
    );
    // Writes go on, and the next pass checkpoints.
    for i in 100..150 {
        clock.advance(10_000);
        table.shards[0].log.append(put(i)).unwrap();
    }
    clock.advance(2_000_000);
    let report = db.maintain().unwrap();
    assert_eq!(report.checkpoints.len(), 1, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    let before = table_contents(&db, "tbl");
    assert_eq!(before.len(), 150);
    // A restore to a time covered only by the log around the failed checkpoint is exact.
    let h = db
        .begin_restore("tbl", b"back", RestoreAt::Time(mid))
        .unwrap();
    h.done.blocking_recv().unwrap().unwrap();
    assert_eq!(table_contents(&db, "back").len(), 100);
    drop(table);
    db.shutdown();
    drop(db);
    let (db, _) = Db::open(dir.path(), db_config(), Arc::new(clock.clone())).unwrap();
    assert_eq!(table_contents(&db, "tbl"), before);
    db.shutdown();
}

#[test]
fn a_failed_catalog_save_changes_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_764_028_800_000_000);
    let (db, _) = Db::open(dir.path(), db_config(), Arc::new(clock.clone())).unwrap();
    arm_catalog_eio(1);
    let err = match db.create_table(b"tbl") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("create succeeded under a failed catalog save"),
    };
    assert!(err.contains("Input/output error"), "{err}");
    assert!(db.table("tbl").is_none());
    assert!(!db.table_names().contains(&"tbl".to_string()));
    let t = db.create_table(b"tbl").unwrap();
    t.shards[0].log.append(put(1)).unwrap();
    arm_catalog_eio(1);
    assert!(db.pitr_enable(b"tbl", 7).is_err());
    assert_eq!(
        db.meta("tbl").unwrap().pitr_days,
        0,
        "PITR on after a failed save"
    );
    arm_catalog_eio(1);
    assert!(db.drop_table(b"tbl").is_err());
    assert!(db.table("tbl").is_some(), "table gone after a failed save");
    drop(t);
    db.shutdown();
    drop(db);
    // On disk, the catalog is the last one saved whole.
    let (db, _) = Db::open(dir.path(), db_config(), Arc::new(clock)).unwrap();
    assert_eq!(db.meta("tbl").unwrap().pitr_days, 0);
    assert_eq!(table_contents(&db, "tbl").len(), 1);
    db.shutdown();
}
