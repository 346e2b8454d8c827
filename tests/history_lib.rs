//! History through the library, with an injected clock: across retention (history stops at
//! the window's start; the key indexes go with their files) and a diff whose changed keys
//! outnumber what one round keeps, paged to the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::log::{ManualClock, Record};
use rewind::shard::{Db, DbError, EngineConfig, US_PER_DAY};

/// 2025-11-25T00:00:00Z.
const T0: u64 = 1_764_028_800_000_000;

type Model = HashMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;
/// A key's value at two moments.
type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);

fn value_at(model: &Model, key: &[u8], t: u64) -> Option<Vec<u8>> {
    model
        .get(key)
        .and_then(|ws| ws.iter().rev().find(|(c, _)| *c <= t))
        .and_then(|(_, v)| v.clone())
}

fn put(db: &Db, model: &mut Model, key: &[u8], value: Option<&[u8]>) -> u64 {
    let t = db.table("default").unwrap();
    let rec = match value {
        Some(v) => Record::put(key.to_vec(), v.to_vec()),
        None => Record::delete(key.to_vec()),
    };
    let info = t.shards[t.shard_for(key)].log.append(vec![rec]).unwrap();
    model
        .entry(key.to_vec())
        .or_default()
        .push((info.commit_us, value.map(<[u8]>::to_vec)));
    info.commit_us
}

fn files(dir: &std::path::Path, ext: &str) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .count()
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn history_follows_the_window_through_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = EngineConfig {
        shards: 2,
        checkpoint_interval_us: US_PER_DAY / 2,
        segment_max_bytes: 4096,
        ..EngineConfig::default()
    };
    let (db, _) = Db::open(dir.path(), cfg, Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    db.pitr_enable(b"default", 1).unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut model = Model::new();
    // Four days of writes, a maintenance pass (checkpoints, retention, key indexes) every
    // few hours.
    for step in 0..32u64 {
        for _ in 0..20 {
            clock.advance(rng.gen_range(1..600_000_000));
            let key = format!("k{}", rng.gen_range(0..15)).into_bytes();
            let value = format!("v{step}-{}", rng.gen::<u32>()).into_bytes();
            let del = rng.gen_ratio(1, 7);
            put(&db, &mut model, &key, (!del).then_some(value.as_slice()));
        }
        clock.set(
            clock
                .now_us_for_test()
                .max(T0 + (step + 1) * US_PER_DAY / 8),
        );
        db.maintain().unwrap();
    }
    assert!(
        files(dir.path(), "kix") > 0,
        "the maintenance pass wrote key indexes"
    );
    assert!(
        !walk(dir.path())
            .iter()
            .any(|p| p.ends_with("00000000000000000001.seg")),
        "retention deleted the oldest segments"
    );
    // Every .kix belongs to a file that is still there.
    for p in walk(dir.path())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "kix"))
    {
        let seg = p.with_extension("seg");
        let ckp = p.with_extension("ckp");
        assert!(
            seg.exists() || ckp.exists(),
            "{} outlived its file",
            p.display()
        );
    }
    let now = clock.now_us_for_test();
    let earliest = now - US_PER_DAY;
    db.with_history("default", |ctx| {
        assert_eq!(ctx.window.earliest_us, earliest);
        for k in 0..15 {
            let key = format!("k{k}").into_bytes();
            // History lists the key's writes inside the window, newest first, and no older.
            let got = ctx.source.history(&key, (earliest, now), 10_000)?;
            let want: Vec<(u64, Option<Vec<u8>>)> = model[&key]
                .iter()
                .rev()
                .filter(|(c, _)| *c >= earliest)
                .cloned()
                .collect();
            let got: Vec<(u64, Option<Vec<u8>>)> =
                got.into_iter().map(|w| (w.commit_us, w.value)).collect();
            assert_eq!(got, want, "history of k{k}");
            // Its value anywhere in the window is the model's.
            for t in [earliest, earliest + US_PER_DAY / 3, now - 1, now] {
                assert_eq!(
                    ctx.source.value_at(&key, t)?,
                    value_at(&model, &key, t),
                    "k{k} at {t}"
                );
            }
        }
        // At a write's exact commit time the write is in; a microsecond before, it is not.
        for (key, ws) in &model {
            for &(c, _) in ws.iter().filter(|(c, _)| *c > earliest + 1) {
                assert_eq!(ctx.source.value_at(key, c)?, value_at(&model, key, c));
                assert_eq!(
                    ctx.source.value_at(key, c - 1)?,
                    value_at(&model, key, c - 1)
                );
            }
        }
        // Before the window: refused, as a restore is.
        let e = ctx.check(earliest - 1, now).unwrap_err();
        assert!(
            e.to_string()
                .contains("before the earliest restorable time"),
            "{e}"
        );
        Ok::<_, DbError>(())
    })
    .unwrap();

    // Damaged key indexes are rebuilt from their files by the questions that need them,
    // answers stay exact, and `rewind verify` names every one still damaged.
    let kix: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "kix"))
        .collect();
    for p in &kix {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        std::fs::write(p, &b).unwrap();
    }
    let fresh = rewind::history::IndexCache::new();
    for shard in 0..2u32 {
        let sd = dir.path().join(format!("tables/1/shard-{shard}"));
        let src = rewind::history::ShardSource::new(&sd, (1, shard), u64::MAX, &fresh);
        for k in 0..15 {
            let key = format!("k{k}").into_bytes();
            if rewind::map::shard_of(&key, 2) != shard as usize {
                continue;
            }
            let got = src.history(&key, (earliest, now), 10_000).unwrap();
            let n = model[&key].iter().filter(|(c, _)| *c >= earliest).count();
            assert_eq!(got.len(), n, "history of k{k} with damaged key indexes");
            for t in [earliest, now] {
                assert_eq!(src.value_at(&key, t).unwrap(), value_at(&model, &key, t));
            }
        }
    }
    let decodes = |p: &std::path::Path| {
        rewind::history::keyindex::KeyIndex::decode(&std::fs::read(p).unwrap()).is_ok()
    };
    let rebuilt = kix.iter().filter(|p| decodes(p)).count();
    assert!(
        fresh.stats().built > 0 && rebuilt > 0,
        "{:?}",
        fresh.stats()
    );
    db.shutdown();
    drop(db);
    let report = rewind::cli::verify(dir.path()).unwrap();
    let named = report.damage.iter().filter(|d| d.contains(".kix")).count();
    assert_eq!(named, kix.len() - rebuilt, "verify: {:?}", report.damage);
}

