//! The `/metrics` exposition: rewind's counters in the OpenMetrics text format, encoded by
//! the `prometheus-client` crate at each scrape from the same atomics INFO reads (nothing is
//! counted twice). Names are `rewind_*`; counters end in `_total`, durations are histograms
//! in seconds, sizes in bytes. docs/OPERATIONS.md lists every family.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::super::commands::COMMANDS;
use super::super::state::ServerState;
use super::memory;
use crate::metrics::histogram::{Snapshot, BOUNDS_US};

/// Renders every family, ending with OpenMetrics' `# EOF`.
pub fn render(state: &std::sync::Arc<ServerState>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(state.clone())));
    let mut out = String::with_capacity(16 << 10);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

struct Families(std::sync::Arc<ServerState>);

impl std::fmt::Debug for Families {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rewind's metric families")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One family of samples, each with its labels.
fn family<V: Sample>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, V)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, V::TYPE)?;
    for (labels, v) in samples {
        let mut s = m.encode_family(labels)?;
        v.encode(&mut s)?;
    }
    Ok(())
}

fn one<V: Sample>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: V,
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, &[(Vec::new(), v)])
}

trait Sample {
    const TYPE: MetricType;
    fn encode(
        &self,
        m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error>;
}

struct Counter(u64);
struct Gauge(f64);
struct Hist(Snapshot);

impl Sample for Counter {
    const TYPE: MetricType = MetricType::Counter;
    fn encode(
        &self,
        m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        m.encode_counter::<NoLabelSet, u64, u64>(&self.0, None)
    }
}

impl Sample for Gauge {
    const TYPE: MetricType = MetricType::Gauge;
    fn encode(
        &self,
        m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        m.encode_gauge(&self.0)
    }
}

impl Sample for Hist {
    const TYPE: MetricType = MetricType::Histogram;
    fn encode(
        &self,
        m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let buckets: Vec<(f64, u64)> = h
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let bound = BOUNDS_US.get(i).map_or(f64::MAX, |&us| us as f64 / 1e6);
                (bound, c)
            })
            .collect();
        m.encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.count(), &buckets, None)
    }
}

