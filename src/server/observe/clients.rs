//! Who is connected: one entry per RESP connection while it lives, for `CLIENT LIST`,
//! `CLIENT KILL` and the slow log's client fields. A connection updates its own entry (its
//! last command and when it ran) with relaxed stores; `CLIENT LIST` reads every entry under
//! the registry's lock, which connections take only to join and leave.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// No command yet.
const NO_COMMAND: usize = usize::MAX;

#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    pub laddr: Option<SocketAddr>,
    pub tls: bool,
    pub created: Instant,
    /// Milliseconds after `created` when the last command started.
    last_active_ms: AtomicU64,
    last_cmd: AtomicUsize,
    resp: AtomicU8,
    name: Mutex<Option<String>>,
    table: Mutex<String>,
    killed: AtomicBool,
    kill: tokio::sync::Notify,
}

impl ClientInfo {
    pub fn touch(&self, cmd: usize, at: Instant) {
        let ms = at.saturating_duration_since(self.created).as_millis() as u64;
        self.last_active_ms.store(ms, Relaxed);
        self.last_cmd.store(cmd, Relaxed);
    }

    pub fn set_name(&self, name: Option<String>) {
        *self.name.lock() = name;
    }

    pub fn name(&self) -> Option<String> {
        self.name.lock().clone()
    }

    pub fn set_table(&self, table: &str) {
        table.clone_into(&mut self.table.lock());
    }

    pub fn set_resp(&self, v: u8) {
        self.resp.store(v, Relaxed);
    }

    pub fn addr_string(&self) -> String {
        self.addr.map_or_else(|| "?".into(), |a| a.to_string())
    }

    /// Asks the connection to close: it finishes the command it runs (a write in flight
    /// still commits) and closes before reading the next one.
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Relaxed)
    }

    /// Resolves once [`ClientInfo::kill`] was called (at once if it already was).
    pub async fn killed(&self) {
        if !self.is_killed() {
            self.kill.notified().await;
        }
    }

    /// One `CLIENT LIST` line, with Redis's field names; fields rewind has no notion of
    /// (subscriptions, transactions, buffer sizes) read as Redis writes them when unused.
    pub fn list_line(&self, now: Instant, command_name: impl Fn(usize) -> &'static str) -> String {
        let age = now.saturating_duration_since(self.created).as_secs();
        let active = self.last_active_ms.load(Relaxed);
        let idle_ms =
            (now.saturating_duration_since(self.created).as_millis() as u64).saturating_sub(active);
        let cmd = match self.last_cmd.load(Relaxed) {
            NO_COMMAND => "NULL",
            c => command_name(c),
        };
        let name = self
            .name()
            .unwrap_or_default()
            .replace([' ', '\n', '\r'], "_");
        let table = self.table.lock().replace([' ', '\n', '\r'], "_");
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name= lib-ver= table={} tls={}",
            self.id,
            self.addr_string(),
            self.laddr.map_or_else(|| "?".into(), |a| a.to_string()),
            name,
            age,
            idle_ms / 1000,
            cmd,
            self.resp.load(Relaxed),
            table,
            if self.tls { "yes" } else { "no" },
        )
    }
}

#[derive(Debug, Default)]
pub struct Clients {
    by_id: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

/// Leaves the registry when the connection ends.
pub struct Registered<'a> {
    clients: &'a Clients,
    pub info: Arc<ClientInfo>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.clients.by_id.lock().remove(&self.info.id);
    }
}

/// Which connections `CLIENT KILL` closes.
#[derive(Debug, Default, Clone)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    /// The connection that asks is spared (Redis's `SKIPME yes`, the default).
    pub skip: Option<u64>,
    /// Matches no connection (a user or client type rewind does not have).
    pub none: bool,
}

impl Clients {
    pub fn register(
        &self,
        id: u64,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
        tls: bool,
        table: &str,
    ) -> Registered<'_> {
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            tls,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            last_cmd: AtomicUsize::new(NO_COMMAND),
            resp: AtomicU8::new(2),
            name: Mutex::new(None),
            table: Mutex::new(table.to_string()),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        });
        self.by_id.lock().insert(id, info.clone());
        Registered {
            clients: self,
            info,
        }
    }

    /// Every connection, oldest first.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.by_id.lock().values().cloned().collect()
    }

    /// Kills the connections the filter names; returns how many.
    pub fn kill(&self, f: &KillFilter) -> usize {
        let mut n = 0;
        for c in self.all() {
            let hit = !f.none
                && f.id.is_none_or(|id| c.id == id)
                && f.addr.as_ref().is_none_or(|a| *a == c.addr_string())
                && f.laddr
                    .as_ref()
                    .is_none_or(|a| c.laddr.is_some_and(|l| *a == l.to_string()))
                && f.skip != Some(c.id);
            if hit {
                c.kill();
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_lists_kills_and_leaves() {
        let clients = Clients::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let l: SocketAddr = "127.0.0.1:7379".parse().unwrap();
        let ra = clients.register(1, Some(a), Some(l), false, "default");
        {
            let rb = clients.register(2, Some(b), Some(l), false, "t");
            rb.info.set_name(Some("worker 1".into()));
            rb.info.touch(0, Instant::now());
            let line = rb.info.list_line(Instant::now(), |_| "get");
            assert!(line.starts_with("id=2 addr=127.0.0.1:5001 laddr=127.0.0.1:7379 "));
            assert!(line.contains(" name=worker_1 ") && line.contains(" cmd=get "));
            assert!(line.contains(" table=t "));
            assert_eq!(clients.all().len(), 2);
            let by_addr = KillFilter {
                addr: Some("127.0.0.1:5001".into()),
                ..KillFilter::default()
            };
            assert_eq!(clients.kill(&by_addr), 1);
            assert!(rb.info.is_killed() && !ra.info.is_killed());
            let all_but_1 = KillFilter {
                skip: Some(1),
                ..KillFilter::default()
            };
            assert_eq!(clients.kill(&all_but_1), 1);
            assert!(!ra.info.is_killed());
        }
        assert_eq!(clients.all().len(), 1);
        let line = ra.info.list_line(Instant::now(), |_| unreachable!());
        assert!(line.contains(" cmd=NULL "));
    }
}
