//! Direct appends for `fsync always`: each block goes to the disk in one `O_DIRECT` write
//! with `RWF_DSYNC`, durable when the write returns, with no `fdatasync` after it and no copy
//! through the page cache (`--log-direct`, on by default where the file system takes it).
//!
//! `O_DIRECT` wants the buffer, the offset and the length aligned ([`DIRECT_ALIGN`]). A block
//! rarely ends on a page, so every write starts at the page the log ends in:
//!
//! ```text
//! write := tail block zeros
//!   tail  = the log's bytes in the page where it ends (kept here, 0..4095 bytes)
//!   block = the encoded block, placed at the log's end
//!   zeros = up to the next page boundary (the segment is zero-filled there already)
//! ```
//!
//! So the file's bytes do not change outside the block: the tail is rewritten with the bytes
//! it holds, and the padding lands on zeros below the preallocated end (the writer makes room
//! for the padding too). Rewriting the tail page is what the page cache does on every
//! `fdatasync` of a buffered log as well; a device that tears a 4 KiB write can damage the
//! acknowledged bytes in it either way (docs/DESIGN.md, the write path).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Offset, length and buffer alignment of every direct write.
pub const DIRECT_ALIGN: usize = 4096;

/// Whether `fsync always` logs write directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectMode {
    /// `O_DIRECT` + `RWF_DSYNC` with `fsync always` where the file system takes it, else
    /// buffered `pwrite` + `fdatasync` (one log line says why).
    #[default]
    Auto,
    /// Always buffered.
    Off,
}

impl std::str::FromStr for DirectMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "on" => Ok(DirectMode::Auto),
            "off" => Ok(DirectMode::Off),
            other => Err(format!(
                "unknown direct-I/O setting {other:?}: expected auto or off"
            )),
        }
    }
}

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; DIRECT_ALIGN]);

const ZERO_PAGE: Page = Page([0; DIRECT_ALIGN]);

/// A buffer whose start is page-aligned and whose length is a whole number of pages.
#[derive(Default)]
pub struct AlignedBuf {
    pages: Vec<Page>,
}

impl AlignedBuf {
    pub fn new() -> AlignedBuf {
        AlignedBuf { pages: Vec::new() }
    }

    /// Makes the buffer exactly `bytes` (a multiple of the page size) long; what it held
    /// before is left for the caller to overwrite.
    pub fn set_len(&mut self, bytes: usize) {
        debug_assert_eq!(bytes % DIRECT_ALIGN, 0);
        self.pages.resize(bytes / DIRECT_ALIGN, ZERO_PAGE);
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `Page` is `repr(C)` over a byte array with no padding, and the vector's
        // pages are contiguous, so its storage is `len * DIRECT_ALIGN` initialised bytes.
        unsafe {
            std::slice::from_raw_parts(
                self.pages.as_ptr().cast::<u8>(),
                self.pages.len() * DIRECT_ALIGN,
            )
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.pages.as_mut_ptr().cast::<u8>(),
                self.pages.len() * DIRECT_ALIGN,
            )
        }
    }
}

/// The direct handle on the active segment and the log's tail page.
pub struct DirectTail {
    /// The segment opened `O_DIRECT` (write only).
    pub file: File,
    /// The log's bytes in the page where it ends: `tail[..tail_len()]`.
    tail: Box<Page>,
    /// The log's end the tail belongs to.
    end: u64,
    /// The write buffer, kept between blocks (out while a write is in flight).
    spare: Option<AlignedBuf>,
}

impl std::fmt::Debug for DirectTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectTail")
            .field("end", &self.end)
            .finish()
    }
}

/// Rounds `n` up to the page size.
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(DIRECT_ALIGN as u64) * DIRECT_ALIGN as u64
}