#[test]
fn a_diff_larger_than_one_round_pages_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    };
    let (db, _) = Db::open(dir.path(), cfg, Arc::new(clock.clone())).unwrap();
    let db = Arc::new(db);
    db.pitr_enable(b"default", 1).unwrap();
    let mut model = Model::new();
    for i in 0..3000 {
        clock.advance(10);
        put(
            &db,
            &mut model,
            format!("key{i:05}").as_bytes(),
            Some(b"first"),
        );
    }
    clock.advance(1_000);
    let t1 = clock.now_us_for_test();
    // Every key is written again; only every third ends up different.
    for i in 0..3000 {
        clock.advance(10);
        let v: &[u8] = if i % 3 == 0 { b"second" } else { b"first" };
        put(&db, &mut model, format!("key{i:05}").as_bytes(), Some(v));
        if i % 5 == 0 {
            put(&db, &mut model, format!("new{i:05}").as_bytes(), Some(b"n"));
        }
    }
    let t2 = clock.now_us_for_test();
    let want: BTreeMap<Vec<u8>, Pair> = model
        .keys()
        .filter_map(|k| {
            let (a, b) = (value_at(&model, k, t1), value_at(&model, k, t2));
            (a != b).then(|| (k.clone(), (a, b)))
        })
        .collect();
    assert_eq!(want.len(), 1000 + 600);
    let mut got = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0;
    loop {
        // Rounds of 64 keys a shard: several rounds a page, each key compared on its own
        // or (past 512 in a round) by a pass over the shard.
        let round = if pages % 2 == 0 { 64 } else { 1024 };
        let page = db
            .with_history("default", |ctx| {
                Ok(ctx
                    .source
                    .diff_rounds((t1, t2), None, after.as_deref(), 100, round)?)
            })
            .unwrap();
        pages += 1;
        for c in &page.changes {
            assert!(
                after.as_ref().is_none_or(|a| c.key > *a),
                "pages are in key order"
            );
            got.insert(c.key.clone(), (c.before.clone(), c.after.clone()));
        }
        after = page.changes.last().map(|c| c.key.clone());
        if page.changes.len() < 100 {
            break;
        }
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(got, want);
    // A MATCH narrows it.
    let g = rewind::history::Glob::new(b"new*").unwrap();
    let page = db
        .with_history("default", |ctx| {
            Ok(ctx.source.diff((t1, t2), Some(&g), None, 10_000)?)
        })
        .unwrap();
    assert_eq!(page.changes.len(), 600);
    assert!(page
        .changes
        .iter()
        .all(|c| c.key.starts_with(b"new") && c.before.is_none()));
}
