//! `PITR.*` commands: continuous backups and point-in-time restores.

use super::super::blocking::off_net_thread;
use super::super::conn::Conn;
use crate::restore::{format_time, parse_time};
use crate::shard::{DbError, RestoreAt, MAX_DAYS};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub async fn exec_pitr(conn: &mut Conn<'_>, name: &str, args: &[&[u8]]) {
    let result = match name {
        "pitr.enable" => enable(conn, args).await,
        "pitr.disable" => {
            let (db, table) = (conn.state.db.clone(), args[1].to_vec());
            match off_net_thread(move || db.pitr_disable(&table)).await {
                Ok(r) => r.map(|_| conn.reply().ok()),
                Err(why) => Err(DbError::Internal(why)),
            }
        }
        "pitr.describe" => describe(conn, &text(args[1])),
        "pitr.restore" => restore(conn, args).await,
        "pitr.history" => super::history::history(conn, args).await,
        "pitr.get" => super::history::get(conn, args).await,
        "pitr.diff" => super::history::diff(conn, args).await,
        "pitr.revert" => super::history::revert(conn, args).await,
        other => unreachable!("{other} is not a PITR command"),
    };
    if let Err(e) = result {
        let msg = format!("ERR {e}");
        conn.error(&msg);
    }
}

/// `PITR.ENABLE name [DAYS n]`.
async fn enable(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    let days = match args {
        [_, _] => MAX_DAYS,
        [_, _, opt, n] if opt.eq_ignore_ascii_case(b"DAYS") => {
            text(n).parse::<u64>().map_err(|_| DbError::BadPeriod(0))?
        }
        _ => return Err(DbError::BadTime("syntax: PITR.ENABLE name [DAYS n]".into())),
    };
    let (db, table) = (conn.state.db.clone(), args[1].to_vec());
    off_net_thread(move || db.pitr_enable(&table, days))
        .await
        .map_err(DbError::Internal)??;
    conn.reply().ok();
    Ok(())
}

/// Status, recovery period and the restorable window, as field/value pairs.
fn describe(conn: &mut Conn<'_>, name: &str) -> Result<(), DbError> {
    let (meta, window) = conn.state.db.pitr_source(name)?;
    match window {
        None => {
            let mut w = conn.reply();
            w.map(3);
            w.bulk(b"table");
            w.bulk(meta.name.as_bytes());
            w.bulk(b"status");
            w.bulk(b"DISABLED");
            w.bulk(b"recovery_period_days");
            w.int(0);
        }
        Some(win) => {
            let archive = conn.state.db.archive.get().cloned();
            let lag = archive
                .as_ref()
                .map_or(0, |a| table_lag_us(&conn.state.db, a, &meta));
            let mut w = conn.reply();
            w.map(12);
            w.bulk(b"table");
            w.bulk(meta.name.as_bytes());
            w.bulk(b"status");
            w.bulk(b"ENABLED");
            w.bulk(b"recovery_period_days");
            w.int(meta.pitr_days as i64);
            w.bulk(b"table_status");
            w.bulk(meta.status.as_str().as_bytes());
            w.bulk(b"earliest_restorable");
            w.bulk(format_time(win.earliest_us).as_bytes());
            w.bulk(b"earliest_restorable_unix_us");
            w.int(win.earliest_us as i64);
            w.bulk(b"latest_restorable");
            w.bulk(format_time(win.latest_us).as_bytes());
            w.bulk(b"latest_restorable_unix_us");
            w.int(win.latest_us as i64);
            // From the archive alone (--archive): how far a restore on another host reaches.
            let status = match &archive {
                None => "OFF".to_string(),
                Some(a) => a.status(),
            };
            w.bulk(b"archive_status");
            w.bulk(status.as_bytes());
            let latest = archive
                .as_ref()
                .map_or(0, |a| a.latest_restorable_us(meta.id, meta.shards));
            w.bulk(b"archive_latest_restorable");
            if latest > 0 {
                w.bulk(format_time(latest).as_bytes());
            } else {
                w.bulk(b"none");
            }
            w.bulk(b"archive_latest_restorable_unix_us");
            w.int(latest as i64);
            w.bulk(b"archive_lag_seconds");
            let lag = lag as f64 / 1e6;
            w.bulk(format!("{lag:.3}").as_bytes());
        }
    }
    Ok(())
}

