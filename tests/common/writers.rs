//! Writers that record the send and acknowledgement time of every write, for the oracle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::oracle::{now_us, History, Write};
use super::resp::encode;
use super::{Client, Value};

/// One writer over keys `w<id>:k<0..keys>` of `table`: pipelines of 1..8 SETs and DELs until
/// `stop`, recording each write. Returns early (keeping what it recorded) if the server dies.
pub fn writer(
    port: u16,
    table: &str,
    id: u64,
    keys: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> History {
    let mut rng = SmallRng::seed_from_u64(seed ^ (id << 20));
    let mut c = Client::connect(port);
    assert_eq!(c.cmd(&["TABLE.USE", table]), Value::ok());
    let mut h = History::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..rng.gen_range(1..8))
            .map(|_| {
                n += 1;
                let key = format!("w{id}:k{}", rng.gen_range(0..keys)).into_bytes();
                let value = (!rng.gen_ratio(1, 8)).then(|| format!("w{id}-v{n}").into_bytes());
                (key, value)
            })
            .collect();
        let mut wire = Vec::new();
        for (k, v) in &batch {
            wire.extend(match v {
                Some(v) => encode(&[b"SET", k, v]),
                None => encode(&[b"DEL", k]),
            });
        }
        let sent_us = now_us();
        c.send_raw(&wire);
        for (k, v) in batch {
            match c.try_read() {
                Ok(Value::Error(e)) => panic!("write refused: {e}"),
                Ok(_) => h.record(
                    &k,
                    Write {
                        value: v,
                        sent_us,
                        acked_us: now_us(),
                    },
                ),
                Err(_) => {
                    // Unanswered: in flight forever.
                    h.record(
                        &k,
                        Write {
                            value: v,
                            sent_us,
                            acked_us: u64::MAX,
                        },
                    );
                    return h;
                }
            }
        }
    }
    h
}

/// Reads every key of `history` from `table` (MGET in chunks).
pub fn read_keys(
    c: &mut Client,
    table: &str,
    history: &History,
) -> std::collections::HashMap<Vec<u8>, Option<Vec<u8>>> {
    assert_eq!(c.cmd(&["TABLE.USE", table]), Value::ok());
    let keys: Vec<&Vec<u8>> = history.keys.keys().collect();
    let mut out = std::collections::HashMap::new();
    for chunk in keys.chunks(500) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(chunk.iter().map(|k| k.as_slice()));
        let Value::Array(vals) = c.cmd_bytes(&args) else {
            panic!("MGET")
        };
        for (k, v) in chunk.iter().zip(vals) {
            out.insert(
                (*k).clone(),
                match v {
                    Value::Bulk(b) => Some(b),
                    Value::Null => None,
                    other => panic!("{other:?}"),
                },
            );
        }
    }
    out
}
