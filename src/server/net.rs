//! Net threads: each runs a single-threaded runtime (tokio on epoll, or tokio-uring) that
//! accepts from the shared listener and serves its connections.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::conn::{Conn, Session};
use super::state::ServerState;
use super::stream::{EpollStream, NetStream, UringStream};
use super::tls::{TlsNetStream, HANDSHAKE_TIMEOUT};
use crate::protocol::{parse_frame_resumable, Limits, Proto, Resume};
use crate::shard::DEFAULT_TABLE;

/// How long shutdown waits for connections to finish what they are doing.
const DRAIN: Duration = Duration::from_secs(3);

/// How long a killed client's last replies may take to leave (CLIENT KILL).
const KILL_GRACE: Duration = Duration::from_secs(1);

const TOO_MANY: &[u8] = b"-ERR max number of clients reached\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetIo {
    Epoll,
    Uring,
}

/// Runs one net thread until shutdown is signalled and its connections have drained.
/// With `tls`, the thread also accepts RESP over TLS on that listener (epoll only).
pub fn run_thread(
    slot: usize,
    io: NetIo,
    listener: std::net::TcpListener,
    tls: Option<(std::net::TcpListener, TlsAcceptor)>,
    state: Arc<ServerState>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    super::observe::cmdstats::set_thread_slot(slot);
    match io {
        NetIo::Epoll => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                if state.inline_commit {
                    tokio::task::spawn_local(crate::log::local::flusher());
                }
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let plain = accept_epoll(listener, None, state.clone(), shutdown.clone());
                match tls {
                    None => plain.await,
                    Some((l, acceptor)) => {
                        let l = tokio::net::TcpListener::from_std(l)?;
                        let secure = accept_epoll(l, Some(acceptor), state, shutdown);
                        tokio::join!(plain, secure);
                    }
                }
                Ok(())
            })
        }
        NetIo::Uring => tokio_uring::start(async move {
            if state.inline_commit {
                tokio_uring::spawn(crate::log::local::flusher());
            }
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            accept_uring(listener, state, shutdown).await;
            Ok(())
        }),
    }
}

/// Counts a connection in the server and on this thread while it lives.
struct Admitted {
    state: Arc<ServerState>,
    local: Rc<Cell<usize>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state.clients.fetch_sub(1, Ordering::Relaxed);
        self.local.set(self.local.get() - 1);
    }
}

fn admit(state: &Arc<ServerState>, local: &Rc<Cell<usize>>) -> Option<Admitted> {
    state.total_connections.fetch_add(1, Ordering::Relaxed);
    if state.clients.fetch_add(1, Ordering::Relaxed) >= state.max_clients {
        state.clients.fetch_sub(1, Ordering::Relaxed);
        state.rejected_connections.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    local.set(local.get() + 1);
    Some(Admitted {
        state: state.clone(),
        local: local.clone(),
    })
}

/// Accept errors such as EMFILE are reported and retried after a pause, never fatal.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accept failed: {e}; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn drain(local: &Rc<Cell<usize>>) {
    let deadline = Instant::now() + DRAIN;
    while local.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn accept_epoll(
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = Rc::new(Cell::new(0));
    let laddr = listener.local_addr().ok();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    match admit(&state, &local) {
                        Some(guard) => {
                            let (state, sd, tls) = (state.clone(), shutdown.clone(), tls.clone());
                            let addrs = Addrs { peer: Some(peer), local: laddr, tls: tls.is_some() };
                            tokio::task::spawn_local(async move {
                                match tls {
                                    None => serve_conn(EpollStream(s), &state, sd, addrs).await,
                                    Some(acceptor) => {
                                        let mut stop = sd.clone();
                                        let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s));
                                        // Shutdown does not wait for a handshake to finish.
                                        tokio::select! {
                                            r = hs => match r {
                                                Ok(Ok(t)) => serve_conn(TlsNetStream(t), &state, sd, addrs).await,
                                                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                                Err(_) => tracing::debug!("TLS handshake timed out"),
                                            },
                                            _ = stop.changed() => {}
                                        }
                                    }
                                }
                                drop(guard);
                            });
                        }
                        None => {
                            let _ = s.try_write(TOO_MANY);
                        }
                    }
                }
                Err(e) => accept_failed(e).await,
            },
            _ = shutdown.changed() => break,
        }
    }
    drain(&local).await;
}

async fn accept_uring(
    listener: tokio_uring::net::TcpListener,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = Rc::new(Cell::new(0));
    let laddr = listener.local_addr().ok();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    match admit(&state, &local) {
                        Some(guard) => {
                            let (state, sd) = (state.clone(), shutdown.clone());
                            let addrs = Addrs { peer: Some(peer), local: laddr, tls: false };
                            tokio_uring::spawn(async move {
                                serve_conn(UringStream(s), &state, sd, addrs).await;
                                drop(guard);
                            });
                        }
                        None => {
                            tokio_uring::spawn(async move {
                                let _ = s.write_all(TOO_MANY.to_vec()).await;
                            });
                        }
                    }
                }
                Err(e) => accept_failed(e).await,
            },
            _ = shutdown.changed() => break,
        }
    }
    drain(&local).await;
}

/// Replies buffered past this are written before more commands run, so a pipeline of large
/// reads holds at most this much plus one reply per connection (Redis lets it grow without
/// bound for normal clients unless client-output-buffer-limit is set).
const OUTPUT_FLUSH_BYTES: usize = 1 << 20;

