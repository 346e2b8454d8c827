//! `rewind serve` settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::log::FsyncPolicy;

/// Which I/O path the server uses for sockets and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoChoice {
    /// The fastest mix measured on the reference box: today epoll sockets and pwrite logs,
    /// the same as `epoll` (io_uring measured slower for both there; see docs/DESIGN.md).
    Auto,
    /// io_uring sockets (tokio-uring) and logs, or refuse to start.
    Uring,
    /// epoll sockets and pwrite/fdatasync logs.
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogIoChoice {
    Uring,
    Std,
}

/// Who writes and syncs the log for a net thread's writes (docs/DESIGN.md, "The write path").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommitChoice {
    /// The net thread itself, once per tick of its runtime, for everything that tick gathered.
    Inline,
    /// Each shard's writer thread (a hand-over and a wake-up each way).
    Thread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectChoice {
    /// With --fsync always, blocks go out with O_DIRECT + RWF_DSYNC where the file system
    /// takes it (one write, no fdatasync), else buffered.
    Auto,
    /// pwrite (or io_uring write) + fdatasync through the page cache.
    Off,
}

impl From<DirectChoice> for crate::log::DirectMode {
    fn from(c: DirectChoice) -> Self {
        match c {
            DirectChoice::Auto => crate::log::DirectMode::Auto,
            DirectChoice::Off => crate::log::DirectMode::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecoveryChoice {
    /// Refuse to start on damage anywhere but a torn tail, naming file and offset.
    Strict,
    /// Skip damaged blocks, log exactly which sequences and times were lost, and start.
    Tolerant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncChoice {
    Always,
    Everysec,
    Never,
}

impl From<FsyncChoice> for FsyncPolicy {
    fn from(c: FsyncChoice) -> Self {
        match c {
            FsyncChoice::Always => FsyncPolicy::Always,
            FsyncChoice::Everysec => FsyncPolicy::EverySec,
            FsyncChoice::Never => FsyncPolicy::Never,
        }
    }
}

fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the ready line names it).
    #[arg(long, env = "REWIND_LISTEN", default_value = "127.0.0.1:7379")]
    pub listen: SocketAddr,
    /// Where tables, logs and the catalog live.
    #[arg(long, env = "REWIND_DATA_DIR", default_value = "./rewind-data")]
    pub data_dir: PathBuf,
    /// Shards for new tables (default: the number of cores; 1..=64).
    #[arg(long, env = "REWIND_SHARDS", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub shards: Option<u32>,
    /// When writes are synced: before every acknowledgement, once a second, or never.
    #[arg(long, env = "REWIND_FSYNC", value_enum, default_value = "always")]
    pub fsync: FsyncChoice,
    /// Who writes and syncs the log: the net thread that parsed the writes (inline) or each
    /// shard's writer thread.
    #[arg(long, env = "REWIND_COMMIT", value_enum, default_value = "thread")]
    pub commit: CommitChoice,
    /// I/O path for sockets and logs.
    #[arg(long, env = "REWIND_IO", value_enum, default_value = "auto")]
    pub io: IoChoice,
    /// I/O engine of the log writers when it should differ from --io: uring or std
    /// (pwrite + fdatasync).
    #[arg(long, env = "REWIND_LOG_IO", value_enum)]
    pub log_io: Option<LogIoChoice>,
    /// Direct log writes with --fsync always: auto (O_DIRECT + RWF_DSYNC where the file
    /// system takes it) or off (buffered write + fdatasync).
    #[arg(long, env = "REWIND_LOG_DIRECT", value_enum, default_value = "auto")]
    pub log_direct: DirectChoice,
    /// Threads serving connections (default: half the cores, at least one; the rest is left
    /// to the shard log writers and, on a load-test box, the clients).
    #[arg(long, env = "REWIND_NET_THREADS", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub net_threads: Option<u32>,
    /// Most simultaneous client connections; more are refused with an error.
    #[arg(long, env = "REWIND_MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: usize,
    /// Longest key accepted, in bytes.
    #[arg(long, env = "REWIND_MAX_KEY_BYTES", default_value_t = 1 << 20)]
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes (Redis's proto-max-bulk-len).
    #[arg(long, env = "REWIND_MAX_VALUE_BYTES", default_value_t = 512 << 20)]
    pub max_value_bytes: usize,
    /// Largest single request (all arguments of one command), in bytes.
    #[arg(long, env = "REWIND_MAX_REQUEST_BYTES", default_value_t = 640 << 20)]
    pub max_request_bytes: usize,
    /// zstd level for log blocks and checkpoints (0 stores them raw; -1 to -7 are zstd's fast
    /// levels: less CPU per write, larger files, docs/BENCHMARKS.md "zstd's fast levels").
    #[arg(long, env = "REWIND_ZSTD_LEVEL", default_value_t = 1, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-7..=19))]
    pub zstd_level: i32,
    /// Clients must AUTH with this password (user `default`) before any other command.
    #[arg(long, env = "REWIND_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Listen on a non-loopback address even without --requirepass (Redis's protected mode
    /// off). Anyone who can reach the port can then read and write every table.
    #[arg(long, env = "REWIND_NO_PROTECTED_MODE")]
    pub no_protected_mode: bool,
    /// Close a client idle this many seconds (0: never), like Redis's `timeout`.
    #[arg(long, env = "REWIND_TIMEOUT", default_value_t = 0)]
    pub timeout: u64,
    /// Close a client that does not read its replies for this many seconds.
    #[arg(long, env = "REWIND_WRITE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout: u64,
    /// What start-up does with damaged log blocks.
    #[arg(long, env = "REWIND_RECOVERY", value_enum, default_value = "strict")]
    pub recovery: RecoveryChoice,
    /// A shard is checkpointed after this many MiB of log since its last checkpoint...
    #[arg(long, env = "REWIND_CHECKPOINT_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_mib: u64,
    /// ...or this many seconds after it, if anything was written.
    #[arg(long, env = "REWIND_CHECKPOINT_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_secs: u64,
    /// Seconds between maintenance passes (checkpoints due, retention).
    #[arg(long, env = "REWIND_MAINTENANCE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub maintenance_secs: u64,
    /// Ship every PITR table's history to this archive: `s3://bucket/prefix` (endpoint,
    /// region and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true for plain HTTP) or `file:///path`.
    /// See docs/RELIABILITY.md, "The archive".
    #[arg(long, env = "REWIND_ARCHIVE")]
    pub archive: Option<String>,
    /// The archive is at most this far behind the newest durable write while it is
    /// reachable (one PUT per shard per interval at most, none while idle).
    #[arg(long, env = "REWIND_ARCHIVE_LAG", default_value = "1s", value_parser = humantime::parse_duration)]
    pub archive_lag: std::time::Duration,
    /// Take the archive's lease from another generation (its server is gone for good, e.g.
    /// the host was replaced). That server, if it still runs, stops archiving.
    #[arg(long, env = "REWIND_ARCHIVE_TAKEOVER", requires = "archive")]
    pub archive_takeover: bool,
    /// Also serve the DynamoDB JSON API (HTTP) on this address, sharing the same tables (off
    /// unless given; port 0 picks a free port and the log line names it). See docs/DYNAMODB.md.
    #[arg(long, env = "REWIND_DYNAMODB_LISTEN")]
    pub dynamodb_listen: Option<SocketAddr>,
    /// DynamoDB API: `KEYID:SECRET[,KEYID:SECRET...]`; every request's SigV4 signature must
    /// verify with the secret of its key id (unknown ids get UnrecognizedClientException, a
    /// wrong signature InvalidSignatureException). Prefer the environment variable, which
    /// keeps secrets out of `ps`. Default: any request is accepted (loopback only).
    #[arg(
        long,
        env = "REWIND_DYNAMODB_ACCESS_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub dynamodb_access_keys: Vec<String>,
    /// Also serve RESP over TLS on this address (Redis's `--tls-port`), with
    /// --tls-cert-file and --tls-key-file. Needs the epoll socket path (`--io auto|epoll`).
    #[arg(long, env = "REWIND_TLS_LISTEN", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for --tls-listen, leaf first.
    #[arg(long, env = "REWIND_TLS_CERT_FILE", requires = "tls_listen")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-listen.
    #[arg(long, env = "REWIND_TLS_KEY_FILE", requires = "tls_listen")]
    pub tls_key_file: Option<PathBuf>,
    /// Segment files close at this size, in MiB.
    #[arg(long, env = "REWIND_SEGMENT_MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub segment_mib: u64,
    /// Serve Prometheus/OpenMetrics text at http://ADDR/metrics (off unless given; port 0
    /// picks a free port and the log line names it). See docs/OPERATIONS.md.
    #[arg(long, env = "REWIND_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log commands slower than this many microseconds in SLOWLOG (a write's time includes
    /// its log sync; 0 logs every command, a negative value none), as Redis's setting.
    #[arg(
        long,
        env = "REWIND_SLOWLOG_LOG_SLOWER_THAN",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub slowlog_log_slower_than: i64,
    /// Entries SLOWLOG keeps (the newest; at most 100,000).
    #[arg(long, env = "REWIND_SLOWLOG_MAX_LEN", default_value_t = 128, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub slowlog_max_len: u64,
    /// How log lines are written to stderr: text, or one JSON object a line.
    #[arg(long, env = "REWIND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Read settings from this TOML file (keys are these flags' names, e.g. `data-dir =
    /// "/var/lib/rewind"`); flags and REWIND_* variables override it.
    #[arg(long, env = "REWIND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective settings (flags, REWIND_* variables, --config file, defaults) as
    /// a config file and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Every setting by flag name, for CONFIG GET (filled in by `settings::resolve`).
    #[arg(skip)]
    pub settings: Vec<(String, String)>,
}

impl ServeArgs {
    pub fn shards(&self) -> u32 {
        self.shards.unwrap_or_else(|| cores().min(64))
    }
    pub fn net_threads(&self) -> u32 {
        self.net_threads.unwrap_or_else(|| (cores() / 2).max(1))
    }
}
