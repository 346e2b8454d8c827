//! Lookups in a per-second index of one million markers (about 11.6 days of seconds).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::log::index::SecondIndex;

const MARKERS: u64 = 1_000_000;
const T0_S: u64 = 1_764_000_000;

fn lookup(c: &mut Criterion) {
    let mut idx = SecondIndex::new();
    for i in 0..MARKERS {
        idx.note_block((T0_S + i) * 1_000_000 + 17, 64 + i * 4096, 1 + i * 90);
    }
    assert_eq!(idx.len() as u64, MARKERS);
    let mut rng = SmallRng::seed_from_u64(3);
    let targets: Vec<u64> = (0..4096)
        .map(|_| (T0_S + rng.gen_range(0..MARKERS)) * 1_000_000 + rng.gen_range(0..1_000_000))
        .collect();
    let mut group = c.benchmark_group("index_1m");
    let mut i = 0;
    group.bench_function("cut_after", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(idx.cut_after(black_box(targets[i])))
        })
    });
    group.bench_function("second_range", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(idx.second_range(black_box(targets[i] / 1_000_000)))
        })
    });
    group.bench_function("start_for_seq", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(idx.start_for_seq(black_box(targets[i] % (MARKERS * 90))))
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