/// Where a connection comes from, for `CLIENT LIST`.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    peer: Option<std::net::SocketAddr>,
    local: Option<std::net::SocketAddr>,
    tls: bool,
}

/// One connection: read, run every complete command, commit pending writes, reply, repeat.
async fn serve_conn<S: NetStream>(
    mut stream: S,
    state: &ServerState,
    shutdown: watch::Receiver<bool>,
    addrs: Addrs,
) {
    serve_until_done(&mut stream, state, shutdown, addrs).await;
    stream.close().await;
}

/// Redis's rule for a client that has not authenticated: at most 10 arguments and 16 KiB per
/// bulk string (never more than the configured limits).
pub const UNAUTH_MAX_ARGS: usize = 10;
pub const UNAUTH_MAX_BULK_BYTES: usize = 16 << 10;

fn unauthenticated_limits(l: &Limits) -> Limits {
    Limits {
        max_bulk_bytes: l.max_bulk_bytes.min(UNAUTH_MAX_BULK_BYTES),
        max_args: l.max_args.min(UNAUTH_MAX_ARGS),
        max_request_bytes: l
            .max_request_bytes
            .min(UNAUTH_MAX_ARGS * UNAUTH_MAX_BULK_BYTES),
        max_inline_bytes: l.max_inline_bytes.min(UNAUTH_MAX_BULK_BYTES),
    }
}

async fn serve_until_done<S: NetStream>(
    stream: &mut S,
    state: &ServerState,
    mut shutdown: watch::Receiver<bool>,
    addrs: Addrs,
) {
    let Some(table) = state.db.table(DEFAULT_TABLE) else {
        tracing::error!("table '{DEFAULT_TABLE}' is missing");
        return;
    };
    let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
    // In CLIENT LIST while the connection lives.
    let registered =
        state
            .client_list
            .register(id, addrs.peer, addrs.local, addrs.tls, DEFAULT_TABLE);
    let info = registered.info.clone();
    let session = Session {
        id,
        table,
        proto: Proto::Resp2,
        info: info.clone(),
        closing: false,
        authenticated: state.password.is_none(),
    };
    let mut conn = Conn::new(state, session);
    let mut rbuf = BytesMut::with_capacity(1024);
    let mut spans = Vec::new();
    // How far the incomplete frame at the front of `rbuf` was parsed.
    let mut resume = Resume::default();
    let unauthenticated = unauthenticated_limits(&state.limits);
    loop {
        // Run every whole command in the buffer on slices of it, then drop those bytes.
        let mut pos = 0;
        let mut argv: Vec<&[u8]> = Vec::new();
        // Set when replies filled the output buffer before the input ran out: write them,
        // then go on with the commands already received before reading more.
        let mut more = false;
        loop {
            // Before AUTH a client gets Redis's small limits, so it cannot make the server hold
            // large requests without the password.
            let limits = if conn.session.authenticated {
                &state.limits
            } else {
                &unauthenticated
            };
            match parse_frame_resumable(&rbuf[pos..], limits, &mut spans, &mut resume) {
                Ok(Some(len)) => {
                    let frame = &rbuf[pos..pos + len];
                    argv.clear();
                    argv.extend(spans.iter().map(|&(s, e)| &frame[s..e]));
                    pos += len;
                    conn.execute(&argv).await;
                    // CLIENT KILL: no further command runs (its replies so far still go).
                    if conn.session.closing || info.is_killed() {
                        break;
                    }
                    if conn.buffered_bytes() >= OUTPUT_FLUSH_BYTES {
                        more = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    conn.commit().await;
                    let before_auth = if conn.session.authenticated {
                        ""
                    } else {
                        " (unauthenticated)"
                    };
                    conn.error(&format!("ERR {e}{before_auth}"));
                    conn.session.closing = true;
                    break;
                }
            }
        }
        conn.commit().await;
        drop(argv);
        bytes::Buf::advance(&mut rbuf, pos);
        if !conn.out.is_empty() {
            state.stats.net_output(conn.out.len());
            let out = std::mem::take(&mut conn.out);
            // A client that does not read its replies is let go after --write-timeout, as
            // Redis's client-output-buffer-limit does, instead of holding memory forever.
            // CLIENT KILL waits at most KILL_GRACE for a client that is not reading.
            let write = tokio::time::timeout(state.write_timeout, stream.write_all(out));
            tokio::pin!(write);
            let written = tokio::select! {
                w = &mut write => w,
                _ = info.killed() => match tokio::time::timeout(KILL_GRACE, &mut write).await {
                    Ok(w) => w,
                    Err(_) => return,
                },
            };
            let Ok((r, mut buf)) = written else {
                tracing::info!(
                    "closing a client that did not read its replies for {:?}",
                    state.write_timeout
                );
                return;
            };
            if r.is_err() {
                return;
            }
            buf.clear();
            conn.out = buf;
        }
        if conn.session.closing || info.is_killed() {
            return;
        }
        if more {
            continue;
        }
        let idle = async {
            match state.idle_timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            (r, buf) = stream.read_more(rbuf) => {
                rbuf = buf;
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => state.stats.net_input(n),
                }
            }
            _ = idle => return,
            _ = info.killed() => return,
            _ = shutdown.changed() => return,
        }
    }
}