impl DirectTail {
    /// Opens the segment at `path` (whose buffered handle is `file`, and whose log ends at
    /// `len`) for direct writes. `Err` says why the file system refuses them.
    /// `Err((why, lasting))`: `lasting` when the file system refuses direct I/O, not when a
    /// passing shortage (file handles, memory) or a read failed.
    pub fn open(path: &Path, file: &File, len: u64) -> Result<DirectTail, (String, bool)> {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| {
                let passing = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
                );
                (
                    format!("opening {} with O_DIRECT: {e}", path.display()),
                    !passing,
                )
            })?;
        check_alignment(&direct, path).map_err(|why| (why, true))?;
        let mut t = DirectTail {
            file: direct,
            tail: Box::new(ZERO_PAGE),
            end: 0,
            spare: Some(AlignedBuf::new()),
        };
        t.read_tail(file, len).map_err(|e| {
            (
                format!("reading the tail of {}: {e}", path.display()),
                false,
            )
        })?;
        Ok(t)
    }

    /// Reads the log's bytes in the page where `len` falls, through the buffered handle.
    fn read_tail(&mut self, file: &File, len: u64) -> io::Result<()> {
        let start = len - len % DIRECT_ALIGN as u64;
        let n = (len - start) as usize;
        file.read_exact_at(&mut self.tail.0[..n], start)?;
        self.end = len;
        Ok(())
    }

    /// How many of the log's bytes lie in the page where it ends.
    fn tail_len(&self) -> usize {
        (self.end % DIRECT_ALIGN as u64) as usize
    }

    /// The aligned write that puts `block` at `offset` (the log's end): the buffer and the
    /// offset to write it at. `file` is the segment's buffered handle, read from only if the
    /// tail kept here is not for `offset` (it always is unless a write was cut short).
    pub fn stage(
        &mut self,
        file: &File,
        offset: u64,
        block: &[u8],
    ) -> io::Result<(AlignedBuf, u64)> {
        if offset != self.end {
            self.read_tail(file, offset)?;
        }
        let tail = self.tail_len();
        let start = offset - tail as u64;
        let total = align_up(offset + block.len() as u64) - start;
        let mut buf = self.spare.take().unwrap_or_default();
        buf.set_len(total as usize);
        let bytes = buf.as_mut_slice();
        bytes[..tail].copy_from_slice(&self.tail.0[..tail]);
        bytes[tail..tail + block.len()].copy_from_slice(block);
        bytes[tail + block.len()..].fill(0);
        Ok((buf, start))
    }

    /// The staged write landed: the log now ends at `end`, inside the buffer written at `start`.
    pub fn landed(&mut self, buf: AlignedBuf, start: u64, end: u64) {
        let page = end - end % DIRECT_ALIGN as u64;
        let from = (page - start) as usize;
        let n = (end - page) as usize;
        self.tail.0[..n].copy_from_slice(&buf.as_slice()[from..from + n]);
        self.end = end;
        self.spare = Some(buf);
    }

    /// The staged write failed: the log still ends where it did.
    pub fn failed(&mut self, buf: AlignedBuf) {
        self.spare = Some(buf);
    }
}

/// A second handle on `file`'s own inode (reopened through `/proc/self/fd`, so no rename
/// can put another file under it) with `O_DIRECT`, if the file system takes direct writes of
/// [`DIRECT_ALIGN`]. `None` where it does not, or where `/proc` is not mounted.
pub fn reopen_direct(file: &File) -> Option<File> {
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let d = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .ok()?;
    check_alignment(&d, &path).ok()?;
    Some(d)
}

/// Refuses a file system whose direct I/O needs more than [`DIRECT_ALIGN`] (or has none, as
/// `statx` reports on Linux 6.1 and later; older kernels are tried and fall back on `EINVAL`).
fn check_alignment(file: &File, path: &Path) -> Result<(), String> {
    // SAFETY: statx fills the struct it is given; zeroes are a valid starting value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty path with AT_EMPTY_PATH names the open descriptor itself.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut st,
        )
    };
    if rc != 0 || st.stx_mask & libc::STATX_DIOALIGN == 0 {
        return Ok(());
    }
    let (mem, off) = (
        st.stx_dio_mem_align as usize,
        st.stx_dio_offset_align as usize,
    );
    if mem == 0 || off == 0 {
        return Err(format!(
            "{}: the file system has no direct I/O",
            path.display()
        ));
    }
    if !DIRECT_ALIGN.is_multiple_of(mem) || !DIRECT_ALIGN.is_multiple_of(off) {
        return Err(format!(
            "{}: direct I/O needs {mem}-byte buffers at {off}-byte offsets, more than {DIRECT_ALIGN}",
            path.display()
        ));
    }
    Ok(())
}

