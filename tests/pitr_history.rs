//! History without a restore, checked against restores and rewind-loadgen's oracle: writers
//! over disjoint keys (pipelines of SET and DEL) record when each write was sent and
//! acknowledged, with segments small enough to roll and checkpoints every second, so the
//! answers come from sealed segments' key indexes, checkpoints and the open segment alike.
//! For random moments: PITR.GET equals what PITR.RESTORE holds, PITR.HISTORY lists exactly
//! the writes that were logged, PITR.DIFF equals the difference of two restores, a MATCH
//! restore equals the full restore filtered, REVERT puts back exactly the chosen keys (and
//! can be reverted), and TABLE.DIGEST tells equal tables from ones a byte apart. Then across
//! a SIGKILL and for a dropped table.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::writers::{now_us, writer, History};
use common::{start, Client, Server, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const FLAGS: &[&str] = &[
    "--shards",
    "2",
    "--segment-mib",
    "1",
    "--checkpoint-secs",
    "1",
    "--maintenance-secs",
    "1",
];

/// A key's value at two moments (or now and at a moment).
type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);

fn at(t: u64) -> String {
    format!("{}.{:06}", t / 1_000_000, t % 1_000_000)
}

fn opt(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::Bulk(b) => Some(b),
        Value::Null => None,
        other => panic!("expected a value or nil, got {other:?}"),
    }
}

fn cmd(c: &mut Client, args: &[&[u8]]) -> Value {
    let v = c.cmd_bytes(args);
    assert!(
        !v.is_error(),
        "{:?}: {v:?}",
        String::from_utf8_lossy(args[0])
    );
    v
}

/// Every key of `keys` as table `table` holds it now.
fn snapshot(c: &mut Client, table: &str, keys: &[Vec<u8>]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    assert_eq!(c.cmd(&["TABLE.USE", table]), Value::ok());
    let mut out = BTreeMap::new();
    for k in keys {
        out.insert(k.clone(), opt(cmd(c, &[b"GET", k])));
    }
    assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());
    out
}

fn restore(c: &mut Client, target: &str, t: u64, extra: &[&str]) {
    let mut args = vec!["PITR.RESTORE", "default", target, "AT"];
    let t = at(t);
    args.push(&t);
    args.extend_from_slice(extra);
    args.push("SYNC");
    let r = c.cmd(&args);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{r:?}");
}

/// The writes the log holds for one key, oldest first: a DEL of a key that is already
/// absent writes nothing.
fn logged(h: &History, key: &[u8]) -> Vec<(u64, u64, Option<Vec<u8>>)> {
    let mut cur: Option<Vec<u8>> = None;
    let mut out = Vec::new();
    for w in h.keys.get(key).into_iter().flatten() {
        if w.value.is_none() && cur.is_none() {
            continue;
        }
        out.push((w.sent_us, w.acked_us, w.value.clone()));
        cur = w.value.clone();
    }
    out
}

/// Writes for a while: four oracle writers, and large values to other keys so segments roll.
fn write_load(srv: &Server, ms: u64, seed: u64) -> (History, Vec<Vec<u8>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let port = srv.port;
    let ws: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(port, "default", w, 20, seed, stop))
        })
        .collect();
    let mut c = srv.client();
    let mut filler = Vec::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let steps = 60;
    for i in 0..steps {
        let key = format!("fill:{}", i % 24).into_bytes();
        // Random letters: zstd cannot shrink them, so 1 MiB segments fill and roll.
        let value: Vec<u8> = (0..128 << 10).map(|_| rng.gen_range(b'a'..=b'z')).collect();
        cmd(&mut c, &[b"SET", &key, &value]);
        filler.push(key);
        std::thread::sleep(Duration::from_millis(ms / steps));
    }
    stop.store(true, Ordering::Relaxed);
    let mut h = History::default();
    for w in ws {
        h.merge(w.join().unwrap());
    }
    filler.sort();
    filler.dedup();
    (h, filler)
}

