//! A lost or damaged catalog never costs a table: start-up refuses and names the way out,
//! `rewind recover-catalog` rebuilds the catalog from each table directory's `table.meta`,
//! and a directory no catalog names is moved to `lost+found/`, never deleted.

mod common;

use std::path::Path;
use std::process::Command;

use common::{start, try_start, Client, Value};

fn rewind(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .output()
        .expect("run rewind");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn recover(dir: &Path) -> (bool, String) {
    rewind(&["recover-catalog", "--data-dir", dir.to_str().unwrap()])
}

/// Every entry under `dir`, as relative paths with sizes: what "nothing was changed" means.
fn tree(dir: &Path) -> Vec<(String, u64)> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.push((rel, 0));
                walk(root, &path, out);
            } else if rel != "LOCK" {
                out.push((rel, e.metadata().unwrap().len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn fill(c: &mut Client, table: &str, prefix: &str, n: usize) {
    c.cmd(&["TABLE.USE", table]);
    for i in 0..n {
        c.send(&[
            b"SET",
            format!("k{i}").as_bytes(),
            format!("{prefix}{i}").as_bytes(),
        ]);
    }
    for _ in 0..n {
        assert_eq!(c.read(), Value::ok());
    }
}

fn get(c: &mut Client, table: &str, key: &str) -> Value {
    c.cmd(&["TABLE.USE", table]);
    c.cmd(&["GET", key])
}

#[test]
fn a_missing_catalog_stops_start_up_and_recover_catalog_brings_every_table_back() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "orders"]);
    c.cmd(&["TABLE.CREATE", "scratch"]);
    c.cmd(&["TABLE.CREATE", "gone"]);
    c.cmd(&["PITR.ENABLE", "orders", "DAYS", "7"]);
    c.cmd(&["PITR.ENABLE", "gone", "DAYS", "3"]);
    fill(&mut c, "orders", "a", 300);
    fill(&mut c, "scratch", "s", 50);
    fill(&mut c, "gone", "g", 20);
    fill(&mut c, "default", "d", 10);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t = c
        .cmd(&["PITR.DESCRIBE", "orders"])
        .field("latest_restorable_unix_us")
        .as_int();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fill(&mut c, "orders", "b", 300);
    c.cmd(&["TABLE.USE", "default"]);
    assert_eq!(c.cmd(&["TABLE.DROP", "gone"]), Value::ok());
    let before = c.cmd(&["PITR.DESCRIBE", "orders"]);
    drop(c);
    assert!(srv.stop().success());

    std::fs::rename(dir.path().join("catalog"), dir.path().join("catalog.moved")).unwrap();
    let files = tree(dir.path());
    let err = match try_start(dir.path(), "auto", &[]) {
        Ok(_) => panic!("started without a catalog"),
        Err(e) => e,
    };
    assert!(
        err.contains("catalog") && err.contains("missing") && err.contains("recover-catalog"),
        "{err}"
    );
    assert_eq!(tree(dir.path()), files, "a refused start changed nothing");
    // The offline restore takes the same path.
    let (ok, text) = rewind(&[
        "restore",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--source",
        "orders",
        "--target",
        "x",
        "--latest",
    ]);
    assert!(!ok && text.contains("recover-catalog"), "{text}");
    assert_eq!(tree(dir.path()), files);

    let (ok, text) = recover(dir.path());
    assert!(ok, "{text}");
    for name in ["orders", "scratch", "default", "gone"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(
        text.contains("DROPPED") && text.contains("PITR 7 days"),
        "{text}"
    );
    // A second run finds a readable catalog and refuses.
    let (ok, text) = recover(dir.path());
    assert!(!ok && text.contains("nothing to recover"), "{text}");

    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    let mut names = c.cmd(&["TABLE.LIST"]);
    if let Value::Array(v) = &mut names {
        v.sort_by_key(|v| format!("{v:?}"));
    }
    assert_eq!(
        names,
        Value::Array(vec![
            Value::bulk("default"),
            Value::bulk("orders"),
            Value::bulk("scratch")
        ])
    );
    assert_eq!(get(&mut c, "orders", "k299"), Value::bulk("b299"));
    assert_eq!(get(&mut c, "scratch", "k49"), Value::bulk("s49"));
    assert_eq!(get(&mut c, "default", "k9"), Value::bulk("d9"));
    // Every restorable moment is back: the same window, and a restore into it is exact.
    let after = c.cmd(&["PITR.DESCRIBE", "orders"]);
    assert_eq!(
        after.field("earliest_restorable"),
        before.field("earliest_restorable")
    );
    assert_eq!(after.field("recovery_period_days"), Value::Int(7));
    c.cmd(&["TABLE.USE", "default"]);
    let at = format!("{}.{:06}", t / 1_000_000, t % 1_000_000);
    let r = c.cmd(&["PITR.RESTORE", "orders", "orders_t", "AT", &at, "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{r:?}");
    assert_eq!(get(&mut c, "orders_t", "k299"), Value::bulk("a299"));
    // The dropped table is still restorable by name.
    c.cmd(&["TABLE.USE", "default"]);
    let r = c.cmd(&["PITR.RESTORE", "gone", "gone_back", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{r:?}");
    assert_eq!(get(&mut c, "gone_back", "k19"), Value::bulk("g19"));
    // New tables never reuse an id.
    c.cmd(&["TABLE.USE", "default"]);
    c.cmd(&["TABLE.CREATE", "fresh"]);
    let ids: Vec<i64> = [
        "default",
        "orders",
        "scratch",
        "orders_t",
        "gone_back",
        "fresh",
    ]
    .iter()
    .map(|n| c.cmd(&["TABLE.DESCRIBE", n]).field("id").as_int())
    .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[test]
fn a_damaged_catalog_is_refused_and_kept_when_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "orders"]);
    fill(&mut c, "orders", "a", 10);
    drop(c);
    assert!(srv.stop().success());
    let path = dir.path().join("catalog");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = try_start(dir.path(), "auto", &[]).err().expect("refused");
    assert!(
        err.contains("damaged") && err.contains("recover-catalog"),
        "{err}"
    );
    let (ok, text) = recover(dir.path());
    assert!(ok && text.contains("kept as"), "{text}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("catalog.damaged-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read(kept[0].path()).unwrap(),
        bytes,
        "kept byte for byte"
    );
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(get(&mut c, "orders", "k9"), Value::bulk("a9"));
}

#[test]
fn directories_no_catalog_names_are_moved_aside_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "keep"]);
    fill(&mut c, "keep", "k", 5);
    drop(c);
    assert!(srv.stop().success());
    // A directory left by a crash mid-create (no metadata), with a file in it.
    let orphan = dir.path().join("tables").join("99");
    std::fs::create_dir_all(orphan.join("shard-0")).unwrap();
    std::fs::write(orphan.join("shard-0").join("precious"), b"data").unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(get(&mut c, "keep", "k4"), Value::bulk("k4"));
    assert!(!orphan.exists());
    let lost: Vec<_> = std::fs::read_dir(dir.path().join("lost+found"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("table-99-"));
    assert_eq!(
        std::fs::read(lost[0].join("shard-0").join("precious")).unwrap(),
        b"data"
    );
    // Ids are not reused after it either, even when the catalog is rebuilt.
    drop(c);
    assert!(srv.stop().success());
    std::fs::remove_file(dir.path().join("catalog")).unwrap();
    let (ok, text) = recover(dir.path());
    assert!(ok, "{text}");
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "newer"]);
    assert!(c.cmd(&["TABLE.DESCRIBE", "newer"]).field("id").as_int() > 99);
}

