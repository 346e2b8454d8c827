//! Injected `fallocate` faults (run with `--features failpoints`): under `fsync everysec` and
//! `never` the log reserves its space ahead with `fallocate` (`src/log/segment_prep.rs`,
//! `Fill`). A file system that refuses it gets zeros written instead, an interrupted call is
//! retried, and a full disk fails the writes that need new space cleanly: nothing acknowledged
//! is lost, and writes resume once there is room.
#![cfg(feature = "failpoints")]

use std::sync::{Arc, Mutex};

use rewind::log::failpoint::{
    arm_reserve_eintr, arm_reserve_enospc, arm_reserve_eopnotsupp, reserve_eintr_left,
};
use rewind::log::{
    scan_shard, CommitError, FsyncPolicy, IoMode, LogConfig, ManualClock, Record, RecordRef,
    ScanRange, ShardLog,
};

/// The failpoints are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the lock and disarms every reservation fault when dropped, panics included, so a
/// failed test leaves nothing armed for the next.
struct Serial {
    _lock: std::sync::MutexGuard<'static, ()>,
}

fn serial() -> Serial {
    Serial {
        _lock: SERIAL.lock().unwrap_or_else(|e| e.into_inner()),
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        arm_reserve_eintr(0);
        arm_reserve_eopnotsupp(0);
        arm_reserve_enospc(0);
    }
}

const T0: u64 = 1_764_028_800_000_000;
const VALUE_BYTES: usize = 16 << 10;

fn never_log(dir: &std::path::Path, clock: &ManualClock) -> ShardLog {
    let mut c = LogConfig::new(dir, 1, 0);
    c.io = IoMode::Std;
    c.fsync = FsyncPolicy::Never;
    // Stored as written: the sizes below are the sizes on disk.
    c.min_compress_len = usize::MAX;
    ShardLog::open(c, Arc::new(clock.clone()), None).unwrap().0
}

fn put(i: u64) -> Vec<Record> {
    let value = vec![(i % 251) as u8 + 1; VALUE_BYTES];
    vec![Record::put(format!("k{i}").into_bytes(), value)]
}

/// Every record of the log as `(seq, key, value's first byte, value's length)`.
fn contents(dir: &std::path::Path) -> Vec<(u64, String, u8, usize)> {
    let mut out = Vec::new();
    scan_shard(dir, 1, 0, ScanRange::ALL, |seq, _, r| {
        let v = match r {
            RecordRef::Put { value, .. } => value,
            RecordRef::Delete { .. } => &[],
        };
        out.push((
            seq,
            String::from_utf8(r.key().to_vec()).unwrap(),
            v.first().copied().unwrap_or(0),
            v.len(),
        ))
    })
    .unwrap();
    out
}

fn expected(keys: &[u64]) -> Vec<(u64, String, u8, usize)> {
    keys.iter()
        .enumerate()
        .map(|(n, &i)| {
            (
                n as u64 + 1,
                format!("k{i}"),
                (i % 251) as u8 + 1,
                VALUE_BYTES,
            )
        })
        .collect()
}

#[test]
fn a_refused_reservation_writes_zeros_and_an_interrupted_one_is_retried() {
    let _g = serial();
    for refused in [true, false] {
        let what = if refused { "EOPNOTSUPP" } else { "EINTR" };
        let dir = tempfile::tempdir().unwrap();
        if refused {
            // Every call, as on a file system without `fallocate`.
            arm_reserve_eopnotsupp(u32::MAX);
        } else {
            // Several interruptions in a row, each answered by trying again.
            arm_reserve_eintr(5);
        }
        let clock = ManualClock::new(T0);
        let log = never_log(dir.path(), &clock);
        log.wait_segment_helper();
        for i in 0..40 {
            clock.advance(1_000);
            log.append(put(i)).unwrap();
        }
        log.flush().unwrap();
        log.wait_segment_helper();
        if !refused {
            // Every interruption was met (and retried): the failpoint is wired in the loop.
            assert_eq!(reserve_eintr_left(), 0, "EINTR faults not taken");
        }
        arm_reserve_eopnotsupp(0);
        arm_reserve_eintr(0);
        let st = log.stats();
        // The first prepared file's chunk, the chunk ahead of the writer and the next
        // prepared file: 1 MiB each.
        let (zeroed, reserved) = if refused { (3 << 20, 0) } else { (0, 3 << 20) };
        assert_eq!(
            (st.zeroed_bytes, st.reserved_bytes),
            (zeroed, reserved),
            "{what}: {st:?}"
        );
        assert_eq!(st.segment_rolls_inline, 0, "{what}: {st:?}");
        log.close();
        assert_eq!(
            contents(dir.path()),
            expected(&(0..40).collect::<Vec<_>>()),
            "{what}"
        );
    }
}

#[test]
fn a_full_disk_fails_the_writes_that_need_new_space_and_writes_resume() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = never_log(dir.path(), &clock);
    log.wait_segment_helper();
    let mut acked = Vec::new();
    for i in 0..10 {
        clock.advance(1_000);
        log.append(put(i)).unwrap();
        acked.push(i);
    }
    // The helper is idle (the next segment's file prepared and reserved): every reservation
    // from here on fails, the first after getting half its space (as ext4 can), the rest
    // with nothing.
    log.wait_segment_helper();
    arm_reserve_enospc(u32::MAX);
    // Past half the first chunk (1 MiB) the writer asks the helper to extend; these writes
    // stay inside the chunk, so they all succeed and the helper's extension takes the half.
    for i in 10..40 {
        clock.advance(1_000);
        log.append(put(i)).unwrap();
        acked.push(i);
    }
    log.wait_segment_helper();
    let mut failed = 0;
    for i in 40..300 {
        clock.advance(1_000);
        match log.append(put(i)) {
            Ok(c) => {
                assert_eq!(failed, 0, "write {i} after a failure: {c:?}");
                assert_eq!(c.first_seq, acked.len() as u64 + 1);
                acked.push(i);
            }
            Err(CommitError::WriteFailed(e)) => {
                assert!(e.to_string().contains("No space left"), "{e}");
                failed += 1;
                if failed == 5 {
                    break;
                }
            }
            Err(e) => panic!("write {i}: {e:?}"),
        }
    }
    assert_eq!(failed, 5, "no write ran out of reserved space");
    // Before the first failure the writes used the segment's first chunk (1 MiB, less its
    // header) and the half chunk the failed extension got: the room follows the file's real
    // size (without that, 63 writes went in here).
    assert!(
        acked.len() * VALUE_BYTES >= 1 << 20,
        "{} acked",
        acked.len()
    );
    arm_reserve_enospc(0);
    for i in 1_000..1_010 {
        clock.advance(1_000);
        let c = log.append(put(i)).unwrap();
        assert_eq!(
            c.first_seq,
            acked.len() as u64 + 1,
            "failed writes use no sequence"
        );
        acked.push(i);
    }
    log.close();
    assert_eq!(contents(dir.path()), expected(&acked));
    rewind::log::verify_shard(dir.path(), 1, 0).unwrap();
    // And the directory opens again and takes writes after the last acknowledged one.
    let log = never_log(dir.path(), &clock);
    clock.advance(1_000);
    let c = log.append(put(2_000)).unwrap();
    assert_eq!(c.first_seq, acked.len() as u64 + 1);
    log.close();
    acked.push(2_000);
    assert_eq!(contents(dir.path()), expected(&acked));
}
