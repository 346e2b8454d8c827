//! Crash safety: writers run, the server is killed with SIGKILL, restarted on the same
//! directory; every acknowledged write is present with its last acknowledged value (or a later
//! one that was in flight), and nothing that was never sent appears.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::resp::encode;
use common::{start, Client, Value, IO_MODES};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WRITERS: u64 = 6;
const KEYS_PER_WRITER: u64 = 40;

/// Per key: the last acknowledged value and every value sent after it (in flight).
#[derive(Default, Clone)]
struct KeyModel {
    acked: Option<u64>,
    in_flight: Vec<u64>,
}

/// A writer owns its keys; it pipelines a few SETs (and some DELs), records what it sent,
/// and moves values from in-flight to acknowledged as replies arrive.
fn writer(
    port: u16,
    w: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    model: Arc<Mutex<HashMap<String, KeyModel>>>,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ (w << 32));
    let mut c = Client::connect(port);
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<(String, u64)> = (0..rng.gen_range(1..8))
            .map(|_| {
                counter += 1;
                let key = format!("w{w}:k{}", rng.gen_range(0..KEYS_PER_WRITER));
                // Value 0 stands for a delete.
                let v = if rng.gen_ratio(1, 10) { 0 } else { counter };
                (key, v)
            })
            .collect();
        let mut wire = Vec::new();
        {
            let mut m = model.lock().unwrap();
            for (k, v) in &batch {
                m.entry(k.clone()).or_default().in_flight.push(*v);
                wire.extend(if *v == 0 {
                    encode(&[b"DEL", k.as_bytes()])
                } else {
                    encode(&[b"SET", k.as_bytes(), format!("{v}").as_bytes()])
                });
            }
        }
        c.send_raw(&wire);
        for (k, v) in &batch {
            match c.try_read() {
                Ok(Value::Error(e)) => panic!("write refused: {e}"),
                Ok(_) => {
                    let mut m = model.lock().unwrap();
                    let e = m.get_mut(k).unwrap();
                    // Acknowledged: this value and everything sent before it on this key.
                    let pos = e.in_flight.iter().position(|x| x == v).unwrap();
                    e.in_flight.drain(..=pos);
                    e.acked = Some(*v);
                }
                Err(_) => return, // the server died
            }
        }
    }
}

fn crash_round(
    io: &str,
    seed: u64,
    dir: &std::path::Path,
    model: &Arc<Mutex<HashMap<String, KeyModel>>>,
) {
    let srv = start(dir, io, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, model) = (stop.clone(), model.clone());
            let port = srv.port;
            std::thread::spawn(move || writer(port, w, seed, stop, model))
        })
        .collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    std::thread::sleep(Duration::from_millis(rng.gen_range(150..600)));
    srv.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

fn check(io: &str, seed: u64, dir: &std::path::Path, model: &Mutex<HashMap<String, KeyModel>>) {
    let srv = start(dir, io, &[]);
    let mut c = srv.client();
    let mut m = model.lock().unwrap();
    let mut acked_total = 0;
    for w in 0..WRITERS {
        for k in 0..KEYS_PER_WRITER {
            let key = format!("w{w}:k{k}");
            let got = match c.cmd(&["GET", &key]) {
                Value::Null => 0,
                Value::Bulk(b) => String::from_utf8(b).unwrap().parse::<u64>().unwrap(),
                other => panic!("{other:?}"),
            };
            let e = m.entry(key.clone()).or_default();
            let allowed = e.acked.unwrap_or(0) == got || e.in_flight.contains(&got);
            assert!(
                allowed,
                "io {io} seed {seed}: {key} = {got}, last acked {:?}, in flight {:?}",
                e.acked, e.in_flight
            );
            acked_total += e.acked.is_some() as usize;
            // What the server has now is the new truth for the next round.
            e.acked = Some(got);
            e.in_flight.clear();
        }
    }
    assert!(acked_total > 0, "no write was acknowledged before the kill");
    assert_eq!(c.cmd(&["EXISTS", "never-sent"]).as_int(), 0);
    drop(c);
    assert!(srv.stop().success());
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    for io in IO_MODES {
        for seed in [11, 12, 13] {
            let dir = tempfile::tempdir().unwrap();
            let model = Arc::new(Mutex::new(HashMap::new()));
            // Two crashes on the same directory, checking after each.
            for round in 0..2 {
                crash_round(io, seed + round * 100, dir.path(), &model);
                check(io, seed, dir.path(), &model);
            }
        }
    }
}
