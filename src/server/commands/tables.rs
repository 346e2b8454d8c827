//! `TABLE.*` commands.

use super::super::blocking::off_net_thread;
use super::super::conn::Conn;
use crate::restore::format_time;
use crate::shard::{Db, DbError};

enum Field {
    Int(i64),
    Text(String),
}

/// `TABLE.DESCRIBE`: status, size, settings, where a restored table came from, and while it
/// restores, how far it has come.
fn describe(db: &Db, name: &str) -> Result<Vec<(&'static str, Field)>, DbError> {
    use Field::{Int, Text};
    let meta = db
        .meta(name)
        .ok_or_else(|| DbError::NoSuchTable(name.to_string()))?;
    let live = db.table(name).filter(|t| t.meta.id == meta.id);
    let mut f = vec![
        ("name", Text(meta.name.clone())),
        ("id", Int(meta.id as i64)),
        ("status", Text(meta.status.as_str().into())),
        ("items", Int(live.as_ref().map_or(0, |t| t.len() as i64))),
        ("bytes", Int(live.as_ref().map_or(0, |t| t.bytes() as i64))),
        ("shards", Int(meta.shards as i64)),
        ("created", Text(format_time(meta.created_us))),
        ("created_unix_us", Int(meta.created_us as i64)),
        (
            "pitr_status",
            Text(
                if meta.pitr_days > 0 {
                    "ENABLED"
                } else {
                    "DISABLED"
                }
                .into(),
            ),
        ),
        ("pitr_recovery_period_days", Int(meta.pitr_days as i64)),
    ];
    if meta.restore_source_id != 0 {
        f.push(("restored_from_table_id", Int(meta.restore_source_id as i64)));
        f.push(("restore_time", Text(format_time(meta.restore_at_us))));
        f.push(("restore_time_unix_us", Int(meta.restore_at_us as i64)));
    }
    if let Some(p) = db.restore_progress(name) {
        let s = p.snapshot();
        f.push((
            "restore_phase",
            Text(format!("{:?}", s.phase).to_uppercase()),
        ));
        f.push(("restore_records_replayed", Int(s.records as i64)));
        f.push(("restore_bytes_replayed", Int(s.bytes_done as i64)));
        f.push(("restore_bytes_total", Int(s.bytes_total as i64)));
        f.push(("restore_replay_time", Text(format_time(s.replay_us))));
        f.push((
            "restore_elapsed_seconds",
            Text(format!("{:.3}", s.elapsed_s)),
        ));
        let eta = s.eta_s.map_or("unknown".to_string(), |e| format!("{e:.3}"));
        f.push(("restore_eta_seconds", Text(eta)));
    }
    if let Some(why) = db.restore_failure(name) {
        f.push(("failure", Text(why)));
    }
    Ok(f)
}

pub async fn exec_table(conn: &mut Conn<'_>, name: &str, args: &[&[u8]]) {
    let db = conn.state.db.clone();
    let result: Result<(), DbError> = match name {
        // Both fsync the catalog; a drop also joins the table's writer threads and deletes
        // its files: off the net thread.
        "table.create" | "table.drop" => {
            let (create, arg) = (name == "table.create", args[1].to_vec());
            let r = off_net_thread(move || {
                if create {
                    db.create_table(&arg).map(drop)
                } else {
                    db.drop_table(&arg)
                }
            })
            .await;
            match r {
                Ok(r) => r.map(|()| conn.reply().ok()),
                Err(why) => return conn.error(&format!("ERR {why}")),
            }
        }
        "table.list" => {
            let names = db.table_names();
            let mut w = conn.reply();
            w.array(names.len());
            for n in names {
                w.bulk(n.as_bytes());
            }
            Ok(())
        }
        "table.use" => {
            let name = String::from_utf8_lossy(args[1]).into_owned();
            match (db.table(&name), db.meta(&name)) {
                (Some(t), _) => {
                    conn.use_table(t);
                    conn.reply().ok();
                    Ok(())
                }
                (None, Some(m)) => Err(DbError::NotActive(name, m.status.as_str())),
                (None, None) => Err(DbError::NoSuchTable(name)),
            }
        }
        "table.describe" => {
            let name = String::from_utf8_lossy(args[1]).into_owned();
            describe(&db, &name).map(|fields| {
                let mut w = conn.reply();
                w.map(fields.len());
                for (k, v) in fields {
                    w.bulk(k.as_bytes());
                    match v {
                        Field::Int(n) => w.int(n),
                        Field::Text(t) => w.bulk(t.as_bytes()),
                    }
                }
            })
        }
        "table.digest" => super::history::digest(conn, args).await,
        other => unreachable!("{other} is not a table command"),
    };
    if let Err(e) = result {
        let msg = format!("ERR {e}");
        conn.error(&msg);
    }
}