#[test]
fn history_answers_match_restores_and_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", FLAGS);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PITR.ENABLE", "default"]), Value::ok());
    let t0 = now_us();
    let (h, filler) = write_load(&srv, 2400, 11);
    let t1 = now_us();
    let mut keys: Vec<Vec<u8>> = h.keys.keys().cloned().collect();
    keys.extend(filler);
    keys.sort();
    // Every shard sealed segments, so answers come from key indexes and the open segment.
    for k in 0..2 {
        let names: Vec<String> = std::fs::read_dir(dir.path().join(format!("tables/1/shard-{k}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().filter(|n| n.ends_with(".seg")).count() >= 2,
            "{names:?}"
        );
    }

    // Questions are asked beside a writer that keeps appending to the open segments (keys
    // of their own): what they read stops at what was durable when they began.
    let busy = Arc::new(AtomicBool::new(false));
    let beside = {
        let (busy, port) = (busy.clone(), srv.port);
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut n = 0u64;
            while !busy.load(Ordering::Relaxed) {
                let k = format!("bg:{}", n % 500);
                assert_eq!(c.cmd(&["SET", &k, &format!("v{n}")]), Value::ok());
                n += 1;
            }
            n
        })
    };
    // PITR.GET at random moments equals what a restore to that moment holds.
    let mut rng = SmallRng::seed_from_u64(11);
    let mut moments: Vec<u64> = (0..5).map(|_| rng.gen_range(t0..t1)).collect();
    moments.sort();
    let mut restored = Vec::new();
    for (i, &t) in moments.iter().enumerate() {
        let name = format!("at{i}");
        restore(&mut c, &name, t, &[]);
        let r = snapshot(&mut c, &name, &keys);
        for k in &keys {
            let got = opt(cmd(
                &mut c,
                &[b"PITR.GET", b"default", k, b"AT", at(t).as_bytes()],
            ));
            assert_eq!(
                got.as_ref(),
                r[k].as_ref(),
                "PITR.GET {} AT {t} differs from the restore",
                String::from_utf8_lossy(k)
            );
        }
        restored.push(r);
    }

    // PITR.HISTORY lists exactly the writes the log holds, newest first, each committed
    // between its send and its acknowledgement.
    for k in h.keys.keys() {
        let Value::Array(entries) = cmd(
            &mut c,
            &[b"PITR.HISTORY", b"default", k, b"COUNT", b"100000"],
        ) else {
            panic!("HISTORY is an array")
        };
        let mut got: Vec<(u64, Option<Vec<u8>>)> = entries
            .into_iter()
            .map(|e| {
                let Value::Array(f) = e else {
                    panic!("entry {e:?}")
                };
                let op = f[2].clone();
                let v = opt(f[3].clone());
                match op {
                    Value::Bulk(b) if b == b"set" => assert!(v.is_some()),
                    Value::Bulk(b) if b == b"del" => assert!(v.is_none()),
                    other => panic!("op {other:?}"),
                }
                (f[1].as_int() as u64, v)
            })
            .collect();
        got.reverse();
        let want = logged(&h, k);
        assert_eq!(
            got.len(),
            want.len(),
            "history of {}",
            String::from_utf8_lossy(k)
        );
        for ((t, v), (sent, acked, wv)) in got.iter().zip(&want) {
            assert_eq!(v, wv, "history of {}", String::from_utf8_lossy(k));
            assert!(
                sent <= t && t <= acked,
                "committed at {t}, sent {sent}, acked {acked}"
            );
        }
        // COUNT and FROM/TO bound it.
        if want.len() >= 3 {
            let Value::Array(two) = cmd(&mut c, &[b"PITR.HISTORY", b"default", k, b"COUNT", b"2"])
            else {
                panic!()
            };
            assert_eq!(two.len(), 2);
            // The newest two.
            for (e, (t, _)) in two.iter().zip(got.iter().rev()) {
                let Value::Array(f) = e else { panic!() };
                assert_eq!(f[1].as_int() as u64, *t);
            }
            let mid = got[got.len() / 2].0;
            let Value::Array(early) = cmd(
                &mut c,
                &[
                    b"PITR.HISTORY",
                    b"default",
                    k,
                    b"TO",
                    at(mid).as_bytes(),
                    b"COUNT",
                    b"100000",
                ],
            ) else {
                panic!()
            };
            assert_eq!(early.len(), got.iter().filter(|(t, _)| *t <= mid).count());
        }
    }

    busy.store(true, Ordering::Relaxed);
    assert!(
        beside.join().unwrap() > 0,
        "the writer beside the questions wrote"
    );
    // PITR.DIFF between two moments equals the difference of their restores, page by page.
    for (a, b) in [(0, 4), (1, 2), (3, 3)] {
        let (ta, tb) = (moments[a], moments[b]);
        let mut diff = BTreeMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut args: Vec<&[u8]> = vec![b"PITR.DIFF", b"default", b"FROM"];
            let (sa, sb) = (at(ta), at(tb));
            args.extend([sa.as_bytes(), b"TO", sb.as_bytes(), b"COUNT", b"7"]);
            if let Some(k) = &after {
                args.extend([b"AFTER".as_slice(), k]);
            }
            let Value::Array(page) = cmd(&mut c, &args) else {
                panic!()
            };
            let n = page.len();
            for e in page {
                let Value::Array(f) = e else { panic!() };
                let key = opt(f[0].clone()).unwrap();
                after = Some(key.clone());
                diff.insert(key, (opt(f[1].clone()), opt(f[2].clone())));
            }
            if n < 7 {
                break;
            }
        }
        let want: BTreeMap<_, _> = keys
            .iter()
            .filter(|k| restored[a][*k] != restored[b][*k])
            .map(|k| (k.clone(), (restored[a][k].clone(), restored[b][k].clone())))
            .collect();
        assert_eq!(diff, want, "PITR.DIFF {a}..{b}");
    }

    // A MATCH restore is the full restore, filtered.
    restore(&mut c, "onlyw1", moments[2], &["MATCH", "w1:*"]);
    let sub = snapshot(&mut c, "onlyw1", &keys);
    for k in &keys {
        let want = if k.starts_with(b"w1:") {
            restored[2][k].clone()
        } else {
            None
        };
        assert_eq!(
            sub[k],
            want,
            "MATCH restore of {}",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(c.cmd(&["TABLE.USE", "onlyw1"]), Value::ok());
    let n = c.cmd(&["DBSIZE"]).as_int() as usize;
    assert_eq!(
        n,
        restored[2]
            .iter()
            .filter(|(k, v)| k.starts_with(b"w1:") && v.is_some())
            .count()
    );
    assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());

    // REVERT: DRYRUN names exactly the w2 keys that differ from the moment; the revert puts
    // those back and touches nothing else; reverting the revert restores the table.
    let live = snapshot(&mut c, "default", &keys);
    let t = at(moments[1]);
    let Value::Array(dry) = cmd(
        &mut c,
        &[
            b"PITR.REVERT",
            b"default",
            b"AT",
            t.as_bytes(),
            b"MATCH",
            b"w2:*",
            b"DRYRUN",
        ],
    ) else {
        panic!()
    };
    let dry: BTreeMap<Vec<u8>, Pair> = dry
        .into_iter()
        .map(|e| {
            let Value::Array(f) = e else { panic!() };
            (
                opt(f[0].clone()).unwrap(),
                (opt(f[1].clone()), opt(f[2].clone())),
            )
        })
        .collect();
    let want: BTreeMap<_, _> = keys
        .iter()
        .filter(|k| k.starts_with(b"w2:") && live[*k] != restored[1][*k])
        .map(|k| (k.clone(), (live[k].clone(), restored[1][k].clone())))
        .collect();
    assert!(
        !want.is_empty(),
        "the writers changed some w2 key after the moment"
    );
    assert_eq!(dry, want);
    assert_eq!(
        snapshot(&mut c, "default", &keys),
        live,
        "DRYRUN changed nothing"
    );
    let before_revert = now_us();
    let changed = cmd(
        &mut c,
        &[
            b"PITR.REVERT",
            b"default",
            b"AT",
            t.as_bytes(),
            b"MATCH",
            b"w2:*",
        ],
    );
    assert_eq!(changed.as_int() as usize, want.len());
    let reverted = snapshot(&mut c, "default", &keys);
    for k in &keys {
        let expect = if k.starts_with(b"w2:") {
            &restored[1][k]
        } else {
            &live[k]
        };
        assert_eq!(
            &reverted[k],
            expect,
            "after REVERT: {}",
            String::from_utf8_lossy(k)
        );
    }
    let back_to = at(before_revert);
    let mut args: Vec<&[u8]> = vec![
        b"PITR.REVERT",
        b"default",
        b"AT",
        back_to.as_bytes(),
        b"KEYS",
    ];
    args.extend(want.keys().map(|k| k.as_slice()));
    assert_eq!(cmd(&mut c, &args).as_int() as usize, want.len());
    assert_eq!(
        snapshot(&mut c, "default", &keys),
        live,
        "the revert was reverted"
    );

    // TABLE.DIGEST: a restore of now equals the live table; one byte apart, it does not.
    restore(&mut c, "copy", now_us(), &[]);
    let digest = |c: &mut Client, t: &str| cmd(c, &[b"TABLE.DIGEST", t.as_bytes()]);
    let (d1, d2) = (digest(&mut c, "default"), digest(&mut c, "copy"));
    assert_eq!(d1.field("digest"), d2.field("digest"));
    assert_eq!(d1.field("keys"), d2.field("keys"));
    let k = keys.iter().find(|k| live[*k].is_some()).unwrap();
    let mut v = live[k].clone().unwrap();
    v[0] ^= 1;
    assert_eq!(c.cmd(&["TABLE.USE", "copy"]), Value::ok());
    cmd(&mut c, &[b"SET", k, &v]);
    assert_ne!(
        digest(&mut c, "default").field("digest"),
        digest(&mut c, "copy").field("digest")
    );
    cmd(&mut c, &[b"SET", k, live[k].as_ref().unwrap()]);
    assert_eq!(
        digest(&mut c, "default").field("digest"),
        digest(&mut c, "copy").field("digest")
    );
    assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());

    // A dry-run restore plans without creating anything.
    let plan = cmd(
        &mut c,
        &[
            b"PITR.RESTORE",
            b"default",
            b"planned",
            b"LATEST",
            b"DRYRUN",
        ],
    );
    assert!(plan.field("bytes_total").as_int() > 0, "{plan:?}");
    let Value::Array(shards) = plan.field("shards") else {
        panic!("{plan:?}")
    };
    assert_eq!(shards.len(), 2);
    let secs: f64 = String::from_utf8(opt(plan.field("estimated_seconds")).unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        secs > 0.0,
        "an estimate from a measured replay speed: {plan:?}"
    );
    assert!(
        c.cmd(&["TABLE.DESCRIBE", "planned"]).is_error(),
        "DRYRUN created no table"
    );

    // The same errors as PITR.RESTORE.
    let e = c.cmd(&["PITR.GET", "default", "k", "AT", &at(t0 - 3_600_000_000)]);
    assert!(
        e.err_text().contains("before the earliest restorable time"),
        "{e:?}"
    );
    assert!(c.cmd(&["TABLE.CREATE", "nopitr"]) == Value::ok());
    let e = c.cmd(&["PITR.HISTORY", "nopitr", "k"]);
    assert!(e.err_text().contains("not enabled"), "{e:?}");
    let e = c.cmd(&["PITR.HISTORY", "default", "k", "COUNT", "0"]);
    assert!(e.err_text().contains("COUNT"), "{e:?}");
}

