//! Start-up recovery through the real server: a torn tail is cut and logged, damage in the
//! middle of a log stops the server with the file and offset.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{start, try_start, Value};

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir.join("tables/1")).unwrap() {
        let shard = shard.unwrap().path();
        if !shard.is_dir() {
            continue; // table.meta
        }
        for f in std::fs::read_dir(shard).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "seg")
                && std::fs::metadata(&p).unwrap().len() > 64
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn fill(dir: &Path) {
    let srv = start(dir, "epoll", &["--shards", "1"]);
    let mut c = srv.client();
    for i in 0..50 {
        assert_eq!(
            c.cmd(&["SET", &format!("k{i}"), &format!("value-{i}")]),
            Value::ok()
        );
    }
    drop(c);
    assert!(srv.stop().success());
}

#[test]
fn torn_tail_is_cut_and_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let seg = segments(dir.path()).remove(0);
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let srv = start(dir.path(), "epoll", &[]);
    let mut c = srv.client();
    assert_eq!(
        c.cmd(&["DBSIZE"]).as_int(),
        49,
        "only the torn last write is gone"
    );
    assert_eq!(c.cmd(&["GET", "k48"]), Value::bulk("value-48"));
    assert_eq!(c.cmd(&["GET", "k49"]), Value::Null);
}

#[test]
fn damage_mid_file_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let seg = segments(dir.path()).remove(0);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, 200).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], 200).unwrap();
    let out = try_start(dir.path(), "epoll", &[])
        .err()
        .expect("must refuse to start");
    assert!(out.contains(seg.to_str().unwrap()), "{out}");
    assert!(out.contains("damaged at offset"), "{out}");
}

#[test]
fn damaged_catalog_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let cat = dir.path().join("catalog");
    let mut bytes = std::fs::read(&cat).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&cat, bytes).unwrap();
    let out = try_start(dir.path(), "epoll", &[])
        .err()
        .expect("must refuse to start");
    assert!(
        out.contains("catalog") && out.contains("checksum mismatch"),
        "{out}"
    );
}

#[test]
fn tolerant_recovery_starts_and_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let seg = segments(dir.path()).remove(0);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, 200).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], 200).unwrap();
    let srv = start(dir.path(), "epoll", &["--recovery", "tolerant"]);
    let mut c = srv.client();
    let n = c.cmd(&["DBSIZE"]).as_int();
    assert!(
        (45..50).contains(&n),
        "expected one lost write, have {n} keys"
    );
    assert_eq!(c.cmd(&["SET", "after", "damage"]), Value::ok());
    drop(c);
    assert!(srv.stop().success());
    let srv = start(dir.path(), "epoll", &["--recovery", "tolerant"]);
    assert_eq!(srv.client().cmd(&["GET", "after"]), Value::bulk("damage"));
}
