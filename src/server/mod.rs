//! `rewind serve`: the Redis-protocol server.

mod blocking;
pub(crate) mod commands;
mod config;
mod conn;
mod net;
pub mod observe;
pub mod settings;
mod state;
mod stream;
mod tls;

use std::sync::Arc;

pub use config::{FsyncChoice, IoChoice, LogFormat, LogIoChoice, RecoveryChoice, ServeArgs};
pub use net::NetIo;

use crate::log::{IoMode, SystemClock};
use crate::protocol::Limits;
use crate::shard::{Db, DbError, EngineConfig};
use state::ServerState;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--io uring was given but io_uring cannot be set up here: {0} (use --io epoll)")]
    UringUnavailable(#[source] std::io::Error),
    #[error("refusing to listen on {0} without a password: set --requirepass, or --no-protected-mode to let anyone who reaches the port in")]
    NotLoopback(std::net::SocketAddr),
    #[error("--dynamodb-access-keys: {0}")]
    BadAccessKeys(String),
    #[error("refusing to serve the DynamoDB API on {0} without --dynamodb-access-keys: set them, or --no-protected-mode to let anyone who reaches the port in")]
    DynamoNotLoopback(std::net::SocketAddr),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("--tls-listen needs the epoll socket path: use --io auto or --io epoll")]
    TlsNeedsEpoll,
    #[error("--archive: {0}")]
    Archive(Box<crate::archive::ArchiveError>),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::archive::ArchiveError> for ServerError {
    fn from(e: crate::archive::ArchiveError) -> Self {
        ServerError::Archive(Box::new(e))
    }
}

/// Picks the socket path and the log engine.
///
/// - `uring`: io_uring for both, or refuse to start.
/// - `epoll`: epoll sockets and `pwrite` + `fdatasync` logs.
/// - `auto`: what measured fastest on the reference box (2 cores, ext4 on virtio): epoll
///   sockets and `pwrite` + `fdatasync` logs. tokio-uring's socket path cost about twice the
///   server CPU per request at pipeline 1 (15 µs vs 8 µs per GET); the io_uring log engine
///   (linked write + fdatasync) hands buffered ext4 writes to io-wq workers and gave 0.82x
///   (rewind-loadgen) and 0.92x (redis-benchmark) of pwrite's SET throughput at pipeline 16,
///   medians of 3 rounds, with 16% more CPU per write. See docs/DESIGN.md and
///   docs/BENCHMARKS.md; `--log-io uring` keeps the io_uring log with epoll sockets.
fn resolve_io(choice: IoChoice, log: Option<LogIoChoice>) -> Result<(NetIo, IoMode), ServerError> {
    let probe = || io_uring::IoUring::new(4).map(|_| ());
    let (net, default_log) = match choice {
        IoChoice::Epoll | IoChoice::Auto => (NetIo::Epoll, IoMode::Std),
        IoChoice::Uring => {
            probe().map_err(ServerError::UringUnavailable)?;
            (NetIo::Uring, IoMode::Uring)
        }
    };
    let log = match log {
        None => default_log,
        Some(LogIoChoice::Std) => IoMode::Std,
        Some(LogIoChoice::Uring) => {
            probe().map_err(ServerError::UringUnavailable)?;
            IoMode::Uring
        }
    };
    Ok((net, log))
}

