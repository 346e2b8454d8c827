//! Writer and reader together: round trips, segment changes, time cuts, clock steps.

use super::index::{SecondIndex, INDEX_EXT};
use super::test_util::*;
use super::*;

#[test]
fn appended_batches_read_back_in_order_across_reopen() {
    for io in io_modes() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), io);
        let clock = ManualClock::new(T0);
        let (log, report) = open(&c, &clock);
        assert_eq!(report.next_seq, 1);
        let a = log
            .append(vec![put(1), put(2), Record::delete(&b"key:1"[..])])
            .unwrap();
        clock.advance(10);
        let b = log.append(vec![put(3)]).unwrap();
        assert_eq!((a.first_seq, a.commit_us), (1, T0));
        assert_eq!((b.first_seq, b.commit_us), (4, T0 + 10));
        log.close();

        let (log, report) = open(&c, &clock);
        assert_eq!(
            (report.next_seq, report.last_commit_us, report.torn),
            (5, T0 + 10, None)
        );
        assert_eq!(log.append(vec![put(4)]).unwrap().first_seq, 5);
        log.close();

        let got = read_all(dir.path(), ScanRange::ALL);
        let want = vec![
            (1, T0, put(1)),
            (2, T0, put(2)),
            (3, T0, Record::delete(&b"key:1"[..])),
            (4, T0 + 10, put(3)),
            (5, T0 + 10, put(4)),
        ];
        assert_eq!(got, want, "io {io:?}");
    }
}

#[test]
fn segments_roll_at_the_size_limit_and_get_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), IoMode::Std);
    c.segment_max_bytes = 4096;
    let clock = ManualClock::new(T0);
    let (log, _) = open(&c, &clock);
    for i in 0..200 {
        clock.advance(300_000); // a few blocks per second
        log.append(vec![put(i)]).unwrap();
    }
    assert!(log.stats().segments_created > 3);
    log.close();
    let segs = segment_paths(dir.path());
    assert!(segs.len() > 3);
    for sealed in &segs[..segs.len() - 1] {
        assert!(
            sealed.with_extension(INDEX_EXT).exists(),
            "{sealed:?} has no index"
        );
    }
    assert_holds_puts(dir.path(), 200);
}

#[test]
fn segments_roll_when_the_hour_changes() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), IoMode::Std);
    let clock = ManualClock::new(T0 + 3_599_999_000);
    let (log, _) = open(&c, &clock);
    log.append(vec![put(1)]).unwrap();
    clock.advance(1_000); // 14:00:00.000000
    log.append(vec![put(2)]).unwrap();
    log.close();
    assert_eq!(segment_paths(dir.path()).len(), 2);
}

/// Writes `n` blocks, `per_sec` of them in every second, over small segments; returns the
/// commit time of each record (record i has sequence i + 1).
fn timed_log(dir: &std::path::Path, n: u64, step_us: u64) -> Vec<u64> {
    let mut c = config(dir, IoMode::Std);
    c.segment_max_bytes = 8192;
    let clock = ManualClock::new(T0);
    let (log, _) = open(&c, &clock);
    let mut times = Vec::new();
    for i in 0..n {
        clock.advance(step_us);
        times.push(log.append(vec![put(i)]).unwrap().commit_us);
    }
    log.close();
    times
}

#[test]
fn scan_until_t_returns_exactly_the_writes_committed_at_or_before_t() {
    let dir = tempfile::tempdir().unwrap();
    let times = timed_log(dir.path(), 300, 137_000);
    assert!(
        segment_paths(dir.path()).len() > 2,
        "want cuts in closed segments"
    );
    let mut targets = vec![0, T0, times[0], times[0] - 1, times[299], u64::MAX];
    for i in (0..300).step_by(7) {
        targets.push(times[i]);
        targets.push(times[i] + 1);
        targets.push(times[i] - 1);
        targets.push(times[i] / 1_000_000 * 1_000_000 + 999_999); // end of its second
    }
    for t in targets {
        let got = read_all(dir.path(), ScanRange::until(t));
        let want = times.iter().filter(|&&c| c <= t).count();
        assert_eq!(got.len(), want, "until {t}");
        assert!(got.iter().all(|(_, c, _)| *c <= t));
    }
}

