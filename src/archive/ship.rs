//! The shipper: every `--archive-lag`, each PITR table shard's new durable blocks go to the
//! archive as one part per shard (none while idle), then its new checkpoints, and the table
//! metadata and catalog when they changed. A failed request is retried on the next pass with
//! a growing pause; nothing local is deleted meanwhile (retention asks `ArchiveState`), and
//! the write path never waits for any of it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use super::error::ArchiveError;
use super::layout::{CkpName, Object, PartName};
use super::store::{Archive, Created};
use super::tail::{self, Cursor, Step};
use super::{lease, part};
use crate::catalog::{self, TableMeta, TableStatus};
use crate::log::checkpoint;
use crate::shard::{shard_dir, ArchiveState, Db, Floor};

/// A part holds at most this many bytes of blocks (one PUT).
pub const MAX_PART_BYTES: u64 = 64 << 20;

#[derive(Debug, Default)]
struct ShardShip {
    /// `None` until the shard has a local segment to start from.
    cursor: Option<Cursor>,
    /// End sequence of the newest checkpoint in the archive (`None`: none yet; a restored
    /// table's first checkpoint ends at 0).
    ckp_end: Option<u64>,
    known: bool,
    /// A dropped table's shard found all shipped: its newest segment then (name, length,
    /// modification time). While that stays so, its files are not read again.
    idle_mark: Option<(std::path::PathBuf, u64, std::time::SystemTime)>,
}

/// What one pass shipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub parts: u64,
    pub checkpoints: u64,
    pub bytes: u64,
}

pub struct Shipper {
    pub archive: Archive,
    pub generation: String,
    db: Arc<Db>,
    state: Arc<ArchiveState>,
    shards: HashMap<(u64, u32), ShardShip>,
    meta_sums: HashMap<u64, u64>,
    catalog_sum: Option<u64>,
    /// The last time used in a catalog or metadata object's name: names never repeat.
    last_stamp_us: u64,
}

impl Shipper {
    /// Attaches the archive's state to `db` at once (from here on local retention keeps what
    /// the archive has not got); the lease is taken by [`Shipper::acquire`].
    pub fn new(archive: Archive, db: Arc<Db>) -> Result<Self, ArchiveError> {
        let state = Arc::new(ArchiveState::new(&archive.url));
        if db.archive.set(state.clone()).is_err() {
            return Err(ArchiveError::Plan("this server already archives".into()));
        }
        Ok(Shipper {
            archive,
            generation: String::new(),
            db,
            state,
            shards: HashMap::new(),
            meta_sums: HashMap::new(),
            catalog_sum: None,
            last_stamp_us: 0,
        })
    }

    /// Takes the lease (or finds it still ours).
    pub async fn acquire(&mut self, takeover: bool) -> Result<(), ArchiveError> {
        let now = self.db.clock().now_us();
        let generation = lease::acquire(&self.archive, &self.db.dir, now, takeover).await?;
        tracing::info!(
            "archiving to {} as generation {generation}",
            self.archive.url
        );
        self.state.set_generation(&generation);
        self.generation = generation;
        Ok(())
    }

    /// [`Shipper::new`] and [`Shipper::acquire`].
    pub async fn start(
        archive: Archive,
        db: Arc<Db>,
        takeover: bool,
    ) -> Result<Self, ArchiveError> {
        let mut s = Shipper::new(archive, db)?;
        s.acquire(takeover).await?;
        Ok(s)
    }

    pub fn state(&self) -> &Arc<ArchiveState> {
        &self.state
    }

