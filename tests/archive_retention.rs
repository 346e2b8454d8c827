//! The archive through the library with an injected clock and a `file://` archive: local
//! retention keeps what the archive has not got, the archive's window follows the table's
//! PITR window (a dropped table goes when its window ends), every moment inside the window
//! restores exactly from the archive alone, and a damaged object is refused by name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::archive::fetch::{self, RestorePlan};
use rewind::archive::ship::Shipper;
use rewind::archive::{retain, Archive, ArchiveError};
use rewind::log::{ManualClock, Record};
use rewind::restore::{format_time, RestoreProgress, RestoreSpec};
use rewind::shard::{Db, EngineConfig, RestoreAt, US_PER_DAY};

/// 2025-11-25T00:00:00Z.
const T0: u64 = 1_764_028_800_000_000;

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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A day of writes to `table` of `db`, recorded in `model`.
fn write_day(db: &Db, clock: &ManualClock, table: &str, rng: &mut SmallRng, model: &mut Model) {
    let t = db.table(table).unwrap();
    for _ in 0..40 {
        clock.advance(rng.gen_range(1..1_800_000_000));
        let key = format!("k{}", rng.gen_range(0..25)).into_bytes();
        let value = (!rng.gen_ratio(1, 6)).then(|| format!("v{}", rng.gen::<u32>()).into_bytes());
        let rec = match &value {
            Some(v) => Record::put(key.clone(), v.clone()),
            None => Record::delete(key.clone()),
        };
        let info = t.shards[t.shard_for(&key)].log.append(vec![rec]).unwrap();
        model.entry(key).or_default().push((info.commit_us, value));
    }
}

/// Restores `plan` from the archive (download, then the ordinary replay) and reads it back.
fn restore(archive: &Archive, plan: &RestorePlan, scratch: &Path) -> HashMap<Vec<u8>, Vec<u8>> {
    let staging = scratch.join("staging");
    let _ = std::fs::remove_dir_all(scratch);
    let done = AtomicU64::new(0);
    let dirs = rt()
        .block_on(fetch::download(archive, plan, &staging, &done))
        .unwrap();
    let spec = RestoreSpec {
        source_id: plan.table.meta.id,
        source_shards: dirs.clone(),
        until_seq: vec![u64::MAX; dirs.len()],
        at_us: plan.at_us,
        target_id: 99,
        target_dir: scratch.join("target"),
        threads: 2,
        zstd_level: 1,
        filter: None,
    };
    let maps = rewind::restore::run(&spec, &RestoreProgress::new(plan.at_us, dirs.len())).unwrap();
    let mut out = HashMap::new();
    for m in &maps {
        m.for_each(|k, v| {
            out.insert(k.to_vec(), v.to_vec());
        });
    }
    out
}

fn part_objects(root: &Path) -> Vec<std::path::PathBuf> {
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "part") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

