//! One shard's history, read beside the writer: a key's writes in a time range, its value
//! at a moment, and the keys written in a range, all bounded by the sequence that was
//! durable when the question was asked.
//!
//! The value at `t` is what a restore to `t` would hold: the newest write of the key with a
//! commit time at or before `t` among those the log keeps after the restore's base
//! checkpoint (the newest whose image may stand in at `t`), else the key as that checkpoint
//! holds it. Segments are walked newest first, and in each only the blocks its key index
//! names are decoded.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::build::{self, read_block, segment_header, walk_segment_where, OpenIndex};
use super::cache::IndexCache;
use super::glob::Glob;
use super::keyindex::{KeyIndex, Kind, KixHeader};
use crate::log::block::BlockDecoder;
use crate::log::checkpoint::{self, CheckpointHeader, FOOTER_LEN};
use crate::log::record::RecordRef;
use crate::log::segment::{self, SEGMENT_HEADER_LEN};
use crate::log::LogError;

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
}

struct Seg {
    first_seq: u64,
    path: PathBuf,
    created_us: u64,
    /// Not the newest segment: whole, with a key index of its own.
    sealed: bool,
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
        }
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
            let f = File::open(&s.path).map_err(|e| LogError::io(&s.path, e))?;
            let h = segment_header(&f, &s.path, self.table_id, self.shard)?;
            out.push(Seg {
                first_seq: s.first_seq,
                path: s.path,
                created_us: h.created_us,
                sealed: i + 1 < n,
            });
        }
        Ok(self.segs.get_or_init(|| out))
    }

    /// Offsets of the blocks of segment `i` that may hold `key`, ascending.
    fn blocks_of(
        &self,
        seg: &Seg,
        key: &[u8],
        decoder: &mut BlockDecoder,
    ) -> Result<Vec<u64>, LogError> {
        if seg.sealed {
            let want = KixHeader {
                kind: Kind::Segment,
                table_id: self.table_id,
                shard: self.shard,
                file_id: seg.first_seq,
                covered_len: 0,
            };
            let kix = self.cache.sealed(&seg.path, want, || {
                build::index_segment(&seg.path, self.table_id, self.shard, seg.first_seq)
            })?;
            return Ok(kix.blocks_of(key).collect());
        }
        self.cache.retire_open(self.dir, Some(&seg.path));
        let open = self.cache.open(&seg.path);
        let mut open = open.lock().unwrap_or_else(|p| {
            // A panic mid-update: start this index again.
            let mut g = p.into_inner();
            *g = OpenIndex::default();
            g
        });
        let file = File::open(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
        let header = segment_header(&file, &seg.path, self.table_id, self.shard)?;
        open.catch_up(&file, &seg.path, &header, self.until_seq, decoder)?;
        Ok(open.blocks_of(key).to_vec())
    }

    /// The writes of `key` in segment `seg` with a commit time in `[from_us, to_us]` and a
    /// sequence in `[min_seq, until_seq]`, in log order.
    fn writes_in(
        &self,
        seg: &Seg,
        key: &[u8],
        (from_us, to_us, min_seq): (u64, u64, u64),
        decoder: &mut BlockDecoder,
    ) -> Result<Vec<Write>, LogError> {
        let blocks = self.blocks_of(seg, key, decoder)?;
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let file = File::open(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
        let header = segment_header(&file, &seg.path, self.table_id, self.shard)?;
        let len = file
            .metadata()
            .map_err(|e| LogError::io(&seg.path, e))?
            .len();
        let mut out = Vec::new();
        for off in blocks {
            let mut seq_in_block = 0u64;
            read_block(
                &file,
                &seg.path,
                header.salt(),
                (off, len),
                decoder,
                |h, r| {
                    let seq = h.first_seq + seq_in_block;
                    seq_in_block += 1;
                    let in_range = (from_us..=to_us).contains(&h.commit_us)
                        && seq >= min_seq
                        && seq <= self.until_seq;
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
                },
            )?;
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
        let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(self.dir, e))?;
        let mut out = Vec::new();
        for i in (0..segs.len()).rev() {
            if out.len() >= count {
                break;
            }
            let seg = &segs[i];
            if seg.created_us > to_us {
                continue;
            }
            // Every block of this segment is at or before the next one's first.
            if segs.get(i + 1).is_some_and(|n| n.created_us < from_us) {
                break;
            }
            let mut w = self.writes_in(seg, key, (from_us, to_us, 1), &mut decoder)?;
            w.reverse();
            out.extend(w);
        }
        out.truncate(count);
        Ok(out)
    }

    /// The base a restore to `at_us` starts from: the newest checkpoint whose image may
    /// stand in at that moment, with the first sequence of the log replayed over it.
    fn base(&self, at_us: u64) -> Result<Option<(PathBuf, CheckpointHeader)>, LogError> {
        for (_, path) in checkpoint::list(self.dir)?.into_iter().rev() {
            let h = checkpoint::read_header(&path)?;
            if h.end_us <= at_us && h.end_seq <= self.until_seq {
                return Ok(Some((path, h)));
            }
        }
        Ok(None)
    }

    /// The key's value at `at_us` (`None`: absent), as a restore to `at_us` would hold it.
    pub fn value_at(&self, key: &[u8], at_us: u64) -> Result<Option<Vec<u8>>, LogError> {
        let base = self.base(at_us)?;
        let min_seq = base.as_ref().map_or(1, |(_, h)| h.start_seq + 1);
        let segs = self.segments()?;
        let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(self.dir, e))?;
        for i in (0..segs.len()).rev() {
            let seg = &segs[i];
            if seg.created_us > at_us {
                continue;
            }
            // Wholly before the base's log: the base holds what it had.
            if segs.get(i + 1).is_some_and(|n| n.first_seq <= min_seq) {
                break;
            }
            let w = self.writes_in(seg, key, (0, at_us, min_seq), &mut decoder)?;
            if let Some(last) = w.into_iter().max_by_key(|w| w.seq) {
                return Ok(last.value);
            }
        }
        match base {
            Some((path, h)) => self.in_checkpoint(&path, &h, key, &mut decoder),
            None => Ok(None),
        }
    }

    /// The key as checkpoint `path` holds it.
    fn in_checkpoint(
        &self,
        path: &Path,
        h: &CheckpointHeader,
        key: &[u8],
        decoder: &mut BlockDecoder,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let want = KixHeader {
            kind: Kind::Checkpoint,
            table_id: self.table_id,
            shard: self.shard,
            file_id: h.end_seq,
            covered_len: 0,
        };
        let kix: std::sync::Arc<KeyIndex> = self.cache.sealed(path, want, || {
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
            read_block(&file, path, h.salt(), (off, end), decoder, |_, r| {
                if let RecordRef::Put { key: k, value } = r {
                    if k == key {
                        found = Some(value.to_vec());
                    }
                }
            })?;
            if found.is_some() {
                break;
            }
        }
        Ok(found)
    }

    /// The keys (matching `glob`) written with a commit time in `(after_us, to_us]`, each
    /// with its value at `to_us` (`None`: deleted). At most `limit` keys, else an error.
    pub fn changed(
        &self,
        (after_us, to_us): (u64, u64),
        glob: Option<&Glob>,
        limit: usize,
    ) -> Result<Result<Changed, usize>, LogError> {
        let segs = self.segments()?;
        let mut decoder = BlockDecoder::new().map_err(|e| LogError::io(self.dir, e))?;
        let mut out = Changed::new();
        for (i, seg) in segs.iter().enumerate() {
            if seg.created_us > to_us {
                break;
            }
            if segs.get(i + 1).is_some_and(|n| n.created_us < after_us) {
                continue;
            }
            let file = File::open(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
            let header = segment_header(&file, &seg.path, self.table_id, self.shard)?;
            let len = file
                .metadata()
                .map_err(|e| LogError::io(&seg.path, e))?
                .len();
            let mut over = false;
            walk_segment_where(
                &file,
                &seg.path,
                &header,
                (SEGMENT_HEADER_LEN as u64, len, seg.first_seq),
                self.until_seq,
                &mut decoder,
                |h| h.commit_us > after_us && h.commit_us <= to_us,
                |_, _, r| {
                    if glob.is_some_and(|g| !g.matches(r.key())) {
                        return;
                    }
                    let v = match r {
                        RecordRef::Put { value, .. } => Some(value.to_vec()),
                        RecordRef::Delete { .. } => None,
                    };
                    let n = out.len();
                    match out.get_mut(r.key()) {
                        Some(slot) => *slot = v,
                        None if n < limit => {
                            out.insert(r.key().to_vec(), v);
                        }
                        None => over = true,
                    }
                },
            )?;
            if over {
                return Ok(Err(limit));
            }
        }
        Ok(Ok(out))
    }
}
