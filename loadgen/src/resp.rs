//! Requests out, replies in: just enough RESP for a load generator. Replies are skipped
//! over, not built: only their kind matters (error or not, and the error's first word).

/// Appends `*N $len arg ...` to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// One reply as the generator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    /// An error reply; the first word (`ERR`, `WRONGTYPE`, ...) and the whole line.
    Error(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply from the server: {0}")]
pub struct BadReply(pub String);

fn line(buf: &[u8], at: usize) -> Option<usize> {
    buf[at..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| at + p)
}

/// Length of the reply starting at `at`, `Ok(None)` if it is not all there yet.
fn skip(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, BadReply> {
    if depth > 64 {
        return Err(BadReply("nesting deeper than 64".into()));
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(end) = line(buf, at) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[at + 1..end]).map_err(|_| BadReply("not UTF-8".into()))?;
    let after = end + 2;
    let n = || {
        head.parse::<i64>()
            .map_err(|_| BadReply(format!("bad length {head:?}")))
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after - at)),
        b'$' | b'=' | b'!' => {
            let len = n()?;
            if len < 0 {
                return Ok(Some(after - at));
            }
            let total = after + len as usize + 2;
            Ok((buf.len() >= total).then_some(total - at))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = n()?;
            let items = if kind == b'%' || kind == b'|' {
                count * 2
            } else {
                count
            };
            let mut pos = after;
            for _ in 0..items.max(0) {
                match skip(buf, pos, depth + 1)? {
                    Some(len) => pos += len,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos - at))
        }
        other => Err(BadReply(format!("unknown reply type {:?}", other as char))),
    }
}

/// Takes one whole reply off the front of `buf` (returning how many bytes it used).
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, BadReply> {
    let Some(len) = skip(buf, 0, 0)? else {
        return Ok(None);
    };
    if buf[0] == b'-' {
        let text = String::from_utf8_lossy(&buf[1..len - 2]).into_owned();
        let kind = text.split_whitespace().next().unwrap_or("ERR").to_string();
        return Ok(Some((Reply::Error(kind, text), len)));
    }
    Ok(Some((Reply::Ok, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_every_kind_are_measured_whole() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b":12\r\n",
            b"$-1\r\n",
            b"_\r\n",
            b"$3\r\nabc\r\n",
            b"*2\r\n$1\r\na\r\n$-1\r\n",
            b"%1\r\n$1\r\nk\r\n:1\r\n",
            b"*-1\r\n",
        ];
        for &c in cases {
            assert_eq!(
                parse(c).unwrap(),
                Some((Reply::Ok, c.len())),
                "{:?}",
                String::from_utf8_lossy(c)
            );
            for cut in 0..c.len() {
                assert_eq!(
                    parse(&c[..cut]).unwrap(),
                    None,
                    "prefix {cut} of {:?}",
                    String::from_utf8_lossy(c)
                );
            }
        }
        let e = b"-WRONGTYPE Operation against a key\r\n";
        assert_eq!(
            parse(e).unwrap().unwrap().0,
            Reply::Error(
                "WRONGTYPE".into(),
                "WRONGTYPE Operation against a key".into()
            )
        );
        assert!(parse(b"?x\r\n").is_err());
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
