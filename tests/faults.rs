//! Injected disk faults (run with `--features failpoints`): a write is never acknowledged
//! unless durable; after a failed fdatasync the shard refuses writes until restarted; a full
//! disk fails writes with a clear error, reads go on, and writes resume once it passes.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::{Arc, Mutex};

use common::Value;
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

/// Starts the server binary with `REWIND_FAILPOINTS=spec` in its own environment.
fn start_with_failpoints(
    dir: &std::path::Path,
    io: &str,
    extra: &[&str],
    spec: &str,
) -> common::Server {
    common::try_start_env(dir, io, extra, &[("REWIND_FAILPOINTS", spec)])
        .unwrap_or_else(|e| panic!("server did not start: {e}"))
}

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
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_failpoints(dir.path(), "epoll", &["--shards", "1"], "write_enospc=1");
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

/// A restore slowed by a failpoint (1 ms a record) is seen in progress: `TABLE.DESCRIBE`
/// reports RESTORING with the bytes to replay and records replayed so far, `TABLE.USE` is
/// refused meanwhile, and the table then becomes ACTIVE with every key.
#[test]
fn an_async_restore_reports_progress_then_becomes_active() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_failpoints(
        dir.path(),
        "auto",
        &["--shards", "1"],
        "restore_delay_us=1000",
    );
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default", "DAYS", "1"]);
    for i in 0..2000 {
        c.send(&[b"SET", format!("k{i}").as_bytes(), &[b'v'; 200]]);
    }
    for _ in 0..2000 {
        c.read();
    }
    let r = c.cmd(&["PITR.RESTORE", "default", "copy", "LATEST"]);
    assert_eq!(r.field("status"), Value::bulk("RESTORING"));
    let (mut seen_restoring, mut seen_replayed) = (0, Vec::new());
    for _ in 0..3000 {
        let d = c.cmd(&["TABLE.DESCRIBE", "copy"]);
        if d.field("status") == Value::bulk("ACTIVE") {
            assert_eq!(d.field("items"), Value::Int(2000));
            assert!(seen_restoring > 0, "the restore was never seen in progress");
            assert!(
                seen_replayed.iter().any(|&n| n > 0 && n < 2000),
                "progress never moved between 0 and 2000: {seen_replayed:?}"
            );
            return;
        }
        assert_eq!(d.field("status"), Value::bulk("RESTORING"));
        seen_restoring += 1;
        let fields = d.fields();
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        // The total is 0 until the replay is planned, then the bytes to replay.
        if let Some(Value::Int(total)) = get("restore_bytes_total") {
            if *total > 0 {
                match get("restore_records_replayed") {
                    Some(Value::Int(n)) => seen_replayed.push(*n),
                    other => panic!("restore_records_replayed: {other:?} in {d:?}"),
                }
            }
        }
        match c.cmd(&["TABLE.USE", "copy"]) {
            Value::Error(e) => assert!(e.contains("RESTORING"), "{e}"),
            ok => panic!("USE of a restoring table answered {ok:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("restore did not finish");
}

/// The power-cut rule for a new table: before its first write is acknowledged, every
/// directory entry on the way to the block is durable — the data directory (catalog and
/// `tables/`), `tables/` (the table's directory), the table's directory (its shard directory
/// and `table.meta`) and the shard directory (the segment). A directory created but never
/// fsynced into its parent can vanish with the power, taking synced files with it.
#[test]
fn a_new_tables_directories_are_durable_before_its_first_write_is_acknowledged() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (db, _) = Db::open(&root.join("data"), db_config(), Arc::new(SystemClock)).unwrap();
    let at_open = rewind::log::failpoint::take_dir_syncs();
    assert!(
        at_open.contains(&root),
        "the data directory's own entry: {at_open:?}"
    );
    let t = db.create_table(b"fresh").unwrap();
    let shard = t.shard_for(b"k");
    t.shards[shard].log.append(put(0)).unwrap();
    let syncs = rewind::log::failpoint::take_dir_syncs();
    let data = root.join("data");
    let tdir = data.join("tables").join(t.meta.id.to_string());
    for must in [
        data.clone(),
        data.join("tables"),
        tdir.clone(),
        tdir.join(format!("shard-{shard}")),
    ] {
        assert!(
            syncs.contains(&must),
            "{} never fsynced: {syncs:?}",
            must.display()
        );
    }
    assert!(tdir.join("table.meta").exists());
    drop(t);
    db.shutdown();
}

/// A restore worker that panics marks the target FAILED with the reason, and the server
/// keeps serving (before, the target stayed RESTORING forever).
#[test]
fn a_restore_worker_that_panics_marks_the_target_failed() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_failpoints(dir.path(), "auto", &["--shards", "1"], "restore_panic=1");
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default", "DAYS", "1"]);
    c.cmd(&["SET", "a", "1"]);
    let r = c.cmd(&["PITR.RESTORE", "default", "copy", "LATEST", "SYNC"]);
    assert!(r.is_error(), "{r:?}");
    assert!(r.err_text().contains("panicked"), "{r:?}");
    let d = c.cmd(&["TABLE.DESCRIBE", "copy"]);
    assert_eq!(d.field("status"), Value::bulk("FAILED"), "{d:?}");
    let Value::Bulk(failure) = d.field("failure") else {
        panic!("no failure reason: {d:?}")
    };
    let failure = String::from_utf8(failure).unwrap();
    assert!(failure.contains("injected restore panic"), "{failure}");
    // The server goes on, and the next restore works.
    assert_eq!(c.cmd(&["GET", "a"]), Value::bulk("1"));
    let r = c.cmd(&["PITR.RESTORE", "default", "copy2", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{r:?}");
}

/// With one net thread and every catalog save slowed to 10 s, a client whose TABLE.CREATE is
/// waiting on the disk does not hold up another client on the same thread: its PING is
/// answered while the CREATE is still pending (before, the save ran on the net thread), and
/// so are its TABLE.LIST and TABLE.DESCRIBE, which read the catalog as the last finished
/// change left it (before, they waited for the save's lock, on the net thread).
#[test]
fn a_slow_catalog_save_does_not_stall_the_net_thread() {
    use std::io::{Read, Write};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_failpoints(
        dir.path(),
        "auto",
        &["--net-threads", "1"],
        "catalog_delay_ms=10000",
    );
    let mut a = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    a.write_all(b"*2\r\n$12\r\nTABLE.CREATE\r\n$4\r\nslow\r\n")
        .unwrap();
    // Wait until the server has taken up the CREATE (CLIENT LIST names a connection's
    // command as it starts), so the PING below is certain to come while it is in progress.
    let mut b = srv.client();
    let taken_up = |b: &mut common::Client| {
        let Value::Bulk(list) = b.cmd(&["CLIENT", "LIST"]) else {
            panic!("CLIENT LIST")
        };
        String::from_utf8(list)
            .unwrap()
            .contains(" cmd=table.create ")
    };
    while !taken_up(&mut b) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(b.cmd(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(b.cmd(&["GET", "x"]), Value::Null);
    // Tables are listed and described without the table being created (not durable yet).
    let listed = || Value::Array(vec![Value::bulk("default")]);
    assert_eq!(b.cmd(&["TABLE.LIST"]), listed());
    let d = b.cmd(&["TABLE.DESCRIBE", "default"]);
    assert_eq!(d.field("status"), Value::bulk("ACTIVE"), "{d:?}");
    // The CREATE has not been answered yet ...
    assert_unanswered(
        &mut a,
        "the CREATE was answered before the PING and TABLE.LIST",
    );
    // ... and then is, once the slow save is done; from then on the table is listed.
    a.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = a.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"+OK\r\n");
    assert_eq!(
        b.cmd(&["TABLE.LIST"]),
        Value::Array(vec![Value::bulk("default"), Value::bulk("slow")])
    );
}

/// Nothing has come back on `s` yet (checked without waiting); `s` is left blocking.
fn assert_unanswered(s: &mut std::net::TcpStream, what: &str) {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("{what}: {other:?}"),
    }
    s.set_nonblocking(false).unwrap();
}

/// DynamoDB's CreateTable saves the catalog off the listener's one thread: while a slow save
/// is in progress, another client's item request on an existing table is answered, and so is
/// a ListTables (which waited for the save's lock before).
#[test]
fn a_slow_catalog_save_does_not_stall_the_dynamodb_listener() {
    use common::dynamo_http::{read_response, request, send};
    use std::io::BufReader;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_failpoints(
        dir.path(),
        "auto",
        &["--dynamodb-listen", "127.0.0.1:0"],
        "catalog_delay_ms=10000",
    );
    let port = srv.dynamodb_port.expect("DynamoDB port");
    let connect = || BufReader::new(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    let tables = dir.path().join("tables");
    let before = std::fs::read_dir(&tables).unwrap().count();
    let catalog = || std::fs::read(dir.path().join("catalog")).unwrap();
    let saved = catalog();
    let mut a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    send(
        &mut a,
        "DynamoDB_20120810.CreateTable",
        br#"{"TableName":"slow","KeySchema":[{"AttributeName":"k","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"k","AttributeType":"S"}],"BillingMode":"PAY_PER_REQUEST"}"#,
    );
    // The new table's directory is made before the (slow) catalog save: once it is there,
    // the CreateTable is certain to be in progress.
    let asked = std::time::Instant::now();
    while std::fs::read_dir(&tables).unwrap().count() == before {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(120),
            "the CreateTable never made its table's directory"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // An item request on the default table (which has no key schema) is answered meanwhile.
    let (status, _) = request(
        &mut connect(),
        "DynamoDB_20120810.GetItem",
        br#"{"TableName":"default","Key":{"k":{"S":"x"}}}"#,
    );
    assert_eq!(status, 400, "GetItem on a table without a key schema");
    // ... before the slow save wrote the catalog: it was answered during the save.
    assert!(
        catalog() == saved,
        "the GetItem was answered only after the catalog save"
    );
    // So is ListTables, which reads the catalog as the last finished change left it: the
    // table being created is not listed yet.
    let (status, body) = request(&mut connect(), "DynamoDB_20120810.ListTables", b"{}");
    assert_eq!(status, 200, "ListTables: {body}");
    assert!(!body.contains("slow"), "{body}");
    assert!(
        catalog() == saved,
        "ListTables was answered only after the save"
    );
    // The CreateTable has not been answered yet ...
    assert_unanswered(&mut a, "the CreateTable was answered before the GetItem");
    // ... and then is, once the slow save is done.
    a.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let (status, body) = read_response(&mut BufReader::new(a));
    assert_eq!(status, 200, "CreateTable: {body}");
}

/// An io_uring submit that fails leaves its entries in the ring, pointing into a buffer the
/// writer reuses. The engine is then never used again: the shard's log is poisoned (no
/// further acknowledgement), and a restart recovers exactly what was acknowledged.
#[test]
fn a_failed_io_uring_submit_poisons_the_shard_until_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), IoMode::Uring);
    log.append(put(0)).unwrap();
    rewind::log::failpoint::arm_uring_submit_eio(1);
    match log.append(put(1)) {
        Err(CommitError::Poisoned(e)) => {
            assert!(e.to_string().contains("io_uring"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    for i in 2..4 {
        assert!(
            matches!(log.append(put(i)), Err(CommitError::Poisoned(_))),
            "a write after the failed submit was acknowledged"
        );
    }
    log.close();
    let log = open(dir.path(), IoMode::Uring);
    let ok = log.append(put(9)).unwrap();
    log.close();
    let mut keys = Vec::new();
    scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, r| {
        keys.push(r.key().to_vec())
    })
    .unwrap();
    assert_eq!(keys.first(), Some(&b"k0".to_vec()));
    assert_eq!(keys.last(), Some(&b"k9".to_vec()));
    for k in [&b"k2"[..], b"k3"] {
        assert!(
            !keys.contains(&k.to_vec()),
            "a refused write reached the log"
        );
    }
    assert!(ok.first_seq >= 2);
}

/// A `PITR.RESTORE ... MATCH` cut short by SIGKILL is resumed at the next start with the same
/// pattern: the target ends up with exactly the matching keys.
#[test]
fn a_match_restore_killed_mid_way_resumes_with_its_pattern() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let srv = start_with_failpoints(
        dir.path(),
        "auto",
        &["--shards", "1"],
        "restore_delay_us=1000",
    );
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default", "DAYS", "1"]);
    for i in 0..1000 {
        let key = if i % 4 == 0 {
            format!("keep:{i}")
        } else {
            format!("skip:{i}")
        };
        c.send(&[b"SET", key.as_bytes(), b"v"]);
    }
    for _ in 0..1000 {
        c.read();
    }
    let r = c.cmd(&[
        "PITR.RESTORE",
        "default",
        "kept",
        "LATEST",
        "MATCH",
        "keep:*",
    ]);
    assert_eq!(r.field("status"), Value::bulk("RESTORING"), "{r:?}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        c.cmd(&["TABLE.DESCRIBE", "kept"]).field("status"),
        Value::bulk("RESTORING"),
        "the kill must land mid-restore (1 ms a record)"
    );
    srv.kill9();
    let srv = common::start(dir.path(), "auto", &["--shards", "1"]);
    let mut c = srv.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while c.cmd(&["TABLE.DESCRIBE", "kept"]).field("status") != Value::bulk("ACTIVE") {
        assert!(
            std::time::Instant::now() < deadline,
            "the resumed restore did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(c.cmd(&["TABLE.USE", "kept"]), Value::ok());
    assert_eq!(c.cmd(&["DBSIZE"]).as_int(), 250);
    assert_eq!(c.cmd(&["GET", "keep:8"]), Value::bulk("v"));
    assert_eq!(c.cmd(&["GET", "skip:9"]), Value::Null);
}
