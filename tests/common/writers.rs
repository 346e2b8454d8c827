//! The PITR oracle for tests is `rewind_loadgen::verify`'s: writers that record when each
//! write was sent and acknowledged, and the check of a restored table against them. This
//! module adds what the tests need around it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[allow(unused_imports)] // not every test binary uses both
pub use rewind_loadgen::verify::{now_us, History};

use super::{Client, Value};

/// One writer over keys `w<id>:k<0..keys>` of `table` on the server at `port`.
pub fn writer(
    port: u16,
    table: &str,
    id: u64,
    keys: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> History {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    rewind_loadgen::verify::writer(addr, table.to_string(), id as usize, keys, seed, stop)
        .unwrap_or_else(|e| panic!("writer {id}: {e}"))
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
            let v = match v {
                Value::Bulk(b) => Some(b),
                Value::Null => None,
                other => panic!("{other:?}"),
            };
            out.insert((*k).clone(), v);
        }
    }
    out
}

/// Checks `table`, a restore to `t`, against `history`: every key holds a value the oracle
/// allows and the key count is within its bounds. Leaves the client on `table`.
#[allow(dead_code)] // not every test binary uses it
pub fn check_restored(c: &mut Client, table: &str, t: u64, history: &History, what: &str) {
    let got = read_keys(c, table, history);
    let bad = history.check(t, |k| got[k].clone());
    assert!(
        bad.is_empty(),
        "{what}: {} mismatches, first {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    let (lo, hi) = history.count_bounds(t);
    let n = c.cmd(&["DBSIZE"]).as_int() as usize;
    assert!(lo <= n && n <= hi, "{what}: {n} keys, expected {lo}..={hi}");
}
