//! A crash in the middle of a segment roll (run with `--features failpoints`): the server
//! aborts, as with SIGKILL, at each step of a roll (`roll_crash` in `log/failpoint.rs`);
//! restarted on the same directory it has every acknowledged write, with its last
//! acknowledged value (or one that was in flight), and nothing that was never sent.
#![cfg(feature = "failpoints")]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::resp::encode;
use common::{try_start_env, Client, Value, IO_MODES};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const KEYS: u64 = 64;
const VALUE_LEN: usize = 6 << 10;

/// Value `id`: its number, then bytes that do not compress, so 1 MiB segments fill fast.
fn value(id: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(id);
    let mut v = format!("{id}:").into_bytes();
    v.extend((0..VALUE_LEN).map(|_| rng.gen_range(b'a'..=b'z')));
    v
}

#[derive(Default)]
struct KeyModel {
    acked: Option<u64>,
    in_flight: Vec<u64>,
}

/// Writes pipelined SETs until the server goes away; returns the model and how many were
/// acknowledged. Panics if the server outlives `deadline`.
fn write_until_crash(port: u16, deadline: Duration) -> (HashMap<u64, KeyModel>, u64) {
    let mut model: HashMap<u64, KeyModel> = HashMap::new();
    let mut c = Client::connect(port);
    let began = Instant::now();
    let (mut id, mut acked) = (0u64, 0u64);
    loop {
        assert!(
            began.elapsed() < deadline,
            "the server did not reach the roll failpoint"
        );
        let batch: Vec<(u64, u64)> = (0..4)
            .map(|_| {
                id += 1;
                (id % KEYS, id)
            })
            .collect();
        let mut wire = Vec::new();
        for &(k, v) in &batch {
            model.entry(k).or_default().in_flight.push(v);
            wire.extend(encode(&[b"SET", format!("k{k}").as_bytes(), &value(v)]));
        }
        c.send_raw(&wire);
        for &(k, v) in &batch {
            match c.try_read() {
                Ok(Value::Error(e)) => panic!("write refused: {e}"),
                Ok(_) => {
                    let e = model.get_mut(&k).unwrap();
                    let pos = e.in_flight.iter().position(|&x| x == v).unwrap();
                    e.in_flight.drain(..=pos);
                    e.acked = Some(v);
                    acked += 1;
                }
                Err(_) => return (model, acked),
            }
        }
    }
}

fn check(port: u16, model: &HashMap<u64, KeyModel>, what: &str) {
    let mut c = Client::connect(port);
    for k in 0..KEYS {
        let got = match c.cmd(&["GET", &format!("k{k}")]) {
            Value::Null => None,
            Value::Bulk(b) => {
                let id: u64 = std::str::from_utf8(b.split(|&x| x == b':').next().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(b, value(id), "{what}: k{k} holds a damaged value");
                Some(id)
            }
            other => panic!("{what}: {other:?}"),
        };
        let e = model.get(&k);
        let allowed = match got {
            None => e.is_none_or(|e| e.acked.is_none()),
            Some(id) => e.is_some_and(|e| e.acked == Some(id) || e.in_flight.contains(&id)),
        };
        assert!(
            allowed,
            "{what}: k{k} = {got:?}, last acked {:?}, in flight {:?}",
            e.and_then(|e| e.acked),
            e.map(|e| &e.in_flight)
        );
    }
}

#[test]
fn a_crash_at_every_step_of_a_segment_roll_loses_no_acknowledged_write() {
    for io in IO_MODES {
        for step in 1..=4u32 {
            let what = format!("io {io}, roll_crash={step}");
            let dir = tempfile::tempdir().unwrap();
            // Steps 2 and 3 are reached when the first segment starts in a prepared file
            // too: let that one pass, so the crash comes in a roll with data before it.
            let skip = if step == 2 || step == 3 { 1 } else { 0 };
            let spec = format!("roll_crash={step},roll_crash_skip={skip}");
            let args = ["--segment-mib", "1", "--shards", "1"];
            let mut srv = try_start_env(dir.path(), io, &args, &[("REWIND_FAILPOINTS", &spec)])
                .unwrap_or_else(|e| panic!("{what}: server did not start: {e}"));
            let (model, acked) = write_until_crash(srv.port, Duration::from_secs(120));
            let status = srv.child.wait().unwrap();
            assert!(!status.success(), "{what}: {status:?}");
            let said: Vec<String> = srv.log.try_iter().collect();
            assert!(
                said.iter()
                    .any(|l| l.contains(&format!("failpoint roll_crash={step}: aborting"))),
                "{what}: the server died elsewhere: {said:?}"
            );
            assert!(acked > 0, "{what}: nothing was acknowledged");
            drop(srv);

            let srv = common::start(dir.path(), io, &args);
            check(srv.port, &model, &what);
            // The log goes on from where it was.
            let mut c = srv.client();
            assert_eq!(c.cmd_bytes(&[b"SET", b"after", &value(1)]), Value::ok());
            drop(c);
            assert!(srv.stop().success(), "{what}");
            let srv = common::start(dir.path(), io, &args);
            let mut c = srv.client();
            assert_eq!(
                c.cmd(&["GET", "after"]),
                Value::Bulk(value(1)),
                "{what}: a write after the crash"
            );
            check(srv.port, &model, &what);
            drop(c);
            assert!(srv.stop().success(), "{what}");
        }
    }
}
