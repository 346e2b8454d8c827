//! Fuzzes the RESP request parser (`src/protocol/parse.rs`, compiled in as it is: the parser
//! has no dependencies, so the target builds in seconds instead of instrumenting the whole
//! server). The first two bytes pick the limits, the rest is the receive buffer.
//!
//! Checked on every input, besides "never panics": a frame's length and argument spans lie
//! inside the buffer and in order; a complete frame parses the same alone as with bytes after
//! it; the frame less its last byte is "incomplete", never an error; "incomplete" is never
//! answered for more bytes than one frame can hold; and a buffer consumed frame by frame, the
//! way a connection does, always makes progress.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/protocol/parse.rs"]
#[allow(dead_code)]
mod parse;

use parse::{parse_frame, Limits};

fn limits(a: u8, b: u8) -> Limits {
    Limits {
        max_bulk_bytes: 1 + (a as usize % 64) * 16,
        max_args: 1 + (b as usize % 32),
        max_request_bytes: 64 + (a as usize) * 8,
        max_inline_bytes: 8 + (b as usize) * 2,
    }
}

/// The longest buffer that can still be the start of one frame within `limits`: a header of
/// at most 24 characters, then at most `max_args` bulk strings of at most `max_bulk_bytes`.
fn longest_frame(limits: &Limits) -> usize {
    let header = 1 + 24 + 2;
    let multibulk = header + limits.max_args * (header + limits.max_bulk_bytes + 2);
    multibulk.max(limits.max_inline_bytes + 2)
}

fn check_one(buf: &[u8], limits: &Limits, spans: &mut Vec<(usize, usize)>) -> Option<usize> {
    let n = match parse_frame(buf, limits, spans) {
        Ok(Some(n)) => n,
        Ok(None) => {
            // "Incomplete" only while a frame could still end: otherwise a client could make
            // the server buffer without bound.
            assert!(
                buf.len() <= longest_frame(limits),
                "{} bytes still incomplete, limit {}",
                buf.len(),
                longest_frame(limits)
            );
            return None;
        }
        Err(_) => return None,
    };
    assert!(n > 0 && n <= buf.len(), "frame length {n} of {}", buf.len());
    assert!(spans.len() <= limits.max_args, "{} args", spans.len());
    let mut prev_end = 0;
    for &(s, e) in spans.iter() {
        assert!(s >= prev_end && s <= e && e <= n, "span {s}..{e} in frame of {n}");
        prev_end = e;
    }
    let first = spans.clone();
    // The same frame alone parses the same way.
    let mut again = Vec::new();
    assert_eq!(parse_frame(&buf[..n], limits, &mut again), Ok(Some(n)));
    assert_eq!(again, first);
    // Less its last byte, it is incomplete.
    let mut cut = Vec::new();
    assert_eq!(parse_frame(&buf[..n - 1], limits, &mut cut), Ok(None));
    Some(n)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = limits(data[0], data[1]);
    let mut buf = &data[2..];
    let mut spans = Vec::new();
    // Consume frame by frame, as a connection does, until the rest is incomplete or invalid.
    while let Some(n) = check_one(buf, &limits, &mut spans) {
        buf = &buf[n..];
    }
});
