//! `SLOWLOG`: the newest commands that took longer than `--slowlog-log-slower-than`
//! microseconds, as Redis keeps them (id, Unix time, microseconds, arguments, client
//! address, client name). Arguments are trimmed as Redis trims them: at most 32, each at
//! most 128 bytes, with a note of what was left out.
//!
//! The latency is the one `cmdstats.rs` measures: a write's includes its log sync.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;

/// Redis's limits on what one entry keeps.
pub const MAX_ARGS: usize = 32;
pub const MAX_ARG_BYTES: usize = 128;
/// The most entries `--slowlog-max-len` may ask for (each holds at most ~4 KiB).
pub const MAX_LEN_LIMIT: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    pub unix_secs: u64,
    pub micros: u64,
    pub args: Vec<Vec<u8>>,
    pub client_addr: String,
    pub client_name: String,
}

#[derive(Debug)]
pub struct SlowLog {
    /// Microseconds; negative turns the log off, 0 logs every command.
    threshold_us: AtomicI64,
    max_len: AtomicUsize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

/// What an entry keeps of a command's arguments.
pub fn trimmed_args(args: &[&[u8]]) -> Vec<Vec<u8>> {
    let keep = if args.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        args.len()
    };
    let mut out: Vec<Vec<u8>> = args[..keep]
        .iter()
        .map(|a| {
            if a.len() > MAX_ARG_BYTES {
                let mut t = a[..MAX_ARG_BYTES].to_vec();
                t.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                t
            } else {
                a.to_vec()
            }
        })
        .collect();
    if args.len() > MAX_ARGS {
        out.push(format!("... ({} more arguments)", args.len() - keep).into_bytes());
    }
    out
}

/// What an entry keeps of a command that may carry a password (AUTH, HELLO ... AUTH): its
/// name, and each other argument as `(redacted)`.
pub fn redacted_args(args: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out = trimmed_args(&args[..args.len().min(1)]);
    out.extend((1..args.len().min(MAX_ARGS)).map(|_| b"(redacted)".to_vec()));
    out
}

/// Arguments a pending write keeps for its slow-log entry: the command and its key. Copying
/// every argument of every write (a SET's value too) cost about 180 instructions a SET at
/// pipeline 16 under callgrind, the most of anything counting added; the rest of a slow
/// write's arguments are named by their number.
pub const STASHED_ARGS: usize = 2;

/// Appends what a pending write's entry keeps of `args` to `buf` (the number of arguments,
/// then for each of the first [`STASHED_ARGS`] its full length and at most
/// [`MAX_ARG_BYTES`] of it) and returns where it lies: the arguments are gone by the time the
/// commit shows the write was slow. No allocation per command.
pub fn stash_args(buf: &mut Vec<u8>, args: &[&[u8]]) -> (usize, usize) {
    let start = buf.len();
    let n = args.len().min(STASHED_ARGS);
    buf.extend_from_slice(&(args.len() as u64).to_le_bytes());
    for a in &args[..n] {
        let kept = a.len().min(MAX_ARG_BYTES);
        buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
        buf.extend_from_slice(&a[..kept]);
    }
    (start, buf.len())
}

/// The arguments [`stash_args`] kept, trimmed as [`trimmed_args`] trims them, and a note of
/// how many more there were.
pub fn unstash_args(mut b: &[u8]) -> Vec<Vec<u8>> {
    let take_len = |b: &mut &[u8]| -> Option<usize> {
        let (n, rest) = b.split_first_chunk::<8>()?;
        *b = rest;
        Some(u64::from_le_bytes(*n) as usize)
    };
    let Some(total) = take_len(&mut b) else {
        return Vec::new();
    };
    let mut full: Vec<(usize, &[u8])> = Vec::new();
    while let Some(len) = take_len(&mut b) {
        let kept = len.min(MAX_ARG_BYTES).min(b.len());
        full.push((len, &b[..kept]));
        b = &b[kept..];
    }
    let keep = full.len().min(total);
    let mut out: Vec<Vec<u8>> = full
        .iter()
        .take(keep)
        .map(|(len, bytes)| {
            let mut t = bytes.to_vec();
            if *len > MAX_ARG_BYTES {
                t.extend_from_slice(format!("... ({} more bytes)", len - MAX_ARG_BYTES).as_bytes());
            }
            t
        })
        .collect();
    if total > keep {
        out.push(format!("... ({} more arguments)", total - keep).into_bytes());
    }
    out
}

