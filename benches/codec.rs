//! Block encoding (zstd level 1 vs 3 vs raw) and decoding of 256 records with 100-byte values
//! of three kinds. Before timing, prints bytes on disk per logical byte for each kind, written
//! through the real writer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rewind::log::block::{BlockDecoder, BlockEncoder, BlockHeader, BLOCK_HEADER_LEN};
use rewind::log::record::RecordIter;
use rewind::log::{FsyncPolicy, LogConfig, ShardLog, SystemClock};

const BATCH: usize = 256;

/// Bytes of segment files per logical byte (keys + values) for 100k records in batches of 256.
fn disk_ratio(kind: common::Values, level: i32) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path(), 1, 0);
    config.fsync = FsyncPolicy::Never;
    config.zstd_level = level;
    let (log, _) = ShardLog::open(config, Arc::new(SystemClock), None).unwrap();
    let records = common::records(100_000, kind, 5);
    for chunk in records.chunks(BATCH) {
        log.append(chunk.to_vec()).unwrap();
    }
    log.close();
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    on_disk as f64 / common::logical_bytes(&records) as f64
}

fn codec(c: &mut Criterion) {
    for kind in common::Values::ALL {
        eprintln!(
            "disk bytes per logical byte, {:8} values: raw {:.3}  zstd-1 {:.3}  zstd-3 {:.3}",
            kind.name(),
            disk_ratio(kind, 0),
            disk_ratio(kind, 1),
            disk_ratio(kind, 3)
        );
    }
    let mut enc_group = c.benchmark_group("encode256");
    enc_group.measurement_time(Duration::from_secs(3));
    let mut dec_group_data = Vec::new();
    for kind in common::Values::ALL {
        let records = common::records(BATCH, kind, 9);
        let raw_len: usize = records.iter().map(|r| r.encoded_len()).sum();
        enc_group.throughput(Throughput::Bytes(raw_len as u64));
        for level in [0, 1, 3] {
            let mut enc = BlockEncoder::new(level, 256).unwrap();
            let id = BenchmarkId::new(kind.name(), format!("zstd{level}"));
            enc_group.bench_function(id, |b| {
                b.iter(|| enc.encode(42, 1, 1, &records).unwrap().len())
            });
            let block = enc.encode(42, 1, 1, &records).unwrap().to_vec();
            dec_group_data.push((kind, level, raw_len, block));
        }
    }
    enc_group.finish();
    let mut dec_group = c.benchmark_group("decode256");
    dec_group.measurement_time(Duration::from_secs(3));
    for (kind, level, raw_len, block) in &dec_group_data {
        dec_group.throughput(Throughput::Bytes(*raw_len as u64));
        let mut dec = BlockDecoder::new().unwrap();
        let id = BenchmarkId::new(kind.name(), format!("zstd{level}"));
        dec_group.bench_function(id, |b| {
            b.iter(|| {
                let h = BlockHeader::decode(block, 42).unwrap();
                let raw = dec.decode(&h, &block[BLOCK_HEADER_LEN..], 42).unwrap();
                RecordIter::new(raw).count()
            })
        });
    }
    dec_group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
