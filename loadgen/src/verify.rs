//! `verify`: the PITR oracle against a running rewind. Writers over disjoint keys of a fresh
//! table record when each write was sent and acknowledged; then the table is restored to
//! random times and every key is checked: it must hold the last write acknowledged before T,
//! or a write that was in flight at T, and nothing else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::client::{Client, Value};

#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub addr: SocketAddr,
    pub duration: Duration,
    pub restores: usize,
    pub writers: usize,
    pub keys_per_writer: u64,
    pub seed: u64,
}

/// One write: `value` None is a delete.
#[derive(Debug, Clone)]
pub struct Write {
    pub value: Option<Vec<u8>>,
    pub sent_us: u64,
    pub acked_us: u64,
}

/// Every key's writes, in the order its (single) writer issued them.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub keys: HashMap<Vec<u8>, Vec<Write>>,
}

impl History {
    pub fn merge(&mut self, other: History) {
        for (k, ws) in other.keys {
            self.keys.entry(k).or_default().extend(ws);
        }
    }

    pub fn writes(&self) -> usize {
        self.keys.values().map(|w| w.len()).sum()
    }

    /// The values `key` may hold after a restore to `t` (None: absent): the last write
    /// acknowledged before `t`, or any write in flight at `t`.
    pub fn allowed(&self, key: &[u8], t: u64) -> Vec<Option<Vec<u8>>> {
        match self.keys.get(key) {
            Some(ws) => allowed(ws, t),
            None => vec![None],
        }
    }

    /// Describes every key whose restored value (`read`) the model does not allow at `t`.
    pub fn check(&self, t: u64, mut read: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Vec<String> {
        let mut bad = Vec::new();
        for key in self.keys.keys() {
            let got = read(key);
            let ok = self.allowed(key, t);
            if !ok.contains(&got) {
                bad.push(format!("restore to {t} us: {}", mismatch(key, &got, &ok)));
            }
        }
        bad
    }

    /// After a crash at `kill_us`, settles every write whose reply never came, by what the
    /// restarted server holds (`read`): the writes up to the one whose value it holds were
    /// committed (acknowledged, at the latest, at the kill), the rest were lost. Returns the
    /// keys whose value is neither the last acknowledged one nor one in flight: a lost
    /// acknowledged write, or a value never sent.
    pub fn resolve_in_flight(
        &mut self,
        kill_us: u64,
        mut read: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Vec<String> {
        let mut bad = Vec::new();
        for (key, ws) in self.keys.iter_mut() {
            let first = ws.iter().position(|w| w.acked_us == NEVER_ACKED);
            let got = read(key);
            let Some(first) = first else {
                let last = ws.last().and_then(|w| w.value.clone());
                if got != last {
                    bad.push(mismatch(key, &got, &[last]));
                }
                continue;
            };
            // One writer per key, one connection: acknowledged writes precede the rest.
            match ws[first..].iter().rposition(|w| w.value == got) {
                Some(j) => {
                    ws.truncate(first + j + 1);
                    for w in &mut ws[first..] {
                        w.acked_us = kill_us;
                    }
                }
                None => {
                    let last = ws[..first].last().and_then(|w| w.value.clone());
                    if got != last {
                        let mut ok = vec![last];
                        ok.extend(ws[first..].iter().map(|w| w.value.clone()));
                        bad.push(mismatch(key, &got, &ok));
                    }
                    ws.truncate(first);
                }
            }
        }
        self.keys.retain(|_, ws| !ws.is_empty());
        bad
    }

    /// How many keys must and may exist after a restore to `t`: (at least, at most).
    pub fn count_bounds(&self, t: u64) -> (usize, usize) {
        let (mut lo, mut hi) = (0, 0);
        for k in self.keys.keys() {
            let a = self.allowed(k, t);
            lo += a.iter().all(|v| v.is_some()) as usize;
            hi += a.iter().any(|v| v.is_some()) as usize;
        }
        (lo, hi)
    }
}

/// What a verification found: restores done, keys checked, and the first mismatches.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub writes: usize,
    pub restores: usize,
    pub keys_checked: usize,
    pub mismatches: Vec<String>,
}

/// Wall-clock Unix microseconds, the clock the server's commit times use.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn io(e: std::io::Error) -> String {
    format!("connection: {e}")
}

fn expect_ok(v: Value, what: &str) -> Result<Value, String> {
    match v {
        Value::Error(e) => Err(format!("{what}: {e}")),
        v => Ok(v),
    }
}

