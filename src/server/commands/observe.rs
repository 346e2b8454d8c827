//! The commands operators and their tools use to look at a running server: `CLIENT`,
//! `CONFIG GET`, `SLOWLOG`, `LATENCY` and `MEMORY`, with Redis's replies wherever the
//! question has a meaning here.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::conn::Conn;
use super::super::observe::{memory, KillFilter};
use super::COMMANDS;
use crate::history::glob::Glob;
use crate::metrics::histogram::{Snapshot, BOUNDS_US};

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `CLIENT SETNAME|GETNAME|ID|INFO|LIST|KILL|SETINFO`.
pub fn client(conn: &mut Conn<'_>, args: &[&[u8]]) {
    match upper(args[1]).as_str() {
        "SETINFO" if args.len() == 4 => conn.reply().ok(),
        "SETNAME" if args.len() == 3 => {
            if args[2].iter().any(|&b| b <= b' ' || b > b'~') {
                return conn.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            let name = (!args[2].is_empty()).then(|| text(args[2]));
            conn.session.info.set_name(name);
            conn.reply().ok();
        }
        "GETNAME" => match conn.session.info.name() {
            Some(n) => conn.reply().bulk(n.as_bytes()),
            None => conn.reply().null(),
        },
        "ID" => {
            let id = conn.session.id as i64;
            conn.reply().int(id);
        }
        "INFO" => {
            let line = conn.session.info.list_line(Instant::now(), name_of) + "\n";
            conn.reply().bulk(line.as_bytes());
        }
        "LIST" => {
            use std::collections::HashSet;
            let only: Option<HashSet<u64>> = match args.get(2).map(|a| upper(a)).as_deref() {
                None => None,
                Some("ID") if args.len() > 3 => {
                    let ids: Option<HashSet<u64>> =
                        args[3..].iter().map(|a| text(a).parse().ok()).collect();
                    match ids {
                        Some(ids) => Some(ids),
                        None => return conn.error("ERR Invalid client ID"),
                    }
                }
                Some("TYPE") if args.len() == 4 => match upper(args[3]).as_str() {
                    "NORMAL" => None,
                    "MASTER" | "REPLICA" | "SLAVE" | "PUBSUB" => Some(HashSet::new()),
                    other => {
                        return conn.error(&format!("ERR Unknown client type '{other}'"));
                    }
                },
                Some(_) => return conn.error("ERR syntax error"),
            };
            let now = Instant::now();
            let mut out = String::new();
            for c in conn.state.client_list.all() {
                if only.as_ref().is_none_or(|ids| ids.contains(&c.id)) {
                    out.push_str(&c.list_line(now, name_of));
                    out.push('\n');
                }
            }
            conn.reply().bulk(out.as_bytes());
        }
        "KILL" => kill(conn, args),
        other => {
            let msg = format!("ERR unknown or malformed subcommand '{other}' for 'client'");
            conn.error(&msg);
        }
    }
}

fn name_of(cmd: usize) -> &'static str {
    COMMANDS.get(cmd).map_or("NULL", |c| c.name)
}

/// `CLIENT KILL addr:port` (the old form: `+OK` or an error) or `CLIENT KILL <filter value>
/// ...` with `ID`, `ADDR`, `LADDR`, `USER`, `SKIPME` (the count killed).
fn kill(conn: &mut Conn<'_>, args: &[&[u8]]) {
    let me = conn.session.id;
    if args.len() == 3 {
        let f = KillFilter {
            addr: Some(text(args[2])),
            ..KillFilter::default()
        };
        let n = conn.state.client_list.kill(&f);
        if n == 0 {
            return conn.error("ERR No such client");
        }
        if conn.session.info.is_killed() {
            conn.session.closing = true;
        }
        return conn.reply().ok();
    }
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return conn.error("ERR syntax error");
    }
    let mut f = KillFilter {
        skip: Some(me),
        ..KillFilter::default()
    };
    for pair in args[2..].chunks(2) {
        let v = text(pair[1]);
        match upper(pair[0]).as_str() {
            "ID" => match v.parse() {
                Ok(id) => f.id = Some(id),
                Err(_) => return conn.error("ERR client-id should be greater than 0"),
            },
            "ADDR" => f.addr = Some(v),
            "LADDR" => f.laddr = Some(v),
            // Every connection is user `default`; any other user matches none.
            "USER" if v != "default" => f.none = true,
            "USER" => {}
            "SKIPME" => match v.to_ascii_lowercase().as_str() {
                "yes" => f.skip = Some(me),
                "no" => f.skip = None,
                _ => return conn.error("ERR syntax error"),
            },
            "TYPE" => match v.to_ascii_lowercase().as_str() {
                "normal" => {}
                "master" | "replica" | "slave" | "pubsub" => f.none = true,
                _ => return conn.error(&format!("ERR Unknown client type '{v}'")),
            },
            _ => return conn.error("ERR syntax error"),
        }
    }
    let n = conn.state.client_list.kill(&f);
    if conn.session.info.is_killed() {
        conn.session.closing = true;
    }
    conn.reply().int(n as i64);
}

