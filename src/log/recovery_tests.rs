//! Crash recovery on real files: torn tails are cut, damage is refused with file and offset.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::test_util::*;
use super::*;

/// A log of `n` single-record blocks in one segment; returns the segment path.
fn one_segment_log(dir: &std::path::Path, n: u64) -> std::path::PathBuf {
    let clock = ManualClock::new(T0);
    let (log, _) = open(&config(dir, IoMode::Std), &clock);
    for i in 0..n {
        clock.advance(1000);
        log.append(vec![put(i)]).unwrap();
    }
    log.close();
    let segs = segment_paths(dir);
    assert_eq!(segs.len(), 1);
    segs[0].clone()
}

fn block_offsets(dir: &std::path::Path) -> Vec<u64> {
    let seg = segment::list(dir).unwrap().remove(0);
    let f = std::fs::File::open(&seg.path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut head = [0u8; segment::SEGMENT_HEADER_LEN];
    f.read_exact_at(&mut head, 0).unwrap();
    let h = segment::SegmentHeader::decode(&head).unwrap();
    let idx = index::SecondIndex::rebuild(&f, &seg.path, &h, len).unwrap();
    // One marker per second; walk blocks instead to get every offset.
    let mut offs = Vec::new();
    let mut s = stream::BlockStream::new(&f, h.salt(), segment::SEGMENT_HEADER_LEN as u64, len);
    while let Some(b) = s.next_block().unwrap() {
        offs.push(b.offset);
    }
    assert!(!idx.is_empty());
    offs
}

#[test]
fn torn_tail_is_cut_back_to_the_last_whole_block() {
    for cut in [1u64, 10, 57, 70] {
        let dir = tempfile::tempdir().unwrap();
        let seg = one_segment_log(dir.path(), 20);
        let len = std::fs::metadata(&seg).unwrap().len();
        let offs = block_offsets(dir.path());
        let last = *offs.last().unwrap();
        let new_len = (len - cut).max(last + 1);
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(new_len)
            .unwrap();

        let clock = ManualClock::new(T0 + 1_000_000);
        let (log, report) = open(&config(dir.path(), IoMode::Std), &clock);
        let torn = report.torn.expect("torn tail reported");
        assert_eq!((torn.offset, torn.bytes_cut), (last, new_len - last));
        assert_eq!(report.next_seq, 20);
        assert_eq!(log.append(vec![put(99)]).unwrap().first_seq, 20);
        log.close();
        let got = read_all(dir.path(), ScanRange::ALL);
        assert_eq!(got.len(), 20);
        assert_eq!(got[19].2, put(99));
    }
}

#[test]
fn garbage_after_the_last_block_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let seg = one_segment_log(dir.path(), 5);
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[0xAB; 300])
        .unwrap();
    let (_log, report) = open(&config(dir.path(), IoMode::Std), &ManualClock::new(T0));
    assert_eq!(report.torn.unwrap().offset, len);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn damaged_last_block_payload_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let seg = one_segment_log(dir.path(), 5);
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    f.write_all_at(&[0x55], len - 3).unwrap();
    let (_log, report) = open(&config(dir.path(), IoMode::Std), &ManualClock::new(T0));
    assert_eq!(report.next_seq, 5);
}

#[test]
fn damage_in_the_middle_is_refused_with_file_and_offset() {
    // Flip a byte in the header and in the payload of a middle block.
    for within in [3u64, 60] {
        let dir = tempfile::tempdir().unwrap();
        let seg = one_segment_log(dir.path(), 20);
        let offs = block_offsets(dir.path());
        let victim = offs[10];
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, victim + within).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], victim + within).unwrap();
        drop(f);
        let before = std::fs::metadata(&seg).unwrap().len();

        let err = ShardLog::open(
            config(dir.path(), IoMode::Std),
            std::sync::Arc::new(ManualClock::new(T0)),
            None,
        )
        .err()
        .expect("must refuse");
        match &err {
            LogError::Damaged { path, offset, .. } => {
                assert_eq!((path, *offset), (&seg, victim), "{err}");
            }
            other => panic!("wrong error {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(seg.to_str().unwrap()) && msg.contains(&victim.to_string()),
            "{msg}"
        );
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            before,
            "damaged file was modified"
        );
        // The reader refuses the same way.
        let scan = scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, _| {});
        assert!(matches!(scan, Err(LogError::Damaged { offset, .. }) if offset == victim));
    }
}

#[test]
fn damage_in_a_closed_segment_is_found_by_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), IoMode::Std);
    c.segment_max_bytes = 4096;
    let clock = ManualClock::new(T0);
    let (log, _) = open(&c, &clock);
    for i in 0..100 {
        log.append(vec![put(i)]).unwrap();
    }
    log.close();
    let first = &segment_paths(dir.path())[0];
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(first)
        .unwrap();
    f.write_all_at(&[0xEE], 200).unwrap();
    let err = verify_shard(dir.path(), 1, 0).unwrap_err();
    assert!(
        matches!(&err, LogError::Damaged { path, .. } if path == first),
        "{err}"
    );
}

