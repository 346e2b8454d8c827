//! Key indexes in memory: those of sealed segments and checkpoints (loaded from their
//! `.kix` files, or built and written when missing, damaged or stale), kept up to a byte
//! budget, least recently used first out; and the open segments' indexes, extended as the
//! log grows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::build::OpenIndex;
use super::keyindex::{self, KeyIndex, KixHeader};
use crate::log::LogError;

/// Memory the sealed indexes may hold (a 64 MiB segment of 100-byte values indexes to about
/// 8 MiB; a 1M-key checkpoint to 16 MiB).
pub const MAX_CACHE_BYTES: usize = 512 << 20;

struct Cached {
    len: u64,
    kix: Arc<KeyIndex>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    sealed: HashMap<PathBuf, Cached>,
    open: HashMap<PathBuf, Arc<Mutex<OpenIndex>>>,
    bytes: usize,
    tick: u64,
}

/// What the cache did, for tests and `INFO`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub loaded: u64,
    pub built: u64,
    pub hits: u64,
}

#[derive(Default)]
pub struct IndexCache {
    inner: Mutex<Inner>,
    /// Segment headers by path (they never change), so a question lists a window of
    /// segments without opening each one.
    headers: Mutex<HashMap<PathBuf, crate::log::segment::SegmentHeader>>,
    /// One build at a time: two builders of one file would share its temporary.
    building: Mutex<()>,
    stats: Mutex<CacheStats>,
}

impl IndexCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key index of the sealed segment or checkpoint at `file`, described by `want`
    /// (whose `covered_len` is ignored: the file's length now is what must be covered).
    /// Loaded from its `.kix` when that is whole and current, else built by `build` and
    /// written (a failure to write is logged; the index is used anyway).
    pub fn sealed(
        &self,
        file: &Path,
        want: KixHeader,
        build: impl FnOnce() -> Result<KeyIndex, LogError>,
    ) -> Result<Arc<KeyIndex>, LogError> {
        let len = std::fs::metadata(file)
            .map_err(|e| LogError::io(file, e))?
            .len();
        {
            let mut inner = self.inner();
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(c) = inner.sealed.get_mut(file).filter(|c| c.len == len) {
                c.used = tick;
                let kix = c.kix.clone();
                drop(inner);
                self.stats.lock().unwrap_or_else(|p| p.into_inner()).hits += 1;
                return Ok(kix);
            }
        }
        let kix_path = keyindex::path_for(file);
        let expected = KixHeader {
            covered_len: len,
            ..want
        };
        // Loading needs no lock; building does (two builders of one file would share its
        // temporary), and looks again first: another question may have just written it.
        let kix = match load(&kix_path, &expected)? {
            Some(k) => {
                self.stats.lock().unwrap_or_else(|p| p.into_inner()).loaded += 1;
                k
            }
            None => {
                let _building = self.building.lock().unwrap_or_else(|p| p.into_inner());
                match load(&kix_path, &expected)? {
                    Some(k) => k,
                    None => {
                        let k = build()?;
                        if k.header != expected {
                            // The file changed while it was read: use what was read, keep
                            // no file.
                            return Ok(Arc::new(k));
                        }
                        if let Err(e) =
                            crate::log::fsutil::write_atomic_beside(&kix_path, &k.encode())
                        {
                            tracing::warn!("could not write {}: {e}", kix_path.display());
                        }
                        self.stats.lock().unwrap_or_else(|p| p.into_inner()).built += 1;
                        k
                    }
                }
            }
        };
        let kix = Arc::new(kix);
        let mut inner = self.inner();
        inner.tick += 1;
        let tick = inner.tick;
        let add = kix.memory_bytes();
        if let Some(old) = inner.sealed.insert(
            file.to_path_buf(),
            Cached {
                len,
                kix: kix.clone(),
                used: tick,
            },
        ) {
            inner.bytes -= old.kix.memory_bytes();
        }
        inner.bytes += add;
        while inner.bytes > MAX_CACHE_BYTES && inner.sealed.len() > 1 {
            let oldest = inner
                .sealed
                .iter()
                .filter(|(p, _)| p.as_path() != file)
                .min_by_key(|(_, c)| c.used)
                .map(|(p, _)| p.clone());
            let Some(p) = oldest else { break };
            if let Some(c) = inner.sealed.remove(&p) {
                inner.bytes -= c.kix.memory_bytes();
            }
        }
        Ok(kix)
    }

    /// Makes sure the sealed segment or checkpoint at `file` has a current `.kix` beside
    /// it, building one when not (without keeping it in memory). True when it built one.
    pub fn ensure_file(
        &self,
        file: &Path,
        want: KixHeader,
        build: impl FnOnce() -> Result<KeyIndex, LogError>,
    ) -> Result<bool, LogError> {
        let len = std::fs::metadata(file)
            .map_err(|e| LogError::io(file, e))?
            .len();
        let expected = KixHeader {
            covered_len: len,
            ..want
        };
        let kix_path = keyindex::path_for(file);
        if KeyIndex::read_header(&kix_path) == Some(expected) {
            return Ok(false);
        }
        let _building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        let k = build()?;
        if k.header != expected {
            return Ok(false); // changed while read
        }
        crate::log::fsutil::write_atomic_beside(&kix_path, &k.encode())?;
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).built += 1;
        Ok(true)
    }

    pub fn segment_header(&self, path: &Path) -> Option<crate::log::segment::SegmentHeader> {
        self.headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied()
    }

    /// Remembers a checked segment header (forgetting those of deleted files now and then).
    pub fn note_segment_header(&self, path: &Path, h: crate::log::segment::SegmentHeader) {
        let mut m = self.headers.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 65_536 {
            m.retain(|p, _| p.exists());
        }
        m.insert(path.to_path_buf(), h);
    }

    /// The in-memory index of an open segment (the caller extends it under its lock).
    pub fn open(&self, segment: &Path) -> Arc<Mutex<OpenIndex>> {
        self.inner()
            .open
            .entry(segment.to_path_buf())
            .or_default()
            .clone()
    }

    /// Forgets the open indexes of `dir` other than `keep` (a segment that was sealed gets a
    /// key index of its own).
    pub fn retire_open(&self, dir: &Path, keep: Option<&Path>) {
        self.inner()
            .open
            .retain(|p, _| p.parent() != Some(dir) || Some(p.as_path()) == keep);
    }
}

/// The key index at `kix_path` if it is whole and describes `expected` (`None`: missing,
/// damaged or stale, which a rebuild mends).
fn load(kix_path: &Path, expected: &KixHeader) -> Result<Option<KeyIndex>, LogError> {
    match std::fs::read(kix_path) {
        Ok(b) => match KeyIndex::decode(&b) {
            Ok(k) if k.header == *expected => Ok(Some(k)),
            Ok(_) => {
                tracing::info!("{} is stale; rebuilding it", kix_path.display());
                Ok(None)
            }
            Err(e) => {
                tracing::warn!("{} is damaged ({e}); rebuilding it", kix_path.display());
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(kix_path, e)),
    }
}
