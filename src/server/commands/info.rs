//! `INFO`: the server's state as `field:value` lines in `# Section`s, as Redis writes it.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::super::state::ServerState;
use super::COMMANDS;

/// Renders all sections, or only `section` when given (`server`, `clients`, `stats`,
/// `commandstats`, `persistence`, `keyspace`).
pub fn render_info(state: &ServerState, section: Option<&str>) -> String {
    let want =
        |s: &str| matches!(section, None | Some("all") | Some("everything")) || section == Some(s);
    let mut out = String::new();
    let db = &state.db;
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nrewind_version:{}\r\nredis_version:7.2.0\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nio_mode:{}\r\nnet_threads:{}\r\nshards:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            state.port,
            state.started.elapsed().as_secs(),
            state.net_io,
            state.net_threads,
            db.cfg.shards,
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\r\n",
            state.clients.load(Ordering::Relaxed),
            state.max_clients,
            state.total_connections.load(Ordering::Relaxed),
            state.rejected_connections.load(Ordering::Relaxed),
        );
    }
    if want("stats") || want("commandstats") {
        let total: u64 = state.calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        if want("stats") {
            let _ = write!(out, "# Stats\r\ntotal_commands_processed:{total}\r\n\r\n");
        }
        if want("commandstats") {
            out.push_str("# Commandstats\r\n");
            for (spec, calls) in COMMANDS.iter().zip(&state.calls) {
                let n = calls.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = write!(out, "cmdstat_{}:calls={n}\r\n", spec.name);
                }
            }
            out.push_str("\r\n");
        }
    }
    if want("persistence") {
        let s = db.log_stats();
        let per_sync = if s.syncs == 0 {
            0.0
        } else {
            s.records as f64 / s.syncs as f64
        };
        let ratio = if s.raw_bytes == 0 {
            0.0
        } else {
            s.stored_bytes as f64 / s.raw_bytes as f64
        };
        let fsync = match db.cfg.fsync {
            crate::log::FsyncPolicy::Always => "always",
            crate::log::FsyncPolicy::EverySec => "everysec",
            crate::log::FsyncPolicy::Never => "never",
        };
        let log_io = db
            .tables()
            .first()
            .map(|t| t.shards[0].log.io_engine())
            .unwrap_or("none");
        let _ = write!(
            out,
            "# Persistence\r\nfsync:{fsync}\r\nlog_io_engine:{log_io}\r\nlog_commit:{}\r\nlog_bytes_on_disk:{}\r\nlog_syncs:{}\r\nlog_blocks:{}\r\nlog_blocks_by_net_threads:{}\r\nlog_records:{}\r\nlog_avg_records_per_sync:{per_sync:.2}\r\nlog_stored_per_logical_byte:{ratio:.3}\r\n\r\n",
            if state.inline_commit { "inline" } else { "thread" },
            db.log_bytes_on_disk(),
            s.syncs,
            s.blocks,
            s.net_blocks,
            s.records,
        );
    }
    if let Some(a) = db.archive.get().filter(|_| want("archive")) {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = write!(
            out,
            "# Archive\r\narchive_url:{}\r\narchive_generation:{}\r\narchive_status:{}\r\narchive_bytes_shipped:{}\r\narchive_objects_shipped:{}\r\narchive_puts:{}\r\narchive_puts_per_hour:{:.0}\r\narchive_gets:{}\r\narchive_deletes:{}\r\narchive_errors:{}\r\narchive_lag_seconds:{:.3}\r\n\r\n",
            a.url,
            a.generation(),
            a.status().replace(['\r', '\n'], " "),
            a.bytes.load(Relaxed),
            a.objects.load(Relaxed),
            a.puts.load(Relaxed),
            a.puts_per_hour(),
            a.gets.load(Relaxed),
            a.deletes.load(Relaxed),
            a.errors.load(Relaxed),
            db.catalog_snapshot()
                .tables
                .iter()
                .filter(|t| t.pitr_days > 0)
                .map(|t| super::pitr::table_lag_us(db, a, t))
                .max()
                .unwrap_or(0) as f64
                / 1e6,
        );
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        for t in db.tables() {
            let _ = write!(
                out,
                "table_{}:keys={},bytes={}\r\n",
                t.name(),
                t.len(),
                t.bytes()
            );
        }
    }
    out
}
