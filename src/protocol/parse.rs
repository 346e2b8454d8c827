//! Request parsing: find one whole frame at the front of the receive buffer ("incomplete" is
//! not an error) and say where its arguments lie. Nothing is copied or allocated per command:
//! the connection runs commands on slices of its receive buffer, then drops the bytes.
//!
//! ```text
//! frame   := multibulk | inline
//! multibulk := '*' count CRLF ( '$' len CRLF bytes[len] CRLF ){count}
//! inline  := words separated by spaces or tabs, ending in LF (CRLF accepted)
//! ```

/// Bounds on what a client may send. Declared lengths are checked before anything is read, so
/// a client cannot make the server reserve memory it never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (Redis's `proto-max-bulk-len`).
    pub max_bulk_bytes: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Largest whole command, all arguments together.
    pub max_request_bytes: usize,
    /// Longest inline command line.
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: 512 << 20,
            max_args: 1 << 20,
            max_request_bytes: 640 << 20,
            max_inline_bytes: 64 << 10,
        }
    }
}

/// Input the server cannot parse. The connection is answered with the message and closed, as
/// Redis does, because the stream can no longer be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// Parses one frame from the front of `buf`. Returns its length and fills `spans` with the
/// byte ranges of its arguments within `buf`; `Ok(None)` when not all of it has arrived.
pub fn parse_frame(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Option<usize>, ProtocolError> {
    parse_frame_resumable(buf, limits, spans, &mut Resume::default())
}

/// Where a multibulk frame that has not fully arrived stopped: the next call on the same
/// frame (the same bytes at the front of `buf`, with more after them) goes on from there
/// instead of scanning the frame from its start again, so a large command arriving in small
/// reads costs time linear in its bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resume {
    active: bool,
    count: usize,
    /// Arguments whole so far (their spans are kept in `spans`).
    done: usize,
    /// Where argument `done`'s header starts.
    pos: usize,
    /// Bytes of the arguments whole so far.
    total: usize,
}

/// [`parse_frame`] that remembers, in `resume`, how far an incomplete frame got. The caller
/// keeps `spans` and `resume` between calls and calls again with the same frame at the front
/// of `buf` until it is whole or refused.
pub fn parse_frame_resumable(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(usize, usize)>,
    resume: &mut Resume,
) -> Result<Option<usize>, ProtocolError> {
    // A resume state that does not fit this buffer (a caller that lost track of the frame)
    // is dropped: the frame is parsed from its start.
    if resume.active
        && (buf.first() != Some(&b'*') || resume.pos > buf.len() || spans.len() != resume.done)
    {
        *resume = Resume::default();
    }
    if !resume.active {
        spans.clear();
    }
    let r = match buf.first() {
        None => Ok(None),
        Some(b'*') => check_multibulk(buf, limits, spans, resume),
        Some(_) => check_inline(buf, limits, spans),
    };
    if !matches!(r, Ok(None)) {
        *resume = Resume::default();
    }
    r
}

/// Finds the CRLF-terminated line starting at `at`; returns the index of '\r'.
fn line_end(buf: &[u8], at: usize, max: usize) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[at..buf.len().min(at + max + 2)];
    match window.iter().position(|&b| b == b'\r') {
        // A line longer than `max` is refused however it ends: were its '\r' the window's
        // last byte, it would otherwise look incomplete forever while the client kept sending.
        Some(i) if i > max => Err(ProtocolError("header line too long".into())),
        Some(i) if i + 1 < window.len() => {
            if window[i + 1] != b'\n' {
                return Err(ProtocolError("expected '\\n' after '\\r'".into()));
            }
            Ok(Some(at + i))
        }
        Some(_) => Ok(None),
        None if window.len() > max => Err(ProtocolError("header line too long".into())),
        None => Ok(None),
    }
}

fn parse_len(digits: &[u8], what: &str) -> Result<i64, ProtocolError> {
    let s = std::str::from_utf8(digits).map_err(|_| ProtocolError(format!("invalid {what}")))?;
    s.parse::<i64>()
        .map_err(|_| ProtocolError(format!("invalid {what}")))
}

