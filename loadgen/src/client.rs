//! A small blocking RESP client for the control paths (verify): send a command, read one
//! whole reply as a value.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Value>),
}

impl Value {
    /// Field/value pairs of a map or flat array reply.
    pub fn field(&self, name: &str) -> Option<&Value> {
        let Value::Array(items) = self else {
            return None;
        };
        items
            .chunks(2)
            .find(|p| p[0] == Value::Bulk(name.as_bytes().to_vec()))
            .map(|p| &p[1])
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    pub fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut out = Vec::new();
        crate::resp::encode(&mut out, args);
        self.writer.write_all(&out)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Value> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&a)?;
        self.read()
    }

    pub fn read(&mut self) -> std::io::Result<Value> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            return Err(bad("connection closed or bad reply".into()));
        }
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let n = || {
            body.parse::<i64>()
                .map_err(|_| bad(format!("bad length {body}")))
        };
        Ok(match line[0] {
            b'+' => Value::Simple(body),
            b'-' => Value::Error(body),
            b':' => Value::Int(n()?),
            b'_' => Value::Null,
            b'$' if n()? < 0 => Value::Null,
            b'$' => {
                let mut buf = vec![0u8; n()? as usize + 2];
                self.reader.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Value::Bulk(buf)
            }
            b'*' if n()? < 0 => Value::Null,
            b'*' => Value::Array((0..n()?).map(|_| self.read()).collect::<Result<_, _>>()?),
            b'%' => {
                let mut v = Vec::new();
                for _ in 0..n()? * 2 {
                    v.push(self.read()?);
                }
                Value::Array(v)
            }
            other => return Err(bad(format!("unknown reply type {}", other as char))),
        })
    }
}
