//! A run: `threads` threads, each a single-threaded runtime driving its share of
//! `connections`. Closed loop by default (each connection sends a pipeline, waits for its
//! replies, repeats); with a rate, open loop, every latency taken from the request's intended
//! send time. Ends at its deadline or after its request budget, whatever the server does.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dynamo::{self, DynamoTarget};
use crate::keys::{key_name, KeyDist, KeyGen, ValueSize};
use crate::resp::{encode, parse, Reply};
use crate::schedule::Schedule;
use crate::stats::Stats;

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Below this, an open-loop connection yields instead of sleeping until a request is due.
const TIMER_SLACK: Duration = Duration::from_micros(1500);

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub addr: SocketAddr,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Probability that a request is a SET (the rest are GETs).
    pub set_ratio: f64,
    pub keys: u64,
    pub key_dist: KeyDist,
    pub value_size: ValueSize,
    pub table: Option<String>,
    /// Total requests per second over all connections: open loop.
    pub rate: Option<f64>,
    pub seed: u64,
    /// Stop after this many requests (measured ones and warm-up together).
    pub requests: Option<u64>,
    /// Print one line a second.
    pub live: bool,
    /// Send DynamoDB requests over HTTP instead of RESP (`addr` is the endpoint's).
    pub dynamo: Option<DynamoTarget>,
}

/// What a run measured (warm-up excluded).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub total: Stats,
    /// One entry per measured second.
    pub per_second: Vec<Stats>,
    pub seconds: f64,
    pub start_unix_ms: u64,
}

/// Shared by the connections of one thread.
struct ThreadState {
    interval: Stats,
    /// Connections still running, and when the last one stopped.
    running: usize,
    finished: Option<Instant>,
}

struct Clock {
    measure_from: Instant,
    end: Instant,
}

/// Runs the load and returns what it measured.
pub fn run(cfg: &RunConfig) -> Result<RunResult, String> {
    if cfg.connections == 0 || cfg.threads == 0 || cfg.pipeline == 0 {
        return Err("connections, threads and pipeline must be at least 1".into());
    }
    if let Some(t) = &cfg.dynamo {
        dynamo::prepare_table(cfg.addr, t)?;
    }
    let threads = cfg.threads.min(cfg.connections);
    let start = Instant::now();
    let start_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let clock = Arc::new(Clock {
        measure_from: start + cfg.warmup,
        end: start + cfg.warmup + cfg.duration,
    });
    let budget = Arc::new(AtomicI64::new(cfg.requests.map_or(i64::MAX, |r| r as i64)));
    let (tx, rx) = mpsc::channel::<(u64, Stats, Option<Instant>)>();
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns: Vec<usize> = (0..cfg.connections).filter(|c| c % threads == t).collect();
        let (cfg, clock, budget, tx) = (cfg.clone(), clock.clone(), budget.clone(), tx.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || thread_main(cfg, conns, clock, budget, tx))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    drop(tx);
    // Gather each second's stats from every thread; print them as they complete.
    let mut per_second: Vec<Stats> = Vec::new();
    let mut reported = vec![0usize; 0];
    let mut finished = clock.measure_from;
    while let Ok((second, s, done)) = rx.recv() {
        if let Some(d) = done {
            finished = finished.max(d);
        }
        let i = second as usize;
        if per_second.len() <= i {
            per_second.resize_with(i + 1, Stats::default);
            reported.resize(i + 1, 0);
        }
        per_second[i].merge(&s);
        reported[i] += 1;
        if cfg.live && reported[i] == threads {
            println!("{}", crate::report::live_line(second + 1, &per_second[i]));
        }
    }
    for h in handles {
        h.join().map_err(|_| "a load thread panicked".to_string())?;
    }
    let mut total = Stats::default();
    for s in &per_second {
        total.merge(s);
    }
    // Measured time: from the end of the warm-up to when the last connection stopped.
    let seconds = finished
        .min(clock.end)
        .saturating_duration_since(clock.measure_from)
        .as_secs_f64();
    Ok(RunResult {
        total,
        per_second,
        seconds,
        start_unix_ms,
    })
}

fn thread_main(
    cfg: RunConfig,
    conns: Vec<usize>,
    clock: Arc<Clock>,
    budget: Arc<AtomicI64>,
    tx: mpsc::Sender<(u64, Stats, Option<Instant>)>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let state = Rc::new(RefCell::new(ThreadState {
            interval: Stats::default(),
            running: conns.len(),
            finished: None,
        }));
        let all_done = Rc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for c in conns {
            let (cfg, clock, budget) = (cfg.clone(), clock.clone(), budget.clone());
            let (state, all_done) = (state.clone(), all_done.clone());
            tasks.push(tokio::task::spawn_local(async move {
                connection(cfg, c, clock, budget, state.clone()).await;
                let mut st = state.borrow_mut();
                st.running -= 1;
                st.finished = Some(Instant::now());
                if st.running == 0 {
                    all_done.notify_one();
                }
            }));
        }
        // Hand over each measured second's stats, until every connection has stopped.
        let mut second = 0u64;
        while state.borrow().running > 0 {
            let tick = clock.measure_from + Duration::from_secs(second + 1);
            tokio::select! {
                _ = tokio::time::sleep_until(tick.into()) => {}
                _ = all_done.notified() => break,
            }
            let s = std::mem::take(&mut state.borrow_mut().interval);
            let _ = tx.send((second, s, None));
            second += 1;
        }
        for t in tasks {
            let _ = t.await;
        }
        let (rest, done) = {
            let mut st = state.borrow_mut();
            (std::mem::take(&mut st.interval), st.finished)
        };
        let _ = tx.send((second, rest, done));
    });
}

