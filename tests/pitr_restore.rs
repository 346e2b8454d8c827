//! Point-in-time restore through the real server: phases, LATEST, concurrent writers, crash
//! and restart, errors, dropped tables, second boundaries.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::writers::{check_restored, now_us, read_keys, writer, History};
use common::{start, Client, Value};

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Unix seconds with six decimals, one of the two accepted time forms.
fn unix(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn restore(c: &mut Client, source: &str, target: &str, at_us: u64) -> Value {
    c.cmd(&["PITR.RESTORE", source, target, "AT", &unix(at_us), "SYNC"])
}

fn dump(c: &mut Client, table: &str, keys: &[String]) -> Vec<Value> {
    assert_eq!(c.cmd(&["TABLE.USE", table]), Value::ok());
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(|s| s.as_str()));
    let Value::Array(v) = c.cmd(&args) else {
        panic!()
    };
    v
}

#[test]
fn phase_a_then_b_restores_exactly_phase_a_and_latest_restores_b() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PITR.ENABLE", "default"]), Value::ok());
    let keys: Vec<String> = (0..300).map(|i| format!("key{i}")).collect();
    for k in &keys[..200] {
        c.cmd(&["SET", k, &format!("A-{k}")]);
    }
    sleep_ms(5);
    let t = now_us();
    sleep_ms(5);
    for (i, k) in keys.iter().enumerate() {
        match i % 4 {
            0 => c.cmd(&["SET", k, &format!("B-{k}")]),
            1 => c.cmd(&["DEL", k]),
            _ => Value::Null,
        };
    }
    let r = restore(&mut c, "default", "at_a", t);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{r:?}");
    let a = dump(&mut c, "at_a", &keys);
    for (i, k) in keys.iter().enumerate() {
        let want = if i < 200 {
            Value::bulk(format!("A-{k}"))
        } else {
            Value::Null
        };
        assert_eq!(a[i], want, "{k}");
    }
    assert_eq!(c.cmd(&["DBSIZE"]).as_int(), 200);
    // LATEST, in RFC 3339 through DESCRIBE as well.
    let r = c.cmd(&["PITR.RESTORE", "default", "latest_b", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"));
    let b = dump(&mut c, "latest_b", &keys);
    let live = dump(&mut c, "default", &keys);
    assert_eq!(b, live);
    let d = c.cmd(&["TABLE.DESCRIBE", "at_a"]);
    assert_eq!(d.field("status"), Value::bulk("ACTIVE"));
    assert_eq!(d.field("items"), Value::Int(200));
    assert_eq!(d.field("restore_time_unix_us"), Value::Int(t as i64));
    // The same time in RFC 3339.
    let Value::Bulk(rfc) = d.field("restore_time") else {
        panic!()
    };
    let rfc = String::from_utf8(rfc).unwrap();
    let r = c.cmd(&["PITR.RESTORE", "default", "at_a_rfc", "AT", &rfc, "SYNC"]);
    assert_eq!(r.field("restore_time_unix_us"), Value::Int(t as i64));
    assert_eq!(dump(&mut c, "at_a_rfc", &keys), a);
    // Restored tables survive a restart and take writes.
    c.cmd(&["TABLE.USE", "at_a"]);
    c.cmd(&["SET", "new", "x"]);
    drop(c);
    assert!(srv.stop().success());
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(dump(&mut c, "at_a", &keys), a);
    assert_eq!(c.cmd(&["GET", "new"]), Value::bulk("x"));
}

/// The asynchronous restore's progress reports are checked in `tests/faults.rs`
/// (`an_async_restore_reports_progress_then_becomes_active`), where a failpoint slows the
/// replay so the restore is seen in progress on any machine.

#[test]
fn restore_while_writers_keep_writing_matches_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let stop = Arc::new(AtomicBool::new(false));
    let port = srv.port;
    let ws: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(port, "default", w, 30, 77, stop))
        })
        .collect();
    sleep_ms(300);
    let t = now_us();
    sleep_ms(100);
    // Restore while the writers go on.
    let r = restore(&mut c, "default", "during", t);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"));
    sleep_ms(100);
    stop.store(true, Ordering::Relaxed);
    let mut h = History::default();
    for w in ws {
        h.merge(w.join().unwrap());
    }
    check_restored(&mut c, "during", t, &h, "restore during writes");
}

#[test]
fn restore_after_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let keys: Vec<String> = (0..100).map(|i| format!("key{i}")).collect();
    for k in &keys {
        c.cmd(&["SET", k, "before"]);
    }
    sleep_ms(5);
    let t = now_us();
    sleep_ms(5);
    for k in &keys[..50] {
        c.cmd(&["SET", k, "after"]);
    }
    drop(c);
    srv.kill9();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(
        restore(&mut c, "default", "before_crash", t).field("status"),
        Value::bulk("ACTIVE")
    );
    assert!(dump(&mut c, "before_crash", &keys)
        .iter()
        .all(|v| *v == Value::bulk("before")));
}

