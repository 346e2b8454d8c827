//! Segment rolls off the commit path (`segment_prep.rs`): rolls take the prepared file, the
//! helper seals and extends, and recovery settles every state a crash or a power cut can
//! leave a roll in (each built here on real files, as a crash copy of a live log).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::segment_prep::PREPARED_NAME;
use super::test_util::*;
use super::*;

fn small_segments(dir: &Path) -> LogConfig {
    let mut c = config(dir, IoMode::Std);
    c.segment_max_bytes = 4096;
    c
}

/// Writes `n` records, one block each, letting the helper finish after every one, so every
/// roll finds a prepared file.
fn write_settled(log: &ShardLog, clock: &ManualClock, from: u64, n: u64) {
    for i in from..from + n {
        clock.advance(1_000);
        log.append(vec![put(i)]).unwrap();
        log.wait_segment_helper();
    }
}

/// Copies the shard directory as a crash leaves it (the writer still open).
fn crash_copy(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// A live log over several small segments and a crash copy of it, taken with the helper idle.
fn crashed_log(n: u64) -> (tempfile::TempDir, ManualClock) {
    crashed_log_with(n, 4096)
}

fn crashed_log_with(n: u64, segment_max_bytes: u64) -> (tempfile::TempDir, ManualClock) {
    let live = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut c = small_segments(live.path());
    c.segment_max_bytes = segment_max_bytes;
    let (log, _) = open(&c, &clock);
    log.wait_segment_helper();
    write_settled(&log, &clock, 0, n);
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(live.path(), crashed.path());
    log.close();
    (crashed, clock)
}

fn zero_range(path: &Path, from: u64, to: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![0u8; (to - from) as usize], from)
        .unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn first_seq_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

#[test]
fn rolls_take_the_prepared_file_and_a_clean_stop_keeps_a_zero_spare() {
    for io in io_modes() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = small_segments(dir.path());
        c.io = io;
        let clock = ManualClock::new(T0);
        let (log, _) = open(&c, &clock);
        log.wait_segment_helper();
        assert!(dir.path().join(PREPARED_NAME).exists(), "made at open");
        write_settled(&log, &clock, 0, 200);
        let st = log.stats();
        assert!(st.segments_created > 3, "{st:?}");
        assert_eq!(st.segments_prepared, st.segments_created, "{st:?}");
        assert_eq!(st.segment_rolls_inline, 0, "{st:?}");
        assert_eq!(st.segments_sealed, st.segments_created - 1, "{st:?}");
        log.close();
        // The unused prepared file stays, all zeros, for the next start.
        let spare = std::fs::read(dir.path().join(PREPARED_NAME)).unwrap();
        assert!(spare.iter().all(|&b| b == 0), "io {io:?}");
        let segs = segment_paths(dir.path());
        for sealed in &segs[..segs.len() - 1] {
            assert!(sealed.with_extension(index::INDEX_EXT).exists());
            // Sealed: trimmed to its last block.
            let len = std::fs::metadata(sealed).unwrap().len();
            assert!(len < 1 << 20, "{sealed:?} still holds its zeros: {len}");
        }
        assert_holds_puts(dir.path(), 200);
    }
}

#[test]
fn the_helper_extends_the_open_segments_zeros_ahead_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), IoMode::Std);
    c.min_compress_len = usize::MAX; // stored as written: sizes are predictable
    let clock = ManualClock::new(T0);
    let (log, _) = open(&c, &clock);
    log.wait_segment_helper();
    // 40 blocks of about 16 KiB: past half of the first 1 MiB chunk.
    for i in 0..40u64 {
        clock.advance(1_000);
        let value = vec![(i % 251) as u8; 16 << 10];
        log.append(vec![Record::put(format!("k{i}").into_bytes(), value)])
            .unwrap();
    }
    log.wait_segment_helper();
    let st = log.stats();
    assert_eq!(
        st.reserved_bytes, 0,
        "fsync always writes its zeros: {st:?}"
    );
    // The first prepared file's chunk, the one ahead of the writer and the next prepared file.
    assert_eq!(st.zeroed_bytes, 3 << 20, "{st:?}");
    let seg = segment_paths(dir.path()).remove(0);
    let len = std::fs::metadata(&seg).unwrap().len();
    assert_eq!(len, 2 << 20, "zeros extended one chunk ahead");
    log.close();
    let got = read_all(dir.path(), ScanRange::ALL);
    assert_eq!(got.len(), 40);
    assert!(std::fs::metadata(&seg).unwrap().len() < 1 << 20, "trimmed");
}

