//! Scan + checksum + decompress + record decode of one shard's log on one core, in logical
//! (decompressed payload) bytes per second.

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rewind::log::{
    scan_shard, FsyncPolicy, LogConfig, RecordRef, ScanRange, ShardLog, SystemClock,
};

const RECORDS: usize = 400_000;
const BATCH: usize = 256;

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(10);
    for kind in common::Values::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LogConfig::new(dir.path(), 1, 0);
        config.fsync = FsyncPolicy::Never;
        let (log, _) = ShardLog::open(config, Arc::new(SystemClock), None).unwrap();
        let records = common::records(RECORDS, kind, 11);
        for chunk in records.chunks(BATCH) {
            log.append(chunk.to_vec()).unwrap();
        }
        log.close();
        let stats = scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, _| {}).unwrap();
        assert_eq!(stats.records, RECORDS as u64);
        eprintln!(
            "scan/{}: {} blocks, {} logical bytes, {} stored ({:.3} stored per logical)",
            kind.name(),
            stats.blocks,
            stats.raw_bytes,
            stats.stored_bytes,
            stats.stored_bytes as f64 / stats.raw_bytes as f64
        );
        group.throughput(Throughput::Bytes(stats.raw_bytes));
        group.bench_function(kind.name(), |b| {
            b.iter(|| {
                let mut sum = 0usize;
                scan_shard(dir.path(), 1, 0, ScanRange::ALL, |seq, _, r| {
                    if let RecordRef::Put { key, value } = r {
                        sum = sum.wrapping_add(key.len() + value.len() + seq as usize);
                    }
                })
                .unwrap();
                sum
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
