//! Small file-system helpers: atomic replace and directory sync.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::error::LogError;

/// Creates a directory (and its parents) readable by the owner only, durably: each directory
/// it makes is fsynced into its parent, so a power cut cannot lose a table directory whose
/// files were synced.
pub fn create_private_dir(dir: &Path) -> Result<(), LogError> {
    let parent_of = |d: &Path| {
        d.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    if dir.is_dir() {
        // It may have been made by an earlier call whose sync failed, or by a racing one:
        // make its entry durable all the same.
        return sync_dir(&parent_of(dir));
    }
    // The missing ancestors, from the outermost down.
    let mut missing = vec![dir];
    let mut up = dir.parent();
    while let Some(p) = up.filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        missing.push(p);
        up = p.parent();
    }
    for d in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(LogError::io(d, e)),
        }
        sync_dir(
            d.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
    }
    Ok(())
}

/// Opens a directory and fsyncs it, making entries created or renamed in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(feature = "failpoints")]
    super::failpoint::note_dir_sync(dir);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Renames `from` to `to`, refusing to replace an existing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> Result<(), LogError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c =
        |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|e| LogError::io(p, e.into()));
    let (a, b) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOSYS) {
        // A file system without RENAME_NOREPLACE: check, then rename (the directory is this
        // writer's alone).
        if to.exists() {
            return Err(LogError::io(to, std::io::ErrorKind::AlreadyExists.into()));
        }
        return std::fs::rename(from, to).map_err(|e| LogError::io(from, e));
    }
    Err(LogError::io(to, err))
}

/// Replaces `path` with `bytes` atomically: write a temporary file, fsync it, rename it over
/// the target, fsync the directory. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    write_atomic_via(path, &path.with_extension("tmp"), bytes)
}

/// [`write_atomic`] through a temporary named after the whole file name (`5.kix.tmp`), for
/// files that share a stem with another written the same way (`5.idx` uses `5.tmp`).
pub fn write_atomic_beside(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    write_atomic_via(path, &path.with_file_name(name), bytes)
}

fn write_atomic_via(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = tmp.to_path_buf();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| LogError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| LogError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| LogError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("catalog.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