/// Runs the server until SIGINT or SIGTERM, then stops accepting, lets connections finish,
/// commits and syncs every log, and returns.
pub fn serve(args: ServeArgs) -> Result<(), ServerError> {
    if !args.listen.ip().is_loopback() && args.requirepass.is_none() && !args.no_protected_mode {
        return Err(ServerError::NotLoopback(args.listen));
    }
    if let Some(t) = args.tls_listen {
        if !t.ip().is_loopback() && args.requirepass.is_none() && !args.no_protected_mode {
            return Err(ServerError::NotLoopback(t));
        }
    }
    let access_keys = parse_access_keys(&args.dynamodb_access_keys)?;
    if let Some(d) = args.dynamodb_listen {
        if !d.ip().is_loopback() && access_keys.is_empty() && !args.no_protected_mode {
            return Err(ServerError::DynamoNotLoopback(d));
        }
    }
    let (io, log_io) = resolve_io(args.io, args.log_io)?;
    if args.tls_listen.is_some() && io != NetIo::Epoll {
        return Err(ServerError::TlsNeedsEpoll);
    }
    // Certificate and key are read before anything opens, so a bad file fails fast.
    let tls_acceptor = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(c), Some(k)) if args.tls_listen.is_some() => Some(tls::acceptor(c, k)?),
        _ => None,
    };
    let cfg = EngineConfig {
        shards: args.shards(),
        fsync: args.fsync.into(),
        io: log_io,
        direct: args.log_direct.into(),
        zstd_level: args.zstd_level,
        segment_max_bytes: args.segment_mib << 20,
        tolerant: args.recovery == RecoveryChoice::Tolerant,
        checkpoint_bytes: args.checkpoint_mib << 20,
        checkpoint_interval_us: args.checkpoint_secs * 1_000_000,
    };
    let started = std::time::Instant::now();
    let (db, summary) = Db::open(&args.data_dir, cfg, Arc::new(SystemClock))?;
    for t in &summary.torn_tails {
        tracing::warn!("recovery cut a torn tail: {t}");
    }
    for l in &summary.lost {
        tracing::error!("tolerant recovery LOST records: {l}");
    }
    tracing::info!(
        "recovered {} tables, {} records replayed in {:.3} s",
        summary.tables,
        summary.records_replayed,
        started.elapsed().as_secs_f64()
    );
    let db = Arc::new(db);
    let archive = match &args.archive {
        Some(url) => Some(start_archive(url, &db, &args)?),
        None => None,
    };
    // Restores a crash interrupted run again in the background.
    drop(db.resume_restores());
    // Before anything listens (and after recovery, which a signal should still interrupt): a
    // signal from here on stops the server cleanly.
    let signals = install_signal_handlers()?;
    let listener =
        std::net::TcpListener::bind(args.listen).map_err(|source| ServerError::Bind {
            addr: args.listen,
            source,
        })?;
    listener.set_nonblocking(true)?;
    // std listens with a backlog of 128; a load test opening thousands of connections at once
    // would see SYNs dropped and retried a second later. Listening again raises it.
    // SAFETY: listen(2) on a socket this function owns.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 4096) };
    let addr = listener.local_addr()?;
    let tls_listener = match (args.tls_listen, &tls_acceptor) {
        (Some(taddr), Some(acceptor)) => {
            let l = std::net::TcpListener::bind(taddr).map_err(|source| ServerError::Bind {
                addr: taddr,
                source,
            })?;
            l.set_nonblocking(true)?;
            // SAFETY: listen(2) on a socket this function owns (see above).
            unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), 4096) };
            tracing::info!("TLS listening on {}", l.local_addr()?);
            Some((l, acceptor.clone()))
        }
        _ => None,
    };
    // A bulk string may be as long as a whole request; keys and values are then checked
    // against their own limits with a message that names the setting.
    let limits = Limits {
        max_bulk_bytes: args.max_request_bytes,
        max_request_bytes: args.max_request_bytes,
        ..Limits::default()
    };
    let net_threads = args.net_threads();
    let mut state = ServerState::new(
        db.clone(),
        limits,
        args.max_key_bytes,
        args.max_value_bytes,
        args.max_clients,
        match io {
            NetIo::Uring => "uring",
            NetIo::Epoll => "epoll",
        },
        net_threads,
        addr.port(),
        args.requirepass.clone().map(String::into_bytes),
    );
    state.idle_timeout = (args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout));
    state.write_timeout = std::time::Duration::from_secs(args.write_timeout);
    state.inline_commit = args.commit == config::CommitChoice::Inline;
    state.config = args.settings.clone();
    state.config_file = args.config.as_ref().map(|p| p.display().to_string());
    state.slowlog =
        observe::SlowLog::new(args.slowlog_log_slower_than, args.slowlog_max_len as usize);
    let state = Arc::new(state);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for i in 0..net_threads {
        let (l, st, sd) = (listener.try_clone()?, state.clone(), shutdown_rx.clone());
        let tls = match &tls_listener {
            Some((tl, acceptor)) => Some((tl.try_clone()?, acceptor.clone())),
            None => None,
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("net-{i}"))
                .spawn(move || net::run_thread(i as usize, io, l, tls, st, sd))?,
        );
    }
    let dynamo = match args.dynamodb_listen {
        None => None,
        Some(daddr) => {
            let l = std::net::TcpListener::bind(daddr).map_err(|source| ServerError::Bind {
                addr: daddr,
                source,
            })?;
            let bound = l.local_addr()?;
            let d = Arc::new(crate::dynamo::Dynamo {
                db: db.clone(),
                access_keys: access_keys.clone(),
                max_connections: args.max_clients,
                requests: Default::default(),
                inline_commit: args.commit == config::CommitChoice::Inline,
            });
            let t = crate::dynamo::spawn(l, d, shutdown_rx.clone())?;
            tracing::info!(
                "DynamoDB API listening on http://{bound} ({})",
                if access_keys.is_empty() {
                    "any access key accepted"
                } else {
                    "SigV4 signatures checked"
                }
            );
            Some(t)
        }
    };
    let metrics = match args.metrics_listen {
        None => None,
        Some(maddr) => {
            let l = std::net::TcpListener::bind(maddr).map_err(|source| ServerError::Bind {
                addr: maddr,
                source,
            })?;
            tracing::info!("metrics at http://{}/metrics", l.local_addr()?);
            Some(observe::endpoint::spawn(
                l,
                state.clone(),
                shutdown_rx.clone(),
            )?)
        }
    };
    let sampler = spawn_sampler(state.clone(), shutdown_rx.clone())?;
    tracing::info!(
        "rewind {} ready to accept connections on {addr} (sockets {}, log {}, {net_threads} net threads, {} shards, fsync {:?}, data {})",
        env!("CARGO_PKG_VERSION"),
        state.net_io,
        summary.io_engine,
        db.cfg.shards,
        db.cfg.fsync,
        args.data_dir.display()
    );
    let maintenance = spawn_maintenance(db.clone(), args.maintenance_secs, shutdown_rx.clone())?;
    wait_for_signal(signals);
    tracing::info!("shutting down: no new connections, finishing in-flight commands");
    let _ = shutdown_tx.send(true);
    let _ = maintenance.join();
    let _ = sampler.join();
    if let Some(t) = metrics {
        if t.join().is_err() {
            tracing::error!("the metrics endpoint panicked");
        }
    }
    if let Some(t) = dynamo {
        if t.join().is_err() {
            tracing::error!("DynamoDB listener panicked");
        }
    }
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("net thread failed: {e}"),
            Err(_) => tracing::error!("net thread panicked"),
        }
    }
    if let Some((stop, t)) = archive {
        // Its last pass ships what the connections wrote before they closed.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if t.join().is_err() {
            tracing::error!("the archive thread panicked");
        }
    }
    db.shutdown();
    tracing::info!("shutdown complete: every log committed and synced");
    Ok(())
}

