//! The DynamoDB mode (`run --dynamodb http://HOST:PORT --table T`): the same keys, rates and
//! reports as the RESP mode, sent as DynamoDB JSON requests (`PutItem`, `GetItem`, `Query`)
//! over HTTP/1.1 keep-alive connections, unsigned (rewind's default listener takes them;
//! see docs/DYNAMODB.md).
//!
//! Items: key number `k` is the item `pk = "p<k / partition_items>"`, `sk = k %
//! partition_items` (a number), with `v` the value as a string. A `Query` asks for every item
//! of the partition of its key number (`pk = :p`), so `--partition-items 100` makes each
//! query read 100 items once the table is filled.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::resp::Reply;
use crate::run::read_more;

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A response head longer than this is refused as malformed.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// A response body longer than this is refused (a Query page is at most 1 MB of items).
const MAX_BODY_BYTES: usize = 8 << 20;

/// Where and how the DynamoDB mode sends.
#[derive(Debug, Clone)]
pub struct DynamoTarget {
    /// `HOST:PORT` as the `Host` header names it.
    pub host: String,
    pub table: String,
    /// Items in each partition (key numbers `p * n .. (p + 1) * n`).
    pub partition_items: u64,
    /// Share of requests that are `Query` (the rest split by the SET:GET ratio).
    pub query_ratio: f64,
}

/// `http://HOST:PORT` (no path, no TLS) as an address and the `Host` header's value.
pub fn endpoint(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?}: want http://HOST:PORT (https is not supported: rewind's DynamoDB listener has no TLS)")
    })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!("{url:?}: want http://HOST:PORT with no path"));
    }
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url:?}: no address"))?;
    Ok((addr, host.to_string()))
}

fn item_key(t: &DynamoTarget, k: u64) -> Value {
    let n = t.partition_items.max(1);
    json!({"pk": {"S": format!("p{}", k / n)}, "sk": {"N": (k % n).to_string()}})
}

/// One request: its operation name and JSON body.
pub fn request(t: &DynamoTarget, op: usize, k: u64, value: &[u8]) -> (&'static str, Vec<u8>) {
    let key = item_key(t, k);
    let (name, body) = match op {
        0 => {
            let mut item = key;
            item["v"] = json!({"S": String::from_utf8_lossy(value)});
            ("PutItem", json!({"TableName": t.table, "Item": item}))
        }
        1 => ("GetItem", json!({"TableName": t.table, "Key": key})),
        _ => (
            "Query",
            json!({
                "TableName": t.table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": key["pk"].clone()},
            }),
        ),
    };
    (name, serde_json::to_vec(&body).expect("json"))
}

/// Appends one HTTP/1.1 request for `op` to `out`.
pub fn encode(out: &mut Vec<u8>, host: &str, op: &str, body: &[u8]) {
    let _ = write!(
        out,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.{op}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// A whole response at the front of `buf`: `(status, body range, length)`.
fn parse_response(buf: &[u8]) -> Result<Option<(u16, std::ops::Range<usize>, usize)>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err("response head over 16 KiB".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    for l in lines {
        if let Some((name, v)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad Content-Length {v:?}"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked responses are not read (rewind sends Content-Length)".into());
            }
        }
    }
    let length = length.ok_or("response without Content-Length")?;
    if length > MAX_BODY_BYTES {
        return Err(format!("response body of {length} bytes"));
    }
    let start = head_end + 4;
    if buf.len() < start + length {
        return Ok(None);
    }
    Ok(Some((status, start..start + length, start + length)))
}