/// The settings `CONFIG GET` answers besides every flag: Redis's names for what they mean
/// here, so tools that read them (redis_exporter, redis-benchmark) find them.
fn redis_params(conn: &Conn<'_>) -> Vec<(String, String)> {
    let s = conn.state;
    let fsync = match s.db.cfg.fsync {
        crate::log::FsyncPolicy::Always => "always",
        crate::log::FsyncPolicy::EverySec => "everysec",
        crate::log::FsyncPolicy::Never => "no",
    };
    [
        ("appendonly", "yes".to_string()),
        ("appendfsync", fsync.to_string()),
        ("save", String::new()),
        ("databases", "1".to_string()),
        ("maxmemory", "0".to_string()),
        ("maxmemory-policy", "noeviction".to_string()),
        ("maxclients", s.max_clients.to_string()),
        ("proto-max-bulk-len", s.max_value_bytes.to_string()),
        ("port", s.port.to_string()),
        (
            "timeout",
            s.idle_timeout.map_or(0, |t| t.as_secs()).to_string(),
        ),
        (
            "slowlog-log-slower-than",
            s.slowlog.threshold_us().to_string(),
        ),
        ("slowlog-max-len", s.slowlog.max_len().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `CONFIG GET pattern [pattern ...]` (every flag by its name, and Redis's names), `CONFIG
/// SET` for the slow log's two settings, `CONFIG RESETSTAT`.
pub fn config(conn: &mut Conn<'_>, args: &[&[u8]]) {
    match upper(args[1]).as_str() {
        "GET" if args.len() >= 3 => {
            let mut params = redis_params(conn);
            for (k, v) in &conn.state.config {
                if !params.iter().any(|(p, _)| p == k) {
                    params.push((k.clone(), v.clone()));
                }
            }
            let mut patterns = Vec::new();
            for p in &args[2..] {
                match Glob::new(&p.to_ascii_lowercase()) {
                    Ok(g) => patterns.push(g),
                    Err(e) => return conn.error(&format!("ERR bad pattern: {e}")),
                }
            }
            let hits: Vec<_> = params
                .iter()
                .filter(|(k, _)| patterns.iter().any(|g| g.matches(k.as_bytes())))
                .collect();
            let mut w = conn.reply();
            w.map(hits.len());
            for (k, v) in hits {
                w.bulk(k.as_bytes());
                w.bulk(v.as_bytes());
            }
        }
        "SET" if args.len() == 4 => {
            let (name, value) = (text(args[2]).to_ascii_lowercase(), text(args[3]));
            match name.as_str() {
                "slowlog-log-slower-than" => match value.parse::<i64>() {
                    Ok(us) => conn.state.slowlog.set_threshold_us(us),
                    Err(_) => {
                        return conn.error(&format!("ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument couldn't be parsed into an integer: {value}"));
                    }
                },
                "slowlog-max-len" => match value.parse::<usize>() {
                    Ok(n) => conn.state.slowlog.set_max_len(n),
                    Err(_) => {
                        return conn.error(&format!("ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer: {value}"));
                    }
                },
                _ => {
                    return conn.error(&format!(
                        "ERR rewind changes only slowlog-log-slower-than and slowlog-max-len at run time; '{name}' is set by a flag, the config file or REWIND_* at start (rewind serve --print-config shows them)"
                    ));
                }
            }
            conn.reply().ok();
        }
        "RESETSTAT" if args.len() == 2 => {
            // As Redis: counters and connection totals, not the slow log.
            conn.state.stats.reset();
            conn.state.total_connections.store(0, Ordering::Relaxed);
            conn.state.rejected_connections.store(0, Ordering::Relaxed);
            conn.reply().ok();
        }
        _ => conn.error(
            "ERR CONFIG takes GET pattern [pattern ...], SET slowlog-log-slower-than|slowlog-max-len value, or RESETSTAT",
        ),
    }
}

/// `SLOWLOG GET [count]|LEN|RESET|HELP`.
pub fn slowlog(conn: &mut Conn<'_>, args: &[&[u8]]) {
    let log = &conn.state.slowlog;
    match (upper(args[1]).as_str(), args.len()) {
        ("GET", 2 | 3) => {
            let count = match args.get(2).map(|a| text(a).parse::<i64>()) {
                None => 10,
                Some(Ok(-1)) => usize::MAX,
                Some(Ok(n)) if n >= 0 => n as usize,
                Some(_) => return conn.error("ERR count should be greater than or equal to -1"),
            };
            let entries = log.newest(count);
            let mut w = conn.reply();
            w.array(entries.len());
            for e in entries {
                w.array(6);
                w.int(e.id as i64);
                w.int(e.unix_secs as i64);
                w.int(e.micros as i64);
                w.array(e.args.len());
                for a in &e.args {
                    w.bulk(a);
                }
                w.bulk(e.client_addr.as_bytes());
                w.bulk(e.client_name.as_bytes());
            }
        }
        ("LEN", 2) => {
            let n = log.len() as i64;
            conn.reply().int(n);
        }
        ("RESET", 2) => {
            log.reset();
            conn.reply().ok();
        }
        ("HELP", 2) => {
            let lines = [
                "SLOWLOG <subcommand> [<arg> ...]. Subcommands are:",
                "GET [<count>]: the newest <count> entries (10 by default, -1 for all).",
                "LEN: how many entries the log holds.",
                "RESET: empties the log.",
                "Commands slower than slowlog-log-slower-than microseconds are logged (a write's time includes its log sync).",
            ];
            let mut w = conn.reply();
            w.array(lines.len());
            for l in lines {
                w.simple(l);
            }
        }
        (sub, _) => conn.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try SLOWLOG HELP."
        )),
    }
}

fn bound_label(b: u64) -> String {
    b.to_string()
}

/// Writes one histogram as Redis 7's `LATENCY HISTOGRAM` does: `calls`, then
/// `histogram_usec` with the cumulative count at each bucket bound that has any.
fn write_histogram(w: &mut crate::protocol::ReplyWriter<'_>, h: &Snapshot) {
    w.map(2);
    w.bulk(b"calls");
    w.int(h.count() as i64);
    w.bulk(b"histogram_usec");
    let mut points: Vec<(u64, u64)> = Vec::new();
    let mut run = 0;
    for (i, c) in h.counts.iter().enumerate() {
        if *c > 0 {
            run += c;
            points.push((BOUNDS_US.get(i).copied().unwrap_or(u64::MAX), run));
        }
    }
    w.map(points.len());
    for (bound, n) in points {
        w.int(bound.min(i64::MAX as u64) as i64);
        w.int(n as i64);
    }
}

/// `LATENCY HISTOGRAM [command ...]` (per-command latency as Redis 7 reports it, a write's
/// including its log sync), `LATENCY SYNC` (rewind's: the log's sync latency), `LATENCY
/// DOCTOR` (both in words), `LATENCY LATEST|HISTORY|RESET` (rewind keeps no latency-monitor
/// events: empty answers, as Redis gives with the monitor off).
pub fn latency(conn: &mut Conn<'_>, args: &[&[u8]]) {
    let stats = &conn.state.stats;
    match upper(args[1]).as_str() {
        "HISTOGRAM" => {
            let wanted: Vec<usize> = if args.len() == 2 {
                (0..COMMANDS.len()).collect()
            } else {
                args[2..]
                    .iter()
                    .filter_map(|a| super::lookup(a))
                    .collect()
            };
            let rows: Vec<(usize, Snapshot)> = wanted
                .into_iter()
                .map(|c| (c, stats.command(c).latency))
                .filter(|(_, h)| h.count() > 0)
                .collect();
            let mut w = conn.reply();
            w.map(rows.len());
            for (c, h) in rows {
                w.bulk(COMMANDS[c].name.as_bytes());
                write_histogram(&mut w, &h);
            }
        }
        "SYNC" if args.len() == 2 => {
            let h = conn.state.db.log_stats().sync_latency;
            let mut w = conn.reply();
            w.map(1);
            w.bulk(b"log-sync");
            write_histogram(&mut w, &h);
        }
        "DOCTOR" if args.len() == 2 => {
            let text = doctor(conn);
            conn.reply().bulk(text.as_bytes());
        }
        "LATEST" | "HISTORY" if args.len() <= 3 => conn.reply().array(0),
        "RESET" => conn.reply().int(0),
        other => conn.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{other}'. rewind has LATENCY HISTOGRAM [command ...], SYNC, DOCTOR"
        )),
    }
}

