//! Reply encoding. One writer serves both protocol versions: after `HELLO 3` nulls are `_`
//! and field/value replies are maps (`%`); in RESP2 they are `$-1` and flat arrays.

use bytes::{BufMut, BytesMut};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

/// Appends replies to an output buffer.
pub struct ReplyWriter<'a> {
    pub out: &'a mut BytesMut,
    pub proto: Proto,
}

impl<'a> ReplyWriter<'a> {
    pub fn new(out: &'a mut BytesMut, proto: Proto) -> Self {
        ReplyWriter { out, proto }
    }

    fn int_line(&mut self, prefix: u8, n: i64) {
        let mut b = itoa::Buffer::new();
        self.out.put_u8(prefix);
        self.out.put_slice(b.format(n).as_bytes());
        self.out.put_slice(b"\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        debug_assert!(!s.contains(['\r', '\n']), "simple strings are one line");
        self.out.put_u8(b'+');
        self.out.put_slice(s.as_bytes());
        self.out.put_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.out.put_slice(b"+OK\r\n");
    }

    /// An error line. `msg` starts with its code (`ERR`, `WRONGTYPE`, ...); line breaks in it
    /// are replaced so the reply stays one line.
    pub fn error(&mut self, msg: &str) {
        self.out.put_u8(b'-');
        for b in msg.bytes() {
            self.out
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.out.put_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.int_line(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.int_line(b'$', data.len() as i64);
        self.out.put_slice(data);
        self.out.put_slice(b"\r\n");
    }

    pub fn null(&mut self) {
        match self.proto {
            Proto::Resp2 => self.out.put_slice(b"$-1\r\n"),
            Proto::Resp3 => self.out.put_slice(b"_\r\n"),
        }
    }

    pub fn array(&mut self, len: usize) {
        self.int_line(b'*', len as i64);
    }

    /// A map of `pairs` field/value pairs (RESP3), or a flat array of twice as many (RESP2).
    pub fn map(&mut self, pairs: usize) {
        match self.proto {
            Proto::Resp2 => self.int_line(b'*', 2 * pairs as i64),
            Proto::Resp3 => self.int_line(b'%', pairs as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(proto: Proto, f: impl FnOnce(&mut ReplyWriter)) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut ReplyWriter::new(&mut out, proto));
        out.to_vec()
    }

    #[test]
    fn resp2_and_resp3_differ_only_where_they_should() {
        let both = |p| {
            render(p, |w| {
                w.map(1);
                w.bulk(b"k");
                w.int(-7);
                w.null();
                w.error("ERR bad\r\nthing");
            })
        };
        assert_eq!(
            both(Proto::Resp2),
            b"*2\r\n$1\r\nk\r\n:-7\r\n$-1\r\n-ERR bad  thing\r\n"
        );
        assert_eq!(
            both(Proto::Resp3),
            b"%1\r\n$1\r\nk\r\n:-7\r\n_\r\n-ERR bad  thing\r\n"
        );
    }
}
