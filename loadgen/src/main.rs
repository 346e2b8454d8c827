//! `rewind-loadgen`: load for RESP servers with honest latencies.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rewind_loadgen::keys::{KeyDist, ValueSize};
use rewind_loadgen::report::{json_report, summary_table};
use rewind_loadgen::run::{run, RunConfig};

#[derive(Parser)]
#[command(
    name = "rewind-loadgen",
    version,
    about = "Load generator for RESP servers (rewind, Redis)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed-loop load (or open loop with --rate) with latency percentiles.
    Run(Box<RunArgs>),
    /// Highest rate that meets latency SLOs (not built yet).
    Capacity,
    /// PITR correctness oracle against a running rewind (not built yet).
    Verify,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

fn ratio(s: &str) -> Result<f64, String> {
    let bad = || format!("bad ratio {s:?}: want SET:GET, e.g. 1:10");
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let (a, b): (f64, f64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a < 0.0 || b < 0.0 || a + b == 0.0 {
        return Err(bad());
    }
    Ok(a / (a + b))
}

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s}: no address"))
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, default_value = "127.0.0.1:7379", value_parser = addr)]
    addr: SocketAddr,
    #[arg(long, default_value_t = 50)]
    connections: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[arg(long, default_value = "30s", value_parser = duration)]
    duration: Duration,
    #[arg(long, default_value = "0s", value_parser = duration)]
    warmup: Duration,
    /// SET:GET, e.g. 1:10.
    #[arg(long, default_value = "1:10", value_parser = ratio)]
    ratio: f64,
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// uniform, zipf:S (e.g. zipf:0.99) or sequential.
    #[arg(long, default_value = "uniform")]
    key_dist: KeyDist,
    /// Bytes, N or MIN-MAX.
    #[arg(long, default_value = "100")]
    value_size: ValueSize,
    /// rewind table to use (TABLE.USE); leave out for Redis.
    #[arg(long)]
    table: Option<String>,
    /// Open loop at this many requests per second (all connections together).
    #[arg(long)]
    rate: Option<f64>,
    /// Write the results in memtier_benchmark's JSON layout.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(a) => {
            let cfg = RunConfig {
                addr: a.addr,
                connections: a.connections,
                threads: a.threads,
                pipeline: a.pipeline,
                duration: a.duration,
                warmup: a.warmup,
                set_ratio: a.ratio,
                keys: a.keys,
                key_dist: a.key_dist,
                value_size: a.value_size,
                table: a.table.clone(),
                rate: a.rate,
                seed: a.seed,
                requests: a.requests,
                live: true,
            };
            let r = match run(&cfg) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("rewind-loadgen run: {e}");
                    return ExitCode::from(2);
                }
            };
            print!("{}", summary_table(&r.total, r.seconds));
            if let Some(path) = a.json {
                let config = serde_json::json!({
                    "server": a.addr.ip().to_string(), "port": a.addr.port(),
                    "clients": a.connections, "threads": a.threads, "pipeline": a.pipeline,
                    "ratio": a.ratio, "key_maximum": a.keys, "key_pattern": format!("{:?}", a.key_dist),
                    "data_size": format!("{:?}", a.value_size), "test_time": a.duration.as_secs_f64(),
                    "rate": a.rate, "seed": a.seed,
                });
                let doc = json_report(config, &r.total, &r.per_second, r.seconds, r.start_unix_ms);
                if let Err(e) =
                    std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json"))
                {
                    eprintln!("rewind-loadgen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if r.total.ops() == 0 {
                eprintln!("rewind-loadgen run: no request succeeded");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::Capacity | Command::Verify => {
            eprintln!(
                "rewind-loadgen: this subcommand is not built yet (see the project's issues)"
            );
            ExitCode::from(2)
        }
    }
}