fn quantiles(h: &Snapshot) -> String {
    let q = |p| match h.quantile_bound_us(p) {
        Some(u64::MAX) => format!("> {} us", BOUNDS_US[BOUNDS_US.len() - 1]),
        Some(b) => format!("<= {} us", bound_label(b)),
        None => "-".into(),
    };
    format!(
        "p50 {}, p99 {}, p99.9 {}, mean {:.1} us over {}",
        q(0.5),
        q(0.99),
        q(0.999),
        h.sum_us as f64 / h.count().max(1) as f64,
        h.count()
    )
}

fn doctor(conn: &Conn<'_>) -> String {
    let sync = conn.state.db.log_stats().sync_latency;
    let mut out = String::new();
    if sync.count() == 0 {
        out.push_str("Log syncs: none yet (fsync never, or nothing written).\n");
    } else {
        out.push_str(&format!("Log syncs: {}.\n", quantiles(&sync)));
    }
    let mut slowest: Vec<(usize, Snapshot)> = (0..COMMANDS.len())
        .map(|c| (c, conn.state.stats.command(c).latency))
        .filter(|(_, h)| h.count() > 0)
        .collect();
    slowest.sort_by_key(|(_, h)| std::cmp::Reverse(h.quantile_bound_us(0.99)));
    for (c, h) in slowest.iter().take(5) {
        out.push_str(&format!("{}: {}.\n", COMMANDS[*c].name, quantiles(h)));
    }
    out.push_str(&format!(
        "Slow log: {} entries over {} us.\n",
        conn.state.slowlog.len(),
        conn.state.slowlog.threshold_us()
    ));
    out
}

