//! Retention with an injected clock over a 35-day window (the library, no server): 50 days of
//! writes with daily checkpoints; files no restorable time needs are deleted, and every time
//! inside the window still restores exactly.

use std::collections::HashMap;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::log::{segment, ManualClock, Record};
use rewind::restore::format_time;
use rewind::shard::{Db, EngineConfig, RestoreAt, US_PER_DAY};

/// 2025-11-25T00:00:00Z.
const T0: u64 = 1_764_028_800_000_000;

fn engine() -> EngineConfig {
    EngineConfig {
        shards: 2,
        checkpoint_interval_us: US_PER_DAY,
        ..EngineConfig::default()
    }
}

/// Per key, (commit_us, value or None for a delete), in commit order.
type Model = HashMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

fn expected(model: &Model, t: u64) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut out = HashMap::new();
    for (k, ws) in model {
        if let Some((_, Some(v))) = ws.iter().rev().find(|(c, _)| *c <= t) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn restore_and_read(db: &Arc<Db>, name: &str, t: u64) -> HashMap<Vec<u8>, Vec<u8>> {
    let h = db
        .begin_restore("hist", name.as_bytes(), RestoreAt::Time(t))
        .unwrap();
    h.done.blocking_recv().unwrap().unwrap();
    let table = db.table(name).unwrap();
    let mut out = HashMap::new();
    for s in &table.shards {
        s.map.for_each(|k, v| {
            out.insert(k.to_vec(), v.to_vec());
        });
    }
    out
}

#[test]
fn thirty_five_day_window_keeps_exactly_what_restores_need() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    db.create_table(b"hist").unwrap();
    db.pitr_enable(b"hist", 35).unwrap();
    let table = db.table("hist").unwrap();
    let mut rng = SmallRng::seed_from_u64(35);
    let mut model: Model = HashMap::new();
    let mut checkpoints = 0;
    for day in 0..50u64 {
        for _ in 0..40 {
            clock.advance(rng.gen_range(1..1_800_000_000)); // up to 30 minutes apart
            let key = format!("k{}", rng.gen_range(0..25)).into_bytes();
            let rec = if rng.gen_ratio(1, 6) {
                Record::delete(key.clone())
            } else {
                Record::put(
                    key.clone(),
                    format!("day{day}-{}", rng.gen::<u32>()).into_bytes(),
                )
            };
            let value = match &rec {
                Record::Put { value, .. } => Some(value.to_vec()),
                Record::Delete { .. } => None,
            };
            let shard = table.shard_for(&key);
            let info = table.shards[shard].log.append(vec![rec]).unwrap();
            model.entry(key).or_default().push((info.commit_us, value));
        }
        let now = clock.now_us_for_test();
        clock.set(now.max(T0 + (day + 1) * US_PER_DAY));
        checkpoints += db.maintain().unwrap().checkpoints.len();
    }
    assert!(
        checkpoints >= 50,
        "daily checkpoints on both shards: {checkpoints}"
    );
    let now = clock.now_us_for_test();
    let earliest = now - 35 * US_PER_DAY;
    // Nothing older than the window (less one checkpoint interval of slack) is left.
    let tdir = dir.path().join("tables").join(table.meta.id.to_string());
    for k in 0..2 {
        let sdir = tdir.join(format!("shard-{k}"));
        let segs = segment::list(&sdir).unwrap();
        assert!(segs.len() > 10, "the window's segments are kept");
        for s in &segs {
            let bytes = std::fs::read(&s.path).unwrap();
            let h = segment::SegmentHeader::decode(&bytes).unwrap();
            assert!(
                h.created_us + 2 * US_PER_DAY >= earliest,
                "segment {} from {} outlived the window starting {}",
                s.path.display(),
                format_time(h.created_us),
                format_time(earliest)
            );
        }
        for (_, p) in rewind::log::checkpoint::list(&sdir).unwrap() {
            let h = rewind::log::checkpoint::read_header(&p).unwrap();
            assert!(
                h.end_us + 2 * US_PER_DAY >= earliest,
                "old checkpoint {} kept",
                p.display()
            );
        }
    }
    // Every time inside the window restores exactly; one before it is refused.
    let mut targets = vec![earliest, earliest + 1, now];
    for _ in 0..8 {
        targets.push(rng.gen_range(earliest..now));
    }
    for (i, t) in targets.into_iter().enumerate() {
        let got = restore_and_read(&db, &format!("restored{i}"), t);
        assert_eq!(got, expected(&model, t), "restore to {}", format_time(t));
    }
    let too_old = db.begin_restore("hist", b"too_old", RestoreAt::Time(earliest - 1));
    assert!(too_old.is_err());
}

#[test]
fn a_dropped_table_is_removed_when_its_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(dir.path(), engine(), Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    let t = db.create_table(b"gone").unwrap();
    db.pitr_enable(b"gone", 1).unwrap();
    t.shards[0]
        .log
        .append(vec![Record::put(&b"a"[..], &b"1"[..])])
        .unwrap();
    let tdir = t.dir.clone();
    drop(t);
    db.drop_table(b"gone").unwrap();
    clock.advance(US_PER_DAY / 2);
    assert!(db.maintain().unwrap().expired_tables.is_empty());
    assert!(
        tdir.exists(),
        "inside its window the dropped table's files stay"
    );
    clock.advance(US_PER_DAY);
    assert_eq!(
        db.maintain().unwrap().expired_tables,
        vec!["gone".to_string()]
    );
    assert!(!tdir.exists());
    assert!(db
        .begin_restore("gone", b"back", RestoreAt::Latest)
        .is_err());
}