#[test]
fn every_error_is_clear() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    let err = |c: &mut Client, args: &[&str]| c.cmd(args).err_text().to_string();
    assert!(
        err(&mut c, &["PITR.RESTORE", "nope", "tgt", "LATEST"]).contains("'nope' does not exist")
    );
    assert!(err(&mut c, &["PITR.RESTORE", "default", "tgt", "LATEST"]).contains("not enabled"));
    assert!(err(&mut c, &["PITR.DESCRIBE", "nope"]).contains("does not exist"));
    assert_eq!(
        c.cmd(&["PITR.DESCRIBE", "default"]).field("status"),
        Value::bulk("DISABLED")
    );
    assert!(err(&mut c, &["PITR.ENABLE", "default", "DAYS", "36"]).contains("1 to 35"));
    assert!(err(&mut c, &["PITR.ENABLE", "default", "DAYS", "0"]).contains("1 to 35"));
    assert!(err(&mut c, &["PITR.ENABLE", "default", "WEEKS", "2"]).contains("syntax"));
    assert_eq!(c.cmd(&["PITR.ENABLE", "default", "DAYS", "7"]), Value::ok());
    let d = c.cmd(&["PITR.DESCRIBE", "default"]);
    assert_eq!(d.field("status"), Value::bulk("ENABLED"));
    assert_eq!(d.field("recovery_period_days"), Value::Int(7));
    let before = err(&mut c, &["PITR.RESTORE", "default", "tgt", "AT", "1000"]);
    assert!(
        before.contains("before the earliest restorable time") && before.contains("window"),
        "{before}"
    );
    let future = unix(now_us() + 3_600_000_000);
    assert!(
        err(&mut c, &["PITR.RESTORE", "default", "tgt", "AT", &future]).contains("in the future")
    );
    assert!(err(
        &mut c,
        &["PITR.RESTORE", "default", "tgt", "AT", "yesterday"]
    )
    .contains("invalid time"));
    assert!(err(&mut c, &["PITR.RESTORE", "default", "x", "LATEST"]).contains("invalid table name"));
    assert!(
        err(&mut c, &["PITR.RESTORE", "default", "default", "LATEST"]).contains("already exists")
    );
    assert!(err(&mut c, &["PITR.RESTORE", "default", "tgt", "SOON"]).contains("syntax"));
    assert!(err(&mut c, &["PITR.RESTORE", "default", "tgt", "LATEST", "NOW"]).contains("syntax"));
    assert_eq!(c.cmd(&["PITR.DISABLE", "default"]), Value::ok());
    assert!(err(&mut c, &["PITR.RESTORE", "default", "tgt", "LATEST"]).contains("not enabled"));
    // Nothing was created by the refused restores.
    assert_eq!(
        c.cmd(&["TABLE.LIST"]),
        Value::Array(vec![Value::bulk("default")])
    );
}

#[test]
fn a_dropped_table_stays_restorable_and_a_reused_name_is_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "orders"]);
    c.cmd(&["PITR.ENABLE", "orders"]);
    c.cmd(&["TABLE.USE", "orders"]);
    c.cmd(&["SET", "o1", "first"]);
    let id = c.cmd(&["TABLE.DESCRIBE", "orders"]).field("id").as_int();
    c.cmd(&["TABLE.USE", "default"]);
    assert_eq!(c.cmd(&["TABLE.DROP", "orders"]), Value::ok());
    assert!(c.cmd(&["TABLE.USE", "orders"]).is_error());
    assert_eq!(
        c.cmd(&["PITR.DESCRIBE", "orders"]).field("table_status"),
        Value::bulk("DROPPED")
    );
    let r = c.cmd(&["PITR.RESTORE", "orders", "orders_back", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{r:?}");
    c.cmd(&["TABLE.USE", "orders_back"]);
    assert_eq!(c.cmd(&["GET", "o1"]), Value::bulk("first"));
    // A new table takes the name; the dropped one is still there as id:<n>.
    c.cmd(&["TABLE.CREATE", "orders"]);
    assert!(c
        .cmd(&["PITR.RESTORE", "orders", "x_live", "LATEST"])
        .err_text()
        .contains("not enabled"));
    let by_id = format!("id:{id}");
    let r = c.cmd(&["PITR.RESTORE", &by_id, "orders_again", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"));
    c.cmd(&["TABLE.USE", "orders_again"]);
    assert_eq!(c.cmd(&["GET", "o1"]), Value::bulk("first"));
    drop(c);
    assert!(srv.stop().success());
    // Still restorable after a restart.
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    let r = c.cmd(&["PITR.RESTORE", &by_id, "after_restart", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"));
}

#[test]
fn restores_at_second_boundaries_and_inside_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let stop = Arc::new(AtomicBool::new(false));
    let port = srv.port;
    let w = {
        let stop = stop.clone();
        std::thread::spawn(move || writer(port, "default", 1, 10, 5, stop))
    };
    let start_us = now_us();
    sleep_ms(2300);
    stop.store(true, Ordering::Relaxed);
    let h = w.join().unwrap();
    let first_second = start_us / 1_000_000 + 1;
    let mut targets = vec![];
    for s in first_second..first_second + 2 {
        let base = s * 1_000_000;
        targets.extend([base - 1, base, base + 1, base + 500_000]);
    }
    for (i, t) in targets.into_iter().enumerate() {
        let name = format!("sec{i}");
        assert_eq!(
            restore(&mut c, "default", &name, t).field("status"),
            Value::bulk("ACTIVE")
        );
        let got = read_keys(&mut c, &name, &h);
        let bad = h.check(t, |k| got[k].clone());
        assert!(bad.is_empty(), "T={t}: {:?}", &bad[..bad.len().min(3)]);
    }
}
