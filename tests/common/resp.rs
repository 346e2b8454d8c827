//! A small blocking RESP2/RESP3 client for tests. It parses every reply type the server sends
//! and nothing more.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    pub fn bulk(s: impl AsRef<[u8]>) -> Value {
        Value::Bulk(s.as_ref().to_vec())
    }

    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    pub fn err_text(&self) -> &str {
        match self {
            Value::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    pub fn as_int(&self) -> i64 {
        match self {
            Value::Int(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    /// Field/value pairs of a RESP3 map or a RESP2 flat array, as strings.
    pub fn fields(&self) -> Vec<(String, Value)> {
        let text = |v: &Value| match v {
            Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Simple(s) => s.clone(),
            other => panic!("field name {other:?}"),
        };
        match self {
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
            Value::Array(items) => items
                .chunks(2)
                .map(|p| (text(&p[0]), p[1].clone()))
                .collect(),
            other => panic!("expected fields, got {other:?}"),
        }
    }

    pub fn field(&self, name: &str) -> Value {
        self.fields()
            .into_iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
            .1
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// This end's port (the server sees the client at it).
    pub fn local_port(&self) -> u16 {
        self.writer.local_addr().unwrap().port()
    }

    /// The connection itself, for tests that read it raw.
    pub fn into_stream(self) -> TcpStream {
        self.writer
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode(args));
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Value {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&a);
        self.read()
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Value {
        self.send(args);
        self.read()
    }

    pub fn try_read(&mut self) -> std::io::Result<Value> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        assert!(
            line.ends_with(b"\r\n"),
            "bad line {:?}",
            String::from_utf8_lossy(&line)
        );
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let n = || body.parse::<i64>().unwrap();
        Ok(match line[0] {
            b'+' => Value::Simple(body),
            b'-' => Value::Error(body),
            b':' => Value::Int(n()),
            b'_' => Value::Null,
            b'$' if n() < 0 => Value::Null,
            b'$' => {
                let mut buf = vec![0u8; n() as usize + 2];
                self.reader.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Value::Bulk(buf)
            }
            b'*' if n() < 0 => Value::Null,
            b'*' => Value::Array((0..n()).map(|_| self.read()).collect()),
            b'%' => Value::Map((0..n()).map(|_| (self.read(), self.read())).collect()),
            other => panic!("unknown reply type {}", other as char),
        })
    }

    pub fn read(&mut self) -> Value {
        self.try_read().expect("read reply")
    }
}