#[test]
fn a_scan_whose_stop_flag_is_set_reads_no_further_block() {
    let dir = tempfile::tempdir().unwrap();
    // One record per block, over several segments.
    timed_log(dir.path(), 300, 137_000);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let opts = ScanOptions {
        stop: Some(&stop),
        ..ScanOptions::default()
    };
    let mut seen = Vec::new();
    let (stats, lost) = scan_shard_with(dir.path(), 1, 0, ScanRange::ALL, opts, |seq, _, _| {
        seen.push(seq);
        if seq == 42 {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .unwrap();
    assert_eq!(seen, (1..=42).collect::<Vec<_>>());
    assert_eq!((stats.blocks, stats.last_seq, lost.len()), (42, 42, 0));
}

#[test]
fn scan_from_seq_skips_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    timed_log(dir.path(), 300, 137_000);
    for from in [0u64, 1, 2, 57, 150, 299, 300, 301, 1000] {
        let got = read_all(
            dir.path(),
            ScanRange {
                from_seq: from,
                ..ScanRange::ALL
            },
        );
        let first = from.max(1);
        assert_eq!(
            got.len() as u64,
            301u64.saturating_sub(first),
            "from {from}"
        );
        if let Some((seq, _, r)) = got.first() {
            assert_eq!((*seq, r.clone()), (first, put(first - 1)));
        }
    }
}

#[test]
fn commit_times_never_go_backwards_when_the_clock_does() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), IoMode::Std);
    let clock = ManualClock::new(T0 + 5_000_000);
    let (log, _) = open(&c, &clock);
    let a = log.append(vec![put(1)]).unwrap();
    clock.set(T0 + 2_000_000);
    let b = log.append(vec![put(2)]).unwrap();
    assert_eq!(b.commit_us, a.commit_us);
    log.close();
    // Reopened, still after the newest logged time.
    let (log, _) = open(&c, &clock);
    assert_eq!(log.append(vec![put(3)]).unwrap().commit_us, a.commit_us);
    log.close();
    let times: Vec<u64> = read_all(dir.path(), ScanRange::ALL)
        .iter()
        .map(|r| r.1)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn missing_or_damaged_index_is_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let times = timed_log(dir.path(), 200, 250_000);
    let first = segment::list(dir.path()).unwrap().remove(0);
    let idx_path = first.index_path();
    let written = std::fs::read(&idx_path).unwrap();
    let file = std::fs::File::open(&first.path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut head = [0u8; segment::SEGMENT_HEADER_LEN];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).unwrap();
    let header = segment::SegmentHeader::decode(&head).unwrap();
    let rebuilt = SecondIndex::rebuild(&file, &first.path, &header, len).unwrap();
    assert_eq!(rebuilt.encode(header.salt()), written);

    let t = times[20];
    let want = read_all(dir.path(), ScanRange::until(t));
    std::fs::remove_file(&idx_path).unwrap();
    assert_eq!(read_all(dir.path(), ScanRange::until(t)), want);
    let mut bad = written.clone();
    bad[40] ^= 0xff;
    std::fs::write(&idx_path, bad).unwrap();
    assert_eq!(read_all(dir.path(), ScanRange::until(t)), want);
}

#[test]
fn relaxed_fsync_policies_still_read_back() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), IoMode::Std);
        c.fsync = policy;
        let clock = ManualClock::new(T0);
        let (log, _) = open(&c, &clock);
        for i in 0..50 {
            log.append(vec![put(i)]).unwrap();
        }
        assert_eq!(log.stats().syncs, 0, "{policy:?} synced per batch");
        log.flush().unwrap();
        assert_eq!(log.stats().syncs, 1);
        log.close();
        assert_eq!(read_all(dir.path(), ScanRange::ALL).len(), 50);
    }
}

#[test]
fn oversized_submission_is_refused_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (log, _) = open(&config(dir.path(), IoMode::Std), &clock);
    let big = bytes::Bytes::from(vec![0u8; (block::MAX_BLOCK_PAYLOAD / 2) as usize + 1]);
    let recs = vec![
        Record::put(&b"a"[..], big.clone()),
        Record::put(&b"b"[..], big),
    ];
    assert!(matches!(
        log.append(recs),
        Err(CommitError::TooLarge { .. })
    ));
    assert_eq!(log.append(vec![put(1)]).unwrap().first_seq, 1);
}

/// Blocks go out direct only with `fsync always` and `direct` on, and a log written direct
/// reads back whole across a reopen that continues mid-page, mixed with blocks written
/// buffered (the same bytes either way), over segment rolls.
#[test]
fn direct_writes_only_where_asked_and_read_back_across_reopen_and_rolls() {
    // As the direct unit tests: a temporary directory without direct I/O skips the check
    // that blocks went out direct (the log still must read back).
    let no_direct = std::env::var_os("REWIND_TEST_NO_DIRECT_IO").is_some();
    let cases = [
        (FsyncPolicy::Always, DirectMode::Auto, true),
        (FsyncPolicy::Always, DirectMode::Off, false),
        (FsyncPolicy::EverySec, DirectMode::Auto, false),
    ];
    for io in io_modes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut n = 0u64;
        // Every setting in turn on the same log, twice, so each continues the others' tail.
        for (round, &(fsync, direct, want_direct)) in cases.iter().chain(cases.iter()).enumerate() {
            let mut c = config(dir.path(), io);
            c.fsync = fsync;
            c.direct = direct;
            c.segment_max_bytes = 8192;
            let (log, report) = open(&c, &clock);
            assert_eq!(report.next_seq, n + 1, "round {round}");
            for _ in 0..40 {
                clock.advance(1000);
                log.append(vec![put(n)]).unwrap();
                n += 1;
            }
            let s = log.stats();
            let want_direct = want_direct && !no_direct;
            assert!(
                !no_direct || s.direct_blocks == 0 || s.direct_blocks == s.blocks,
                "io {io:?} round {round}: {} of {} blocks direct",
                s.direct_blocks,
                s.blocks
            );
            assert_eq!(
                s.direct_blocks > 0 || no_direct,
                want_direct || no_direct,
                "io {io:?} round {round}: {} of {} blocks direct",
                s.direct_blocks,
                s.blocks
            );
            if want_direct {
                assert_eq!(s.direct_blocks, s.blocks, "io {io:?} round {round}");
            }
            log.close();
            assert_holds_puts(dir.path(), n);
        }
        assert!(segment_paths(dir.path()).len() > 3, "io {io:?}: no rolls");
    }
}
