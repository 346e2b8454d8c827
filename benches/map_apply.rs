//! Applying committed records to a table shard's map: the writer thread's main CPU cost
//! after compression. Puts of 100-byte values over 100 000 distinct 16-byte keys, as
//! `redis-benchmark -r 100000` sends them.

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rewind::log::RecordRef;
use rewind::shard::{apply_ref, new_map};

fn apply(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..100_000u64)
        .map(|i| format!("key:{:012}", i.wrapping_mul(2_654_435_761) % 100_000).into_bytes())
        .collect();
    let value = [b'x'; 100];
    let map = new_map();
    for k in &keys {
        apply_ref(
            &map,
            RecordRef::Put {
                key: k,
                value: &value,
            },
        );
    }
    let mut group = c.benchmark_group("map");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("overwrite_100k", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(apply_ref(
                    &map,
                    RecordRef::Put {
                        key: k,
                        value: &value,
                    },
                ));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
