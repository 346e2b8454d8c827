//! One shard's history, read beside the writer: a key's writes in a time range, its value
//! at a moment, and the keys written in a range, all bounded by the sequence that was
//! durable when the question was asked.
//!
//! The value at `t` is what a restore to `t` would hold: the newest write of the key with a
//! commit time at or before `t` among those the log keeps after the restore's base
//! checkpoint (the newest whose image may stand in at `t`), else the key as that checkpoint
//! holds it. Segments are walked newest first, and in each only the blocks its key index
//! names are decoded. A `ShardSource` is one question's view: it opens each file and reads
//! each index once, however many keys it is asked about.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::build::{self, read_block, read_block_where, segment_header, walk_segment_where};
use super::cache::IndexCache;
use super::glob::Glob;
use super::keyindex::{KeyIndex, Kind, KixHeader};
use crate::log::block::{BlockDecoder, BlockHeader};
use crate::log::checkpoint::{self, CheckpointHeader, FOOTER_LEN};
use crate::log::record::RecordRef;
use crate::log::segment::{self, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::log::LogError;

/// A hash map keyed by bytes, hashed with xxh3 (SipHash cost a fifth of a large diff).
type FastMap<K, V> = std::collections::HashMap<K, V, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

/// Keys written in a range, with their values at its end (`None`: deleted).
pub type Changed = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One write of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub seq: u64,
    pub commit_us: u64,
    /// `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// A shard to question.
pub struct ShardSource<'a> {
    pub dir: &'a Path,
    pub table_id: u64,
    pub shard: u32,
    /// The last sequence durable when the question began: nothing past it is read.
    pub until_seq: u64,
    pub cache: &'a IndexCache,
    segs: OnceCell<Vec<Seg>>,
    ckps: OnceCell<Vec<(PathBuf, CheckpointHeader)>>,
    decoder: RefCell<Option<BlockDecoder>>,
}

/// A segment as one question sees it. Files are opened when visited, not held: a window
/// can hold thousands of segments.
struct Seg {
    first_seq: u64,
    path: PathBuf,
    header: SegmentHeader,
    /// Not the newest segment: whole, with a key index of its own.
    sealed: bool,
    /// Where blocks end, for this question (the length when it began).
    len: u64,
    /// The open segment's index, shared with other questions (which may have read further:
    /// every block it names is whole on disk, and records past this question's `until_seq`
    /// are filtered out), caught up once for this question. Sealed segments' indexes come
    /// from the cache each time, so a long walk pins none of them.
    open: OnceCell<Arc<std::sync::Mutex<super::build::OpenIndex>>>,
}

impl Seg {
    fn open_file(&self) -> Result<File, LogError> {
        File::open(&self.path).map_err(|e| LogError::io(&self.path, e))
    }
}

/// The open segment's index, even after a panic mid-update (it is then read again).
fn lock_open(
    m: &std::sync::Mutex<super::build::OpenIndex>,
) -> std::sync::MutexGuard<'_, super::build::OpenIndex> {
    m.lock().unwrap_or_else(|p| {
        let mut g = p.into_inner();
        *g = Default::default();
        g
    })
}

impl<'a> ShardSource<'a> {
    pub fn new(
        dir: &'a Path,
        (table_id, shard): (u64, u32),
        until_seq: u64,
        cache: &'a IndexCache,
    ) -> Self {
        ShardSource {
            dir,
            table_id,
            shard,
            until_seq,
            cache,
            segs: OnceCell::new(),
            ckps: OnceCell::new(),
            decoder: RefCell::new(None),
        }
    }

    fn with_decoder<T>(
        &self,
        f: impl FnOnce(&mut BlockDecoder) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let mut d = self.decoder.borrow_mut();
        if d.is_none() {
            *d = Some(BlockDecoder::new().map_err(|e| LogError::io(self.dir, e))?);
        }
        f(d.as_mut().expect("just made"))
    }

    fn segments(&self) -> Result<&[Seg], LogError> {
        if let Some(s) = self.segs.get() {
            return Ok(s);
        }
        let list = segment::list(self.dir)?;
        let n = list.len();
        let mut out = Vec::with_capacity(n);
        for (i, s) in list.into_iter().enumerate() {
            if s.first_seq > self.until_seq {
                break;
            }
            // Headers never change: read once per process.
            let header = match self.cache.segment_header(&s.path) {
                Some(h) => h,
                None => {
                    let file = File::open(&s.path).map_err(|e| LogError::io(&s.path, e))?;
                    let h = segment_header(&file, &s.path, self.table_id, self.shard)?;
                    self.cache.note_segment_header(&s.path, h);
                    h
                }
            };
            let len = std::fs::metadata(&s.path)
                .map_err(|e| LogError::io(&s.path, e))?
                .len();
            out.push(Seg {
                first_seq: s.first_seq,
                path: s.path,
                header,
                sealed: i + 1 < n,
                len,
                open: OnceCell::new(),
            });
        }
        Ok(self.segs.get_or_init(|| out))
    }