impl Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        let db = &s.db;
        let version = env!("CARGO_PKG_VERSION");
        family(
            &mut enc,
            "rewind_build_info",
            "The running version (always 1)",
            &[(vec![("version", version)], Gauge(1.0))],
        )?;
        one(
            &mut enc,
            "rewind_uptime_seconds",
            "Seconds since the server started",
            Gauge(s.started.elapsed().as_secs_f64()),
        )?;

        // Commands.
        let totals: Vec<_> = (0..COMMANDS.len()).map(|c| s.stats.command(c)).collect();
        let ran =
            |f: &dyn Fn(&super::cmdstats::CommandTotals) -> u64| -> Vec<(Labels<'_>, Counter)> {
                COMMANDS
                    .iter()
                    .zip(&totals)
                    .filter(|(_, t)| t.calls() > 0 || t.rejected > 0)
                    .map(|(c, t)| (vec![("cmd", c.name)], Counter(f(t))))
                    .collect()
            };
        family(
            &mut enc,
            "rewind_commands",
            "Commands that ran, by command",
            &ran(&|t| t.calls()),
        )?;
        family(
            &mut enc,
            "rewind_command_failures",
            "Commands that ran and answered an error, by command",
            &ran(&|t| t.failed),
        )?;
        family(
            &mut enc,
            "rewind_command_rejections",
            "Commands refused before they ran (arity, authentication), by command",
            &ran(&|t| t.rejected),
        )?;
        let hists: Vec<(Labels<'_>, Hist)> = COMMANDS
            .iter()
            .zip(&totals)
            .filter(|(_, t)| t.calls() > 0)
            .map(|(c, t)| (vec![("cmd", c.name)], Hist(t.latency)))
            .collect();
        family(
            &mut enc,
            "rewind_command_duration_seconds",
            "From a command's dispatch until its reply is ready (a write's log sync included)",
            &hists,
        )?;
        let net = s.stats.net();
        one(
            &mut enc,
            "rewind_unknown_commands",
            "Commands not in the command table",
            Counter(net.unknown_commands),
        )?;
        one(
            &mut enc,
            "rewind_net_input_bytes",
            "Bytes read from RESP clients",
            Counter(net.input_bytes),
        )?;
        one(
            &mut enc,
            "rewind_net_output_bytes",
            "Bytes written to RESP clients",
            Counter(net.output_bytes),
        )?;
        one(
            &mut enc,
            "rewind_keyspace_hits",
            "Keys GET and MGET found",
            Counter(net.keyspace_hits),
        )?;
        one(
            &mut enc,
            "rewind_keyspace_misses",
            "Keys GET and MGET did not find",
            Counter(net.keyspace_misses),
        )?;
        one(
            &mut enc,
            "rewind_slowlog_entries",
            "Entries in the slow log",
            Gauge(s.slowlog.len() as f64),
        )?;

        // Connections.
        use std::sync::atomic::Ordering::Relaxed;
        one(
            &mut enc,
            "rewind_connected_clients",
            "RESP connections open",
            Gauge(s.clients.load(Relaxed) as f64),
        )?;
        one(
            &mut enc,
            "rewind_connections_received",
            "RESP connections accepted",
            Counter(s.total_connections.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "rewind_connections_rejected",
            "RESP connections refused at --max-clients",
            Counter(s.rejected_connections.load(Relaxed)),
        )?;

        // Memory.
        let m = memory::read();
        one(
            &mut enc,
            "rewind_memory_used_bytes",
            "Bytes the allocator holds committed",
            Gauge(m.used as f64),
        )?;
        one(
            &mut enc,
            "rewind_memory_rss_bytes",
            "Resident bytes of the process",
            Gauge(m.rss as f64),
        )?;

        // Tables.
        let tables = db.tables();
        let names: Vec<String> = tables.iter().map(|t| t.name().to_string()).collect();
        let per_table = |f: &dyn Fn(&crate::shard::Table) -> f64| -> Vec<(Labels<'_>, Gauge)> {
            tables
                .iter()
                .zip(&names)
                .map(|(t, n)| (vec![("table", n.as_str())], Gauge(f(t))))
                .collect()
        };
        family(
            &mut enc,
            "rewind_table_keys",
            "Keys in each table",
            &per_table(&|t| t.len() as f64),
        )?;
        family(
            &mut enc,
            "rewind_table_bytes",
            "Key and value bytes in each table",
            &per_table(&|t| t.bytes() as f64),
        )?;
        let writes: Vec<(Labels<'_>, Counter)> = tables
            .iter()
            .zip(&names)
            .map(|(t, n)| {
                let records = t.shards.iter().map(|sh| sh.log.stats().records).sum();
                (vec![("table", n.as_str())], Counter(records))
            })
            .collect();
        family(
            &mut enc,
            "rewind_table_writes",
            "Records logged to each table since start (rate() gives its write rate)",
            &writes,
        )?;

        // The logs.
        let log = db.log_stats();
        one(
            &mut enc,
            "rewind_log_syncs",
            "Log syncs (fdatasync or a write with its sync)",
            Counter(log.syncs),
        )?;
        one(
            &mut enc,
            "rewind_log_blocks",
            "Log blocks written",
            Counter(log.blocks),
        )?;
        one(
            &mut enc,
            "rewind_log_records",
            "Records written to the logs",
            Counter(log.records),
        )?;
        one(
            &mut enc,
            "rewind_log_logical_bytes",
            "Record bytes before compression",
            Counter(log.raw_bytes),
        )?;
        one(
            &mut enc,
            "rewind_log_stored_bytes",
            "Block bytes written to the logs",
            Counter(log.stored_bytes),
        )?;
        one(
            &mut enc,
            "rewind_log_segments_created",
            "Segment files opened",
            Counter(log.segments_created),
        )?;
        one(
            &mut enc,
            "rewind_log_segment_rolls_prepared",
            "Segments (a log's first included) started in a file the helper thread had prepared",
            Counter(log.segments_prepared),
        )?;
        one(
            &mut enc,
            "rewind_log_segment_rolls_inline",
            "Segment rolls that created the next file on the commit path (the helper was behind)",
            Counter(log.segment_rolls_inline),
        )?;
        one(
            &mut enc,
            "rewind_log_segments_sealed",
            "Finished segments trimmed, synced and indexed",
            Counter(log.segments_sealed),
        )?;
        one(
            &mut enc,
            "rewind_log_space_zeroed_bytes",
            "Space ahead of the log writers made by writing zeros",
            Counter(log.zeroed_bytes),
        )?;
        one(
            &mut enc,
            "rewind_log_space_reserved_bytes",
            "Space ahead of the log writers reserved with fallocate",
            Counter(log.reserved_bytes),
        )?;
        one(
            &mut enc,
            "rewind_log_records_per_sync",
            "Records per sync since start",
            Gauge(if log.syncs == 0 {
                0.0
            } else {
                log.records as f64 / log.syncs as f64
            }),
        )?;
        one(
            &mut enc,
            "rewind_log_sync_duration_seconds",
            "Making writes durable: a block's write and sync (fsync always), the sync alone (everysec)",
            Hist(log.sync_latency),
        )?;
        one(
            &mut enc,
            "rewind_disk_bytes",
            "Bytes of the data directory's table files, as the last maintenance pass counted them",
            Gauge(db.log_bytes_on_disk() as f64),
        )?;

        // Maintenance.
        let a = &db.activity;
        one(
            &mut enc,
            "rewind_maintenance_passes",
            "Maintenance passes run",
            Counter(a.passes.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "rewind_checkpoints",
            "Checkpoints written",
            Counter(a.checkpoints.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "rewind_checkpoint_failures",
            "Checkpoints that failed (retried on the next pass)",
            Counter(a.checkpoint_failures.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "rewind_retention_files_deleted",
            "Segments, checkpoints and key indexes retention deleted",
            Counter(a.files_deleted.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "rewind_retention_tables_expired",
            "Dropped tables removed for good after their recovery period",
            Counter(a.tables_expired.load(Relaxed)),
        )?;
        one(
            &mut enc,
            "rewind_retention_deferred",
            "Passes whose retention waited for a reader",
            Counter(a.retention_deferred.load(Relaxed)),
        )?;

        // Restores running.
        let restores: Vec<(String, crate::restore::progress::Snapshot)> = db
            .restores_running()
            .into_iter()
            .map(|(n, p)| (n, p.snapshot()))
            .collect();
        let done: Vec<(Labels<'_>, Gauge)> = restores
            .iter()
            .map(|(n, p)| (vec![("target", n.as_str())], Gauge(p.bytes_done as f64)))
            .collect();
        let total: Vec<(Labels<'_>, Gauge)> = restores
            .iter()
            .map(|(n, p)| (vec![("target", n.as_str())], Gauge(p.bytes_total as f64)))
            .collect();
        family(
            &mut enc,
            "rewind_restore_read_bytes",
            "Log bytes a running restore has replayed",
            &done,
        )?;
        family(
            &mut enc,
            "rewind_restore_total_bytes",
            "Log bytes a running restore will replay (an estimate)",
            &total,
        )?;

        // The archive.
        if let Some(arc) = db.archive.get() {
            one(
                &mut enc,
                "rewind_archive_lag_seconds",
                "How far the archive is behind the newest durable write (largest over PITR tables)",
                Gauge(super::super::commands::archive_lag_seconds(s)),
            )?;
            one(
                &mut enc,
                "rewind_archive_shipped_bytes",
                "Bytes shipped to the archive",
                Counter(arc.bytes.load(Relaxed)),
            )?;
            one(
                &mut enc,
                "rewind_archive_puts",
                "PUT requests to the archive",
                Counter(arc.puts.load(Relaxed)),
            )?;
            one(
                &mut enc,
                "rewind_archive_errors",
                "Archive requests that failed",
                Counter(arc.errors.load(Relaxed)),
            )?;
        }
        Ok(())
    }
}