fn check_multibulk(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(usize, usize)>,
    resume: &mut Resume,
) -> Result<Option<usize>, ProtocolError> {
    // Headers are at most a sign, 20 digits and CRLF.
    const MAX_HEADER: usize = 24;
    let (count, first, mut pos, mut total) = if resume.active {
        (resume.count, resume.done, resume.pos, resume.total)
    } else {
        let Some(end) = line_end(buf, 1, MAX_HEADER)? else {
            return Ok(None);
        };
        let count = parse_len(&buf[1..end], "multibulk length")?;
        if count > limits.max_args as i64 {
            return Err(ProtocolError(format!(
                "multibulk length {count} over the limit of {}",
                limits.max_args
            )));
        }
        if count <= 0 {
            return Ok(Some(end + 2));
        }
        (count as usize, 0, end + 2, 0usize)
    };
    let mut stop = |done: usize, pos: usize, total: usize| {
        *resume = Resume {
            active: true,
            count,
            done,
            pos,
            total,
        };
        Ok(None)
    };
    for i in first..count {
        match buf.get(pos) {
            None => return stop(i, pos, total),
            Some(b'$') => {}
            Some(&b) => {
                return Err(ProtocolError(format!(
                    "expected '$', got '{}'",
                    (b as char).escape_default()
                )))
            }
        }
        let Some(end) = line_end(buf, pos + 1, MAX_HEADER)? else {
            return stop(i, pos, total);
        };
        let len = parse_len(&buf[pos + 1..end], "bulk length")?;
        if len < 0 || len as u64 > limits.max_bulk_bytes as u64 {
            return Err(ProtocolError(format!(
                "invalid bulk length {len} (limit {} bytes)",
                limits.max_bulk_bytes
            )));
        }
        let len = len as usize;
        if total + len > limits.max_request_bytes {
            return Err(ProtocolError(format!(
                "request over the limit of {} bytes",
                limits.max_request_bytes
            )));
        }
        let start = end + 2;
        if buf.len() < start + len + 2 {
            return stop(i, pos, total);
        }
        total += len;
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not followed by CRLF".into()));
        }
        spans.push((start, start + len));
        pos = start + len + 2;
    }
    Ok(Some(pos))
}

