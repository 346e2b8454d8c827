//! A command of N one-byte arguments arriving in 1 KiB reads, parsed after every read as the
//! server does: with the parser resuming where it stopped (linear in bytes) against parsing
//! the incomplete frame from its start each time (quadratic; only the smaller sizes, the 1M
//! one would take minutes). Issue 12: a client could make the server rescan a 1M-argument
//! command thousands of times.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rewind::protocol::{parse_frame, parse_frame_resumable, Limits, Resume};

const READ: usize = 1024;

fn frame(args: usize) -> Vec<u8> {
    let mut f = format!("*{args}\r\n").into_bytes();
    for _ in 0..args {
        f.extend_from_slice(b"$1\r\nx\r\n");
    }
    f
}

fn resumed(f: &[u8], l: &Limits) -> usize {
    let (mut spans, mut resume) = (Vec::new(), Resume::default());
    let mut have = 0;
    loop {
        have = (have + READ).min(f.len());
        if let Some(n) = parse_frame_resumable(&f[..have], l, &mut spans, &mut resume).unwrap() {
            return n + spans.len();
        }
    }
}

fn rescanned(f: &[u8], l: &Limits) -> usize {
    let mut spans = Vec::new();
    let mut have = 0;
    loop {
        have = (have + READ).min(f.len());
        if let Some(n) = parse_frame(&f[..have], l, &mut spans).unwrap() {
            return n + spans.len();
        }
    }
}

fn bench(c: &mut Criterion) {
    let l = Limits::default();
    let mut g = c.benchmark_group("frame_in_1k_reads");
    g.sample_size(10);
    for args in [10_000usize, 100_000, 1_000_000] {
        let f = frame(args);
        g.throughput(Throughput::Bytes(f.len() as u64));
        g.bench_with_input(BenchmarkId::new("resumed", args), &f, |b, f| {
            b.iter(|| resumed(f, &l))
        });
        if args <= 100_000 {
            g.bench_with_input(BenchmarkId::new("rescanned", args), &f, |b, f| {
                b.iter(|| rescanned(f, &l))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
