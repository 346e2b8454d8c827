//! `rewind history` and `rewind diff` on a stopped server's data directory (the lock is
//! taken and the directory opened as `rewind restore` opens it), and the DynamoDB helper:
//! a key given as DynamoDB JSON (`{"artist":{"S":"A"}}`), its history printed as JSON items.

use std::path::Path;
use std::sync::Arc;

use crate::history::{Glob, Write};
use crate::log::{Clock, SystemClock};
use crate::restore::{format_time, parse_time};
use crate::shard::{Db, DbError, EngineConfig};

/// What to print a key's history of.
pub enum KeyArg {
    Raw(Vec<u8>),
    /// A DynamoDB key, as the JSON of its key attributes.
    Dynamo(String),
}

fn time(s: Option<&str>) -> Result<Option<u64>, DbError> {
    s.map(|s| parse_time(s).map_err(DbError::BadTime))
        .transpose()
}

fn open(data_dir: &Path) -> Result<Arc<Db>, DbError> {
    if !data_dir.join("catalog").exists() {
        return Err(DbError::Internal(format!(
            "{} holds no rewind data directory (no catalog)",
            data_dir.display()
        )));
    }
    let (db, _) = Db::open(data_dir, EngineConfig::default(), Arc::new(SystemClock))?;
    Ok(Arc::new(db))
}

/// A value for a terminal: text as it is, other bytes escaped.
fn show(v: &[u8]) -> String {
    v.escape_ascii().to_string()
}

/// The storage key of a DynamoDB key in `table`, from the key schema the table holds.
fn dynamo_key(ctx: &crate::shard::HistoryCtx<'_>, json: &str) -> Result<Vec<u8>, DbError> {
    let bad = |e: String| DbError::BadTime(format!("--dynamodb-key: {e}"));
    let stored = ctx
        .source
        .value_at(crate::dynamo::SCHEMA_KEY, ctx.window.latest_us)?
        .ok_or_else(|| {
            bad(format!(
                "table '{}' has no DynamoDB key schema",
                ctx.meta.name
            ))
        })?;
    crate::dynamo::storage_key(&stored, json).map_err(bad)
}

/// `rewind history`: a key's writes, newest first, as text lines (or JSON with a DynamoDB
/// key: each write's item).
pub fn history(
    data_dir: &Path,
    table: &str,
    key: KeyArg,
    (from, to): (Option<&str>, Option<&str>),
    count: usize,
) -> Result<String, DbError> {
    let (from, to) = (time(from)?, time(to)?);
    let db = open(data_dir)?;
    let now = SystemClock.now_us();
    let out = db.with_history(table, |ctx| {
        for t in [from, to].into_iter().flatten() {
            ctx.check(t, now)?;
        }
        let (storage_key, dynamo) = match &key {
            KeyArg::Raw(k) => (k.clone(), false),
            KeyArg::Dynamo(json) => (dynamo_key(ctx, json)?, true),
        };
        let range = (from.unwrap_or(ctx.window.earliest_us), to.unwrap_or(now));
        let writes = ctx.source.history(&storage_key, range, count)?;
        Ok(if dynamo {
            dynamo_json(&writes)
        } else {
            writes.iter().map(line).collect::<String>()
        })
    });
    db.shutdown();
    out
}

fn line(w: &Write) -> String {
    match &w.value {
        Some(v) => format!(
            "{} {} set {}\n",
            format_time(w.commit_us),
            w.commit_us,
            show(v)
        ),
        None => format!("{} {} del\n", format_time(w.commit_us), w.commit_us),
    }
}

/// A JSON array of `{"time", "time_unix_us", "op", "item"}`, newest first.
fn dynamo_json(writes: &[Write]) -> String {
    let entries: Vec<serde_json::Value> = writes
        .iter()
        .map(|w| {
            let item = w.value.as_deref().map(crate::dynamo::item_json);
            serde_json::json!({
                "time": format_time(w.commit_us),
                "time_unix_us": w.commit_us,
                "op": if w.value.is_some() { "put" } else { "delete" },
                "item": item,
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&entries).unwrap_or_default();
    s.push('\n');
    s
}

/// `rewind diff`: the keys whose value at `to` differs from their value at `from`, one per
/// line: key, then the value at each moment (`(none)` where absent).
pub fn diff(
    data_dir: &Path,
    table: &str,
    (from, to): (&str, &str),
    pattern: Option<&str>,
    count: usize,
) -> Result<String, DbError> {
    let (t1, t2) = (
        parse_time(from).map_err(DbError::BadTime)?,
        parse_time(to).map_err(DbError::BadTime)?,
    );
    if t1 > t2 {
        return Err(DbError::BadTime("--from is after --to".into()));
    }
    let glob = pattern
        .map(|p| Glob::new(p.as_bytes()).map_err(|e| DbError::BadTime(format!("--match: {e}"))))
        .transpose()?;
    let db = open(data_dir)?;
    let now = SystemClock.now_us();
    let out = db.with_history(table, |ctx| {
        ctx.check(t1, now)?;
        ctx.check(t2, now)?;
        let page = ctx.source.diff((t1, t2), glob.as_ref(), None, count)?;
        let mut s = String::new();
        let val = |v: &Option<Vec<u8>>| v.as_deref().map_or("(none)".to_string(), show);
        for c in &page.changes {
            s.push_str(&format!(
                "{} {} {}\n",
                show(&c.key),
                val(&c.before),
                val(&c.after)
            ));
        }
        if page.more {
            s.push_str(&format!("(more than {count}: raise --count)\n"));
        }
        Ok(s)
    });
    db.shutdown();
    out
}
