//! State shared by every connection: the tables, limits and counters.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::Limits;
use crate::shard::Db;

use super::commands::COMMANDS;
use super::observe::{Clients, CommandStats, Rates, SlowLog};

pub struct ServerState {
    pub db: Arc<Db>,
    pub limits: Limits,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_clients: usize,
    pub started: Instant,
    /// `"uring"` or `"epoll"`: the socket path in use.
    pub net_io: &'static str,
    pub net_threads: u32,
    pub port: u16,
    pub clients: AtomicUsize,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub next_client_id: AtomicU64,
    /// Calls, latency and errors per command (indexed like [`COMMANDS`]), per net thread.
    pub stats: CommandStats,
    pub slowlog: SlowLog,
    /// Every connection, for CLIENT LIST and CLIENT KILL.
    pub client_list: Clients,
    pub rates: Rates,
    /// Every setting as `CONFIG GET` names it (flag names), secrets left out.
    pub config: Vec<(String, String)>,
    /// `--config`, as INFO's `config_file` shows it.
    pub config_file: Option<String>,
    /// Redis's `run_id`: 40 hex digits, new at every start.
    pub run_id: String,
    /// `--requirepass`: clients must AUTH first.
    pub password: Option<Vec<u8>>,
    /// `--timeout`: idle clients are closed after this long.
    pub idle_timeout: Option<std::time::Duration>,
    /// `--write-timeout`: a client that does not take its replies this long is closed.
    pub write_timeout: std::time::Duration,
    /// `--commit inline`: each net thread writes and syncs the logs for its own writes.
    pub inline_commit: bool,
}

/// 160 bits from the start time, the process id and std's per-process random hash keys.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    (0..3)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(now);
            h.write_u32(std::process::id());
            h.write_u8(i);
            format!("{:016x}", h.finish())
        })
        .collect::<String>()[..40]
        .to_string()
}

impl ServerState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Arc<Db>,
        limits: Limits,
        max_key_bytes: usize,
        max_value_bytes: usize,
        max_clients: usize,
        net_io: &'static str,
        net_threads: u32,
        port: u16,
        password: Option<Vec<u8>>,
    ) -> Self {
        ServerState {
            db,
            limits,
            max_key_bytes,
            max_value_bytes,
            max_clients,
            started: Instant::now(),
            net_io,
            net_threads,
            port,
            clients: AtomicUsize::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            next_client_id: AtomicU64::new(1),
            stats: CommandStats::new(COMMANDS.len(), net_threads as usize),
            slowlog: SlowLog::new(10_000, 128),
            client_list: Clients::default(),
            rates: Rates::default(),
            config: Vec::new(),
            config_file: None,
            run_id: new_run_id(),
            password,
            idle_timeout: None,
            write_timeout: std::time::Duration::from_secs(60),
            inline_commit: true,
        }
    }

    /// Whether `user`/`pass` open this server (user `default` only). Compares in constant
    /// time for passwords of equal length.
    pub fn check_password(&self, user: &[u8], pass: &[u8]) -> bool {
        let Some(want) = &self.password else {
            return true;
        };
        if user != b"default" || want.len() != pass.len() {
            return false;
        }
        want.iter().zip(pass).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Takes one reading of the running totals for the `instantaneous_*` rates.
    pub fn sample_rates(&self) {
        let net = self.stats.net();
        self.rates.sample(
            Instant::now(),
            self.stats.total_calls(),
            net.input_bytes,
            net.output_bytes,
        );
    }
}
