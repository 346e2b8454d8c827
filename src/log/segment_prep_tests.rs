//! Tests of how `segment_prep.rs` makes the space ahead of the log.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::config::FsyncPolicy;
use super::direct::DirectMode;
use super::segment_prep::{extend, Fill, Room};

fn new_file(dir: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join("f"))
        .unwrap()
}

fn page() -> usize {
    // SAFETY: sysconf reads a constant of the running system.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Which of the file's first `len` bytes' pages are in the page cache (`mincore`).
fn resident_pages(file: &File, len: usize) -> Vec<bool> {
    // SAFETY: a shared read-only mapping of a file at least `len` long, unmapped below.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(at, libc::MAP_FAILED);
        let mut v = vec![0u8; len.div_ceil(page())];
        assert_eq!(libc::mincore(at, len, v.as_mut_ptr()), 0);
        libc::munmap(at, len);
        v.iter().map(|b| b & 1 == 1).collect()
    }
}

/// Whether direct writes to files in `dir` bypass the page cache (not tmpfs, which since
/// Linux 6.6 takes `O_DIRECT` but keeps the pages).
fn direct_bypasses_cache(dir: &std::path::Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statfs fills the struct it is given; zeroes are a valid starting value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct to fill.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 != TMPFS_MAGIC
}

#[test]
fn every_fill_makes_zeros_up_to_the_end_asked_and_only_once() {
    for fill in [Fill::Zeros, Fill::DirectZeros, Fill::Reserve] {
        let dir = tempfile::tempdir().unwrap();
        let file = new_file(dir.path());
        file.write_all_at(b"log bytes", 0).unwrap();
        let room = Room::new(9);
        let grown = extend(&file, &room, 3 << 20, fill).unwrap().unwrap();
        assert_eq!(grown.bytes, (3 << 20) - 9);
        // Every file system the tests run on (ext4, xfs, btrfs, tmpfs) reserves.
        assert_eq!(grown.fill, fill, "{fill:?}");
        assert_eq!(*room.lock(), 3 << 20);
        assert_eq!(
            extend(&file, &room, 1 << 20, fill).unwrap(),
            None,
            "{fill:?}"
        );
        match fill {
            Fill::DirectZeros => {
                // Where direct writes are taken, everything past the first page goes out
                // directly and, off tmpfs, leaves nothing in the page cache.
                eprintln!("zeros written directly: {}", grown.direct);
                if grown.direct > 0 {
                    assert_eq!(grown.direct, (3 << 20) - 4096);
                    if direct_bypasses_cache(dir.path()) {
                        let skip = 4096usize.div_ceil(page());
                        let resident = resident_pages(&file, 3 << 20);
                        assert!(resident[skip..].iter().all(|r| !r), "{resident:?}");
                    }
                }
            }
            _ => assert_eq!(grown.direct, 0, "{fill:?}"),
        }
        let got = std::fs::read(dir.path().join("f")).unwrap();
        assert_eq!(got.len(), 3 << 20, "{fill:?}");
        assert_eq!(&got[..9], b"log bytes", "{fill:?}: what was there stays");
        assert!(got[9..].iter().all(|&b| b == 0), "{fill:?}");
    }
}

#[test]
fn direct_zeros_from_an_unaligned_end_keep_the_bytes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = new_file(dir.path());
    let head: Vec<u8> = (0..12_345u32).map(|i| (i % 251) as u8 + 1).collect();
    file.write_all_at(&head, 0).unwrap();
    let room = Room::new(head.len() as u64);
    let to = (5 << 20) + 1000;
    let grown = extend(&file, &room, to, Fill::DirectZeros)
        .unwrap()
        .unwrap();
    assert_eq!(grown.bytes, to - head.len() as u64);
    // Whole pages from the first boundary past the edge to the last one before `to`.
    assert!(
        grown.direct == 0 || grown.direct == (5 << 20) - 16384,
        "{}",
        grown.direct
    );
    let got = std::fs::read(dir.path().join("f")).unwrap();
    assert_eq!(got.len() as u64, to);
    assert_eq!(&got[..head.len()], &head[..]);
    assert!(got[head.len()..].iter().all(|&b| b == 0));
}

#[test]
fn logs_pick_their_fill() {
    use FsyncPolicy::*;
    assert_eq!(Fill::for_log(Always, DirectMode::Auto), Fill::DirectZeros);
    assert_eq!(Fill::for_log(Always, DirectMode::Off), Fill::Zeros);
    // A segment written buffered (its log gave direct writes up) gets buffered zeros.
    assert_eq!(Fill::DirectZeros.for_segment(false), Fill::Zeros);
    assert_eq!(Fill::DirectZeros.for_segment(true), Fill::DirectZeros);
    assert_eq!(Fill::Reserve.for_segment(false), Fill::Reserve);
    for relaxed in [EverySec, Never] {
        for direct in [DirectMode::Auto, DirectMode::Off] {
            assert_eq!(Fill::for_log(relaxed, direct), Fill::Reserve);
        }
    }
}