impl SlowLog {
    pub fn new(threshold_us: i64, max_len: usize) -> Self {
        SlowLog {
            threshold_us: AtomicI64::new(threshold_us),
            max_len: AtomicUsize::new(max_len.min(MAX_LEN_LIMIT)),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether a command that took `us` belongs in the log.
    pub fn is_slow(&self, us: u64) -> bool {
        let t = self.threshold_us.load(Relaxed);
        t >= 0 && us >= t as u64
    }

    /// Whether anything can be logged: callers keep a command's arguments only then.
    pub fn enabled(&self) -> bool {
        self.threshold_us.load(Relaxed) >= 0 && self.max_len.load(Relaxed) > 0
    }

    pub fn threshold_us(&self) -> i64 {
        self.threshold_us.load(Relaxed)
    }

    pub fn max_len(&self) -> usize {
        self.max_len.load(Relaxed)
    }

    pub fn set_threshold_us(&self, us: i64) {
        self.threshold_us.store(us, Relaxed);
    }

    pub fn set_max_len(&self, n: usize) {
        let n = n.min(MAX_LEN_LIMIT);
        self.max_len.store(n, Relaxed);
        let mut e = self.entries.lock();
        e.truncate(n);
    }

    pub fn push(&self, micros: u64, args: Vec<Vec<u8>>, client_addr: String, client_name: String) {
        let max = self.max_len.load(Relaxed);
        if max == 0 {
            return;
        }
        let unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = Entry {
            id: self.next_id.fetch_add(1, Relaxed),
            unix_secs,
            micros,
            args,
            client_addr,
            client_name,
        };
        let mut e = self.entries.lock();
        e.push_front(entry);
        e.truncate(max);
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.entries.lock().iter().take(count).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_slow_commands_trimmed_as_redis_trims_them() {
        let log = SlowLog::new(100, 2);
        assert!(!log.is_slow(99) && log.is_slow(100));
        for i in 0..3u64 {
            log.push(
                200 + i,
                trimmed_args(&[b"set", b"k"]),
                "a".into(),
                String::new(),
            );
        }
        let e = log.newest(10);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].id, e[0].micros), (2, 202));
        assert_eq!(e[1].id, 1);
        log.set_max_len(1);
        assert_eq!(log.len(), 1);
        log.reset();
        assert!(log.is_empty());
        log.set_threshold_us(-1);
        assert!(!log.is_slow(u64::MAX) && !log.enabled());

        let long = vec![b'x'; 300];
        let many: Vec<&[u8]> = (0..40).map(|_| long.as_slice()).collect();
        let t = trimmed_args(&many);
        assert_eq!(t.len(), 32);
        assert!(t[0].starts_with(&[b'x'; 128]));
        assert!(t[0].ends_with(b"... (172 more bytes)"));
        assert_eq!(t[31], b"... (9 more arguments)");

        // Stashed arguments come back as trimmed_args trims the command and its key, with
        // the number of the others.
        let mut buf = b"earlier".to_vec();
        for args in [
            many.clone(),
            vec![b"set".as_slice(), b"k", &long],
            vec![b"del".as_slice()],
        ] {
            let (a, b) = stash_args(&mut buf, &args);
            let mut want = trimmed_args(&args[..args.len().min(STASHED_ARGS)]);
            if args.len() > STASHED_ARGS {
                want.push(
                    format!("... ({} more arguments)", args.len() - STASHED_ARGS).into_bytes(),
                );
            }
            assert_eq!(unstash_args(&buf[a..b]), want);
        }
    }
}