#[test]
fn half_created_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    one_segment_log(dir.path(), 3);
    let stray = dir.path().join(segment::file_name(4));
    std::fs::write(&stray, &b"RWNDSEG"[..]).unwrap();
    let (log, report) = open(&config(dir.path(), IoMode::Std), &ManualClock::new(T0 + 10));
    assert_eq!(report.next_seq, 4);
    assert!(report.torn.is_some());
    assert!(!stray.exists());
    assert_eq!(log.append(vec![put(3)]).unwrap().first_seq, 4);
}

#[test]
fn segment_of_another_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    one_segment_log(dir.path(), 3);
    let mut c = config(dir.path(), IoMode::Std);
    c.shard = 5;
    let err = ShardLog::open(c, std::sync::Arc::new(ManualClock::new(T0)), None)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("belongs to table 1 shard 0"),
        "{err}"
    );
}

#[test]
fn tolerant_mode_skips_a_damaged_block_and_reports_exactly_what_was_lost() {
    // Damage in a block's payload (within = 60) and in its header (within = 3).
    for within in [60u64, 3] {
        let dir = tempfile::tempdir().unwrap();
        let seg = one_segment_log(dir.path(), 20);
        let victim = block_offsets(dir.path())[7];
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, victim + within).unwrap();
        f.write_all_at(&[b[0] ^ 0x42], victim + within).unwrap();

        let mut c = config(dir.path(), IoMode::Std);
        c.tolerant = true;
        let clock = ManualClock::new(T0 + 1_000_000);
        let (log, report) = open(&c, &clock);
        assert_eq!(report.next_seq, 21, "within {within}");
        assert_eq!(log.append(vec![put(100)]).unwrap().first_seq, 21);
        log.close();

        let mut seqs = Vec::new();
        let (stats, lost) = scan_shard_with(
            dir.path(),
            1,
            0,
            ScanRange::ALL,
            ScanOptions {
                tolerant: true,
                progress: None,
                stop: None,
            },
            |s, _, _| seqs.push(s),
        )
        .unwrap();
        assert_eq!(stats.records, 20);
        assert!(!seqs.contains(&8), "the damaged record was served");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert_eq!(lost[0].offset, victim);
        assert_eq!(
            (lost[0].first_seq, lost[0].last_seq),
            (Some(8), Some(8)),
            "{}",
            lost[0]
        );
        // Strict readers still refuse.
        assert!(scan_shard(dir.path(), 1, 0, ScanRange::ALL, |_, _, _| {}).is_err());
    }
}

/// Copies the shard directory while the writer still has it open: what a crash leaves,
/// preallocated zeros included.
fn crash_copy(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn preallocated_zeros_after_a_crash_are_a_clean_end() {
    let live = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (log, _) = open(&config(live.path(), IoMode::Std), &clock);
    for i in 0..10 {
        log.append(vec![put(i)]).unwrap();
    }
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(live.path(), crashed.path());
    log.close();
    let seg = segment_paths(crashed.path()).remove(0);
    let zeros_len = std::fs::metadata(&seg).unwrap().len();
    assert_eq!(zeros_len, 1 << 20, "segment preallocated to one chunk");

    let (log, report) = open(&config(crashed.path(), IoMode::Std), &clock);
    assert_eq!((report.next_seq, report.torn), (11, None));
    assert_eq!(log.append(vec![put(10)]).unwrap().first_seq, 11);
    log.close();
    let got = read_all(crashed.path(), ScanRange::ALL);
    assert_eq!(got.len(), 11);
    assert_eq!(got[10].2, put(10));
    let trimmed = std::fs::metadata(&seg).unwrap().len();
    assert!(trimmed < zeros_len, "a clean stop trims the zeros");
}

#[test]
fn zeros_in_front_of_a_valid_block_are_damage_and_a_torn_block_before_zeros_is_cut() {
    let live = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (log, _) = open(&config(live.path(), IoMode::Std), &clock);
    for i in 0..10 {
        log.append(vec![put(i)]).unwrap();
    }
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(live.path(), crashed.path());
    log.close();
    let offs = block_offsets(live.path());
    let seg = segment_paths(crashed.path()).remove(0);

    // Zero a middle block's header: valid blocks follow, so this is damage, not an end.
    let damaged = tempfile::tempdir().unwrap();
    crash_copy(crashed.path(), damaged.path());
    let f = OpenOptions::new()
        .write(true)
        .open(damaged.path().join(seg.file_name().unwrap()))
        .unwrap();
    f.write_all_at(&[0u8; 56], offs[4]).unwrap();
    let err = ShardLog::open(
        config(damaged.path(), IoMode::Std),
        std::sync::Arc::new(clock.clone()),
        None,
    );
    assert!(matches!(err, Err(LogError::Damaged { offset, .. }) if offset == offs[4]));

    // Tear the last block (flip a payload byte): zeros after it, so it is a torn tail.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    f.write_all_at(&[0x77], offs[9] + 60).unwrap();
    let (_log, report) = open(&config(crashed.path(), IoMode::Std), &clock);
    assert_eq!(report.torn.map(|t| t.offset), Some(offs[9]));
    assert_eq!(report.next_seq, 10);
}
