//! The DynamoDB API (`--dynamodb-listen`) against the real AWS SDK for Python: boto3 runs
//! `tests/dynamodb/boto3_e2e.py` against the real server. boto3 is required (CI installs it
//! in `.ci/run`): without it these tests fail, saying how to install it. The raw-HTTP test
//! needs nothing but TCP.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::dynamo_http::{read_response, request};
use common::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dynamodb/boto3_e2e.py");

fn boto3(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (install it and boto3): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(3) {
        panic!("boto3 is not installed: run `python3 -m pip install boto3` (.ci/run does)\n{text}");
    }
    assert!(
        out.status.success(),
        "boto3 script {args:?} failed:\n{text}"
    );
    assert!(text.contains("ALL OK"), "{text}");
    text
}

fn names(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn boto3_tables_items_pitr_and_errors_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "auto", &["--dynamodb-listen", "127.0.0.1:0"]);
    let endpoint = format!(
        "http://127.0.0.1:{}",
        srv.dynamodb_port.expect("DynamoDB port")
    );
    let mut redis = srv.client();
    assert_eq!(redis.cmd(&["TABLE.CREATE", "from_redis"]), Value::ok());
    let out = boto3(&["main", &endpoint, "from_redis"]);
    println!("{out}");
    // Tables made through DynamoDB are tables like any other on the Redis side.
    let listed = names(&redis.cmd(&["TABLE.LIST"]));
    for t in [
        "orders",
        "orders_at",
        "orders_latest",
        "from_redis",
        "default",
    ] {
        assert!(
            listed.contains(&t.to_string()),
            "{t} missing from {listed:?}"
        );
    }
    assert!(!listed.contains(&"nopitr".to_string()), "{listed:?}");
    assert_eq!(redis.cmd(&["TABLE.USE", "orders_at"]), Value::ok());
    // 16 items as of the restore point, plus the reserved schema key.
    assert_eq!(redis.cmd(&["DBSIZE"]), Value::Int(17));
    drop(redis);
    assert!(srv.stop().success());

    let srv = common::start(dir.path(), "auto", &["--dynamodb-listen", "127.0.0.1:0"]);
    let endpoint = format!("http://127.0.0.1:{}", srv.dynamodb_port.unwrap());
    boto3(&["restart", &endpoint]);
}

#[test]
fn sigv4_signatures_are_checked_when_keys_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    // The secrets come from the environment, as they should (out of `ps`).
    let keys = "AKIDGOOD:good/Secret+1,AKIDOTHER:other:with:colons";
    let srv = common::try_start_env(
        dir.path(),
        "epoll",
        &["--dynamodb-listen", "127.0.0.1:0"],
        &[("REWIND_DYNAMODB_ACCESS_KEYS", keys)],
    )
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{}", srv.dynamodb_port.unwrap());
    boto3(&["auth", &endpoint, "AKIDGOOD", "good/Secret+1"]);
    boto3(&["auth", &endpoint, "AKIDOTHER", "other:with:colons"]);
    // A raw request with only a key id in clear text no longer gets in.
    let mut conn =
        BufReader::new(TcpStream::connect(("127.0.0.1", srv.dynamodb_port.unwrap())).unwrap());
    let body = b"{}";
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\nX-Amz-Date: 20261128T120000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDGOOD/20261128/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut().write_all(head.as_bytes()).unwrap();
    conn.get_mut().write_all(body).unwrap();
    let (status, text) = read_response(&mut conn);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("InvalidSignatureException"), "{text}");
}

#[test]
fn access_keys_without_a_secret_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let err = common::try_start(
        dir.path(),
        "epoll",
        &[
            "--dynamodb-listen",
            "127.0.0.1:0",
            "--dynamodb-access-keys",
            "AKIDONLY",
        ],
    )
    .err()
    .expect("refused");
    assert!(err.contains("KEYID:SECRET"), "{err}");
    // A list that holds no key (an unset variable, say) is refused, never read as "no
    // check"; an error never shows what may be a secret.
    for keys in ["", ",", " , ", "AKID=supersecret"] {
        let err = common::try_start(
            dir.path(),
            "epoll",
            &[
                "--dynamodb-listen",
                "0.0.0.0:0",
                "--dynamodb-access-keys",
                keys,
            ],
        )
        .err()
        .unwrap_or_else(|| panic!("{keys:?} accepted"));
        assert!(err.contains("--dynamodb-access-keys"), "{keys:?}: {err}");
        assert!(!err.contains("supersecret"), "{err}");
    }
}