/// One writer over keys `w<id>:k<0..keys>` of `table`: pipelines of 1..8 SETs and DELs until
/// `stop`, recording when each was sent and acknowledged.
pub fn writer(
    addr: SocketAddr,
    table: String,
    id: usize,
    keys: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<History, String> {
    write_loop(addr, table, id, keys, seed, stop, false)
}

/// Like [`writer`], for a server that is going to be killed: when the connection breaks, the
/// writes whose replies never came are kept with `acked_us == NEVER_ACKED` (they may or may
/// not have been committed) and the history so far is returned. See
/// [`History::resolve_in_flight`].
pub fn crash_writer(
    addr: SocketAddr,
    table: String,
    id: usize,
    keys: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<History, String> {
    write_loop(addr, table, id, keys, seed, stop, true)
}

/// `acked_us` of a write whose reply never came.
pub const NEVER_ACKED: u64 = u64::MAX;

fn write_loop(
    addr: SocketAddr,
    table: String,
    id: usize,
    keys: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    until_disconnect: bool,
) -> Result<History, String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ ((id as u64) << 20));
    let mut c = Client::connect(addr).map_err(io)?;
    expect_ok(c.cmd(&["TABLE.USE", &table]).map_err(io)?, "TABLE.USE")?;
    let mut h = History::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..rng.gen_range(1..8))
            .map(|_| {
                n += 1;
                let key = format!("w{id}:k{}", rng.gen_range(0..keys)).into_bytes();
                // The seed is in the value: writers of different rounds (seeds) over the same
                // keys never write equal values, so the oracle can tell their writes apart.
                let value =
                    (!rng.gen_ratio(1, 8)).then(|| format!("w{id}-{seed:x}-v{n}").into_bytes());
                (key, value)
            })
            .collect();
        let mut wire = Vec::new();
        for (k, v) in &batch {
            match v {
                Some(v) => crate::resp::encode(&mut wire, &[b"SET", k, v]),
                None => crate::resp::encode(&mut wire, &[b"DEL", k]),
            }
        }
        let sent_us = now_us();
        let mut replies = c.send_raw(&wire).map(|_| ());
        for (k, value) in batch {
            let acked_us = match replies.and_then(|_| c.read()) {
                Ok(r) => {
                    expect_ok(r, "write")?;
                    replies = Ok(());
                    now_us()
                }
                Err(e) if until_disconnect => {
                    replies = Err(e);
                    NEVER_ACKED
                }
                Err(e) => return Err(io(e)),
            };
            h.keys.entry(k).or_default().push(Write {
                value,
                sent_us,
                acked_us,
            });
        }
        if replies.is_err() {
            break;
        }
    }
    Ok(h)
}

fn mismatch(key: &[u8], got: &Option<Vec<u8>>, ok: &[Option<Vec<u8>>]) -> String {
    format!(
        "{} = {:?}, allowed {:?}",
        String::from_utf8_lossy(key),
        got.as_deref().map(String::from_utf8_lossy),
        ok.iter()
            .map(|a| a.as_deref().map(String::from_utf8_lossy))
            .collect::<Vec<_>>()
    )
}

/// The values `key` may hold after a restore to `t` (None: absent).
fn allowed(ws: &[Write], t: u64) -> Vec<Option<Vec<u8>>> {
    let mut out = vec![ws
        .iter()
        .rev()
        .find(|w| w.acked_us < t)
        .and_then(|w| w.value.clone())];
    out.extend(
        ws.iter()
            .filter(|w| w.sent_us <= t && w.acked_us >= t)
            .map(|w| w.value.clone()),
    );
    out
}

