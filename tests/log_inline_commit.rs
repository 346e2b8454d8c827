//! A net thread committing its own writes (`--commit inline`), through the library: what
//! its connections queue is never refused or stalled for room (the lead it would wait for
//! may be its own, in flight), and `everysec` still syncs an idle log's last writes within
//! about a second, though no background thread led them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rewind::log::{FsyncPolicy, LogConfig, Record, ShardLog, SystemClock};

fn rec(i: u64) -> Vec<Record> {
    vec![Record::put(format!("k{i}").into_bytes(), b"v".to_vec())]
}

/// Runs `f` on a thread shaped like a net thread: a single-threaded runtime with the log
/// flusher installed. The receiver hears when `f` is done.
fn on_net_thread<F, Fut>(f: F) -> std::sync::mpsc::Receiver<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            tokio::task::spawn_local(rewind::log::local::flusher());
            // Let the flusher make its ring.
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            f().await;
            let _ = tx.send(());
        });
    });
    rx
}

#[test]
fn more_submissions_than_the_queue_holds_in_one_tick_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig::new(dir.path(), 1, 0);
    cfg.queue_depth = 1_000;
    let (log, _) = ShardLog::open(cfg, Arc::new(SystemClock), None).unwrap();
    let log = Arc::new(log);
    let l2 = log.clone();
    // 5,000 producers in one tick, as 5,000 connections with one write each would be.
    let done = on_net_thread(move || async move {
        let rxs: Vec<_> = (0..5_000).map(|i| l2.submit(rec(i))).collect();
        for r in rxs {
            r.await.unwrap().unwrap();
        }
    });
    let r = done.recv_timeout(Duration::from_secs(60));
    assert!(
        r.is_ok(),
        "the net thread hung with its queue full (blocks by net threads: {})",
        log.stats().net_blocks
    );
    assert_eq!(log.stats().records, 5_000);
}

#[test]
fn everysec_syncs_an_idle_logs_last_writes_when_a_net_thread_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig::new(dir.path(), 1, 0);
    cfg.fsync = FsyncPolicy::EverySec;
    let (log, _) = ShardLog::open(cfg, Arc::new(SystemClock), None).unwrap();
    let log = Arc::new(log);
    let l2 = log.clone();
    let done = on_net_thread(move || async move {
        l2.submit(rec(1)).await.unwrap().unwrap();
    });
    done.recv_timeout(Duration::from_secs(30)).unwrap();
    // Synced once the second is up, by the background thread's timer (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.stats().syncs == 0 {
        assert!(
            Instant::now() < deadline,
            "everysec: a write stayed unsynced for 30 s: {:?}",
            log.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(log.stats().blocks, 1);
}
