//! Many producers on many threads share one shard log: every record is acknowledged, each
//! producer's records land in the order it sent them, and syncs are far fewer than records.

use std::collections::HashMap;
use std::sync::Arc;

use rewind::log::{scan_shard, IoMode, LogConfig, Record, ScanRange, ShardLog, SystemClock};

const PRODUCERS: u64 = 16;
const PER_PRODUCER: u64 = 600;
/// Submissions a producer keeps in flight, as a pipelining client would.
const WINDOW: usize = 4;

fn run(io: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path(), 9, 2);
    config.io = io;
    let (log, _) = ShardLog::open(config, Arc::new(SystemClock), None).unwrap();
    let log = Arc::new(log);
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut inflight = std::collections::VecDeque::new();
                for i in 0..PER_PRODUCER {
                    let rec = Record::put(format!("p{p}").into_bytes(), i.to_be_bytes().to_vec());
                    inflight.push_back(log.submit(vec![rec]));
                    if inflight.len() == WINDOW || i + 1 == PER_PRODUCER {
                        while let Some(rx) = inflight.pop_front() {
                            acked.push(rx.blocking_recv().unwrap().unwrap().first_seq);
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let mut all_seqs = Vec::new();
    for t in threads {
        let acked = t.join().unwrap();
        assert_eq!(acked.len() as u64, PER_PRODUCER);
        assert!(
            acked.windows(2).all(|w| w[0] < w[1]),
            "a producer's acks out of order"
        );
        all_seqs.extend(acked);
    }
    all_seqs.sort_unstable();
    let total = PRODUCERS * PER_PRODUCER;
    assert_eq!(
        all_seqs,
        (1..=total).collect::<Vec<_>>(),
        "sequences not dense"
    );

    let stats = log.stats();
    assert_eq!(stats.records, total);
    assert!(
        stats.syncs * 4 <= total,
        "{io:?}: {} syncs for {total} records: group commit is not grouping",
        stats.syncs
    );
    eprintln!(
        "{io:?}: {total} records, {} syncs, {:.1} records per sync",
        stats.syncs,
        total as f64 / stats.syncs as f64
    );
    drop(log);

    // In the log, each producer's values appear in the order it sent them.
    let mut next: HashMap<Vec<u8>, u64> = HashMap::new();
    scan_shard(dir.path(), 9, 2, ScanRange::ALL, |_, _, r| {
        let rewind::log::RecordRef::Put { key, value } = r else {
            panic!("unexpected delete")
        };
        let n = next.entry(key.to_vec()).or_default();
        assert_eq!(u64::from_be_bytes(value.try_into().unwrap()), *n);
        *n += 1;
    })
    .unwrap();
    assert!(next.values().all(|&n| n == PER_PRODUCER));
}

#[test]
fn many_producers_group_commit_std() {
    run(IoMode::Std);
}

#[test]
fn many_producers_group_commit_auto_io() {
    run(IoMode::Auto);
}
