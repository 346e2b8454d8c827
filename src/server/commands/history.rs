//! History without a restore: `PITR.HISTORY`, `PITR.GET`, `PITR.DIFF`, `PITR.REVERT` and
//! `TABLE.DIGEST`. The questions read the log off the net thread; replies are plain arrays
//! in RESP2 and RESP3 (`TABLE.DIGEST`: field/value pairs, as the `*.DESCRIBE` commands).

use super::super::blocking::off_net_thread;
use super::super::conn::Conn;
use crate::history::{Glob, Write};
use crate::protocol::ReplyWriter;
use crate::restore::{format_time, parse_time};
use crate::shard::DbError;

/// Largest COUNT of `PITR.HISTORY` and `PITR.DIFF`.
pub const MAX_COUNT: usize = 100_000;
/// Most keys one `PITR.REVERT` changes (narrow MATCH, or repeat, for more).
pub const MAX_REVERT_KEYS: usize = 100_000;

/// A key a revert puts back: its value now and at the moment asked for.
type Reverted = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn syntax(usage: &str) -> DbError {
    DbError::BadTime(format!("syntax: {usage}"))
}

fn time(b: &[u8]) -> Result<u64, DbError> {
    parse_time(&text(b)).map_err(DbError::BadTime)
}

fn count(b: &[u8]) -> Result<usize, DbError> {
    match text(b).parse::<usize>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(DbError::BadTime(format!(
            "COUNT must be a number from 1 to {MAX_COUNT}"
        ))),
    }
}

fn glob(b: &[u8]) -> Result<Glob, DbError> {
    Glob::new(b).map_err(|e| DbError::BadTime(format!("MATCH: {e}")))
}

fn value(w: &mut ReplyWriter<'_>, v: &Option<Vec<u8>>) {
    match v {
        Some(v) => w.bulk(v),
        None => w.null(),
    }
}

/// Runs `f` on the blocking pool with the server's database.
async fn blocking<T: Send + 'static>(
    conn: &Conn<'_>,
    f: impl FnOnce(&crate::shard::Db) -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    let db = conn.state.db.clone();
    off_net_thread(move || f(&db))
        .await
        .map_err(DbError::Internal)?
}

