//! One DynamoDB JSON request over a plain keep-alive HTTP/1.1 connection, for tests that need
//! to control the bytes (boto3 and the AWS CLI are tested with themselves).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Sends one request for `target` (e.g. `DynamoDB_20120810.ListTables`) without reading the
/// response.
pub fn send(conn: &mut TcpStream, target: &str, body: &[u8]) {
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
}

/// Sends one request on `conn` and reads the response: (status, body).
pub fn request(conn: &mut BufReader<TcpStream>, target: &str, body: &[u8]) -> (u16, String) {
    send(conn.get_mut(), target, body);
    read_response(conn)
}

/// Reads one response: (status, body).
pub fn read_response(conn: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        assert_ne!(conn.read_line(&mut h).unwrap(), 0, "headers cut short");
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}
