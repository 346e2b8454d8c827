//! The HTTP/1.1 side: hyper 1 on a single-threaded tokio runtime of its own thread, with
//! keep-alive (the SDKs reuse connections), a 1 MiB request body limit, the optional
//! SigV4 signature check, and graceful shutdown with the rest of the server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::error::DynamoError;
use super::sigv4::{precheck, verify, RequestParts, SigError};
use super::{dispatch, Dynamo, MAX_BODY_BYTES};

const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.0";
const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// A request body must arrive within this long of its headers.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the DynamoDB listener on its own thread until `shutdown` turns true.
pub fn spawn(
    listener: std::net::TcpListener,
    dynamo: Arc<Dynamo>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("dynamodb".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!("DynamoDB listener cannot start: {e}"),
            };
            // A LocalSet for the log flusher (`--commit inline`), which stays on this thread.
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, accept_loop(listener, dynamo, shutdown));
        })
}

async fn accept_loop(
    listener: std::net::TcpListener,
    dynamo: Arc<Dynamo>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!("DynamoDB listener: {e}"),
    };
    if dynamo.inline_commit {
        tokio::task::spawn_local(crate::log::local::flusher());
    }
    let mut conns = tokio::task::JoinSet::new();
    while !*shutdown.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= dynamo.max_connections {
                        tracing::warn!("DynamoDB API: refusing {peer}: {} connections open", conns.len());
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_conn(stream, dynamo.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!("DynamoDB API accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => {}
        }
    }
    // Requests in flight finish (their writes are answered); idle connections close.
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("DynamoDB API: connections still busy after 10 s at shutdown");
    }
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    dynamo: Arc<Dynamo>,
    mut shutdown: watch::Receiver<bool>,
) {
    let svc = service_fn(move |req| {
        let dynamo = dynamo.clone();
        async move { Ok::<_, Infallible>(handle(&dynamo, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("DynamoDB API connection: {e}");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn respond(status: u16, body: String, request_id: u64) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
    if let Ok(v) = HeaderValue::from_str(&format!("REWIND{request_id:020}")) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

/// The request's headers as text, for the signature check. A header that is not visible
/// ASCII is refused outright when signatures are checked, so the verifier and the dispatcher
/// never see different headers.
fn header_list(parts: &hyper::http::request::Parts) -> Result<Vec<(String, String)>, DynamoError> {
    parts
        .headers
        .iter()
        .map(|(n, v)| match v.to_str() {
            Ok(v) => Ok((n.as_str().to_string(), v.to_string())),
            Err(_) => Err(DynamoError::InvalidSignature(format!(
                "header '{n}' is not visible ASCII"
            ))),
        })
        .collect()
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sig_error(e: SigError) -> DynamoError {
    match e {
        SigError::Missing => DynamoError::MissingAuthenticationToken(e.to_string()),
        SigError::UnknownKey => DynamoError::UnrecognizedClient(e.to_string()),
        SigError::Invalid(m) => DynamoError::InvalidSignature(m),
    }
}

/// With `--dynamodb-access-keys`: before the body is read, a known key id, a fresh date and
/// the right headers signed; the headers for [`check_signature`].
fn precheck_auth(
    dynamo: &Dynamo,
    parts: &hyper::http::request::Parts,
) -> Result<Vec<(String, String)>, DynamoError> {
    if dynamo.access_keys.is_empty() {
        return Ok(Vec::new());
    }
    let headers = header_list(parts)?;
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    precheck(&dynamo.access_keys, authorization, &headers, now_s()).map_err(sig_error)?;
    Ok(headers)
}

/// With `--dynamodb-access-keys`, the request's SigV4 signature must verify with one of the
/// configured secrets (see `sigv4.rs`).
fn check_signature(
    dynamo: &Dynamo,
    parts: &hyper::http::request::Parts,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), DynamoError> {
    if dynamo.access_keys.is_empty() {
        return Ok(());
    }
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let req = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
        body,
    };
    verify(&dynamo.access_keys, authorization, &req, now_s()).map_err(sig_error)
}

async fn handle(dynamo: &Dynamo, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let id = dynamo
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match answer(dynamo, req).await {
        Ok(body) => respond(200, body.to_string(), id),
        Err(e) => {
            let (status, _) = e.status_and_name();
            respond(status, e.body(), id)
        }
    }
}

async fn answer(dynamo: &Dynamo, req: Request<Incoming>) -> Result<serde_json::Value, DynamoError> {
    if req.method() != Method::POST {
        return Err(DynamoError::UnknownOperation(format!(
            "rewind's DynamoDB API takes POST / with an X-Amz-Target header, not {} {}",
            req.method(),
            req.uri().path()
        )));
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(DynamoError::UnknownOperation(format!(
            "unknown X-Amz-Target '{target}': expected {TARGET_PREFIX}<Operation>"
        )));
    };
    let too_large = |n: &dyn std::fmt::Display| {
        DynamoError::TooLarge(format!(
            "Request body of {n} bytes is over rewind's limit of {MAX_BODY_BYTES} bytes"
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large(&n));
    }
    let (parts, body) = req.into_parts();
    let headers = precheck_auth(dynamo, &parts)?;
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let body = tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .map_err(|_| {
            DynamoError::Serialization(format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large(&"more than")
            } else {
                DynamoError::Serialization(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    // The signature covers the body, so it is checked once the body is in.
    check_signature(dynamo, &parts, &headers, &body)?;
    dispatch(&dynamo.db, op, &body).await
}
