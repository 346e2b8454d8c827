//! The corruption sweep: flip one byte at many random offsets (seeded) of the real files of a
//! data directory — segments, indexes, checkpoints, the catalog. `rewind verify` must find
//! every one; start-up must either refuse or serve exactly the undamaged contents (a flip in
//! history start-up does not read — a segment before the checkpoint it starts from, an index
//! it rebuilds — is caught when a restore or `verify` reads it).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::log::{ManualClock, Record};
use rewind::shard::{checkpoint_shard, Db, EngineConfig};

const T0: u64 = 1_764_028_800_000_000;

fn engine() -> EngineConfig {
    EngineConfig {
        shards: 2,
        segment_max_bytes: 64 << 10,
        ..EngineConfig::default()
    }
}

/// A data directory with closed segments (and their indexes), checkpoints and a catalog.
fn build(dir: &Path) {
    let clock = ManualClock::new(T0);
    let (db, _) = Db::open(dir, engine(), Arc::new(clock.clone())).unwrap();
    let t = db.table("default").unwrap();
    let mut rng = SmallRng::seed_from_u64(1);
    for round in 0..3 {
        for i in 0..1500u32 {
            clock.advance(1000);
            let key = format!("k{}", i % 700).into_bytes();
            let value: Vec<u8> = (0..rng.gen_range(20..200))
                .map(|_| rng.gen_range(b'a'..=b'z'))
                .collect();
            let shard = t.shard_for(&key);
            t.shards[shard]
                .log
                .append(vec![Record::put(key, value)])
                .unwrap();
        }
        if round == 1 {
            for k in 0..2 {
                checkpoint_shard(&t, k, clock.now_us_for_test(), 1).unwrap();
            }
        }
    }
    drop(t);
    db.shutdown();
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "LOCK") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

type Contents = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

/// Opens the directory and reads every key, or says why it would not open.
fn open_and_read(dir: &Path) -> Result<Contents, String> {
    let clock = ManualClock::new(T0 + 10_000_000_000);
    let (db, _) = Db::open(dir, engine(), Arc::new(clock)).map_err(|e| e.to_string())?;
    let t = db.table("default").unwrap();
    let mut out = Contents::new();
    for s in &t.shards {
        s.map.for_each(|k, v| {
            out.insert(k.to_vec(), v.to_vec());
        });
    }
    drop(t);
    db.shutdown();
    Ok(out)
}

#[test]
fn every_flipped_byte_is_found_and_none_is_served() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let clean = open_and_read(dir.path()).unwrap();
    assert_eq!(clean.len(), 700);
    let files = data_files(dir.path());
    let kinds = |ext: &str| {
        files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .count()
    };
    assert!(
        kinds(".seg") >= 4 && kinds(".idx") >= 2 && kinds(".ckp") == 2,
        "{files:?}"
    );
    // The spare segment files (`next.seg-prepared`, 1 MiB of zeros each) would take most
    // flips by size: only their first 8 KiB (header page and the one after) are picked from.
    let sizes: Vec<u64> = files
        .iter()
        .map(|p| {
            let len = std::fs::metadata(p).unwrap().len();
            if p.to_string_lossy().ends_with("seg-prepared") {
                len.min(8 << 10)
            } else {
                len
            }
        })
        .collect();
    let total: u64 = sizes.iter().sum();
    let mut rng = SmallRng::seed_from_u64(2026);
    let (mut flips, mut refused, mut served_clean) = (0, 0, 0);
    for round in 0..150 {
        // A random byte of a random file, weighted by size.
        let mut at = rng.gen_range(0..total);
        let i = sizes
            .iter()
            .position(|&s| {
                if at < s {
                    true
                } else {
                    at -= s;
                    false
                }
            })
            .unwrap();
        let path = &files[i];
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        let bit = 1u8 << rng.gen_range(0..8);
        f.write_all_at(&[b[0] ^ bit], at).unwrap();
        let report = rewind::cli::verify(dir.path()).unwrap();
        assert!(
            !report.damage.is_empty(),
            "round {round}: flip at {} byte {at} not found",
            path.display()
        );
        flips += 1;
        // Every fifth flip: start-up refuses, or serves exactly the clean contents.
        if round % 5 == 0 {
            match open_and_read(dir.path()) {
                Err(_) => refused += 1,
                Ok(got) => {
                    assert!(
                        got == clean,
                        "round {round}: start-up served damage from {} at {at}",
                        path.display()
                    );
                    served_clean += 1;
                }
            }
        }
        f.write_all_at(&b, at).unwrap();
    }
    assert!(rewind::cli::verify(dir.path()).unwrap().damage.is_empty());
    eprintln!(
        "{flips} flips, all found by verify; start-up refused {refused} and served clean contents {served_clean} times"
    );
    assert!(refused > 0, "no flip hit a file start-up reads");
}

/// A checkpoint whose checksums hold but which names a key twice is refused at start-up (on
/// more than one loading thread, their order would decide which value won; the refusal holds
/// on one thread too: `map::load`'s unit test runs both).
#[test]
fn a_checkpoint_holding_a_key_twice_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let ckp = data_files(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "ckp"))
        .expect("build wrote checkpoints");
    assert!(open_and_read(dir.path()).is_ok(), "opens before the change");
    let header = rewind::log::checkpoint::read_header(&ckp).unwrap();
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let shard: u32 = header.shard;
    rewind::log::checkpoint::read(&ckp, header.table_id, shard, |k, v| {
        entries.push((k.to_vec(), v.to_vec()))
    })
    .unwrap();
    assert!(entries.len() > 10);
    let repeat = (entries[3].0.clone(), b"another value".to_vec());
    entries.push(repeat);
    let (path, _) = rewind::log::checkpoint::write(
        ckp.parent().unwrap(),
        &header,
        1,
        entries.iter().map(|(k, v)| (k, v)),
    )
    .unwrap();
    assert_eq!(path, ckp, "the same file, replaced");
    let err = open_and_read(dir.path()).unwrap_err();
    assert!(err.contains("a key repeats"), "{err}");
    assert!(
        err.contains(&ckp.display().to_string()),
        "names the file: {err}"
    );
}
