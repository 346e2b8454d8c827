//! DynamoDB operations (UpdateItem, conditions, Query, Scan, the batch calls) driven by real
//! clients: boto3's client and resource APIs, the AWS CLI, and moto's server as a second
//! implementation for differential testing. `tests/dynamodb/ops_e2e.py` does the talking.
//! boto3, the AWS CLI (`awscli`) and moto (`moto[server]`) are required, as `.ci/run`
//! installs them: without one these tests fail, saying how to install it.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Four shards a table, so that every Query and Scan merges several shards' ordered indexes
/// whatever the machine's core count.
const SERVE: &[&str] = &["--dynamodb-listen", "127.0.0.1:0", "--shards", "4"];

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dynamodb/ops_e2e.py");

fn script(args: &[&str]) -> String {
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
        panic!("a client is missing: `python3 -m pip install boto3 awscli 'moto[server]'` (.ci/run does)\n{text}");
    }
    assert!(out.status.success(), "ops_e2e.py {args:?} failed:\n{text}");
    assert!(text.contains("ALL OK"), "{text}");
    text
}

fn endpoint(srv: &common::Server) -> String {
    format!(
        "http://127.0.0.1:{}",
        srv.dynamodb_port.expect("DynamoDB port")
    )
}

#[test]
fn boto3_every_operation_conditions_and_concurrent_updates() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "auto", SERVE);
    println!("{}", script(&["ops", &endpoint(&srv)]));
}

#[test]
fn aws_cli_items_queries_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "auto", SERVE);
    println!("{}", script(&["cli", &endpoint(&srv)]));
}

#[test]
fn restore_drill_after_a_bad_change_scans_equal() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "auto", SERVE);
    println!("{}", script(&["drill", &endpoint(&srv)]));
}

/// moto's server on a free port, killed when dropped.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Moto, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("moto_server is not installed: `python3 -m pip install 'moto[server]'` (.ci/run does): {e}")
        });
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::port_open(port) {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, port)
}

#[test]
fn random_operations_answer_as_moto_does() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), "auto", SERVE);
    let (_moto, port) = start_moto();
    let moto = format!("http://127.0.0.1:{port}");
    // Each seed makes its own table on both sides.
    for seed in ["1", "2", "3"] {
        println!("{}", script(&["diff", &endpoint(&srv), &moto, seed]));
    }
}