fn error_type(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let t = v["__type"].as_str().unwrap();
    assert!(t.starts_with("com.amazonaws.dynamodb.v20120810#"), "{body}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    t.rsplit('#').next().unwrap().to_string()
}

#[test]
fn raw_http_errors_limits_and_keep_alive() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "epoll", &["--dynamodb-listen", "127.0.0.1:0"]);
    let stream = TcpStream::connect(("127.0.0.1", srv.dynamodb_port.unwrap())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = BufReader::new(stream);
    // Several requests on one connection (keep-alive), each error of its own kind.
    let (s, b) = request(&mut conn, "DynamoDB_20120810.ListTables", b"{}");
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"default\""), "{b}");
    let (s, b) = request(&mut conn, "DynamoDB_20120810.ListTables", b"{nope");
    assert_eq!(
        (s, error_type(&b).as_str()),
        (400, "SerializationException")
    );
    let (s, b) = request(&mut conn, "DynamoDB_20120810.Frobnicate", b"{}");
    assert_eq!(
        (s, error_type(&b).as_str()),
        (400, "UnknownOperationException")
    );
    let (s, b) = request(&mut conn, "DynamoDB_20120810.TransactWriteItems", b"{}");
    assert_eq!(
        (s, error_type(&b).as_str()),
        (400, "UnknownOperationException")
    );
    assert!(b.contains("not supported by rewind"), "{b}");
    let (s, b) = request(&mut conn, "DynamoDB_20120810.DescribeTable", b"{}");
    assert_eq!((s, error_type(&b).as_str()), (400, "ValidationException"));
    let (s, b) = request(
        &mut conn,
        "DynamoDB_20120810.CreateTable",
        br#"{"TableName":"tb1","KeySchema":[{"AttributeName":"k","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"k","AttributeType":"B"}]}"#,
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = request(
        &mut conn,
        "DynamoDB_20120810.PutItem",
        br#"{"TableName":"tb1","Item":{"k":{"B":"AAE="},"v":{"N":"12a"}}}"#,
    );
    assert_eq!((s, error_type(&b).as_str()), (400, "ValidationException"));
    // Over the body limit: refused by its declared length, with 413, before any of the body
    // arrives (sending it would race the server's close and could end in a reset).
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    conn.get_mut().write_all(head.as_bytes()).unwrap();
    let (s, b) = read_response(&mut conn);
    assert_eq!((s, error_type(&b).as_str()), (413, "ValidationException"));
    // A fresh connection still works afterwards.
    let stream = TcpStream::connect(("127.0.0.1", srv.dynamodb_port.unwrap())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = BufReader::new(stream);
    let (s, b) = request(
        &mut conn,
        "DynamoDB_20120810.DescribeTable",
        br#"{"TableName":"tb1"}"#,
    );
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"AttributeType\":\"B\""), "{b}");
    // SIGTERM with an idle keep-alive connection open: a clean, prompt exit.
    let started = std::time::Instant::now();
    assert!(srv.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    drop(conn);
}

/// Both front doors: an item written through boto3 has a history over RESP (its storage
/// key), and `rewind history --dynamodb-key` prints it as DynamoDB JSON.
#[test]
fn a_dynamodb_items_history_through_resp_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "auto", &["--dynamodb-listen", "127.0.0.1:0"]);
    let endpoint = format!(
        "http://127.0.0.1:{}",
        srv.dynamodb_port.expect("DynamoDB port")
    );
    let out = boto3(&["history", &endpoint, &srv.port.to_string()]);
    println!("{out}");
    assert!(srv.stop().success());
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["history", "--data-dir"])
        .arg(dir.path())
        .args([
            "--table",
            "songs",
            "--dynamodb-key",
            r#"{"artist":{"S":"Nina"},"song":{"S":"Sinnerman"}}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v.as_array().unwrap();
    let ops: Vec<&str> = entries.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["delete", "put", "put", "put"]);
    assert_eq!(entries[1]["item"]["plays"]["N"], "30");
    assert_eq!(entries[3]["item"]["artist"]["S"], "Nina");
}