async fn connect(addr: SocketAddr, table: &Option<String>) -> Result<TcpStream, String> {
    let s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = s.set_nodelay(true);
    let mut s = s;
    if let Some(t) = table {
        let mut req = Vec::new();
        encode(&mut req, &[b"TABLE.USE", t.as_bytes()]);
        s.write_all(&req)
            .await
            .map_err(|e| format!("write: {}", e.kind()))?;
        let mut buf = Vec::new();
        match read_replies(&mut s, &mut buf, 1).await?.pop() {
            Some(Reply::Error(_, text)) => return Err(format!("TABLE.USE {t}: {text}")),
            Some(Reply::Ok) => {}
            None => return Err("no reply to TABLE.USE".into()),
        }
    }
    Ok(s)
}

/// Reads what the server sent next onto `buf` (at least one byte), within `IO_TIMEOUT`.
pub(crate) async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.reserve(64 << 10);
    let got = tokio::time::timeout(IO_TIMEOUT, s.read_buf(buf))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| format!("read: {}", e.kind()))?;
    if got == 0 {
        return Err("disconnected".into());
    }
    Ok(())
}

/// Reads exactly `n` replies.
async fn read_replies(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> Result<Vec<Reply>, String> {
    let mut out = Vec::with_capacity(n);
    let mut pos = 0;
    while out.len() < n {
        match parse(&buf[pos..]).map_err(|e| e.to_string())? {
            Some((r, len)) => {
                pos += len;
                out.push(r);
                continue;
            }
            None => {
                buf.drain(..pos);
                pos = 0;
                read_more(s, buf).await?;
            }
        }
    }
    buf.drain(..pos);
    Ok(out)
}

async fn connection(
    cfg: RunConfig,
    id: usize,
    clock: Arc<Clock>,
    budget: Arc<AtomicI64>,
    state: Rc<RefCell<ThreadState>>,
) {
    let mut gen = KeyGen::new(
        cfg.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        cfg.key_dist,
        cfg.keys,
        cfg.value_size,
    );
    let mut schedule = cfg
        .rate
        .map(|r| Schedule::new(Instant::now(), r / cfg.connections as f64));
    let mut stream: Option<TcpStream> = None;
    let (mut req, mut buf, mut key) = (Vec::new(), Vec::new(), Vec::new());
    let mut cmds: Vec<usize> = Vec::new();
    let mut due: Vec<Instant> = Vec::new();
    while Instant::now() < clock.end {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(
                cfg.addr,
                if cfg.dynamo.is_some() {
                    &None
                } else {
                    &cfg.table
                },
            )
            .await
            {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    state.borrow_mut().interval.error(&e);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        // How many requests go now, and from when each one's latency counts.
        let n = match schedule.as_mut() {
            Some(sched) => {
                sched.take_due(Instant::now(), cfg.pipeline, &mut due);
                if due.is_empty() {
                    let next = sched.next_due().min(clock.end);
                    // Tokio's timer ticks in milliseconds: sleep to within one of the due
                    // time, then yield until it, so the generator's own lateness stays out of
                    // the latencies it reports.
                    if next.saturating_duration_since(Instant::now()) > TIMER_SLACK {
                        tokio::time::sleep_until((next - TIMER_SLACK).into()).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                due.len()
            }
            None => cfg.pipeline,
        };
        if budget.fetch_sub(n as i64, Ordering::Relaxed) <= 0 {
            break;
        }
        req.clear();
        cmds.clear();
        for _ in 0..n {
            if let Some(t) = &cfg.dynamo {
                let k = gen.key();
                let op = if gen.chance(t.query_ratio) {
                    2
                } else if gen.chance(cfg.set_ratio) {
                    0
                } else {
                    1
                };
                let (name, body) =
                    dynamo::request(t, op, k, if op == 0 { gen.value() } else { b"" });
                dynamo::encode(&mut req, &t.host, name, &body);
                cmds.push(op);
                continue;
            }
            key_name(gen.key(), &mut key);
            if gen.chance(cfg.set_ratio) {
                let v = gen.value();
                encode(&mut req, &[b"SET", &key, v]);
                cmds.push(0);
            } else {
                encode(&mut req, &[b"GET", &key]);
                cmds.push(1);
            }
        }
        let sent = Instant::now();
        let result = match tokio::time::timeout(IO_TIMEOUT, s.write_all(&req)).await {
            Ok(Ok(())) if cfg.dynamo.is_some() => dynamo::read_responses(s, &mut buf, n).await,
            Ok(Ok(())) => read_replies(s, &mut buf, n).await,
            Ok(Err(e)) => Err(format!("write: {}", e.kind())),
            Err(_) => Err("timeout".into()),
        };
        let done = Instant::now();
        let mut st = state.borrow_mut();
        match result {
            Ok(replies) => {
                if done < clock.measure_from {
                    continue;
                }
                for (i, r) in replies.iter().enumerate() {
                    let from = if schedule.is_some() { due[i] } else { sent };
                    match r {
                        Reply::Ok => st
                            .interval
                            .record(cmds[i], (done - from).as_micros() as u64),
                        Reply::Error(kind, _) => st.interval.error(kind),
                    }
                }
            }
            Err(e) => {
                // The server stalled or went away: count it, reconnect, go on until the end.
                for _ in 0..n {
                    st.interval.error(&e);
                }
                stream = None;
                buf.clear();
            }
        }
    }
}