/// `PITR.RESTORE source target (AT time | LATEST) [MATCH glob] [SYNC | DRYRUN]`.
async fn restore(conn: &mut Conn<'_>, args: &[&[u8]]) -> Result<(), DbError> {
    let syntax = || {
        DbError::BadTime(
            "syntax: PITR.RESTORE source target (AT time | LATEST) [MATCH glob] [SYNC | DRYRUN]"
                .into(),
        )
    };
    let (at, mut rest) = match args.get(3).map(|a| a.to_ascii_uppercase()).as_deref() {
        Some(b"LATEST") => (RestoreAt::Latest, &args[4..]),
        Some(b"AT") => {
            let t = args.get(4).ok_or_else(syntax)?;
            (
                RestoreAt::Time(parse_time(&text(t)).map_err(DbError::BadTime)?),
                &args[5..],
            )
        }
        _ => return Err(syntax()),
    };
    let (mut sync, mut dry, mut filter) = (false, false, None);
    while let [opt, tail @ ..] = rest {
        match opt.to_ascii_uppercase().as_slice() {
            b"SYNC" => sync = true,
            b"DRYRUN" => dry = true,
            b"MATCH" => {
                let [pattern, tail @ ..] = tail else {
                    return Err(syntax());
                };
                let g = crate::history::Glob::new(pattern)
                    .map_err(|e| DbError::BadTime(format!("MATCH: {e}")))?;
                filter = Some(g);
                rest = tail;
                continue;
            }
            _ => return Err(syntax()),
        }
        rest = tail;
    }
    if sync && dry {
        return Err(syntax());
    }
    if dry {
        return dry_run(conn, args, at).await;
    }
    // Saving the target in the catalog fsyncs: off the net thread.
    let (db, source, target) = (conn.state.db.clone(), text(args[1]), args[2].to_vec());
    let handle = off_net_thread(move || db.begin_restore_matching(&source, &target, at, filter))
        .await
        .map_err(DbError::Internal)??;
    let target = text(args[2]);
    let at_us = handle.progress.at_us;
    let mut outcome = None;
    if sync {
        let done = handle
            .done
            .await
            .unwrap_or(Err("the restore thread stopped".into()));
        if let Err(why) = done {
            return Err(DbError::BadTime(format!(
                "restore into '{target}' failed: {why}"
            )));
        }
        outcome = Some(handle.progress.snapshot());
    }
    let mut w = conn.reply();
    w.map(if outcome.is_some() { 6 } else { 4 });
    w.bulk(b"target");
    w.bulk(target.as_bytes());
    w.bulk(b"status");
    w.bulk(if outcome.is_some() {
        b"ACTIVE"
    } else {
        b"RESTORING"
    });
    w.bulk(b"restore_time");
    w.bulk(format_time(at_us).as_bytes());
    w.bulk(b"restore_time_unix_us");
    w.int(at_us as i64);
    if let Some(s) = outcome {
        w.bulk(b"records_replayed");
        w.int(s.records as i64);
        w.bulk(b"seconds");
        w.bulk(format!("{:.3}", s.elapsed_s).as_bytes());
    }
    Ok(())
}

/// `PITR.RESTORE ... DRYRUN`: the plan and its estimated time, creating nothing.
async fn dry_run(conn: &mut Conn<'_>, args: &[&[u8]], at: RestoreAt) -> Result<(), DbError> {
    let (db, source, target) = (conn.state.db.clone(), text(args[1]), args[2].to_vec());
    let (at_us, plan) = off_net_thread(move || db.dry_run_restore(&source, &target, at))
        .await
        .map_err(DbError::Internal)??;
    let total: u64 = plan
        .shards
        .iter()
        .map(|s| s.checkpoint_bytes + s.log_bytes)
        .sum();
    let mut w = conn.reply();
    w.map(7);
    w.bulk(b"restore_time");
    w.bulk(format_time(at_us).as_bytes());
    w.bulk(b"restore_time_unix_us");
    w.int(at_us as i64);
    w.bulk(b"bytes_total");
    w.int(total as i64);
    w.bulk(b"estimated_seconds");
    w.bulk(format!("{:.3}", plan.estimated_seconds).as_bytes());
    w.bulk(b"replay_bytes_per_second_per_thread");
    w.int(plan.rate as i64);
    w.bulk(b"replay_speed_from");
    w.bulk(plan.rate_source.as_bytes());
    w.bulk(b"shards");
    w.array(plan.shards.len());
    for (k, s) in plan.shards.iter().enumerate() {
        w.map(5);
        w.bulk(b"shard");
        w.int(k as i64);
        w.bulk(b"checkpoint");
        match &s.checkpoint {
            Some(p) => w.bulk(
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
                    .as_bytes(),
            ),
            None => w.null(),
        }
        w.bulk(b"checkpoint_bytes");
        w.int(s.checkpoint_bytes as i64);
        w.bulk(b"segments");
        w.int(s.segments as i64);
        w.bulk(b"log_bytes");
        w.int(s.log_bytes as i64);
    }
    Ok(())
}

/// How far the archive is behind a live table's newest durable write, now.
pub(crate) fn table_lag_us(
    db: &crate::shard::Db,
    a: &crate::shard::ArchiveState,
    meta: &crate::catalog::TableMeta,
) -> u64 {
    let Some(t) = db.table(&meta.name).filter(|t| t.meta.id == meta.id) else {
        return 0;
    };
    (0..t.shards.len())
        .map(|k| {
            a.lag_us(
                meta.id,
                k as u32,
                t.shards[k].log.durable(),
                meta.pitr_since_us,
            )
        })
        .max()
        .unwrap_or(0)
}
