//! The randomized PITR oracle (seeded; a failure names its seed): writers over disjoint keys
//! record send and acknowledgement times; for many random T, the restored table holds for
//! every key the last write acknowledged before T or one in flight at T, and nothing else.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::writers::{check_restored, now_us, writer, History};
use common::{start, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn oracle(seed: u64, io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &[]);
    let mut c = srv.client();
    c.cmd(&["PITR.ENABLE", "default"]);
    let t0 = now_us();
    let stop = Arc::new(AtomicBool::new(false));
    let port = srv.port;
    let ws: Vec<_> = (0..5)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(port, "default", w, 25, seed, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let mut h = History::default();
    for w in ws {
        h.merge(w.join().unwrap());
    }
    let t1 = now_us();
    let mut rng = SmallRng::seed_from_u64(seed);
    for i in 0..12 {
        let t = rng.gen_range(t0..t1);
        let name = format!("oracle{i}");
        let at = format!("{}.{:06}", t / 1_000_000, t % 1_000_000);
        let r = c.cmd(&["PITR.RESTORE", "default", &name, "AT", &at, "SYNC"]);
        assert_eq!(
            r.field("status"),
            Value::bulk("ACTIVE"),
            "seed {seed}: {r:?}"
        );
        check_restored(
            &mut c,
            &name,
            t,
            &h,
            &format!("seed {seed}, io {io}, T={t}"),
        );
    }
}

#[test]
fn random_times_restore_exactly_across_seeds() {
    for (seed, io) in [
        (101, "mixed"),
        (202, "epoll"),
        (303, "uring"),
        (404, "inline"),
    ] {
        oracle(seed, io);
    }
}