#[test]
fn table_metadata_is_written_for_old_data_directories_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.CREATE", "one"]);
    c.cmd(&["TABLE.CREATE", "two"]);
    let id_two = c.cmd(&["TABLE.DESCRIBE", "two"]).field("id").as_int();
    drop(c);
    assert!(srv.stop().success());
    // A data directory from before table.meta existed: start-up writes them.
    let metas: Vec<_> = glob_meta(dir.path());
    assert_eq!(metas.len(), 3);
    for m in &metas {
        std::fs::remove_file(m).unwrap();
    }
    let srv = start(dir.path(), "auto", &[]);
    assert_eq!(glob_meta(dir.path()).len(), 3);
    drop(srv);
    // A damaged table.meta: that table is reported, the others recovered.
    let two = dir
        .path()
        .join("tables")
        .join(id_two.to_string())
        .join("table.meta");
    let mut b = std::fs::read(&two).unwrap();
    b[12] ^= 1;
    std::fs::write(&two, b).unwrap();
    std::fs::remove_file(dir.path().join("catalog")).unwrap();
    let (ok, text) = recover(dir.path());
    assert!(
        !ok && text.contains("no readable metadata") && text.contains("--force"),
        "{text}"
    );
    assert!(
        !dir.path().join("catalog").exists(),
        "a refused recovery writes nothing"
    );
    let data_dir = dir.path().to_str().unwrap();
    let (ok, text) = rewind(&["recover-catalog", "--force", "--data-dir", data_dir]);
    assert!(ok, "{text}");
    assert!(
        text.contains("not recovered") && text.contains("checksum"),
        "{text}"
    );
    assert!(text.contains("one") && !text.contains(" two "), "{text}");
}

fn glob_meta(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("tables"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("table.meta"))
        .filter(|p| p.exists())
        .collect()
}
