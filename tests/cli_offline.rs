//! The offline tools on a real data directory: `rewind restore`, `inspect`, `verify`.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{start, Value};

fn rewind(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A data directory with a PITR table, a closed segment (small segments), a checkpoint (a
/// restore's), written and cleanly stopped. Returns a time between two phases of writes.
fn fill(dir: &Path) -> String {
    let srv = start(dir, "epoll", &["--segment-mib", "1", "--shards", "1"]);
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    // Incompressible values, so 1 MiB segments fill and close.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = || {
        (0..250)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:08x}", x as u32)
            })
            .collect::<String>()
    };
    for n in 0..2000 {
        let i = n % 400;
        c.cmd(&["SET", &format!("k{i}"), &format!("{i}-{}", noise())]);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    let t = common::writers::now_us();
    std::thread::sleep(std::time::Duration::from_millis(5));
    for i in 0..400 {
        c.cmd(&["SET", &format!("k{i}"), "later"]);
    }
    let r = c.cmd(&["PITR.RESTORE", "default", "copy", "LATEST", "SYNC"]);
    assert_eq!(r.field("status"), Value::bulk("ACTIVE"));
    drop(c);
    assert!(srv.stop().success());
    format!("{}.{:06}", t / 1_000_000, t % 1_000_000)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn offline_restore_inspect_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let t = fill(dir.path());
    let d = dir.path().to_str().unwrap();
    let (ok, out) = rewind(&[
        "restore",
        "--data-dir",
        d,
        "--source",
        "default",
        "--target",
        "offline",
        "--at",
        &t,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("400 items"), "{out}");
    let srv = start(dir.path(), "epoll", &[]);
    let mut c = srv.client();
    c.cmd(&["TABLE.USE", "offline"]);
    let Value::Bulk(v) = c.cmd(&["GET", "k7"]) else {
        panic!()
    };
    assert!(v.starts_with(b"7-"), "the phase-one value");
    // With the server up, the offline tools refuse: the directory is locked.
    let (ok, out) = rewind(&["verify", "--data-dir", d]);
    assert!(
        !ok && out.contains("in use by another rewind process"),
        "{out}"
    );
    drop(c);
    assert!(srv.stop().success());

    let (ok, out) = rewind(&["inspect", "--data-dir", d]);
    assert!(ok, "{out}");
    for want in [
        "table default",
        "PITR 35 days",
        "segments",
        "second markers",
        "checkpoint ckp-",
    ] {
        assert!(out.contains(want), "inspect lacks {want}:\n{out}");
    }
    let (ok, out) = rewind(&["verify", "--data-dir", d]);
    assert!(ok && out.contains("0 damaged"), "{out}");
    assert!(
        !files(dir.path(), "idx").is_empty(),
        "a closed segment has an index"
    );
}

#[test]
fn verify_names_the_damaged_file_and_offset_for_every_kind_of_file() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let d = dir.path().to_str().unwrap();
    let kinds = [
        files(dir.path(), "seg")[0].clone(),
        files(dir.path(), "idx")[0].clone(),
        files(dir.path(), "ckp")[0].clone(),
        dir.path().join("catalog"),
    ];
    for path in kinds {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let at = f.metadata().unwrap().len() / 2;
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
        let (ok, out) = rewind(&["verify", "--data-dir", d]);
        assert!(!ok, "flip in {} not found:\n{out}", path.display());
        assert!(
            out.contains(path.file_name().unwrap().to_str().unwrap()),
            "{out}"
        );
        f.write_all_at(&b, at).unwrap();
        assert!(
            rewind(&["verify", "--data-dir", d]).0,
            "repaired file still reported"
        );
    }
}

#[test]
fn offline_history_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "epoll", &[]);
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    assert_eq!(c.cmd(&["SET", "a", "1"]), Value::ok());
    std::thread::sleep(std::time::Duration::from_millis(5));
    let t1 = common::writers::now_us();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(c.cmd(&["SET", "a", "2"]), Value::ok());
    assert_eq!(c.cmd(&["SET", "b", "x y"]), Value::ok());
    let t2 = common::writers::now_us();
    drop(c);
    assert!(srv.stop().success());
    let d = dir.path().to_str().unwrap();
    let (ok, out) = rewind(&[
        "history",
        "--data-dir",
        d,
        "--table",
        "default",
        "--key",
        "a",
    ]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" set ")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with(" set 2") && lines[1].ends_with(" set 1"),
        "{out}"
    );
    let at = |t: u64| format!("{}.{:06}", t / 1_000_000, t % 1_000_000);
    let (ok, out) = rewind(&[
        "diff",
        "--data-dir",
        d,
        "--table",
        "default",
        "--from",
        &at(t1),
        "--to",
        &at(t2),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("a 1 2\n") && out.contains("b (none) x y\n"),
        "{out}"
    );
    let (ok, out) = rewind(&[
        "history",
        "--data-dir",
        d,
        "--table",
        "nosuch",
        "--key",
        "a",
    ]);
    assert!(!ok && out.contains("does not exist"), "{out}");
}