/// The error code of a DynamoDB error body (`com.amazonaws...#Name` → `Name`).
fn error_kind(status: u16, body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = v["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let text = v["message"].as_str().unwrap_or_default().to_string();
    (kind, text)
}

fn reply(status: u16, body: &[u8]) -> Reply {
    if status == 200 {
        Reply::Ok
    } else {
        let (kind, text) = error_kind(status, body);
        Reply::Error(kind, text)
    }
}

/// Reads exactly `n` responses.
pub async fn read_responses(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> Result<Vec<Reply>, String> {
    let mut out = Vec::with_capacity(n);
    let mut pos = 0;
    while out.len() < n {
        match parse_response(&buf[pos..])? {
            Some((status, body, len)) => {
                out.push(reply(status, &buf[pos..][body]));
                pos += len;
            }
            None => {
                buf.drain(..pos);
                pos = 0;
                read_more(s, buf).await?;
            }
        }
    }
    buf.drain(..pos);
    Ok(out)
}

/// One blocking request for set-up: the status and the body as JSON.
pub fn call(addr: SocketAddr, host: &str, op: &str, body: &Value) -> Result<(u16, Value), String> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("cannot reach the DynamoDB endpoint {host}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut req = Vec::new();
    encode(&mut req, host, op, &serde_json::to_vec(body).expect("json"));
    s.write_all(&req).map_err(|e| format!("{op}: {e}"))?;
    let mut buf = Vec::new();
    loop {
        if let Some((status, range, _)) = parse_response(&buf)? {
            let v = serde_json::from_slice(&buf[range]).unwrap_or(Value::Null);
            return Ok((status, v));
        }
        let mut chunk = [0u8; 16 << 10];
        let got = s.read(&mut chunk).map_err(|e| format!("{op}: {e}"))?;
        if got == 0 {
            return Err(format!("{op}: the endpoint closed the connection"));
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// Makes the table (`pk` string, `sk` number) unless it exists with that key schema, and
/// waits until it is `ACTIVE`.
pub fn prepare_table(addr: SocketAddr, t: &DynamoTarget) -> Result<(), String> {
    let describe = |what: &str| -> Result<Option<Value>, String> {
        let (status, v) = call(
            addr,
            &t.host,
            "DescribeTable",
            &json!({"TableName": t.table}),
        )?;
        match status {
            200 => Ok(Some(v["Table"].clone())),
            _ if v["__type"]
                .as_str()
                .unwrap_or_default()
                .ends_with("ResourceNotFoundException") =>
            {
                Ok(None)
            }
            _ => Err(format!("DescribeTable {} ({what}): {}", t.table, v)),
        }
    };
    let table = match describe("before")? {
        Some(table) => table,
        None => {
            let body = json!({
                "TableName": t.table,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}],
                "BillingMode": "PAY_PER_REQUEST",
            });
            let (status, v) = call(addr, &t.host, "CreateTable", &body)?;
            let raced = v["__type"]
                .as_str()
                .unwrap_or_default()
                .ends_with("ResourceInUseException");
            if status != 200 && !raced {
                return Err(format!("CreateTable {}: {v}", t.table));
            }
            describe("after CreateTable")?.ok_or_else(|| format!("table {} vanished", t.table))?
        }
    };
    let want = json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]);
    let type_of = |name: &str| {
        table["AttributeDefinitions"]
            .as_array()
            .and_then(|defs| defs.iter().find(|d| d["AttributeName"] == name))
            .and_then(|d| d["AttributeType"].as_str())
            .map(str::to_string)
    };
    let types = (type_of("pk"), type_of("sk"));
    if table["KeySchema"] != want || types != (Some("S".into()), Some("N".into())) {
        return Err(format!(
            "table {} has key schema {} with attributes {}; the DynamoDB mode needs pk (S) HASH and sk (N) RANGE: pick another --table",
            t.table, table["KeySchema"], table["AttributeDefinitions"]
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut status = table["TableStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    while status != "ACTIVE" {
        if Instant::now() > deadline {
            return Err(format!(
                "table {} is {status}, not ACTIVE, after 60 s",
                t.table
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
        status = describe("waiting")?
            .and_then(|t| t["TableStatus"].as_str().map(str::to_string))
            .unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> DynamoTarget {
        DynamoTarget {
            host: "127.0.0.1:8000".into(),
            table: "bench".into(),
            partition_items: 100,
            query_ratio: 0.0,
        }
    }

    #[test]
    fn requests_name_the_item_of_the_key_number() {
        let (op, body) = request(&target(), 0, 1234, b"abc");
        assert_eq!(op, "PutItem");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Item"]["pk"], json!({"S": "p12"}));
        assert_eq!(v["Item"]["sk"], json!({"N": "34"}));
        assert_eq!(v["Item"]["v"], json!({"S": "abc"}));
        let (op, body) = request(&target(), 2, 1299, b"");
        assert_eq!(op, "Query");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["ExpressionAttributeValues"][":p"], json!({"S": "p12"}));
    }

    #[test]
    fn responses_are_cut_by_content_length() {
        let err =
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"x"}"#;
        let mut buf = Vec::new();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        let head = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n",
            err.len()
        );
        buf.extend_from_slice(head.as_bytes());
        let (status, body, len) = parse_response(&buf).unwrap().unwrap();
        assert_eq!((status, &buf[body]), (200, &b"{}"[..]));
        assert_eq!(
            parse_response(&buf[len..]).unwrap(),
            None,
            "body not arrived"
        );
        buf.extend_from_slice(&err[..]);
        let rest = &buf[len..];
        let (status, body, len2) = parse_response(rest).unwrap().unwrap();
        assert_eq!((status, len2), (400, rest.len()));
        assert_eq!(
            reply(status, &rest[body]),
            Reply::Error("ValidationException".into(), "x".into())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn endpoints_must_be_plain_http() {
        assert!(endpoint("https://127.0.0.1:8000").is_err());
        assert!(endpoint("http://127.0.0.1:8000/x").is_err());
        let (addr, host) = endpoint("http://127.0.0.1:8000/").unwrap();
        assert_eq!((addr.port(), host.as_str()), (8000, "127.0.0.1:8000"));
    }
}