/// Under `everysec` and `never` the space ahead is reserved (`fallocate`), not written: it
/// reads as zeros all the same, the log reads back whole from a crash copy, and the sealed
/// segment is trimmed.
#[test]
fn relaxed_policies_reserve_the_space_ahead_and_read_back_across_a_crash() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), IoMode::Std);
        c.fsync = policy;
        c.min_compress_len = usize::MAX;
        let clock = ManualClock::new(T0);
        let (log, _) = open(&c, &clock);
        log.wait_segment_helper();
        for i in 0..40u64 {
            clock.advance(1_000);
            let value = vec![(i % 251) as u8 + 1; 16 << 10];
            log.append(vec![Record::put(format!("k{i}").into_bytes(), value)])
                .unwrap();
        }
        log.flush().unwrap();
        log.wait_segment_helper();
        let st = log.stats();
        assert_eq!(st.zeroed_bytes, 0, "{policy:?}: {st:?}");
        // The first prepared file's chunk, the one ahead of the writer and the next prepared
        // file.
        assert_eq!(st.reserved_bytes, 3 << 20, "{policy:?}: {st:?}");
        let seg = segment_paths(dir.path()).remove(0);
        let bytes = std::fs::read(&seg).unwrap();
        assert_eq!(bytes.len(), 2 << 20, "{policy:?}: reserved one chunk ahead");
        // About 660 KiB of blocks; zeros after them.
        assert!(bytes[700 << 10..].iter().all(|&b| b == 0), "{policy:?}");
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(dir.path(), crashed.path());
        log.close();
        assert!(std::fs::metadata(&seg).unwrap().len() < 1 << 20, "trimmed");
        let got = read_all(crashed.path(), ScanRange::ALL);
        assert_eq!(got.len(), 40, "{policy:?}");
        // Reopened with `fsync always` (direct writes where the file system takes them), with
        // segments small enough that the writes roll into the reserved prepared file the
        // relaxed run left: it takes blocks as written zeros do, and zeros are written from
        // here on.
        c.fsync = FsyncPolicy::Always;
        c.segment_max_bytes = 1 << 20;
        let (reopened, _) = open(&c, &clock);
        reopened.wait_segment_helper();
        for i in 0..200u64 {
            clock.advance(1_000);
            let value = vec![(i % 251) as u8 + 1; 16 << 10];
            let got = reopened
                .append(vec![Record::put(format!("a{i}").into_bytes(), value)])
                .unwrap();
            assert_eq!(got.first_seq, 41 + i);
        }
        reopened.wait_segment_helper();
        let st = reopened.stats();
        assert!(st.segments_prepared >= 1, "{policy:?}: {st:?}");
        assert!(st.zeroed_bytes > 0, "{policy:?}: {st:?}");
        reopened.close();
        assert_eq!(
            read_all(dir.path(), ScanRange::ALL).len(),
            240,
            "{policy:?}"
        );
    }
}

/// A power cut after the writer renamed the prepared file but before the rename reached the
/// disk: the newest segment, blocks and all, still has the prepared name.
#[test]
fn a_started_segment_still_under_its_prepared_name_is_adopted() {
    let (crashed, clock) = crashed_log(120);
    let dir = crashed.path();
    let segs = segment_paths(dir);
    let newest = segs.last().unwrap().clone();
    // The helper's next prepared file is made after the rename and its directory sync
    // would have made the rename durable too: without the rename, it is not there.
    std::fs::remove_file(dir.join(PREPARED_NAME)).unwrap();
    std::fs::rename(&newest, dir.join(PREPARED_NAME)).unwrap();

    let (log, report) = open(&small_segments(dir), &clock);
    assert_eq!(report.next_seq, 121);
    assert_eq!(report.torn, None);
    assert!(newest.exists(), "renamed to its segment name");
    write_settled(&log, &clock, 120, 5);
    log.close();
    assert_holds_puts(dir, 125);
}

/// A power cut after the rename reached the disk but before the header did, with none of the
/// segment's blocks durable either: all zeros, removed; the log goes on from the one before.
#[test]
fn a_named_segment_of_nothing_but_zeros_is_removed() {
    let (crashed, clock) = crashed_log(120);
    let dir = crashed.path();
    let newest = segment_paths(dir).last().unwrap().clone();
    let first = first_seq_of(&newest);
    let len = std::fs::metadata(&newest).unwrap().len();
    zero_range(&newest, 0, len);

    let before = segment::list(dir).unwrap();
    let previous = before[before.len() - 2].clone();
    assert!(previous.index_path().exists(), "sealed before the crash");
    let (log, report) = open(&small_segments(dir), &clock);
    assert_eq!(
        report.next_seq, first,
        "the log ends where that segment began"
    );
    assert_eq!(report.torn.map(|t| t.path), Some(newest.clone()));
    assert!(
        !previous.index_path().exists(),
        "the index of the segment the log continues in goes (it would go stale)"
    );
    write_settled(&log, &clock, first - 1, 3);
    log.close();
    assert_holds_puts(dir, first + 2);
}