#[test]
fn the_archive_window_follows_the_pitr_window_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("archive");
    let url = format!("file://{}", store.display());
    let clock = ManualClock::new(T0);
    let cfg = EngineConfig {
        shards: 2,
        checkpoint_interval_us: US_PER_DAY,
        ..EngineConfig::default()
    };
    let data = dir.path().join("data");
    let (db, _) = Db::open(&data, cfg, Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    db.create_table(b"hist").unwrap();
    db.pitr_enable(b"hist", 2).unwrap();
    db.create_table(b"gone").unwrap();
    db.pitr_enable(b"gone", 1).unwrap();
    let archive = Archive::open(&url).unwrap();
    let rt = rt();
    let mut shipper = rt
        .block_on(Shipper::start(archive.clone(), db.clone(), false))
        .unwrap();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut model = Model::new();
    let mut gone = Model::new();
    let table_dir = data
        .join("tables")
        .join(db.table("hist").unwrap().meta.id.to_string());
    let local_files = || {
        (0..2)
            .map(|k| {
                std::fs::read_dir(table_dir.join(format!("shard-{k}")))
                    .unwrap()
                    .count()
            })
            .sum::<usize>()
    };

    // The archive is "down" (nothing shipped) for four days: local retention deletes nothing.
    for day in 0..4u64 {
        write_day(&db, &clock, "hist", &mut rng, &mut model);
        if day == 0 {
            write_day(&db, &clock, "gone", &mut rng, &mut gone);
        }
        clock.set(clock.now_us_for_test().max(T0 + (day + 1) * US_PER_DAY));
        let r = db.maintain().unwrap();
        assert!(
            r.deleted.is_empty(),
            "day {day}: deleted {:?} the archive lacks",
            r.deleted
        );
    }
    let before = local_files();
    // Back: everything ships, and then local retention catches up.
    rt.block_on(shipper.tick()).unwrap();
    let r = db.maintain().unwrap();
    assert!(
        !r.deleted.is_empty(),
        "local retention resumes once the archive has the files"
    );
    assert!(local_files() < before);

    // The dropped table is kept, locally and in the archive, for its one-day window.
    let gone_id = db.meta("gone").unwrap().id;
    db.drop_table(b"gone").unwrap();
    rt.block_on(shipper.tick()).unwrap();
    let gone_prefix = store.join(archive.layout.table(&shipper.generation, gone_id));
    assert!(!part_objects(&gone_prefix).is_empty());

    for day in 4..9u64 {
        write_day(&db, &clock, "hist", &mut rng, &mut model);
        clock.set(clock.now_us_for_test().max(T0 + (day + 1) * US_PER_DAY));
        db.maintain().unwrap();
        rt.block_on(shipper.tick()).unwrap();
        db.maintain().unwrap();
        rt.block_on(retain::run(&shipper)).unwrap();
    }
    assert!(
        part_objects(&gone_prefix).is_empty(),
        "the dropped table's objects outlived its window"
    );
    assert!(
        !gone_prefix.join("meta").exists()
            || std::fs::read_dir(gone_prefix.join("meta")).unwrap().count() == 0
    );

    // Nothing in the archive is older than the window needs (one checkpoint interval of
    // slack: the base is the newest checkpoint at or before the window's start; and a
    // segment's hour, as parts go with the segment after that base's start).
    let now = clock.now_us_for_test();
    let earliest = now - 2 * US_PER_DAY;
    let hist_id = db.meta("hist").unwrap().id;
    let hist_prefix = store.join(archive.layout.table(&shipper.generation, hist_id));
    let parts = part_objects(&hist_prefix);
    assert!(!parts.is_empty());
    for p in &parts {
        let b = std::fs::read(p).unwrap();
        let (h, _) = rewind::archive::part::decode(&b).unwrap();
        assert!(
            h.last_us + US_PER_DAY + 2 * 3_600_000_000 >= earliest,
            "{} from {} outlived the window starting {}",
            p.display(),
            format_time(h.last_us),
            format_time(earliest)
        );
    }
    assert!(
        shipper
            .state()
            .deletes
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );

    // Every moment inside the window restores exactly from the archive alone.
    let tables = rt.block_on(fetch::catalog(&archive, now)).unwrap().tables;
    let hist = tables.iter().find(|t| t.meta.name == "hist").unwrap();
    let (lo, hi) = hist.window.unwrap();
    assert!(lo <= earliest + 1, "window starts {}", format_time(lo));
    let mut targets = vec![lo, hi];
    for _ in 0..6 {
        targets.push(rng.gen_range(lo..=hi));
    }
    for (i, t) in targets.into_iter().enumerate() {
        let plan = fetch::plan_restore(&tables, "hist", None, None, RestoreAt::Time(t)).unwrap();
        let got = restore(&archive, &plan, &dir.path().join(format!("r{i}")));
        assert_eq!(got, expected(&model, t), "restore to {}", format_time(t));
    }
    // --latest restores everything archived, each shard to its newest write (past the
    // window's end when a shard was quiet at the end).
    let latest = fetch::plan_restore(&tables, "hist", None, None, RestoreAt::Latest).unwrap();
    assert!(latest.at_us >= hi);
    let got = restore(&archive, &latest, &dir.path().join("latest"));
    assert_eq!(got, expected(&model, u64::MAX), "restore --latest");
    let too_old = fetch::plan_restore(&tables, "hist", None, None, RestoreAt::Time(lo - 1));
    assert!(matches!(too_old, Err(ArchiveError::Plan(_))));
}

#[test]
fn a_damaged_archive_object_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("archive");
    let url = format!("file://{}", store.display());
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(
        &dir.path().join("data"),
        EngineConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let db = Arc::new(db);
    db.pitr_enable(b"default", 1).unwrap();
    let mut rng = SmallRng::seed_from_u64(9);
    let mut model = Model::new();
    write_day(&db, &clock, "default", &mut rng, &mut model);
    let archive = Archive::open(&url).unwrap();
    let rt = rt();
    let mut shipper = rt
        .block_on(Shipper::start(archive.clone(), db.clone(), false))
        .unwrap();
    rt.block_on(shipper.tick()).unwrap();
    let now = clock.now_us_for_test();
    let tables = rt.block_on(fetch::catalog(&archive, now)).unwrap().tables;
    let plan = fetch::plan_restore(&tables, "default", None, None, RestoreAt::Latest).unwrap();
    assert_eq!(
        restore(&archive, &plan, &dir.path().join("ok")),
        expected(&model, plan.at_us)
    );
    // Flip one byte in the middle of a real part file.
    let part = part_objects(&store).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&part, &bytes).unwrap();
    let done = AtomicU64::new(0);
    let err = rt
        .block_on(fetch::download(
            &archive,
            &plan,
            &dir.path().join("bad"),
            &done,
        ))
        .unwrap_err();
    let name = part.file_name().unwrap().to_string_lossy().into_owned();
    match &err {
        ArchiveError::Damaged { name: n, source } => {
            assert!(n.ends_with(&name), "{err}");
            assert!(
                matches!(source, rewind::log::FormatError::ChecksumMismatch { .. }),
                "{err}"
            );
        }
        other => panic!("expected a damaged object, got {other}"),
    }
}

