//! String commands on the connection's current table.

use std::collections::HashSet;

use super::super::conn::Conn;
use crate::log::{CommitError, RmwDecision, RmwOp, RmwOutcome};
use crate::protocol::ReplyWriter;

fn check_key(conn: &Conn<'_>, key: &[u8]) -> Result<(), String> {
    let limit = conn.state.max_key_bytes;
    if key.len() > limit {
        return Err(format!(
            "ERR key is {} bytes, over the limit of {limit} bytes (--max-key-bytes)",
            key.len()
        ));
    }
    Ok(())
}

fn check_value(conn: &Conn<'_>, value: &[u8]) -> Result<(), String> {
    let limit = conn.state.max_value_bytes;
    if value.len() > limit {
        return Err(format!(
            "ERR value is {} bytes, over the limit of {limit} bytes (--max-value-bytes)",
            value.len()
        ));
    }
    Ok(())
}

/// `SET` options rewind does not have get a clear refusal, never silent acceptance.
fn set_options(args: &[&[u8]]) -> Result<(), String> {
    let Some(opt) = args.get(3) else {
        return Ok(());
    };
    let upper = String::from_utf8_lossy(opt).to_ascii_uppercase();
    match upper.as_str() {
        "EX" | "PX" | "EXAT" | "PXAT" | "KEEPTTL" => Err(format!(
            "ERR SET option '{upper}' is not supported by rewind: keys do not expire"
        )),
        "NX" | "XX" | "GET" | "IFEQ" => Err(format!(
            "ERR SET option '{upper}' is not supported by rewind; use plain SET"
        )),
        _ => Err("ERR syntax error".into()),
    }
}

pub async fn exec_write(conn: &mut Conn<'_>, name: &str, args: &[&[u8]]) {
    let result = match name {
        "set" => set(conn, args),
        "mset" => mset(conn, args),
        "del" => del(conn, args).await,
        "incr" => incr_by(conn, args[1], 1).await,
        "decr" => incr_by(conn, args[1], -1).await,
        "incrby" | "decrby" => match parse_i64(args[2]) {
            Some(n) if name == "incrby" => incr_by(conn, args[1], n).await,
            Some(n) => match n.checked_neg() {
                Some(neg) => incr_by(conn, args[1], neg).await,
                None => Err("ERR decrement would overflow".into()),
            },
            None => Err(NOT_AN_INTEGER.into()),
        },
        other => unreachable!("{other} is not a write command"),
    };
    if let Err(msg) = result {
        conn.commit().await; // keep replies in order
        conn.error(&msg);
    }
}

fn set(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), String> {
    set_options(args)?;
    check_key(conn, args[1])?;
    check_value(conn, args[2])?;
    let bit = conn.stage_put(args[1], args[2]);
    conn.defer_ok(bit, args);
    Ok(())
}

fn mset(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), String> {
    if args.len() % 2 != 1 {
        return Err("ERR wrong number of arguments for 'mset' command".into());
    }
    for pair in args[1..].chunks(2) {
        check_key(conn, pair[0])?;
        check_value(conn, pair[1])?;
    }
    let mut bits = 0;
    for pair in args[1..].chunks(2) {
        bits |= conn.stage_put(pair[0], pair[1]);
    }
    conn.defer_ok(bits, args);
    Ok(())
}

/// Deletes each key that exists when its turn in the shard's commit order comes, and counts
/// exactly those: two concurrent `DEL`s of one key never both count it.
async fn del(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), String> {
    conn.commit().await;
    let mut seen = HashSet::new();
    let ops: Vec<RmwOp> = args[1..]
        .iter()
        .filter(|k| seen.insert(**k))
        .map(|k| {
            RmwOp::new(k, |cur| match cur {
                Some(_) => RmwDecision::Delete,
                None => RmwDecision::Keep,
            })
        })
        .collect();
    let outcomes = run_rmw(conn, ops).await?;
    let count = outcomes.iter().filter(|o| o.existed).count();
    conn.reply().int(count as i64);
    Ok(())
}