/// `PITR.HISTORY table key [FROM time] [TO time] [COUNT n]`.
pub async fn history(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    const USAGE: &str = "PITR.HISTORY table key [FROM time] [TO time] [COUNT n]";
    let (mut from, mut to, mut n) = (None, None, 100);
    let mut rest = &args[3..];
    while let [opt, v, tail @ ..] = rest {
        match opt.to_ascii_uppercase().as_slice() {
            b"FROM" => from = Some(time(v)?),
            b"TO" => to = Some(time(v)?),
            b"COUNT" => n = count(v)?,
            _ => return Err(syntax(USAGE)),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(syntax(USAGE));
    }
    let (table, key) = (text(args[1]), args[2].to_vec());
    let writes: Vec<Write> = blocking(conn, move |db| {
        let now = db.clock().now_us();
        db.with_history(&table, |ctx| {
            for t in [from, to].into_iter().flatten() {
                ctx.check(t, now)?;
            }
            let from = from.unwrap_or(ctx.window.earliest_us);
            let to = to.unwrap_or(now);
            if from > to {
                return Err(DbError::BadTime("FROM is after TO".into()));
            }
            Ok(ctx.source.history(&key, (from, to), n)?)
        })
    })
    .await?;
    let mut w = conn.reply();
    w.array(writes.len());
    for x in &writes {
        w.array(4);
        w.bulk(format_time(x.commit_us).as_bytes());
        w.int(x.commit_us as i64);
        w.bulk(if x.value.is_some() { b"set" } else { b"del" });
        value(&mut w, &x.value);
    }
    Ok(())
}

/// `PITR.GET table key AT time`.
pub async fn get(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    let [_, table, key, at, t] = args else {
        return Err(syntax("PITR.GET table key AT time"));
    };
    if !at.eq_ignore_ascii_case(b"AT") {
        return Err(syntax("PITR.GET table key AT time"));
    }
    let (table, key, t) = (text(table), key.to_vec(), time(t)?);
    let v = blocking(conn, move |db| {
        let now = db.clock().now_us();
        db.with_history(&table, |ctx| {
            ctx.check(t, now)?;
            Ok(ctx.source.value_at(&key, t)?)
        })
    })
    .await?;
    value(&mut conn.reply(), &v);
    Ok(())
}

/// `PITR.DIFF table FROM t1 TO t2 [MATCH glob] [AFTER key] [COUNT n]`.
pub async fn diff(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    const USAGE: &str = "PITR.DIFF table FROM t1 TO t2 [MATCH glob] [AFTER key] [COUNT n]";
    let (mut from, mut to, mut pattern, mut after, mut n) = (None, None, None, None, 1000);
    let mut rest = &args[2..];
    while let [opt, v, tail @ ..] = rest {
        match opt.to_ascii_uppercase().as_slice() {
            b"FROM" => from = Some(time(v)?),
            b"TO" => to = Some(time(v)?),
            b"MATCH" => pattern = Some(glob(v)?),
            b"AFTER" => after = Some(v.to_vec()),
            b"COUNT" => n = count(v)?,
            _ => return Err(syntax(USAGE)),
        }
        rest = tail;
    }
    let (Some(t1), Some(t2), true) = (from, to, rest.is_empty()) else {
        return Err(syntax(USAGE));
    };
    if t1 > t2 {
        return Err(DbError::BadTime("FROM is after TO".into()));
    }
    let table = text(args[1]);
    let page = blocking(conn, move |db| {
        let now = db.clock().now_us();
        db.with_history(&table, |ctx| {
            ctx.check(t1, now)?;
            ctx.check(t2, now)?;
            let g = pattern.as_ref().filter(|g| !g.matches_all());
            Ok(ctx.source.diff((t1, t2), g, after.as_deref(), n)?)
        })
    })
    .await?;
    let mut w = conn.reply();
    w.array(page.changes.len());
    for c in &page.changes {
        w.array(3);
        w.bulk(&c.key);
        value(&mut w, &c.before);
        value(&mut w, &c.after);
    }
    Ok(())
}

/// `PITR.REVERT table AT time (MATCH glob | KEYS key [key ...]) [DRYRUN]`.
pub async fn revert(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    const USAGE: &str = "PITR.REVERT table AT time (MATCH glob | KEYS key [key ...]) [DRYRUN]";
    let (dry, args) = match args.split_last() {
        Some((last, init)) if last.eq_ignore_ascii_case(b"DRYRUN") => (true, init),
        _ => (false, args),
    };
    let [_, table, at, t, how, rest @ ..] = args else {
        return Err(syntax(USAGE));
    };
    if !at.eq_ignore_ascii_case(b"AT") || rest.is_empty() {
        return Err(syntax(USAGE));
    }
    enum Which {
        Match(Glob),
        Keys(Vec<Vec<u8>>),
    }
    let which = match how.to_ascii_uppercase().as_slice() {
        b"MATCH" if rest.len() == 1 => Which::Match(glob(rest[0])?),
        b"KEYS" if rest.len() <= MAX_REVERT_KEYS => {
            Which::Keys(rest.iter().map(|k| k.to_vec()).collect())
        }
        b"KEYS" => {
            return Err(DbError::BadTime(format!(
                "PITR.REVERT takes at most {MAX_REVERT_KEYS} KEYS"
            )))
        }
        _ => return Err(syntax(USAGE)),
    };
    let (table, t) = (text(table), time(t)?);
    let outcome = blocking(conn, move |db| {
        let live = db
            .table(&table)
            .ok_or_else(|| DbError::NoSuchTable(table.clone()))?;
        let now = db.clock().now_us();
        // (key, value now, value at t) of every key that differs.
        let changes: Vec<Reverted> = db.with_history(&table, |ctx| {
            ctx.check(t, now)?;
            let targets: Vec<(Vec<u8>, Option<Vec<u8>>)> = match &which {
                Which::Keys(keys) => {
                    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                    let then = ctx.source.values_of(&refs, t)?;
                    keys.iter().cloned().zip(then).collect()
                }
                // Only keys written since `t` can differ from their value then.
                Which::Match(g) => {
                    let g = Some(g).filter(|g| !g.matches_all());
                    let page = ctx.source.diff((t, u64::MAX), g, None, MAX_REVERT_KEYS)?;
                    if page.more {
                        return Err(DbError::BadTime(format!(
                            "more than {MAX_REVERT_KEYS} keys differ from {}: narrow MATCH",
                            format_time(t)
                        )));
                    }
                    page.changes
                        .into_iter()
                        .map(|c| (c.key, c.before))
                        .collect()
                }
            };
            Ok(targets
                .into_iter()
                .filter_map(|(k, then)| {
                    let now = live.map_for(&k).get(&k).map(|v| v.to_vec());
                    (now != then).then_some((k, now, then))
                })
                .collect())
        })?;
        if dry {
            return Ok(Err(changes));
        }
        let targets = changes.into_iter().map(|(k, _, then)| (k, then)).collect();
        db.revert_keys(&table, targets).map(Ok)
    })
    .await?;
    let mut w = conn.reply();
    match outcome {
        Ok(changed) => w.int(changed as i64),
        Err(entries) => {
            w.array(entries.len());
            for (k, now, then) in &entries {
                w.array(3);
                w.bulk(k);
                value(&mut w, now);
                value(&mut w, then);
            }
        }
    }
    Ok(())
}

/// `TABLE.DIGEST name`: `table`, `keys`, `digest` (16 hex digits).
pub async fn digest(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    let table = text(args[1]);
    let t = table.clone();
    let (keys, sum) = blocking(conn, move |db| db.digest(&t)).await?;
    let mut w = conn.reply();
    w.map(3);
    w.bulk(b"table");
    w.bulk(table.as_bytes());
    w.bulk(b"keys");
    w.int(keys as i64);
    w.bulk(b"digest");
    w.bulk(format!("{sum:016x}").as_bytes());
    Ok(())
}
