//! `rewind-loadgen`: load for RESP servers with honest latencies.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rewind_loadgen::keys::{KeyDist, ValueSize};
use rewind_loadgen::report::{json_report, summary_table_named};
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
    /// The highest open-loop rate that meets every latency SLO.
    Capacity(Box<CapacityArgs>),
    /// The PITR oracle against a running rewind: writes, restores to random times, checks.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct CapacityArgs {
    #[command(flatten)]
    load: RunArgs,
    /// Latency objective, e.g. p99=1ms; repeat for several.
    #[arg(long = "slo", required = true)]
    slos: Vec<rewind_loadgen::capacity::Slo>,
    /// First rate tried (requests/s).
    #[arg(long, default_value_t = 10_000.0)]
    start: f64,
    /// Rate added per step.
    #[arg(long, default_value_t = 10_000.0)]
    step: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 10_000_000.0)]
    max_rate: f64,
    /// How long each rate is measured (after its warm-up).
    #[arg(long, default_value = "5s", value_parser = duration)]
    dwell: Duration,
    /// Binary-search rounds between the last passing and the first failing step.
    #[arg(long, default_value_t = 4)]
    search: usize,
}

#[derive(Args)]
struct VerifyArgs {
    #[arg(long, default_value = "127.0.0.1:7379", value_parser = addr)]
    addr: SocketAddr,
    /// How long the writers write.
    #[arg(long, default_value = "20s", value_parser = duration)]
    duration: Duration,
    /// Restores to random times, each checked key by key.
    #[arg(long, default_value_t = 10)]
    restores: usize,
    #[arg(long, default_value_t = 4)]
    writers: usize,
    #[arg(long, default_value_t = 50)]
    keys_per_writer: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
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
    /// Write an HdrHistogram interval log (a histogram per second per command).
    #[arg(long)]
    hdr: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Send DynamoDB requests (PutItem, GetItem, Query) to this endpoint,
    /// http://HOST:PORT, instead of RESP to --addr; needs --table (made if missing, with
    /// pk (S) and sk (N) as its key).
    #[arg(long, value_name = "URL")]
    dynamodb: Option<String>,
    /// DynamoDB mode: items in each partition (key numbers k are pk p<k / N>, sk k % N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    partition_items: u64,
    /// DynamoDB mode: share of requests that are a Query of one whole partition (0 to 1);
    /// the rest are PutItem and GetItem by --ratio.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    query_ratio: f64,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("bad share {s:?}: want a number from 0 to 1")),
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(a) => run_cmd(&a),
        Command::Capacity(c) => capacity_cmd(&c),
        Command::Verify(v) => verify_cmd(&v),
    }
}

fn run_config(a: &RunArgs) -> Result<RunConfig, String> {
    let (addr, dynamo) = match &a.dynamodb {
        None => {
            if a.query_ratio > 0.0 || a.partition_items != 1 {
                return Err("--query-ratio and --partition-items are for --dynamodb".into());
            }
            (a.addr, None)
        }
        Some(url) => {
            let (addr, host) = rewind_loadgen::dynamo::endpoint(url)?;
            let table = a
                .table
                .clone()
                .ok_or("--dynamodb needs --table (made if it does not exist)")?;
            let target = rewind_loadgen::dynamo::DynamoTarget {
                host,
                table,
                partition_items: a.partition_items,
                query_ratio: a.query_ratio,
            };
            (addr, Some(target))
        }
    };
    Ok(RunConfig {
        addr,
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
        dynamo,
    })
}

/// The summary's command names: DynamoDB's operations in that mode.
fn names(a: &RunArgs) -> [&'static str; 3] {
    match a.dynamodb {
        Some(_) => ["PutItem", "GetItem", "Query"],
        None => rewind_loadgen::stats::COMMANDS,
    }
}

