//! Append throughput of one shard's writer: 100-byte values, batches of 1, 16 and 256
//! records, each waited for (one producer), with `fsync always` and `never`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rewind::log::{FsyncPolicy, IoMode, LogConfig, ShardLog, SystemClock};

fn append(c: &mut Criterion) {
    for (policy, io) in [
        (FsyncPolicy::Always, IoMode::Uring),
        (FsyncPolicy::Always, IoMode::Std),
        (FsyncPolicy::Never, IoMode::Uring),
        (FsyncPolicy::Never, IoMode::Std),
    ] {
        let mut group = c.benchmark_group(format!("append/{policy:?}/{io:?}").to_lowercase());
        group.measurement_time(Duration::from_secs(4));
        group.warm_up_time(Duration::from_secs(1));
        group.sample_size(20);
        for batch in [1usize, 16, 256] {
            let records = common::records(batch, common::Values::Alnum, 7);
            group.throughput(Throughput::Bytes(common::logical_bytes(&records)));
            let dir = tempfile::tempdir().unwrap();
            let mut config = LogConfig::new(dir.path(), 1, 0);
            config.fsync = policy;
            config.io = io;
            let (log, _) = ShardLog::open(config, Arc::new(SystemClock), None).unwrap();
            group.bench_with_input(BenchmarkId::from_parameter(batch), &records, |b, recs| {
                b.iter(|| log.append(recs.clone()).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, append);
criterion_main!(benches);