#[test]
fn history_survives_a_crash_and_a_dropped_table_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", FLAGS);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PITR.ENABLE", "default"]), Value::ok());
    let (h, _) = write_load(&srv, 1200, 21);
    let t1 = now_us();
    srv.kill9();
    let srv = start(dir.path(), "auto", FLAGS);
    let mut c = srv.client();
    let mut values: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    for k in h.keys.keys() {
        let Value::Array(entries) = cmd(
            &mut c,
            &[b"PITR.HISTORY", b"default", k, b"COUNT", b"100000"],
        ) else {
            panic!()
        };
        let want = logged(&h, k);
        assert_eq!(
            entries.len(),
            want.len(),
            "history of {} after the crash",
            String::from_utf8_lossy(k)
        );
        values.insert(k.clone(), want.last().and_then(|w| w.2.clone()));
        let got = opt(cmd(
            &mut c,
            &[b"PITR.GET", b"default", k, b"AT", at(t1).as_bytes()],
        ));
        assert_eq!(got, values[k]);
    }
    // A write after the restart joins the history.
    cmd(&mut c, &[b"SET", b"w0:k0", b"after-the-crash"]);
    let Value::Array(e) = cmd(
        &mut c,
        &[b"PITR.HISTORY", b"default", b"w0:k0", b"COUNT", b"1"],
    ) else {
        panic!()
    };
    let Value::Array(f) = &e[0] else { panic!() };
    assert_eq!(f[3], Value::bulk("after-the-crash"));

    // A dropped table still answers, by name, for its window.
    assert_eq!(c.cmd(&["TABLE.CREATE", "gone"]), Value::ok());
    assert_eq!(c.cmd(&["PITR.ENABLE", "gone"]), Value::ok());
    assert_eq!(c.cmd(&["TABLE.USE", "gone"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "x", "1"]), Value::ok());
    let mid = now_us();
    assert_eq!(c.cmd(&["SET", "x", "2"]), Value::ok());
    assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());
    assert_eq!(c.cmd(&["TABLE.DROP", "gone"]), Value::ok());
    let Value::Array(e) = cmd(&mut c, &[b"PITR.HISTORY", b"gone", b"x"]) else {
        panic!()
    };
    assert_eq!(e.len(), 2);
    assert_eq!(
        cmd(
            &mut c,
            &[b"PITR.GET", b"gone", b"x", b"AT", at(mid).as_bytes()]
        ),
        Value::bulk("1")
    );
    let e = c.cmd(&["PITR.REVERT", "gone", "AT", &at(mid), "KEYS", "x"]);
    assert!(e.is_error(), "a dropped table is not reverted: {e:?}");
    srv.stop();
}
