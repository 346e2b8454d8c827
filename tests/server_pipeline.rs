//! Pipelining: 1000 mixed commands sent at once come back in order, each seeing the effect of
//! the ones before it; binary-safe keys and values.

mod common;

use common::resp::encode;
use common::{start, Value, IO_MODES};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// Sends 1000 random SET/GET/DEL/INCR/EXISTS/MGET commands in one write and checks every
/// reply against a model of what Redis would answer.
fn mixed_pipeline(io: &str, seed: u64, keys: u64) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &[]);
    let mut c = srv.client();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model: HashMap<String, String> = HashMap::new();
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        let key = format!("k{}", rng.gen_range(0..keys));
        match rng.gen_range(0..6) {
            0 | 1 => {
                let v = format!("v{i}");
                wire.extend(encode(&[b"SET", key.as_bytes(), v.as_bytes()]));
                model.insert(key, v);
                expected.push(Value::ok());
            }
            2 => {
                wire.extend(encode(&[b"GET", key.as_bytes()]));
                expected.push(model.get(&key).map(Value::bulk).unwrap_or(Value::Null));
            }
            3 => {
                wire.extend(encode(&[b"DEL", key.as_bytes()]));
                expected.push(Value::Int(model.remove(&key).is_some() as i64));
            }
            4 => {
                let key = format!("n{}", rng.gen_range(0..3));
                wire.extend(encode(&[b"INCR", key.as_bytes()]));
                let n = model
                    .get(&key)
                    .map(|v| v.parse::<i64>().unwrap())
                    .unwrap_or(0)
                    + 1;
                model.insert(key, n.to_string());
                expected.push(Value::Int(n));
            }
            _ => {
                let other = format!("k{}", rng.gen_range(0..keys));
                wire.extend(encode(&[b"MGET", key.as_bytes(), other.as_bytes()]));
                let get = |k: &String| model.get(k).map(Value::bulk).unwrap_or(Value::Null);
                expected.push(Value::Array(vec![get(&key), get(&other)]));
            }
        }
    }
    c.send_raw(&wire);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&c.read(), want, "reply {i} (io {io}, seed {seed})");
    }
    // And the final state, from a fresh connection.
    let mut d = srv.client();
    for (k, v) in &model {
        assert_eq!(d.cmd(&["GET", k]), Value::bulk(v), "seed {seed}");
    }
    assert_eq!(d.cmd(&["DBSIZE"]).as_int(), model.len() as i64);
}

#[test]
fn thousand_mixed_commands_in_one_pipeline() {
    for io in IO_MODES {
        // Few keys: reads mostly hit pending writes. Many keys: reads mostly run ahead of them.
        for (seed, keys) in [(1, 20), (2, 20), (3, 500)] {
            mixed_pipeline(io, seed, keys);
        }
    }
}

#[test]
fn binary_safe_keys_and_values() {
    for io in IO_MODES {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), io, &[]);
        let mut c = srv.client();
        let key: Vec<u8> = vec![0, b'\r', b'\n', 255, 0, b' ', b'*'];
        let mut rng = SmallRng::seed_from_u64(3);
        let big: Vec<u8> = (0..1 << 20).map(|_| rng.gen()).collect();
        let zeros = vec![0u8; 1000];
        assert_eq!(c.cmd_bytes(&[b"SET", &key, &big]), Value::ok());
        assert_eq!(c.cmd_bytes(&[b"SET", b"zeros", &zeros]), Value::ok());
        assert_eq!(c.cmd_bytes(&[b"SET", b"", b""]), Value::ok());
        assert_eq!(c.cmd_bytes(&[b"GET", &key]), Value::Bulk(big.clone()));
        assert_eq!(c.cmd_bytes(&[b"GET", b"zeros"]), Value::Bulk(zeros.clone()));
        assert_eq!(c.cmd_bytes(&[b"GET", b""]), Value::Bulk(vec![]));
        drop(c);
        assert!(srv.stop().success());
        let srv = start(dir.path(), io, &[]);
        let mut c = srv.client();
        assert_eq!(
            c.cmd_bytes(&[b"GET", &key]),
            Value::Bulk(big),
            "1 MiB value after restart"
        );
        assert_eq!(c.cmd_bytes(&[b"GET", b"zeros"]), Value::Bulk(zeros));
    }
}

#[test]
fn partial_frames_trickled_byte_by_byte() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "uring", &[]);
    let mut c = srv.client();
    let wire = [
        encode(&[b"SET", b"slow", b"value"]),
        encode(&[b"GET", b"slow"]),
    ]
    .concat();
    for b in wire {
        c.send_raw(&[b]);
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    assert_eq!(c.read(), Value::ok());
    assert_eq!(c.read(), Value::bulk("value"));
}
