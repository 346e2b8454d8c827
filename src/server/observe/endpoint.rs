//! `--metrics-listen`: `GET /metrics` in the Prometheus/OpenMetrics text format on a thread
//! of its own (hyper, one current-thread runtime), so a scrape never runs on a net thread.
//! Anything else is 404; a scrape holds no lock a command takes for longer than copying
//! counters. At most [`MAX_CONNECTIONS`] scrapers at once, each connection for at most
//! [`CONNECTION_TIMEOUT`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::super::state::ServerState;

pub const MAX_CONNECTIONS: usize = 64;
/// A scraper that sends nothing for this long is let go.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection lasts at most this long, so scrapers that never read cannot keep every
/// slot (Prometheus opens a new one after a broken scrape).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scrape in progress may take to finish when its connection is closed.
const GRACE: Duration = Duration::from_secs(5);
const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn spawn(
    listener: std::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!("metrics endpoint cannot start: {e}"),
            };
            rt.block_on(accept_loop(listener, state, shutdown));
        })
}

async fn accept_loop(
    listener: std::net::TcpListener,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!("metrics endpoint: {e}"),
    };
    let mut conns = tokio::task::JoinSet::new();
    while !*shutdown.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= MAX_CONNECTIONS {
                        tracing::warn!("metrics endpoint: refusing {peer}: {} scrapers connected", conns.len());
                        continue;
                    }
                    let state = state.clone();
                    let mut stop = shutdown.clone();
                    conns.spawn(async move {
                        let service = service_fn(move |req| handle(req, state.clone()));
                        let conn = http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            r = conn.as_mut() => {
                                if let Err(e) = r {
                                    tracing::debug!("metrics connection: {e}");
                                }
                                return;
                            }
                            _ = stop.changed() => {}
                            _ = tokio::time::sleep(CONNECTION_TIMEOUT) => {
                                tracing::debug!("metrics connection open {CONNECTION_TIMEOUT:?}: closing");
                            }
                        }
                        // A scrape in progress may finish; then the connection closes.
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(GRACE, conn.as_mut()).await;
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => {}
        }
    }
    conns.abort_all();
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<ServerState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        r
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "rewind serves only /metrics here\n".into(),
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET /metrics\n".into(),
        ));
    }
    Ok(match super::prometheus::render(&state) {
        Ok(text) => reply(StatusCode::OK, CONTENT_TYPE_OPENMETRICS, text),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("encoding the metrics failed: {e}\n"),
        ),
    })
}
