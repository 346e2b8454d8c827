//! The restore path for one shard: plan, read, checksum, decompress, decode and apply into a
//! fresh map, in logical bytes per second. 300,000 writes of 100-byte values over 100,000 keys.

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rewind::log::{FsyncPolicy, LogConfig, ScanProgress, ShardLog, SystemClock};
use rewind::restore::{plan, replay};

const RECORDS: usize = 300_000;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("restore_replay");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(10);
    for kind in [common::Values::Alnum, common::Values::Random] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LogConfig::new(dir.path(), 1, 0);
        config.fsync = FsyncPolicy::Never;
        let (log, _) = ShardLog::open(config, Arc::new(SystemClock), None).unwrap();
        let records = common::records(RECORDS, kind, 13);
        for chunk in records.chunks(256) {
            log.append(chunk.to_vec()).unwrap();
        }
        log.close();
        let logical: u64 = records.iter().map(|r| r.encoded_len() as u64).sum();
        group.throughput(Throughput::Bytes(logical));
        group.bench_function(kind.name(), |b| {
            b.iter(|| {
                let p = plan(dir.path(), u64::MAX, u64::MAX).unwrap();
                let progress = ScanProgress::default();
                replay(dir.path(), 1, 0, &p, &progress).unwrap().len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
