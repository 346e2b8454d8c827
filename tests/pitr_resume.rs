//! A crash in the middle of a restore: the catalog says RESTORING and the target directory
//! holds a partial file. The next start never serves that table as it is; it runs the restore
//! again, or marks the table FAILED with the reason when the source is gone.

use std::sync::Arc;

use rewind::catalog::{self, TableStatus};
use rewind::log::fsutil::write_atomic;
use rewind::log::{ManualClock, Record};
use rewind::shard::{Db, EngineConfig};

const T0: u64 = 1_764_028_800_000_000;

fn engine() -> EngineConfig {
    EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    }
}

/// Writes 200 keys into a PITR table `src`, notes a time, overwrites them; returns the time.
fn fill(db: &Db, clock: &ManualClock) -> u64 {
    let t = db.create_table(b"src").unwrap();
    db.pitr_enable(b"src", 35).unwrap();
    for phase in ["old", "new"] {
        for i in 0..200 {
            clock.advance(1_000);
            let key = format!("k{i}").into_bytes();
            let shard = t.shard_for(&key);
            t.shards[shard]
                .log
                .append(vec![Record::put(key, phase.as_bytes().to_vec())])
                .unwrap();
        }
        clock.advance(1_000_000);
    }
    T0 + 200 * 1_000 + 500_000 // between the phases
}

/// Leaves the catalog as a crash mid-restore would: target RESTORING, a partial file on disk.
fn simulate_crash(dir: &std::path::Path, source_id: u64, at_us: u64) -> std::path::PathBuf {
    let path = dir.join("catalog");
    let mut c = catalog::decode(&std::fs::read(&path).unwrap()).unwrap();
    let meta = c.add("half", 2, T0);
    let e = c.tables.iter_mut().find(|t| t.id == meta.id).unwrap();
    e.status = TableStatus::Restoring;
    e.restore_source_id = source_id;
    e.restore_at_us = at_us;
    write_atomic(&path, &catalog::encode(&c)).unwrap();
    let shard0 = dir.join("tables").join(meta.id.to_string()).join("shard-0");
    std::fs::create_dir_all(&shard0).unwrap();
    std::fs::write(
        shard0.join("ckp-00000000000000000000.ckp"),
        b"RWNDCKP partial",
    )
    .unwrap();
    shard0
}

#[test]
fn an_interrupted_restore_runs_again_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    let at = fill(&db, &clock);
    let source_id = db.table("src").unwrap().meta.id;
    db.shutdown();
    drop(db);
    simulate_crash(dir.path(), source_id, at);

    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    assert!(
        db.table("half").is_none(),
        "a RESTORING table is never served as it is"
    );
    assert_eq!(db.meta("half").unwrap().status, TableStatus::Restoring);
    let handles = db.resume_restores();
    assert_eq!(handles.len(), 1);
    for h in handles {
        h.done.blocking_recv().unwrap().unwrap();
    }
    let t = db.table("half").expect("restored");
    assert_eq!(db.meta("half").unwrap().status, TableStatus::Active);
    assert_eq!(t.len(), 200);
    for s in &t.shards {
        s.map.for_each(|_, v| assert_eq!(v, b"old"));
    }
}

#[test]
fn an_interrupted_restore_whose_source_is_gone_is_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    let at = fill(&db, &clock);
    db.shutdown();
    drop(db);
    simulate_crash(dir.path(), 999, at);
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    for h in db.resume_restores() {
        assert!(h.done.blocking_recv().unwrap().is_err());
    }
    assert_eq!(db.meta("half").unwrap().status, TableStatus::Failed);
    assert!(db.restore_failure("half").is_some());
    assert!(db.table("half").is_none());
    // A failed table can be dropped, freeing the name.
    db.drop_table(b"half").unwrap();
    assert!(db.meta("half").is_none());
}

#[test]
fn a_checkpoint_interrupted_mid_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    fill(&db, &clock);
    let shard0 = db.table("src").unwrap().dir.join("shard-0");
    db.shutdown();
    drop(db);
    let stray = shard0.join("ckp-5-1764028800000000.tmp");
    std::fs::write(&stray, b"RWNDCKP half").unwrap();
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    assert!(!stray.exists(), "the temporary file is removed at start-up");
    assert_eq!(db.table("src").unwrap().len(), 200);
}
