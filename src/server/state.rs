//! State shared by every connection: the tables, limits and counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::Limits;
use crate::shard::Db;

use super::commands::COMMANDS;

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
    /// Calls per command, indexed like [`COMMANDS`].
    pub calls: Vec<AtomicU64>,
    /// `--requirepass`: clients must AUTH first.
    pub password: Option<Vec<u8>>,
    /// `--timeout`: idle clients are closed after this long.
    pub idle_timeout: Option<std::time::Duration>,
    /// `--write-timeout`: a client that does not take its replies this long is closed.
    pub write_timeout: std::time::Duration,
    /// `--commit inline`: each net thread writes and syncs the logs for its own writes.
    pub inline_commit: bool,
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
            calls: (0..COMMANDS.len()).map(|_| AtomicU64::new(0)).collect(),
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

    pub fn count_call(&self, cmd: usize) {
        self.calls[cmd].fetch_add(1, Ordering::Relaxed);
    }
}