/// Runs read-modify-writes on the current table, each in its key's shard commit order, and
/// waits until what they wrote is durable. Outcomes come back in the order of `ops`.
async fn run_rmw(conn: &mut Conn<'_>, ops: Vec<RmwOp>) -> Result<Vec<RmwOutcome>, String> {
    let table = conn.session.table.clone();
    let mut per_shard: Vec<(Vec<usize>, Vec<RmwOp>)> = (0..table.shards.len())
        .map(|_| Default::default())
        .collect();
    let n = ops.len();
    for (i, op) in ops.into_iter().enumerate() {
        let shard = table.shard_for(&op.key);
        per_shard[shard].0.push(i);
        per_shard[shard].1.push(op);
    }
    let mut waits = Vec::new();
    for (shard, (positions, ops)) in per_shard.into_iter().enumerate() {
        if !ops.is_empty() {
            waits.push((positions, table.shards[shard].log.submit_rmw(ops)));
        }
    }
    let mut out: Vec<Option<RmwOutcome>> = vec![None; n];
    let mut failed = None;
    for (positions, rx) in waits {
        match rx.await.unwrap_or(Err(CommitError::Closed)) {
            Ok(outcomes) => {
                for (i, o) in positions.into_iter().zip(outcomes) {
                    out[i] = Some(o);
                }
            }
            Err(e) => failed = Some(format!("ERR write not committed: {e}")),
        }
    }
    match failed {
        Some(msg) => Err(msg),
        None => Ok(out
            .into_iter()
            .map(|o| o.expect("every shard answered"))
            .collect()),
    }
}

fn parse_i64(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 20 || v[0] == b'+' {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Reads, adds and writes back in the shard's commit order: linearizable with every other
/// write to the key, from either front door, with no lock beside the log.
async fn incr_by(conn: &mut Conn<'_>, key: &[u8], delta: i64) -> Result<(), String> {
    check_key(conn, key)?;
    conn.commit().await;
    let op = RmwOp::new(key, move |cur| {
        let current = match cur {
            None => 0,
            Some(v) => match parse_i64(v) {
                Some(n) => n,
                None => return RmwDecision::Fail(NOT_AN_INTEGER.into()),
            },
        };
        match current.checked_add(delta) {
            Some(next) => RmwDecision::Put(itoa::Buffer::new().format(next).as_bytes().to_vec()),
            None => RmwDecision::Fail("ERR increment or decrement would overflow".into()),
        }
    });
    let outcome = run_rmw(conn, vec![op]).await?.remove(0);
    match outcome.decision {
        RmwDecision::Put(v) => {
            let n = parse_i64(&v).expect("written by the closure above");
            conn.reply().int(n);
            Ok(())
        }
        RmwDecision::Fail(msg) => Err(msg),
        other => unreachable!("INCR decided {other:?}"),
    }
}

const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// The keys a read command looks at, or `None` when it depends on the whole table (it must
/// then see every pending write committed).
pub fn read_keys<'a>(name: &str, args: &'a [&'a [u8]]) -> Option<&'a [&'a [u8]]> {
    match name {
        "get" | "mget" | "exists" => Some(&args[1..]),
        _ => None,
    }
}

pub fn exec_read(conn: &mut Conn<'_>, name: &str, args: &[&[u8]]) {
    let table = &conn.session.table;
    let stats = &conn.state.stats;
    let mut w = ReplyWriter::new(&mut conn.out, conn.session.proto);
    match name {
        "get" => match table.map_for(args[1]).get(args[1]) {
            Some(v) => {
                stats.keyspace(1, 1);
                w.bulk(&v)
            }
            None => {
                stats.keyspace(1, 0);
                w.null()
            }
        },
        "mget" => {
            w.array(args.len() - 1);
            let mut found = 0;
            for &key in &args[1..] {
                match table.map_for(key).get(key) {
                    Some(v) => {
                        found += 1;
                        w.bulk(&v)
                    }
                    None => w.null(),
                }
            }
            stats.keyspace(args.len() - 1, found);
        }
        "exists" => {
            let n = args[1..]
                .iter()
                .filter(|&&k| table.map_for(k).contains_key(k))
                .count();
            w.int(n as i64);
        }
        "dbsize" => w.int(table.len() as i64),
        other => unreachable!("{other} is not a read command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"+1",
            b"1.0",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn unsupported_set_options_are_named() {
        let args =
            |o: &'static str| -> Vec<&'static [u8]> { vec![b"SET", b"k", b"v", o.as_bytes()] };
        assert!(set_options(&args("ex")).unwrap_err().contains("'EX'"));
        assert!(set_options(&args("NX")).unwrap_err().contains("'NX'"));
        assert_eq!(set_options(&args("bogus")).unwrap_err(), "ERR syntax error");
        assert!(set_options(&args("")[..3]).is_ok());
    }
}