type ArchiveThread = (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
);

/// Takes the archive's lease (refusing to start when another server holds it) and starts
/// the shipper.
fn start_archive(url: &str, db: &Arc<Db>, args: &ServeArgs) -> Result<ArchiveThread, ServerError> {
    let lag_ms = args.archive_lag.as_millis();
    if !(10..=3_600_000).contains(&lag_ms) {
        return Err(crate::archive::ArchiveError::Config(format!(
            "--archive-lag must be between 10 ms and 1 h, not {lag_ms} ms"
        ))
        .into());
    }
    let archive = crate::archive::Archive::open(url)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = crate::archive::runner::spawn(
        archive,
        db.clone(),
        args.archive_takeover,
        args.archive_lag,
        stop.clone(),
    )?;
    Ok((stop, t))
}

/// Samples the running totals every 100 ms for INFO's `instantaneous_*` rates, and memory
/// once a second for its peak.
fn spawn_sampler(
    state: Arc<ServerState>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            let mut n = 0u64;
            while !*shutdown.borrow() {
                state.sample_rates();
                // A memory reading a second keeps used_memory_peak's peak.
                if n.is_multiple_of(10) {
                    observe::memory::read();
                }
                n += 1;
                std::thread::sleep(observe::rate::SAMPLE_INTERVAL);
            }
        })
}

/// Checkpoints and retention every `secs` seconds until shutdown.
fn spawn_maintenance(
    db: Arc<Db>,
    secs: u64,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || {
            lower_this_threads_priority();
            let tick = std::time::Duration::from_millis(200);
            let mut waited = std::time::Duration::ZERO;
            while !*shutdown.borrow() {
                std::thread::sleep(tick);
                waited += tick;
                if waited.as_secs() >= secs {
                    waited = std::time::Duration::ZERO;
                    if let Err(e) = db.maintain() {
                        tracing::error!("maintenance pass failed: {e}");
                    }
                }
            }
        })
}

/// Checkpoints compress a whole table shard: on a small host that is a core's worth of work
/// competing with the threads that answer clients. Run it at nice 10 (Linux schedules each
/// thread on its own), so it takes the CPU the serving threads leave. Measured in
/// docs/BENCHMARKS.md ("Checkpoints and tail latency").
fn lower_this_threads_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, MAINTENANCE_NICE)
    };
    if r != 0 {
        tracing::warn!(
            "could not lower the maintenance thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

const MAINTENANCE_NICE: libc::c_int = 10;

/// SIGINT and SIGTERM handlers, installed before the ready line so that a signal sent as
/// soon as the server says it is ready shuts it down cleanly instead of killing it.
struct Signals {
    rt: tokio::runtime::Runtime,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

fn install_signal_handlers() -> std::io::Result<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (int, term) = {
        let _in_rt = rt.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    Ok(Signals { rt, int, term })
}

fn wait_for_signal(s: Signals) {
    let Signals {
        rt,
        mut int,
        mut term,
    } = s;
    rt.block_on(async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    });
}

/// `KEYID:SECRET` pairs; the secret may itself hold ':'. A list that was given but holds no
/// key (`""`, `","`: an unset variable, say) is refused rather than read as "no check".
/// Errors name an entry by its position, never by its text, which may hold a secret.
fn parse_access_keys(raw: &[String]) -> Result<Vec<(String, String)>, ServerError> {
    let mut keys = Vec::new();
    for (i, k) in raw.iter().enumerate() {
        match k.trim().split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                keys.push((id.to_string(), secret.to_string()))
            }
            _ if k.trim().is_empty() && raw.len() > 1 => {}
            _ => {
                return Err(ServerError::BadAccessKeys(format!(
                    "entry {} is not KEYID:SECRET (the secret is needed to check signatures)",
                    i + 1
                )))
            }
        }
    }
    if !raw.is_empty() && keys.is_empty() {
        return Err(ServerError::BadAccessKeys(
            "the list holds no KEYID:SECRET entry; leave the flag out to accept any request (loopback only)".into(),
        ));
    }
    Ok(keys)
}