fn check_inline(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[..buf.len().min(limits.max_inline_bytes + 1)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if window.len() > limits.max_inline_bytes {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line_len = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let mut i = 0;
    while i < line_len {
        while i < line_len && (buf[i] == b' ' || buf[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < line_len && buf[i] != b' ' && buf[i] != b'\t' {
            i += 1;
        }
        if i > start {
            if spans.len() == limits.max_args {
                return Err(ProtocolError(format!(
                    "inline request over the limit of {} arguments",
                    limits.max_args
                )));
            }
            spans.push((start, i));
        }
    }
    Ok(Some(nl + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Parsed = Result<Option<(usize, Vec<(usize, usize)>)>, ProtocolError>;

    /// Feeds `input` in pieces of `step` bytes to the resumable parser, as a socket would.
    fn parse_in_pieces(input: &[u8], step: usize, l: &Limits) -> Parsed {
        let (mut spans, mut resume) = (Vec::new(), Resume::default());
        let mut have = 0;
        loop {
            have = (have + step).min(input.len());
            match parse_frame_resumable(&input[..have], l, &mut spans, &mut resume)? {
                Some(n) => return Ok(Some((n, spans))),
                None if have == input.len() => return Ok(None),
                None => {}
            }
        }
    }

    #[test]
    fn a_frame_in_pieces_parses_as_it_does_whole() {
        let frame = encode(&[
            b"SET".to_vec(),
            b"key".to_vec(),
            vec![b'v'; 300],
            Vec::new(),
        ]);
        let l = Limits::default();
        let mut whole = Vec::new();
        let n = parse_frame(&frame, &l, &mut whole).unwrap().unwrap();
        for step in [1, 2, 3, 7, 64, 1000] {
            let (m, spans) = parse_in_pieces(&frame, step, &l).unwrap().unwrap();
            assert_eq!((m, &spans), (n, &whole), "step {step}");
        }
        // Limits still hold when the frame arrives in pieces.
        let small = Limits {
            max_request_bytes: 100,
            ..Limits::default()
        };
        assert!(parse_in_pieces(&frame, 5, &small).is_err());
    }

    proptest! {
        #[test]
        fn any_frame_in_any_pieces_parses_as_whole(
            argv in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..12),
            step in 1usize..50,
        ) {
            let frame = encode(&argv);
            let l = Limits::default();
            let mut whole = Vec::new();
            let n = parse_frame(&frame, &l, &mut whole).unwrap().unwrap();
            let (m, spans) = parse_in_pieces(&frame, step, &l).unwrap().unwrap();
            prop_assert_eq!(m, n);
            prop_assert_eq!(spans, whole);
        }
    }

    fn args(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        let mut spans = Vec::new();
        Ok(parse_frame(input, &Limits::default(), &mut spans)?
            .map(|_| spans.iter().map(|&(s, e)| input[s..e].to_vec()).collect()))
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn multibulk_and_pipelines() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let (l, mut spans) = (Limits::default(), Vec::new());
        let a = parse_frame(buf, &l, &mut spans).unwrap().unwrap();
        assert_eq!(spans, vec![(8, 11), (17, 18)]);
        let b = parse_frame(&buf[a..], &l, &mut spans).unwrap().unwrap();
        assert_eq!(&buf[a..][spans[0].0..spans[0].1], b"PING");
        assert_eq!(a + b, buf.len());
        assert!(parse_frame(&buf[a + b..], &l, &mut spans)
            .unwrap()
            .is_none());
    }

    #[test]
    fn inline_commands() {
        assert_eq!(args(b"PING\r\n").unwrap().unwrap(), vec![b"PING".to_vec()]);
        assert_eq!(
            args(b"  set  a \tb\n").unwrap().unwrap(),
            vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(args(b"\r\n").unwrap().unwrap(), Vec::<Vec<u8>>::new());
        assert!(args(b"PIN").unwrap().is_none());
    }

    #[test]
    fn every_prefix_is_incomplete_not_invalid() {
        let full = encode(&[b"SET".to_vec(), b"key".to_vec(), vec![0, 13, 10, 255]]);
        for cut in 0..full.len() {
            assert_eq!(args(&full[..cut]).unwrap(), None, "prefix {cut}");
        }
        assert!(args(&full).unwrap().is_some());
    }

    #[test]
    fn limits_are_enforced_before_data_arrives() {
        let l = Limits {
            max_bulk_bytes: 10,
            max_args: 3,
            max_request_bytes: 15,
            max_inline_bytes: 8,
        };
        let parse = |b: &[u8]| parse_frame(b, &l, &mut Vec::new());
        assert!(parse(b"*1\r\n$11\r\n").is_err());
        assert!(parse(b"*4\r\n").is_err());
        assert!(parse(b"*2\r\n$10\r\n0123456789\r\n$10\r\n").is_err());
        assert!(parse(b"123456789").is_err());
        assert!(
            parse(b"a b c d\n").is_err(),
            "inline arguments are bounded too"
        );
        assert!(parse(b"a b c\n").unwrap().is_some());
        // Header lines one past the 24-character limit are refused, not waited on, whether
        // the '\r' is the last byte seen so far or not.
        let long = format!("*{}\r", "1".repeat(25));
        assert!(parse(long.as_bytes()).is_err(), "{long:?}");
        assert!(parse(format!("{long}\n").as_bytes()).is_err());
        assert!(parse(format!("*1\r\n${}\r", "1".repeat(25)).as_bytes()).is_err());
        let ok = format!("*{}\r", "0".repeat(24));
        assert!(
            parse(ok.as_bytes()).unwrap().is_none(),
            "24 characters may still end"
        );
        assert!(parse(b"*1\r\n$-5\r\n").is_err());
        assert!(parse(b"*1\r\n$10\r\n").unwrap().is_none());
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b"*1\r\n:5\r\n"[..],
            b"*x\r\n",
            b"*1\r\n$3\r\nabcde\r\n",
            b"*1\r\n$3\rx",
        ] {
            assert!(args(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        #[test]
        fn round_trips(a in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)) {
            prop_assert_eq!(args(&encode(&a)).unwrap().unwrap(), a);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let (l, mut spans, mut pos) = (Limits::default(), Vec::new(), 0);
            while let Ok(Some(n)) = parse_frame(&input[pos..], &l, &mut spans) {
                prop_assert!(n > 0 && spans.iter().all(|&(s, e)| s <= e && e <= n));
                pos += n;
            }
        }
    }
}