/// `MEMORY USAGE key [SAMPLES n]` (the key's entry: its allocation rounded to 8 bytes and
/// its 9-byte slot in the hash table), `MEMORY STATS` (a few of Redis's fields).
pub fn memory(conn: &mut Conn<'_>, args: &[&[u8]]) {
    match upper(args[1]).as_str() {
        "USAGE" if args.len() == 3 || (args.len() == 5 && upper(args[3]) == "SAMPLES") => {
            let key = args[2];
            let len = conn.session.table.map_for(key).get(key).map(|v| v.len());
            match len {
                Some(vlen) => {
                    let entry = (8 + key.len() + vlen).div_ceil(8) * 8;
                    conn.reply().int((entry + 9) as i64);
                }
                None => conn.reply().null(),
            }
        }
        "STATS" if args.len() == 2 => {
            let m = memory::read();
            let keys: usize = conn.state.db.tables().iter().map(|t| t.len()).sum();
            let data: u64 = conn.state.db.tables().iter().map(|t| t.bytes()).sum();
            let mut w = conn.reply();
            w.map(5);
            w.bulk(b"peak.allocated");
            w.int(m.peak as i64);
            w.bulk(b"total.allocated");
            w.int(m.used as i64);
            w.bulk(b"keys.count");
            w.int(keys as i64);
            w.bulk(b"dataset.bytes");
            w.int(data as i64);
            w.bulk(b"rss.bytes");
            w.int(m.rss as i64);
        }
        other => conn.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{other}'. rewind has MEMORY USAGE key, MEMORY STATS"
        )),
    }
}