/// A power cut where the segment's blocks reached the disk but its header did not (no sync
/// completed, so none was acknowledged): the file is moved aside, never deleted.
#[test]
fn a_headerless_segment_with_blocks_is_set_aside_and_kept() {
    // Segments of 12 KiB: the newest holds blocks past its first page.
    let (crashed, clock) = crashed_log_with(250, 12 << 10);
    let dir = crashed.path();
    let newest = segment_paths(dir).last().unwrap().clone();
    let first = first_seq_of(&newest);
    let bytes = std::fs::read(&newest).unwrap();
    assert!(
        bytes[4096..].iter().any(|&b| b != 0),
        "blocks past the first page"
    );
    // Zeros in place of the header alone, a valid block after it: damage, refused.
    zero_range(&newest, 0, segment::SEGMENT_HEADER_LEN as u64);
    let err = ShardLog::open(
        small_segments(dir),
        std::sync::Arc::new(clock.clone()),
        None,
    )
    .err()
    .expect("refused");
    assert!(matches!(&err, LogError::Damaged { path, offset: 0, .. } if *path == newest));
    // The whole first page zeros (the header shares it with the first block): set aside.
    zero_range(&newest, 0, 4096);

    let (log, report) = open(&small_segments(dir), &clock);
    assert_eq!(report.next_seq, first);
    assert!(report.torn.is_some());
    log.close();
    let aside: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n.contains(".headerless-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", names(dir));
    let kept = std::fs::read(dir.join(&aside[0])).unwrap();
    assert_eq!(kept.len(), bytes.len());
    assert_eq!(&kept[4096..], &bytes[4096..], "kept as it was");
    assert_eq!(read_all(dir, ScanRange::ALL).len() as u64, first - 1);
}

#[test]
fn an_unused_prepared_file_found_at_start_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join(PREPARED_NAME);
    std::fs::write(&prepared, vec![0u8; 4096]).unwrap();
    let clock = ManualClock::new(T0);
    let (log, _) = open(&small_segments(dir.path()), &clock);
    log.wait_segment_helper();
    write_settled(&log, &clock, 0, 1);
    assert_eq!(log.stats().segments_prepared, 1, "{:?}", log.stats());
    log.close();
    assert_eq!(read_all(dir.path(), ScanRange::ALL).len(), 1);
}

#[test]
fn a_prepared_file_with_a_damaged_header_or_a_clash_is_refused_by_name() {
    let (crashed, clock) = crashed_log(60);
    let dir = crashed.path();
    let prepared = dir.join(PREPARED_NAME);

    // Garbage where the header goes.
    std::fs::write(&prepared, vec![0x5a; 8192]).unwrap();
    let err = ShardLog::open(
        small_segments(dir),
        std::sync::Arc::new(clock.clone()),
        None,
    )
    .err()
    .expect("refused");
    assert!(
        matches!(&err, LogError::Damaged { path, .. } if *path == prepared),
        "{err}"
    );

    // A valid header for sequences an existing segment already holds.
    let newest = segment_paths(dir).last().unwrap().clone();
    std::fs::copy(&newest, &prepared).unwrap();
    let err = ShardLog::open(
        small_segments(dir),
        std::sync::Arc::new(clock.clone()),
        None,
    )
    .err()
    .expect("refused");
    assert!(
        matches!(&err, LogError::Damaged { path, .. } if *path == prepared),
        "{err}"
    );
    assert!(err.to_string().contains("already covers"), "{err}");
    assert!(newest.exists() && prepared.exists(), "nothing removed");
}

#[test]
fn tolerant_recovery_moves_a_damaged_prepared_file_aside() {
    let (crashed, clock) = crashed_log(60);
    let dir = crashed.path();
    std::fs::write(dir.join(PREPARED_NAME), vec![0x5a; 8192]).unwrap();
    let mut c = small_segments(dir);
    c.tolerant = true;
    let (log, report) = open(&c, &clock);
    assert_eq!(report.next_seq, 61);
    log.close();
    assert!(names(dir)
        .iter()
        .any(|n| n.starts_with("next.seg-prepared.damaged-")));
    assert_eq!(read_all(dir, ScanRange::ALL).len(), 60);
}

/// A crash after a roll, before the helper sealed the finished segment: it still has its
/// zeros and no index. Readers that need its index read it all the same (also what they
/// meet while the helper is about to seal it), and recovery seals it.
#[test]
fn a_segment_the_helper_had_not_sealed_reads_whole_and_recovery_seals_it() {
    let (crashed, clock) = crashed_log(120);
    let dir = crashed.path();
    let segs = segment::list(dir).unwrap();
    assert!(segs.len() >= 3);
    let older = &segs[segs.len() - 2];
    let len = std::fs::metadata(&older.path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&older.path)
        .unwrap()
        .set_len(len + (1 << 20))
        .unwrap();
    std::fs::remove_file(older.index_path()).unwrap();

    // From a sequence inside it, up to a time: the reader needs its index.
    let from = older.first_seq + 1;
    let all = read_all(dir, ScanRange::ALL);
    let until_us = all[all.len() - 10].1;
    let range = ScanRange {
        from_seq: from,
        until_us,
        until_seq: u64::MAX,
    };
    let want: Vec<_> = all
        .iter()
        .filter(|(seq, t, _)| *seq >= from && *t <= until_us)
        .cloned()
        .collect();
    assert_eq!(read_all(dir, range), want);

    let (log, report) = open(&small_segments(dir), &clock);
    assert_eq!(report.next_seq, 121);
    log.close();
    assert!(older.index_path().exists(), "sealed at start-up");
    assert_eq!(
        std::fs::metadata(&older.path).unwrap().len(),
        len,
        "zeros cut"
    );
    assert_eq!(read_all(dir, range), want);
}
