//! `INFO`: the server's state as `field:value` lines in `# Section`s, in Redis's own format
//! and with Redis's field names wherever the field has a meaning here, so tools that parse
//! Redis's INFO (redis_exporter, Grafana's Redis dashboards, redis-cli --stat) work
//! unchanged. rewind's own fields sit beside them (`rewind_version`, `log_*`, `archive_*`,
//! `table_NAME:` keyspace lines).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::super::observe::memory;
use super::super::state::ServerState;
use super::COMMANDS;

/// Every section `INFO` (or `INFO all`) renders, in order.
pub const SECTIONS: [&str; 10] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "archive",
    "keyspace",
];

/// Renders all sections, or those named (`INFO server clients`, `INFO default`, `INFO
/// everything`, case-insensitive).
pub fn render_info(state: &ServerState, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "everything" | "default"));
    let want = |s: &str| all || sections.iter().any(|x| x == s);
    let mut out = String::new();
    for s in SECTIONS {
        if want(s) {
            render_section(state, s, &mut out);
        }
    }
    out
}

fn render_section(state: &ServerState, section: &str, out: &mut String) {
    let db = &state.db;
    match section {
        "server" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let up = state.started.elapsed().as_secs();
            let _ = write!(
                out,
                "# Server\r\nredis_version:7.2.0\r\nrewind_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_mode:{}\r\nnet_threads:{}\r\nshards:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                usize::BITS,
                std::process::id(),
                state.run_id,
                state.port,
                now.as_micros(),
                up / 86_400,
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                state.config_file.as_deref().unwrap_or(""),
                state.net_io,
                state.net_threads,
                db.cfg.shards,
            );
        }
        "clients" => {
            let _ = write!(
                out,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\n\r\n",
                state.clients.load(Ordering::Relaxed),
                state.max_clients,
            );
        }
        "memory" => {
            let m = memory::read();
            let dataset: u64 = db.tables().iter().map(|t| t.bytes()).sum();
            let _ = write!(
                out,
                "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nused_memory_dataset:{dataset}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:mimalloc\r\n\r\n",
                m.used,
                memory::human(m.used),
                m.rss,
                memory::human(m.rss),
                m.peak,
                memory::human(m.peak),
                if m.used == 0 { 0.0 } else { m.rss as f64 / m.used as f64 },
            );
        }
        "persistence" => persistence(state, out),
        "stats" => {
            let net = state.stats.net();
            let now = state.rates.now();
            let errors: u64 = (0..COMMANDS.len())
                .map(|c| {
                    let t = state.stats.command(c);
                    t.failed + t.rejected
                })
                .sum::<u64>()
                + net.unknown_commands;
            let _ = write!(
                out,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{:.0}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nexpired_keys:0\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\ntotal_error_replies:{errors}\r\nunexpected_error_replies:{}\r\nslowlog_len:{}\r\n\r\n",
                state.total_connections.load(Ordering::Relaxed),
                state.stats.total_calls(),
                now.ops_per_sec,
                net.input_bytes,
                net.output_bytes,
                now.input_kbps,
                now.output_kbps,
                state.rejected_connections.load(Ordering::Relaxed),
                net.keyspace_hits,
                net.keyspace_misses,
                net.unknown_commands,
                state.slowlog.len(),
            );
        }
        "replication" => {
            out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n");
        }
        "cpu" => {
            let (user, sys) = cpu_seconds();
            let _ = write!(
                out,
                "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n\r\n"
            );
        }
        "commandstats" => {
            out.push_str("# Commandstats\r\n");
            for (i, spec) in COMMANDS.iter().enumerate() {
                let t = state.stats.command(i);
                let calls = t.calls();
                if calls == 0 && t.rejected == 0 {
                    continue;
                }
                let per = if calls == 0 {
                    0.0
                } else {
                    t.latency.sum_us as f64 / calls as f64
                };
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={calls},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
                    spec.name, t.latency.sum_us, t.rejected, t.failed,
                );
            }
            out.push_str("\r\n");
        }
        "archive" => archive(state, out),
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            // The default table is Redis's database 0 for tools that read `db0`.
            if let Some(t) = db.table(crate::shard::DEFAULT_TABLE) {
                let _ = write!(out, "db0:keys={},expires=0,avg_ttl=0\r\n", t.len());
            }
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
        _ => {}
    }
}

/// This process's user and system CPU seconds.
fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_utime), secs(u.ru_stime))
}

fn persistence(state: &ServerState, out: &mut String) {
    let db = &state.db;
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
    let sync = &s.sync_latency;
    let mean = if sync.count() == 0 {
        0.0
    } else {
        sync.sum_us as f64 / sync.count() as f64
    };
    let p99 = sync.quantile_bound_us(0.99).unwrap_or(0);
    let _ = write!(
        out,
        "# Persistence\r\nloading:0\r\naof_enabled:1\r\nrdb_changes_since_last_save:0\r\nfsync:{fsync}\r\nlog_io_engine:{log_io}\r\nlog_commit:{}\r\nlog_bytes_on_disk:{}\r\nlog_syncs:{}\r\nlog_blocks:{}\r\nlog_blocks_by_net_threads:{}\r\nlog_blocks_direct:{}\r\nlog_records:{}\r\nlog_avg_records_per_sync:{per_sync:.2}\r\nlog_stored_per_logical_byte:{ratio:.3}\r\nlog_sync_mean_usec:{mean:.1}\r\nlog_sync_p99_usec_at_most:{}\r\nlog_segments_created:{}\r\nlog_segment_rolls_prepared:{}\r\nlog_segment_rolls_inline:{}\r\nlog_segments_sealed:{}\r\nlog_space_zeroed_bytes:{}\r\nlog_space_reserved_bytes:{}\r\n\r\n",
        if state.inline_commit { "inline" } else { "thread" },
        db.log_bytes_on_disk(),
        s.syncs,
        s.blocks,
        s.net_blocks,
        s.direct_blocks,
        s.records,
        if p99 == u64::MAX { i64::MAX as u64 } else { p99 },
        s.segments_created,
        s.segments_prepared,
        s.segment_rolls_inline,
        s.segments_sealed,
        s.zeroed_bytes,
        s.reserved_bytes,
    );
}

fn archive(state: &ServerState, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let db = &state.db;
    let Some(a) = db.archive.get() else {
        return;
    };
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
        archive_lag_seconds(state),
    );
}

/// The largest lag of any PITR table behind its newest durable write, in seconds.
pub fn archive_lag_seconds(state: &ServerState) -> f64 {
    let db = &state.db;
    let Some(a) = db.archive.get() else {
        return 0.0;
    };
    db.catalog_snapshot()
        .tables
        .iter()
        .filter(|t| t.pitr_days > 0)
        .map(|t| super::pitr::table_lag_us(db, a, t))
        .max()
        .unwrap_or(0) as f64
        / 1e6
}