/// Writes all of `buf` at `offset` of the direct handle `file`, with `RWF_DSYNC` when `dsync`
/// (the data and what is needed to read it back are on stable storage when it returns).
pub fn pwrite_direct(file: &File, buf: &[u8], offset: u64, dsync: bool) -> io::Result<()> {
    let flags = if dsync { libc::RWF_DSYNC } else { 0 };
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &buf[done..];
        let iov = libc::iovec {
            iov_base: rest.as_ptr() as *mut libc::c_void,
            iov_len: rest.len(),
        };
        // SAFETY: one iovec over a live slice; the kernel only reads it.
        let n = unsafe {
            libc::pwritev2(
                file.as_raw_fd(),
                &iov,
                1,
                (offset + done as u64) as libc::off_t,
                flags,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
        check_progress(done, buf.len(), n as usize)?;
    }
    Ok(())
}

/// After a direct write of `n` bytes left `done` of `len` written: the rest may follow only
/// from a page boundary (and only if something was written).
pub fn check_progress(done: usize, len: usize, n: usize) -> io::Result<()> {
    if done < len && (n == 0 || !done.is_multiple_of(DIRECT_ALIGN)) {
        return Err(short_direct_write());
    }
    Ok(())
}

/// A direct write that stopped short where the rest could not follow it aligned (or wrote
/// nothing): a write failure, cut off like any other.
pub fn short_direct_write() -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        "short direct write: the rest would be unaligned",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(dir: &Path, bytes: &[u8], zeros: usize) -> (std::path::PathBuf, File) {
        let path = dir.join("s.seg");
        std::fs::write(&path, [bytes, &vec![0u8; zeros]].concat()).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, f)
    }

    /// The temporary directory's file system must take direct I/O (it does on ext4, xfs,
    /// btrfs and tmpfs since Linux 6.6), or the test says how to run without it.
    fn open_or_explain(path: &Path, file: &File, len: u64) -> Option<DirectTail> {
        match DirectTail::open(path, file, len) {
            Ok(t) => Some(t),
            Err((why, _)) if std::env::var_os("REWIND_TEST_NO_DIRECT_IO").is_some() => {
                eprintln!("no direct I/O here ({why}); not tested");
                None
            }
            Err((why, _)) => panic!(
                "no direct I/O in the temporary directory ({why}); set TMPDIR to a file \
                 system with it, or REWIND_TEST_NO_DIRECT_IO=1 to skip"
            ),
        }
    }

    #[test]
    fn appends_keep_the_file_bytes_outside_each_block() {
        let dir = tempfile::tempdir().unwrap();
        let head = vec![9u8; 64];
        let (path, file) = segment(dir.path(), &head, 64 << 10);
        let Some(mut t) = open_or_explain(&path, &file, 64) else {
            return;
        };
        let mut want = head.clone();
        let mut end = 64u64;
        // Blocks that end inside a page, exactly on one, and span several.
        for (i, len) in [100usize, 4096 - 164, 5000, 1, 9000, 4095]
            .iter()
            .enumerate()
        {
            let block = vec![i as u8 + 1; *len];
            let (buf, start) = t.stage(&file, end, &block).unwrap();
            assert_eq!(start % DIRECT_ALIGN as u64, 0);
            assert_eq!(buf.as_slice().len() % DIRECT_ALIGN, 0);
            assert_eq!(buf.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0);
            pwrite_direct(&t.file, buf.as_slice(), start, true).unwrap();
            end += *len as u64;
            t.landed(buf, start, end);
            want.extend_from_slice(&block);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(&got[..want.len()], &want[..], "after block {i}");
            assert!(got[want.len()..].iter().all(|&b| b == 0), "after block {i}");
            assert_eq!(got.len(), 64 + (64 << 10), "the file never grows");
        }
    }

    #[test]
    fn a_failed_write_leaves_the_tail_and_a_moved_end_rereads_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = segment(dir.path(), &[5u8; 5000], 16 << 10);
        let Some(mut t) = open_or_explain(&path, &file, 5000) else {
            return;
        };
        let (buf, start) = t.stage(&file, 5000, &[1u8; 10]).unwrap();
        assert_eq!(start, 4096);
        assert!(buf.as_slice()[..904].iter().all(|&b| b == 5));
        t.failed(buf);
        // The log's end moved under the tail (another handle wrote): it is read again.
        file.write_all_at(&[6u8; 100], 5000).unwrap();
        let (buf, start) = t.stage(&file, 5100, &[7u8; 10]).unwrap();
        assert_eq!(start, 4096);
        let s = buf.as_slice();
        assert!(s[..904].iter().all(|&b| b == 5));
        assert!(s[904..1004].iter().all(|&b| b == 6));
        assert!(s[1004..1014].iter().all(|&b| b == 7));
        assert!(s[1014..].iter().all(|&b| b == 0));
    }

    #[test]
    fn settings_parse() {
        assert_eq!("auto".parse::<DirectMode>().unwrap(), DirectMode::Auto);
        assert_eq!("off".parse::<DirectMode>().unwrap(), DirectMode::Off);
        assert!("sometimes".parse::<DirectMode>().is_err());
    }
}
