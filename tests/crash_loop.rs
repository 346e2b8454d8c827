//! The crash loop: rounds of mixed writes (SET and DEL pipelines from several connections)
//! with PITR on, the server killed with SIGKILL at a random moment, restarted on the same
//! directory. After every restart: every acknowledged write is there (writes in flight at the
//! kill may or may not be), a restore to a random earlier time (across earlier crashes) is
//! exact, and a restore that was running when the server died finishes exactly.
//!
//! Rounds: `REWIND_CRASH_ROUNDS` (default 6, CI); the documented full run is
//! `REWIND_CRASH_ROUNDS=30 cargo test --test crash_loop -- --nocapture`. Seed:
//! `REWIND_CRASH_SEED` (default 7); a failure names round and seed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::writers::{check_restored, now_us, read_keys, History};
use common::{start, Client, Value, IO_MODES};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WRITERS: usize = 4;
const KEYS_PER_WRITER: u64 = 30;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn at(t: u64) -> String {
    format!("{}.{:06}", t / 1_000_000, t % 1_000_000)
}

/// Waits for a restore to leave RESTORING; panics if it fails or takes over a minute.
fn wait_active(c: &mut Client, table: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = c.cmd(&["TABLE.DESCRIBE", table]);
        match d.field("status") {
            v if v == Value::bulk("ACTIVE") => return,
            v if v == Value::bulk("RESTORING") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => panic!("{what}: restore of {table} did not finish: {d:?}"),
        }
    }
}

/// The newest time a restore may name: some acknowledged write was sent then, so a commit at
/// or after it exists.
fn newest_restorable(h: &History) -> u64 {
    h.keys
        .values()
        .flatten()
        .map(|w| w.sent_us)
        .max()
        .unwrap_or(0)
}

#[test]
fn sigkill_rounds_keep_every_acknowledged_write_and_every_restore_exact() {
    let rounds = env_u64("REWIND_CRASH_ROUNDS", 6);
    let seed = env_u64("REWIND_CRASH_SEED", 7);
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--checkpoint-secs", "1", "--maintenance-secs", "1"];
    let mut h = History::default();
    let mut t_start = 0;
    let mut kill_us = 0;
    // A restore started just before a kill: (target, time).
    let mut pending: Option<(String, u64)> = None;
    let mut restores_checked = 0;
    // Writes cut off by a kill, and how many of them had been committed.
    let (mut in_flight, mut in_flight_committed) = (0, 0);
    for round in 0..=rounds {
        let what = format!("seed {seed} round {round}");
        let io = IO_MODES[round as usize % IO_MODES.len()];
        let srv = start(dir.path(), io, &flags);
        let mut c = srv.client();
        if round == 0 {
            assert_eq!(c.cmd(&["PITR.ENABLE", "default"]), Value::ok());
            t_start = now_us();
        } else {
            // Settle the writes the kill cut off by what survived; nothing acked is lost.
            let current = read_keys(&mut c, "default", &h);
            let count = |h: &History, us: u64| {
                h.keys
                    .values()
                    .flatten()
                    .filter(|w| w.acked_us == us)
                    .count()
            };
            let unacked = count(&h, rewind_loadgen::verify::NEVER_ACKED);
            let lost = h.resolve_in_flight(kill_us, |k| current[k].clone());
            in_flight += unacked;
            in_flight_committed += count(&h, kill_us);
            assert!(lost.is_empty(), "{what}: {lost:?}");
            assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());
            if let Some((target, t)) = pending.take() {
                wait_active(&mut c, &target, &what);
                check_restored(&mut c, &target, t, &h, &format!("{what}, resumed restore"));
                assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());
                restores_checked += 1;
            }
            let newest = newest_restorable(&h);
            if newest > t_start {
                let t = rng.gen_range(t_start..=newest);
                let target = format!("restore{round}");
                let r = c.cmd(&["PITR.RESTORE", "default", &target, "AT", &at(t), "SYNC"]);
                assert_eq!(r.field("status"), Value::bulk("ACTIVE"), "{what}: {r:?}");
                check_restored(&mut c, &target, t, &h, &format!("{what}, restore"));
                assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());
                restores_checked += 1;
                assert_eq!(c.cmd(&["TABLE.DROP", &target]), Value::ok());
            }
        }
        if round == rounds {
            drop(c);
            assert!(srv.stop().success(), "{what}: unclean stop");
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let addr: std::net::SocketAddr = srv.addr().parse().unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let stop = stop.clone();
                let s = seed ^ (round << 8);
                std::thread::spawn(move || {
                    rewind_loadgen::verify::crash_writer(
                        addr,
                        "default".into(),
                        id,
                        KEYS_PER_WRITER,
                        s,
                        stop,
                    )
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..700)));
        // Half the rounds start a restore of a time before the round and die under it.
        if rng.gen_bool(0.5) {
            let newest = newest_restorable(&h);
            if newest > t_start {
                let t = rng.gen_range(t_start..=newest);
                let target = format!("pending{round}");
                let r = c.cmd(&["PITR.RESTORE", "default", &target, "AT", &at(t)]);
                assert!(!r.is_error(), "{what}: {r:?}");
                pending = Some((target, t));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        // Taken once the process is gone: nothing commits after it.
        srv.kill9();
        kill_us = now_us();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let part = w.join().unwrap().unwrap_or_else(|e| panic!("{what}: {e}"));
            h.merge(part);
        }
    }
    eprintln!(
        "crash loop: {rounds} SIGKILL rounds, {} writes, {in_flight} cut off by a kill \
         ({in_flight_committed} of them committed), {restores_checked} restores checked",
        h.writes()
    );
    assert!(h.writes() > 0 && restores_checked >= rounds as usize);
}