    fn checkpoints(&self) -> Result<&[(PathBuf, CheckpointHeader)], LogError> {
        if let Some(c) = self.ckps.get() {
            return Ok(c);
        }
        let mut out = Vec::new();
        for (_, path) in checkpoint::list(self.dir)? {
            let h = checkpoint::read_header(&path)?;
            out.push((path, h));
        }
        Ok(self.ckps.get_or_init(|| out))
    }

    /// The open segment's shared index, caught up to this question's `until_seq` (again
    /// after a panic elsewhere emptied it).
    fn open_index<'s>(
        &self,
        seg: &'s Seg,
    ) -> Result<std::sync::MutexGuard<'s, super::build::OpenIndex>, LogError> {
        let shared = match seg.open.get() {
            Some(s) => s,
            None => {
                self.cache.retire_open(self.dir, Some(&seg.path));
                seg.open.get_or_init(|| self.cache.open(&seg.path))
            }
        };
        let mut open = lock_open(shared);
        if open.next_seq <= self.until_seq {
            let file = seg.open_file()?;
            self.with_decoder(|d| open.catch_up(&file, &seg.path, &seg.header, self.until_seq, d))?;
        }
        Ok(open)
    }

    /// Offsets of the blocks of `seg` that may hold `key`, ascending.
    fn blocks_of(&self, seg: &Seg, key: &[u8]) -> Result<Vec<u64>, LogError> {
        if !seg.sealed {
            return Ok(self.open_index(seg)?.blocks_of(key).to_vec());
        }
        let want = KixHeader {
            kind: Kind::Segment,
            table_id: self.table_id,
            shard: self.shard,
            file_id: seg.first_seq,
            covered_len: 0,
        };
        let kix: Arc<KeyIndex> = self.cache.sealed(&seg.path, want, || {
            build::index_segment(&seg.path, self.table_id, self.shard, seg.first_seq)
        })?;
        Ok(kix.blocks_of(key).collect())
    }

    /// The writes of `key` in segment `seg` with a commit time in `[from_us, to_us]` and a
    /// sequence in `[min_seq, until_seq]`, in log order; with `newest_only`, just the newest
    /// of them (blocks are read newest first, and the walk stops at the first that has one).
    /// A block is decoded only when its header says it may hold such a write.
    fn writes_in(
        &self,
        seg: &Seg,
        key: &[u8],
        (from_us, to_us, min_seq): (u64, u64, u64),
        newest_only: bool,
    ) -> Result<Vec<Write>, LogError> {
        let mut blocks = self.blocks_of(seg, key)?;
        if newest_only {
            blocks.reverse();
        }
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        // The open segment's shared index may name blocks written since this question
        // began (whole on disk): their records are past `until_seq` and filtered out.
        let end = if seg.sealed { seg.len } else { u64::MAX };
        let file = seg.open_file()?;
        let mut out = Vec::new();
        for off in blocks {
            let mut i = 0u64;
            let before = out.len();
            let wanted = |h: &BlockHeader| {
                (from_us..=to_us).contains(&h.commit_us)
                    && h.last_seq() >= min_seq
                    && h.first_seq <= self.until_seq
            };
            let visit = |h: &BlockHeader, r: RecordRef<'_>| {
                let seq = h.first_seq + i;
                i += 1;
                let in_range = seq >= min_seq && seq <= self.until_seq;
                if in_range && r.key() == key {
                    out.push(Write {
                        seq,
                        commit_us: h.commit_us,
                        value: match r {
                            RecordRef::Put { value, .. } => Some(value.to_vec()),
                            RecordRef::Delete { .. } => None,
                        },
                    });
                }
            };
            self.with_decoder(|d| {
                let salt = seg.header.salt();
                read_block_where(&file, &seg.path, salt, (off, end), d, wanted, visit)
            })?;
            if newest_only && out.len() > before {
                return Ok(out.split_off(out.len() - 1));
            }
        }
        Ok(out)
    }

    /// The key's writes with a commit time in `[from_us, to_us]`, newest first, at most
    /// `count`.
    pub fn history(
        &self,
        key: &[u8],
        (from_us, to_us): (u64, u64),
        count: usize,
    ) -> Result<Vec<Write>, LogError> {
        let segs = self.segments()?;
        let mut out = Vec::new();
        for i in (0..segs.len()).rev() {
            if out.len() >= count {
                break;
            }
            let seg = &segs[i];
            if seg.header.created_us > to_us {
                continue;
            }
            // Every block of this segment is at or before the next one's first.
            if segs
                .get(i + 1)
                .is_some_and(|n| n.header.created_us < from_us)
            {
                break;
            }
            let mut w = self.writes_in(seg, key, (from_us, to_us, 1), false)?;
            w.reverse();
            out.extend(w);
        }
        out.truncate(count);
        Ok(out)
    }

    /// The base a restore to `at_us` starts from: the newest checkpoint whose image may
    /// stand in at that moment.
    fn base(&self, at_us: u64) -> Result<Option<&(PathBuf, CheckpointHeader)>, LogError> {
        Ok(self
            .checkpoints()?
            .iter()
            .rev()
            .find(|(_, h)| h.end_us <= at_us && h.end_seq <= self.until_seq))
    }

    /// The key's value at `at_us` (`None`: absent), as a restore to `at_us` would hold it.
    pub fn value_at(&self, key: &[u8], at_us: u64) -> Result<Option<Vec<u8>>, LogError> {
        let base = self.base(at_us)?;
        let min_seq = base.map_or(1, |(_, h)| h.start_seq + 1);
        let segs = self.segments()?;
        for i in (0..segs.len()).rev() {
            let seg = &segs[i];
            if seg.header.created_us > at_us {
                continue;
            }
            // Wholly before the base's log: the base holds what it had.
            if segs.get(i + 1).is_some_and(|n| n.first_seq <= min_seq) {
                break;
            }
            let w = self.writes_in(seg, key, (0, at_us, min_seq), true)?;
            if let Some(last) = w.into_iter().max_by_key(|w| w.seq) {
                return Ok(last.value);
            }
        }
        match base {
            Some((path, h)) => self.in_checkpoint(path, h, key),
            None => Ok(None),
        }
    }

    /// The values of many keys at `at_us` (`None`: absent), in the order given, by one
    /// pass over the base checkpoint and the log after it: cheaper than a lookup per key
    /// once there are more than a few hundred keys.
    pub fn values_at(&self, keys: &[&[u8]], at_us: u64) -> Result<Vec<Option<Vec<u8>>>, LogError> {
        let mut state: FastMap<&[u8], Option<Vec<u8>>> = keys.iter().map(|k| (*k, None)).collect();
        let base = self.base(at_us)?;
        let min_seq = base.map_or(1, |(_, h)| h.start_seq + 1);
        if let Some((path, _)) = base {
            checkpoint::read(path, self.table_id, self.shard, |k, v| {
                if let Some(slot) = state.get_mut(k) {
                    *slot = Some(v.to_vec());
                }
            })?;
        }
        let segs = self.segments()?;
        for (i, seg) in segs.iter().enumerate() {
            if seg.header.created_us > at_us {
                break;
            }
            if segs.get(i + 1).is_some_and(|n| n.first_seq <= min_seq) {
                continue;
            }
            let mut seq = 0u64;
            let mut block_first = u64::MAX;
            let file = seg.open_file()?;
            self.with_decoder(|d| {
                walk_segment_where(
                    &file,
                    &seg.path,
                    &seg.header,
                    (SEGMENT_HEADER_LEN as u64, seg.len, seg.first_seq),
                    self.until_seq,
                    d,
                    |h| h.commit_us <= at_us && h.last_seq() >= min_seq,
                    |_, h, r| {
                        if h.first_seq != block_first {
                            (block_first, seq) = (h.first_seq, h.first_seq);
                        } else {
                            seq += 1;
                        }
                        if seq < min_seq {
                            return;
                        }
                        if let Some(slot) = state.get_mut(r.key()) {
                            *slot = match r {
                                RecordRef::Put { value, .. } => Some(value.to_vec()),
                                RecordRef::Delete { .. } => None,
                            };
                        }
                    },
                )
            })?;
        }
        Ok(keys.iter().map(|k| state.remove(k).flatten()).collect())
    }

    /// The key as checkpoint `path` holds it.
    fn in_checkpoint(
        &self,
        path: &Path,
        h: &CheckpointHeader,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, LogError> {
        let want = KixHeader {
            kind: Kind::Checkpoint,
            table_id: self.table_id,
            shard: self.shard,
            file_id: h.end_seq,
            covered_len: 0,
        };
        let kix = self.cache.sealed(path, want, || {
            build::index_checkpoint(path, self.table_id, self.shard).map(|(k, _)| k)
        })?;
        let offsets: Vec<u64> = kix.blocks_of(key).collect();
        if offsets.is_empty() {
            return Ok(None);
        }
        let file = File::open(path).map_err(|e| LogError::io(path, e))?;
        let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        let end = len.saturating_sub(FOOTER_LEN as u64);
        let mut found = None;
        for off in offsets {
            self.with_decoder(|d| {
                read_block(&file, path, h.salt(), (off, end), d, |_, r| {
                    if let RecordRef::Put { key: k, value } = r {
                        if k == key {
                            found = Some(value.to_vec());
                        }
                    }
                })
            })?;
            if found.is_some() {
                break;
            }
        }
        Ok(found)
    }

    /// The smallest `keep` keys after `after_key` (matching `glob`) written with a commit
    /// time in `(after_us, to_us]`, each with its value at `to_us` (`None`: deleted), and
    /// whether larger such keys were left out.
    ///
    /// Keys go into a hash map (a value rewritten in place); when it holds four times
    /// `keep`, it is cut to the `keep` smallest and the smallest key cut becomes a ceiling
    /// that later keys at or above it do not pass. Ceilings only fall, so no key below the
    /// last one was ever cut: memory stays bounded and the answer is exact.
    pub fn changed(
        &self,
        (after_us, to_us): (u64, u64),
        glob: Option<&Glob>,
        (after_key, keep): (Option<&[u8]>, usize),
    ) -> Result<(Changed, bool), LogError> {
        let keep = keep.max(1);
        let segs = self.segments()?;
        let mut map: FastMap<Vec<u8>, Option<Vec<u8>>> = FastMap::default();
        let mut ceiling: Option<Vec<u8>> = None;
        let mut more = false;
        for (i, seg) in segs.iter().enumerate() {
            if seg.header.created_us > to_us {
                break;
            }
            if segs
                .get(i + 1)
                .is_some_and(|n| n.header.created_us < after_us)
            {
                continue;
            }
            let file = seg.open_file()?;
            self.with_decoder(|d| {
                walk_segment_where(
                    &file,
                    &seg.path,
                    &seg.header,
                    (SEGMENT_HEADER_LEN as u64, seg.len, seg.first_seq),
                    self.until_seq,
                    d,
                    |h| h.commit_us > after_us && h.commit_us <= to_us,
                    |_, _, r| {
                        let k = r.key();
                        if after_key.is_some_and(|a| k <= a) || glob.is_some_and(|g| !g.matches(k))
                        {
                            return;
                        }
                        if ceiling.as_deref().is_some_and(|c| k >= c) {
                            more = true;
                            return;
                        }
                        let v = match r {
                            RecordRef::Put { value, .. } => Some(value),
                            RecordRef::Delete { .. } => None,
                        };
                        match map.get_mut(k) {
                            Some(slot) => match (slot.as_mut(), v) {
                                (Some(buf), Some(v)) => {
                                    buf.clear();
                                    buf.extend_from_slice(v);
                                }
                                (_, v) => *slot = v.map(<[u8]>::to_vec),
                            },
                            None => {
                                map.insert(k.to_vec(), v.map(<[u8]>::to_vec));
                                if map.len() > keep.saturating_mul(4) {
                                    ceiling = cut(&mut map, keep);
                                    more = true;
                                }
                            }
                        }
                    },
                )
            })?;
        }
        if map.len() > keep {
            cut(&mut map, keep);
            more = true;
        }
        Ok((map.into_iter().collect(), more))
    }
}

/// Keeps the `keep` smallest keys of `map`; returns the smallest key cut.
fn cut(map: &mut FastMap<Vec<u8>, Option<Vec<u8>>>, keep: usize) -> Option<Vec<u8>> {
    if map.len() <= keep {
        return None;
    }
    let mut keys: Vec<&Vec<u8>> = map.keys().collect();
    let (_, nth, _) = keys.select_nth_unstable(keep);
    let first_cut = (*nth).clone();
    map.retain(|k, _| *k < first_cut);
    Some(first_cut)
}
