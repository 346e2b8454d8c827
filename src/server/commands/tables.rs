//! `TABLE.*` commands.

use super::super::conn::Conn;
use crate::shard::DbError;

/// `2026-11-25T13:04:05.250000Z` from Unix microseconds.
pub fn rfc3339_us(us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_micros(t).to_string()
}

pub fn exec_table(conn: &mut Conn<'_>, name: &str, args: &[&[u8]]) {
    let db = conn.state.db.clone();
    let result: Result<(), DbError> = match name {
        "table.create" => db.create_table(args[1]).map(|_| conn.reply().ok()),
        "table.drop" => db.drop_table(args[1]).map(|_| conn.reply().ok()),
        "table.list" => {
            let names = db.table_names();
            let mut w = conn.reply();
            w.array(names.len());
            for n in names {
                w.bulk(n.as_bytes());
            }
            Ok(())
        }
        "table.use" => match db.table(&String::from_utf8_lossy(args[1])) {
            Some(t) => {
                conn.use_table(t);
                conn.reply().ok();
                Ok(())
            }
            None => Err(DbError::NoSuchTable(
                String::from_utf8_lossy(args[1]).into(),
            )),
        },
        "table.describe" => match db.table(&String::from_utf8_lossy(args[1])) {
            Some(t) => {
                let m = &t.meta;
                let mut w = conn.reply();
                w.map(9);
                w.bulk(b"name");
                w.bulk(m.name.as_bytes());
                w.bulk(b"id");
                w.int(m.id as i64);
                w.bulk(b"status");
                w.bulk(m.status.as_str().as_bytes());
                w.bulk(b"items");
                w.int(t.len() as i64);
                w.bulk(b"bytes");
                w.int(t.bytes() as i64);
                w.bulk(b"shards");
                w.int(t.shards.len() as i64);
                w.bulk(b"created");
                w.bulk(rfc3339_us(m.created_us).as_bytes());
                w.bulk(b"created_unix_us");
                w.int(m.created_us as i64);
                w.bulk(b"pitr_status");
                w.bulk(if m.pitr_days > 0 {
                    b"ENABLED"
                } else {
                    b"DISABLED"
                });
                Ok(())
            }
            None => Err(DbError::NoSuchTable(
                String::from_utf8_lossy(args[1]).into(),
            )),
        },
        other => unreachable!("{other} is not a table command"),
    };
    if let Err(e) = result {
        let msg = format!("ERR {e}");
        conn.error(&msg);
    }
}
