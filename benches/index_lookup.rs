//! Lookups in a per-second index of one million markers (about 11.6 days of seconds).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::log::index::SecondIndex;
use rewind::log::segment;

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

    // Locating a restore's cut among 10,000 segments: bisect the segments by creation time,
    // then the per-second index of the segment found (an hour: 3,600 markers).
    let spans: Vec<segment::SegmentSpan> = (0..10_000u64)
        .map(|i| segment::SegmentSpan {
            first_seq: 1 + i * 1_000_000,
            created_us: (T0_S + i * 3600) * 1_000_000,
        })
        .collect();
    let mut hour = SecondIndex::new();
    for s in 0..3600 {
        hour.note_block((T0_S + s) * 1_000_000, 64 + s * 65_536, 1 + s * 300);
    }
    let span_us = 10_000 * 3600 * 1_000_000;
    let cuts: Vec<u64> = (0..4096)
        .map(|_| T0_S * 1_000_000 + rng.gen_range(0..span_us))
        .collect();
    let mut group = c.benchmark_group("restore_cut");
    group.bench_function("10k_segments_then_index", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let t = black_box(cuts[i]);
            let seg = segment::cut(&spans, t);
            black_box((
                seg,
                hour.cut_after(t % (3600 * 1_000_000) + T0_S * 1_000_000),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