#[test]
fn a_restored_table_is_archived_with_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("archive").display());
    let clock = ManualClock::new(T0);
    let cfg = EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    };
    let (db, _) = Db::open(&dir.path().join("data"), cfg, Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    db.pitr_enable(b"default", 1).unwrap();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut model = Model::new();
    write_day(&db, &clock, "default", &mut rng, &mut model);
    clock.advance(1_000_000);
    let at = clock.now_us_for_test();
    let h = db
        .begin_restore("default", b"copy", RestoreAt::Time(at))
        .unwrap();
    h.done.blocking_recv().unwrap().unwrap();
    db.pitr_enable(b"copy", 1).unwrap();
    // The copy's image, then writes to it (few enough that one shard may stay quiet).
    let image = expected(&model, at);
    let mut copy_model: Model = image
        .iter()
        .map(|(k, v)| (k.clone(), vec![(at, Some(v.clone()))]))
        .collect();
    let t = db.table("copy").unwrap();
    for i in 0..3 {
        clock.advance(1_000);
        let key = format!("k{i}").into_bytes();
        let value = format!("after-restore-{i}").into_bytes();
        let info = t.shards[t.shard_for(&key)]
            .log
            .append(vec![Record::put(key.clone(), value.clone())])
            .unwrap();
        copy_model
            .entry(key)
            .or_default()
            .push((info.commit_us, Some(value)));
    }
    let archive = Archive::open(&url).unwrap();
    let rt = rt();
    let mut shipper = rt
        .block_on(Shipper::start(archive.clone(), db.clone(), false))
        .unwrap();
    rt.block_on(shipper.tick()).unwrap();
    let tables = rt
        .block_on(fetch::catalog(&archive, clock.now_us_for_test()))
        .unwrap()
        .tables;
    let plan = fetch::plan_restore(&tables, "copy", None, None, RestoreAt::Latest).unwrap();
    assert!(
        plan.shards.iter().all(|s| s.checkpoint.is_some()),
        "every shard starts from the restore's image: {plan:?}"
    );
    let got = restore(&archive, &plan, &dir.path().join("r"));
    // Every write made after the restore is in: --latest reaches each shard's newest one.
    let last_write = copy_model
        .values()
        .flatten()
        .map(|(t, _)| *t)
        .max()
        .unwrap();
    assert!(plan.at_us >= last_write);
    assert_eq!(got, expected(&copy_model, u64::MAX));
    assert!(!image.is_empty());
}

#[test]
fn a_table_with_shards_that_never_wrote_restores_to_any_moment() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("archive").display());
    let clock = ManualClock::new(T0);
    let cfg = EngineConfig {
        shards: 8,
        ..EngineConfig::default()
    };
    let (db, _) = Db::open(&dir.path().join("data"), cfg, Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    db.pitr_enable(b"default", 1).unwrap();
    let t = db.table("default").unwrap();
    let mut model = Model::new();
    // Two keys: at most two of the eight shards ever write.
    for (i, key) in [b"only-a".to_vec(), b"only-b".to_vec()]
        .into_iter()
        .enumerate()
    {
        clock.advance(1_000_000);
        let value = format!("v{i}").into_bytes();
        let info = t.shards[t.shard_for(&key)]
            .log
            .append(vec![Record::put(key.clone(), value.clone())])
            .unwrap();
        model
            .entry(key)
            .or_default()
            .push((info.commit_us, Some(value)));
    }
    let archive = Archive::open(&url).unwrap();
    let rt = rt();
    let mut shipper = rt
        .block_on(Shipper::start(archive.clone(), db.clone(), false))
        .unwrap();
    rt.block_on(shipper.tick()).unwrap();
    let tables = rt
        .block_on(fetch::catalog(&archive, clock.now_us_for_test()))
        .unwrap()
        .tables;
    let table = tables.iter().find(|t| t.meta.name == "default").unwrap();
    let (lo, hi) = table
        .window
        .expect("empty shards hold no moment back: {table:?}");
    let first = model.values().flatten().map(|(t, _)| *t).min().unwrap();
    for t in [lo, first, hi] {
        let plan = fetch::plan_restore(&tables, "default", None, None, RestoreAt::Time(t)).unwrap();
        let got = restore(&archive, &plan, &dir.path().join(format!("r{t}")));
        assert_eq!(got, expected(&model, t), "restore to {}", format_time(t));
    }
}