pub fn verify(cfg: &VerifyConfig) -> Result<VerifyReport, String> {
    let mut c = Client::connect(cfg.addr).map_err(io)?;
    let table = format!("verify_{}_{}", cfg.seed, std::process::id());
    expect_ok(
        c.cmd(&["TABLE.CREATE", &table]).map_err(io)?,
        "TABLE.CREATE",
    )?;
    expect_ok(c.cmd(&["PITR.ENABLE", &table]).map_err(io)?, "PITR.ENABLE")?;
    let t0 = now_us();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..cfg.writers)
        .map(|id| {
            let (stop, table) = (stop.clone(), table.clone());
            let (addr, keys, seed) = (cfg.addr, cfg.keys_per_writer, cfg.seed);
            std::thread::spawn(move || writer(addr, table, id, keys, seed, stop))
        })
        .collect();
    std::thread::sleep(cfg.duration);
    stop.store(true, Ordering::Relaxed);
    let mut history = History::default();
    for t in threads {
        let h = t.join().map_err(|_| "a writer panicked".to_string())??;
        history.merge(h);
    }
    let t1 = now_us();
    let mut report = VerifyReport {
        writes: history.writes(),
        ..Default::default()
    };
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let keys: Vec<&Vec<u8>> = history.keys.keys().collect();
    for i in 0..cfg.restores {
        let t = rng.gen_range(t0..t1);
        let target = format!("{table}_r{i}");
        let at = format!("{}.{:06}", t / 1_000_000, t % 1_000_000);
        let r = c
            .cmd(&["PITR.RESTORE", &table, &target, "AT", &at, "SYNC"])
            .map_err(io)?;
        expect_ok(r, "PITR.RESTORE")?;
        expect_ok(c.cmd(&["TABLE.USE", &target]).map_err(io)?, "TABLE.USE")?;
        let mut restored: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for chunk in keys.chunks(500) {
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(chunk.iter().map(|k| k.as_slice()));
            c.send(&args).map_err(io)?;
            let Value::Array(vals) = c.read().map_err(io)? else {
                return Err("MGET did not answer an array".into());
            };
            for (k, v) in chunk.iter().zip(vals) {
                let got = match v {
                    Value::Bulk(b) => Some(b),
                    _ => None,
                };
                restored.insert((*k).clone(), got);
            }
        }
        report.keys_checked += restored.len();
        let bad = history.check(t, |k| restored[k].clone());
        let room = 10usize.saturating_sub(report.mismatches.len());
        report.mismatches.extend(bad.into_iter().take(room));
        expect_ok(
            c.cmd(&["TABLE.USE", "default"]).map_err(io)?,
            "TABLE.USE default",
        )?;
        let _ = c.cmd(&["TABLE.DROP", &target]);
        report.restores += 1;
    }
    let _ = c.cmd(&["PITR.DISABLE", &table]);
    let _ = c.cmd(&["TABLE.DROP", &table]);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &str, sent: u64, acked: u64) -> Write {
        Write {
            value: Some(v.as_bytes().to_vec()),
            sent_us: sent,
            acked_us: acked,
        }
    }

    #[test]
    fn the_model_allows_the_last_acknowledged_write_or_one_in_flight() {
        let ws = vec![
            w("a", 10, 20),
            w("b", 30, 40),
            Write {
                value: None,
                sent_us: 50,
                acked_us: 60,
            },
        ];
        assert_eq!(allowed(&ws, 5), vec![None]);
        assert_eq!(allowed(&ws, 25), vec![Some(b"a".to_vec())]);
        assert_eq!(
            allowed(&ws, 35),
            vec![Some(b"a".to_vec()), Some(b"b".to_vec())]
        );
        assert_eq!(allowed(&ws, 55), vec![Some(b"b".to_vec()), None]);
        assert_eq!(allowed(&ws, 70), vec![None]);
    }

    #[test]
    fn after_a_crash_in_flight_writes_settle_by_what_survived() {
        let key = b"k".to_vec();
        let history = |ws: Vec<Write>| History {
            keys: HashMap::from([(key.clone(), ws)]),
        };
        let never = |v: &str, sent: u64| w(v, sent, NEVER_ACKED);
        let b = |v: &str| Some(v.as_bytes().to_vec());
        // The server holds the second in-flight write: both committed, the third lost.
        let mut h = history(vec![
            w("a", 1, 2),
            never("b", 3),
            never("c", 3),
            never("d", 3),
        ]);
        assert!(h.resolve_in_flight(9, |_| b("c")).is_empty());
        let vals: Vec<_> = h.keys[&key]
            .iter()
            .map(|w| (w.value.clone(), w.acked_us))
            .collect();
        assert_eq!(vals, vec![(b("a"), 2), (b("b"), 9), (b("c"), 9)]);
        // None of them survived: all dropped, the acknowledged value stands.
        let mut h = history(vec![w("a", 1, 2), never("b", 3)]);
        assert!(h.resolve_in_flight(9, |_| b("a")).is_empty());
        assert_eq!(h.keys[&key].len(), 1);
        // A lost acknowledged write, or a value never sent, is reported.
        let mut h = history(vec![w("a", 1, 2), never("b", 3)]);
        assert_eq!(h.resolve_in_flight(9, |_| None).len(), 1);
        let mut h = history(vec![w("a", 1, 2)]);
        assert_eq!(h.resolve_in_flight(9, |_| b("zz")).len(), 1);
        // A key whose only write was lost is forgotten.
        let mut h = history(vec![never("b", 3)]);
        assert!(h.resolve_in_flight(9, |_| None).is_empty());
        assert!(h.keys.is_empty());
    }
}