    /// One pass over every archived table.
    pub async fn tick(&mut self) -> Result<Shipped, ArchiveError> {
        let catalog = self.db.catalog_snapshot();
        let now = self.db.clock().now_us();
        let mut shipped = Shipped::default();
        let cat = catalog::encode(&catalog);
        if self.catalog_sum != Some(xxh3_64(&cat)) {
            let at = self.stamp(now);
            let name = self.archive.layout.catalog(&self.generation, at);
            self.put(&name, Bytes::from(cat.clone())).await?;
            self.catalog_sum = Some(xxh3_64(&cat));
        }
        // One table's trouble (a damaged local file, a diverged history) does not hold the
        // others back: each is tried, and the first error is reported.
        let mut first_error = None;
        for meta in &catalog.tables {
            let archived = meta.pitr_days > 0
                && matches!(meta.status, TableStatus::Active | TableStatus::Dropped);
            if !archived {
                continue;
            }
            match self.ship_table(meta, now).await {
                Ok(s) => {
                    shipped.parts += s.parts;
                    shipped.checkpoints += s.checkpoints;
                    shipped.bytes += s.bytes;
                }
                Err(e) => {
                    tracing::warn!("archive: table '{}' (id {}): {e}", meta.name, meta.id);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(shipped),
            Some(e) => Err(e),
        }
    }

    async fn ship_table(&mut self, meta: &TableMeta, now: u64) -> Result<Shipped, ArchiveError> {
        let bytes = catalog::encode_table_file(meta);
        if self.meta_sums.get(&meta.id) != Some(&xxh3_64(&bytes)) {
            let at = self.stamp(now);
            let name = self.archive.layout.meta(&self.generation, meta.id, at);
            self.put(&name, Bytes::from(bytes.clone())).await?;
            self.meta_sums.insert(meta.id, xxh3_64(&bytes));
        }
        let live = self
            .db
            .table(&meta.name)
            .filter(|t| t.meta.id == meta.id && meta.status == TableStatus::Active);
        let table_dir = self.db.dir.join("tables").join(meta.id.to_string());
        let mut shipped = Shipped::default();
        let mut first_error = None;
        for k in 0..meta.shards {
            // A dropped table's writers are stopped: its files are all there is.
            let bound = match &live {
                Some(t) => t.shards[k as usize].log.durable().0,
                None => u64::MAX,
            };
            let dir = shard_dir(&table_dir, k);
            match self.ship_shard(meta.id, k, &dir, bound).await {
                Ok(s) => {
                    shipped.parts += s.parts;
                    shipped.checkpoints += s.checkpoints;
                    shipped.bytes += s.bytes;
                }
                // The archive itself failing: the other shards would fail the same way.
                Err(e @ ArchiveError::Store { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!("archive: table id {} shard {k}: {e}", meta.id);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(shipped),
            Some(e) => Err(e),
        }
    }

    async fn ship_shard(
        &mut self,
        id: u64,
        k: u32,
        dir: &Path,
        bound: u64,
    ) -> Result<Shipped, ArchiveError> {
        if !self.shards.get(&(id, k)).is_some_and(|s| s.known) {
            let s = self.find_shard(id, k, dir).await?;
            self.shards.insert((id, k), s);
        }
        let mut shipped = Shipped::default();
        let mut cursor = self.shards[&(id, k)].cursor;
        if cursor.is_none() {
            cursor = tail::start(dir)?;
        }
        let mut drained = bound == u64::MAX;
        // Sequences below this are in the archive (1 while the shard has no log at all).
        let mut next_seq = 1;
        let mark = if bound == u64::MAX {
            newest_segment_mark(dir)
        } else {
            None
        };
        let unchanged = mark.is_some() && self.shards[&(id, k)].idle_mark == mark;
        if let Some(mut cur) = cursor.filter(|_| !unchanged) {
            loop {
                match tail::next(dir, (id, k), &cur, bound, MAX_PART_BYTES)? {
                    Step::Part {
                        header,
                        payload,
                        next,
                    } => {
                        let name = self.archive.layout.part(
                            &self.generation,
                            id,
                            k,
                            header.segment_seq,
                            &PartName {
                                first_seq: header.first_seq,
                                last_seq: header.last_seq,
                                first_us: header.first_us,
                                last_us: header.last_us,
                            },
                        );
                        let obj = part::encode_pieces(header, payload);
                        shipped.bytes += obj.iter().map(|b| b.len() as u64).sum::<u64>();
                        self.put_pieces(&name, obj).await?;
                        shipped.parts += 1;
                        cur = next;
                    }
                    Step::Sealed { segment_seq, next } => {
                        let idx = crate::log::segment::SegmentFile {
                            first_seq: segment_seq,
                            path: dir.join(crate::log::segment::file_name(segment_seq)),
                        }
                        .index_path();
                        // The helper writes a finished segment's index after the next one
                        // exists: build it here when it is not there yet.
                        if let Some(b) = index_bytes(dir, segment_seq, &idx) {
                            let name =
                                self.archive
                                    .layout
                                    .index(&self.generation, id, k, segment_seq);
                            self.put(&name, Bytes::from(b)).await?;
                        }
                        cur = next;
                    }
                    Step::Gap { missing, next } => {
                        tracing::warn!(
                            "archive: table id {id} shard {k}: sequences {}..={} were deleted locally before they were archived (PITR was off); the archive goes on from {}",
                            missing.0,
                            missing.1,
                            next.next_seq
                        );
                        cur = next;
                    }
                    Step::Idle => {
                        // Only a dropped table's (no writer) is remembered: a write still
                        // landing from the drop changes the file and is read next time.
                        // A file's time has coarse steps: only one quiet for a while counts.
                        let quiet = mark.as_ref().is_some_and(|(_, _, t)| {
                            t.elapsed().is_ok_and(|e| e > Duration::from_secs(2))
                        });
                        if quiet {
                            self.shards.get_mut(&(id, k)).expect("known").idle_mark = mark.clone();
                        }
                        break;
                    }
                }
                // Record progress as it is made: a failure later in the pass keeps it.
                self.shards.get_mut(&(id, k)).expect("known").cursor = Some(cur);
            }
            next_seq = cur.next_seq;
        } else if let Some(cur) = cursor {
            next_seq = cur.next_seq;
        }
        // Checkpoints whose log is archived, oldest first. A restored table's first checkpoint
        // (the whole image, ending at 0) ships before any log exists.
        let mut ckp_end = self.shards[&(id, k)].ckp_end;
        for (end_seq, path) in checkpoint::list(dir)? {
            if ckp_end.is_some_and(|e| end_seq <= e) {
                continue;
            }
            if end_seq >= next_seq && end_seq > 0 {
                drained = false;
                break;
            }
            let h = checkpoint::read_header(&path)?;
            let name = self.archive.layout.checkpoint(
                &self.generation,
                id,
                k,
                &CkpName {
                    end_seq: h.end_seq,
                    start_seq: h.start_seq,
                    end_us: h.end_us,
                },
            );
            let n = self.archive.upload_file(&name, &path).await?;
            self.count_put(n);
            shipped.checkpoints += 1;
            shipped.bytes += n;
            ckp_end = Some(end_seq);
            self.shards.get_mut(&(id, k)).expect("known").ckp_end = ckp_end;
        }
        let cur = self.shards[&(id, k)].cursor;
        self.state.set_floor(
            id,
            k,
            Floor {
                log_seq: next_seq - 1,
                last_us: cur.map_or(0, |c| c.last_us),
                checkpoint_end: ckp_end,
                drained,
            },
        );
        Ok(shipped)
    }

    /// Where the archive's copy of a shard ends, matched against the local log.
    async fn find_shard(&mut self, id: u64, k: u32, dir: &Path) -> Result<ShardShip, ArchiveError> {
        let layout = &self.archive.layout;
        let mut last: Option<(String, u64, PartName)> = None;
        for o in self
            .archive
            .list(&layout.log(&self.generation, id, k))
            .await?
        {
            if let Some((
                _,
                Object::Part {
                    segment_seq, name, ..
                },
            )) = layout.classify(&o.name)
            {
                if last
                    .as_ref()
                    .is_none_or(|(_, _, l)| name.last_seq > l.last_seq)
                {
                    last = Some((o.name.clone(), segment_seq, name));
                }
            }
        }
        let mut ckp_end: Option<u64> = None;
        for o in self
            .archive
            .list(&layout.checkpoints(&self.generation, id, k))
            .await?
        {
            if let Some((_, Object::Checkpoint { name, .. })) = layout.classify(&o.name) {
                ckp_end = Some(ckp_end.map_or(name.end_seq, |e| e.max(name.end_seq)));
            }
        }
        let cursor = match last {
            None => tail::start(dir)?,
            Some((name, segment_seq, p)) => {
                let head = self
                    .archive
                    .get_range(&name, 0..part::PART_HEADER_LEN as u64)
                    .await?;
                self.state.add(&self.state.gets, 1);
                let h = part::PartHeader::decode(&head)
                    .map_err(|source| ArchiveError::Damaged { name, source })?;
                Some(tail::resume(
                    dir,
                    (id, k),
                    segment_seq,
                    p.last_seq,
                    h.last_block_sum,
                )?)
            }
        };
        Ok(ShardShip {
            cursor,
            ckp_end,
            known: true,
            idle_mark: None,
        })
    }

    async fn put(&self, name: &str, data: Bytes) -> Result<(), ArchiveError> {
        self.put_pieces(name, vec![data]).await
    }

    /// A conditional create; an object already there must hold the same bytes (a retried
    /// request that had in fact succeeded).
    async fn put_pieces(&self, name: &str, pieces: Vec<Bytes>) -> Result<(), ArchiveError> {
        let len = pieces.iter().map(|b| b.len() as u64).sum();
        if self.archive.create_pieces(name, pieces.clone()).await? == Created::AlreadyThere {
            let there = self.archive.get(name).await?;
            if there != pieces.concat() {
                return Err(ArchiveError::Plan(format!(
                    "{name} is already in the archive with other contents"
                )));
            }
        }
        self.count_put(len);
        Ok(())
    }

    fn stamp(&mut self, now: u64) -> u64 {
        self.last_stamp_us = now.max(self.last_stamp_us + 1);
        self.last_stamp_us
    }

    fn count_put(&self, bytes: u64) {
        self.state.add(&self.state.puts, 1);
        self.state.add(&self.state.objects, 1);
        self.state.add(&self.state.bytes, bytes);
    }
}

/// The newest segment of a shard directory: path, length and modification time.
fn newest_segment_mark(dir: &Path) -> Option<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let seg = crate::log::segment::list(dir).ok()?.pop()?;
    let m = std::fs::metadata(&seg.path).ok()?;
    Some((seg.path, m.len(), m.modified().ok()?))
}

impl Shipper {
    pub(super) fn db(&self) -> &Arc<Db> {
        &self.db
    }
}

/// A finished segment's index: its file, or built from the segment when the file is not
/// written yet. `None` (logged) when neither can be had; restore rebuilds it then.
fn index_bytes(dir: &std::path::Path, segment_seq: u64, idx: &std::path::Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    match std::fs::read(idx) {
        Ok(b) => return Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!("archive: cannot read {}: {e}", idx.display());
            return None;
        }
    }
    let path = dir.join(crate::log::segment::file_name(segment_seq));
    let built = (|| -> Result<Vec<u8>, crate::log::LogError> {
        let io = |e| crate::log::LogError::io(&path, e);
        let f = std::fs::File::open(&path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut head = [0u8; crate::log::segment::SEGMENT_HEADER_LEN];
        f.read_exact_at(&mut head, 0).map_err(io)?;
        let h = crate::log::segment::SegmentHeader::decode(&head).map_err(|source| {
            crate::log::LogError::Damaged {
                path: path.clone(),
                offset: 0,
                source,
            }
        })?;
        let index = crate::log::index::SecondIndex::rebuild(&f, &path, &h, len)?;
        Ok(index.encode(h.salt()))
    })();
    built
        .map_err(|e| tracing::warn!("archive: no index for {}: {e}", path.display()))
        .ok()
}