fn capacity_cmd(c: &CapacityArgs) -> ExitCode {
    use rewind_loadgen::capacity::{capacity, CapacityConfig};
    let base = match run_config(&c.load) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rewind-loadgen capacity: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = CapacityConfig {
        base,
        slos: c.slos.clone(),
        start: c.start,
        step: c.step,
        max: c.max_rate,
        dwell: c.dwell,
        warmup: c.load.warmup.max(Duration::from_secs(1)),
        search: c.search,
    };
    let labels: Vec<String> = c
        .slos
        .iter()
        .map(|s| format!("{} (limit {} us)", s.label, s.limit_us))
        .collect();
    println!(
        "rate        achieved    errors  {}  verdict",
        labels.join("  ")
    );
    let result = capacity(&cfg, |s| {
        let m: Vec<String> = s.measured_us.iter().map(|v| format!("{v} us")).collect();
        println!(
            "{:<11.0} {:<11.0} {:<7} {}  {}",
            s.rate,
            s.achieved,
            s.errors,
            m.join("  "),
            if s.pass { "pass" } else { "FAIL" }
        );
    });
    match result {
        Ok((Some(best), steps)) => {
            println!(
                "highest rate meeting every SLO: {best:.0} requests/s ({} steps)",
                steps.len()
            );
            if let Some(path) = &c.load.json {
                let doc = serde_json::json!({
                    "capacity_requests_per_s": best,
                    "slos": c.slos.iter().map(|s| serde_json::json!({"label": s.label, "limit_us": s.limit_us})).collect::<Vec<_>>(),
                    "steps": steps.iter().map(|s| serde_json::json!({"rate": s.rate, "achieved": s.achieved, "errors": s.errors, "measured_us": s.measured_us, "pass": s.pass})).collect::<Vec<_>>(),
                });
                if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json"))
                {
                    eprintln!("rewind-loadgen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Ok((None, _)) => {
            println!("no rate met every SLO, not even --start {}", c.start);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rewind-loadgen capacity: {e}");
            ExitCode::from(2)
        }
    }
}

fn verify_cmd(v: &VerifyArgs) -> ExitCode {
    use rewind_loadgen::verify::{verify, VerifyConfig};
    let cfg = VerifyConfig {
        addr: v.addr,
        duration: v.duration,
        restores: v.restores,
        writers: v.writers,
        keys_per_writer: v.keys_per_writer,
        seed: v.seed,
    };
    match verify(&cfg) {
        Ok(r) if r.mismatches.is_empty() => {
            println!(
                "PITR verified: {} writes, {} restores, {} keys checked, no mismatch",
                r.writes, r.restores, r.keys_checked
            );
            ExitCode::SUCCESS
        }
        Ok(r) => {
            for m in &r.mismatches {
                println!("MISMATCH {m}");
            }
            println!(
                "PITR check FAILED: {} restores, {} keys checked",
                r.restores, r.keys_checked
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rewind-loadgen verify: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_cmd(a: &RunArgs) -> ExitCode {
    let cfg = match run_config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rewind-loadgen run: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rewind-loadgen run: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", summary_table_named(&r.total, r.seconds, &names(a)));
    if let Some(path) = &a.hdr {
        if let Err(e) = rewind_loadgen::report::write_hdr_log(path, &r.per_second, r.start_unix_ms)
        {
            eprintln!("rewind-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &a.json {
        let config = serde_json::json!({
            "server": cfg.addr.ip().to_string(), "port": cfg.addr.port(),
            "clients": a.connections, "threads": a.threads, "pipeline": a.pipeline,
            "ratio": a.ratio, "key_maximum": a.keys, "key_pattern": format!("{:?}", a.key_dist),
            "data_size": format!("{:?}", a.value_size), "test_time": a.duration.as_secs_f64(),
            "rate": a.rate, "seed": a.seed,
            "dynamodb": a.dynamodb, "table": a.table, "partition_items": a.partition_items,
            "query_ratio": a.query_ratio,
        });
        let doc = json_report(config, &r.total, &r.per_second, r.seconds, r.start_unix_ms);
        if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json")) {
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
