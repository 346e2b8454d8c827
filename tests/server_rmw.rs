//! Read-modify-writes take their place in the shard's commit order: `INCR` is linearizable
//! with `SET` (and every other write to the key), and two `DEL`s of one key never both count it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{start, Value};

/// Four clients loop `INCR k` while a fifth sets `k` to 1e9, 2e9, 3e9 ... now and then, on two
/// net threads. Every INCR sent after the reply to "SET k i*1e9" must return more than i*1e9
/// (values only grow between SETs, and each SET is larger than the last). Before the fix,
/// INCR read and wrote under a lock SET took no part in, and returned small numbers long after
/// the SET's reply.
fn incr_races_set(seed: u64, io: &str) -> (usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &["--net-threads", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    // (send time, result) of every INCR.
    let incrs: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for _ in 0..4 {
        let (mut c, stop, incrs, count) =
            (srv.client(), stop.clone(), incrs.clone(), count.clone());
        threads.push(std::thread::spawn(move || {
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                mine.push((sent, c.cmd(&["INCR", "k"]).as_int()));
                count.fetch_add(1, Ordering::Relaxed);
            }
            incrs.lock().unwrap().extend(mine);
        }));
    }
    // (reply time, value) of every SET.
    let mut sets: Vec<(Instant, i64)> = Vec::new();
    let mut c = srv.client();
    let mut rng = seed;
    // At least 1.5 s, and on until enough ran however slow the machine (at most 60 s).
    let (start, mut i) = (Instant::now(), 0);
    while start.elapsed() < Duration::from_millis(1500)
        || (start.elapsed() < Duration::from_secs(60)
            && (i < 20 || count.load(Ordering::Relaxed) < 200))
    {
        // xorshift: 0-3 ms between SETs, different for each seed.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 3000));
        i += 1;
        let v = i * 1_000_000_000;
        assert_eq!(c.cmd(&["SET", "k", &v.to_string()]), Value::ok());
        sets.push((Instant::now(), v));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let incrs = incrs.lock().unwrap();
    let mut violations = 0;
    for &(sent, got) in incrs.iter() {
        // The newest SET acknowledged before this INCR was sent.
        if let Some(&(_, v)) = sets.iter().rev().find(|(acked, _)| *acked < sent) {
            if got <= v {
                violations += 1;
            }
        }
    }
    (incrs.len(), sets.len(), violations)
}

#[test]
fn incr_is_linearizable_with_set() {
    // Writer threads commit (the default), then each net thread commits its own writes.
    for (seed, io) in [(1, "auto"), (7, "inline"), (42, "auto"), (43, "inline")] {
        let (incrs, sets, violations) = incr_races_set(seed, io);
        eprintln!("seed {seed} ({io}): {incrs} INCRs, {sets} SETs, {violations} out of order");
        assert!(
            incrs > 100 && sets > 10,
            "too little ran: {incrs} INCRs, {sets} SETs"
        );
        assert_eq!(
            violations, 0,
            "seed {seed}: INCRs that missed an acknowledged SET"
        );
    }
}

#[test]
fn concurrent_dels_of_one_key_count_it_once() {
    for io in ["auto", "inline"] {
        concurrent_dels(io);
    }
}

fn concurrent_dels(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &["--net-threads", "2"]);
    let mut setter = srv.client();
    let (mut a, mut b) = (srv.client(), srv.client());
    for round in 0..200 {
        setter.cmd(&["SET", "k", "v"]);
        let ta = std::thread::spawn(move || {
            let n = a.cmd(&["DEL", "k", "k"]).as_int();
            (a, n)
        });
        let nb = b.cmd(&["DEL", "k"]).as_int();
        let (back, na) = ta.join().unwrap();
        a = back;
        assert_eq!(na + nb, 1, "round {round}: DELs counted {na} and {nb}");
    }
}

#[test]
fn incr_errors_and_results_are_as_in_redis() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["INCR", "n"]), Value::Int(1));
    assert_eq!(c.cmd(&["INCRBY", "n", "41"]), Value::Int(42));
    assert_eq!(c.cmd(&["DECR", "n"]), Value::Int(41));
    assert_eq!(c.cmd(&["GET", "n"]), Value::bulk("41"));
    c.cmd(&["SET", "s", "abc"]);
    assert!(c.cmd(&["INCR", "s"]).err_text().contains("not an integer"));
    assert_eq!(
        c.cmd(&["GET", "s"]),
        Value::bulk("abc"),
        "a failed INCR writes nothing"
    );
    c.cmd(&["SET", "m", &i64::MAX.to_string()]);
    assert!(c.cmd(&["INCR", "m"]).err_text().contains("overflow"));
    // Pipelined: a SET then INCRs of the same key, in order.
    c.send(&[b"SET", b"p", b"10"]);
    c.send(&[b"INCR", b"p"]);
    c.send(&[b"INCRBY", b"p", b"5"]);
    c.send(&[b"GET", b"p"]);
    assert_eq!(c.read(), Value::ok());
    assert_eq!(c.read(), Value::Int(11));
    assert_eq!(c.read(), Value::Int(16));
    assert_eq!(c.read(), Value::bulk("16"));
    assert_eq!(c.cmd(&["DEL", "p", "nope", "p"]), Value::Int(1));
    // The results survive a restart: INCR is logged as a SET of its result.
    drop(c);
    assert!(srv.stop().success());
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["GET", "n"]), Value::bulk("41"));
    assert_eq!(c.cmd(&["EXISTS", "p"]), Value::Int(0));
}
