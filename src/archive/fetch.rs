//! Restore from the archive alone: find the table, plan from a listing, download only the
//! checkpoint and segments the plan needs (in parallel, every part's checksum verified), and
//! lay them out as shard directories the ordinary restore replays.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};

use super::error::ArchiveError;
use super::layout::{Object, PartName};
use super::plan::{self, Generation, ShardObjects, ShardPlan};
use super::store::Archive;
use super::{lease, part};
use crate::catalog::{decode_table_file, TableMeta, TableStatus};
use crate::log::{checkpoint, segment};
use crate::shard::{RestoreAt, US_PER_DAY};

/// A part as written: shard, segment, offset, length and object name.
type Written = (u32, u64, u64, u64, String);

/// Downloads at once.
pub const PARALLEL_GETS: usize = 16;

/// A table as the archive holds it.
#[derive(Debug, Clone)]
pub struct ArchivedTable {
    pub generation: String,
    pub meta: TableMeta,
    /// The oldest and newest moments a restore from the archive alone reaches.
    pub window: Option<(u64, u64)>,
    pub objects: usize,
    pub bytes: u64,
    shards: BTreeMap<u32, ShardObjects>,
}

/// Every table of every generation, newest generation first; `live` names the generation
/// holding the lease.
pub async fn catalog(
    archive: &Archive,
    now_us: u64,
) -> Result<(Vec<ArchivedTable>, Option<String>), ArchiveError> {
    let listed = archive.list(&archive.layout.generations()).await?;
    let groups = plan::group(&archive.layout, &listed);
    let mut out = Vec::new();
    for (gen, g) in groups.iter().rev() {
        for (&id, t) in &g.tables {
            let Some(&at) = t.metas.last() else { continue };
            let name = archive.layout.meta(gen, id, at);
            let bytes = archive.get(&name).await?;
            let meta = decode_table_file(&bytes)
                .map_err(|source| ArchiveError::Damaged { name, source })?;
            out.push(table(gen, g, meta, now_us));
        }
    }
    let live = match archive.get_versioned(&archive.layout.lease()).await? {
        Some((b, _)) => lease::Lease::decode(&b).ok().map(|l| l.generation),
        None => None,
    };
    Ok((out, live))
}

/// Whether the table started empty (not from a restore's image).
fn from_empty(meta: &TableMeta) -> bool {
    meta.restore_source_id == 0 && meta.restore_at_us == 0
}

fn table(gen: &str, g: &Generation, meta: TableMeta, now_us: u64) -> ArchivedTable {
    let t = &g.tables[&meta.id];
    let mut objects = t.metas.len();
    let mut bytes = 0;
    let (mut earliest, mut latest) = (meta.pitr_since_us, u64::MAX);
    let mut restorable = true;
    let empty = ShardObjects::default();
    for k in 0..meta.shards {
        let s = t.shards.get(&k).unwrap_or(&empty);
        objects += s.checkpoints.len() + s.indexes.len();
        objects += s.segments.values().map(|p| p.len()).sum::<usize>();
        bytes += s.checkpoints.values().map(|(_, n)| n).sum::<u64>();
        bytes += s
            .segments
            .values()
            .flat_map(|p| p.values())
            .map(|(_, n)| n)
            .sum::<u64>();
        // A shard with nothing archived (no write yet, or none shipped) or whose log does
        // not run to its newest part: no moment can be promised for the table.
        match s.window(from_empty(&meta)) {
            Some((e, l)) => {
                earliest = earliest.max(e);
                latest = latest.min(l);
            }
            None => restorable = false,
        }
    }
    if meta.pitr_days > 0 {
        earliest = earliest.max(now_us.saturating_sub(meta.pitr_days as u64 * US_PER_DAY));
    }
    if meta.status == TableStatus::Dropped {
        latest = latest.min(meta.dropped_us);
    }
    let window =
        (restorable && latest != u64::MAX && earliest <= latest).then_some((earliest, latest));
    ArchivedTable {
        generation: gen.to_string(),
        meta,
        window,
        objects,
        bytes,
        shards: t.shards.clone(),
    }
}

/// What a restore from the archive will do.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub table: ArchivedTable,
    pub at_us: u64,
    pub shards: Vec<ShardPlan>,
    pub bytes: u64,
}

/// Picks the table named `source` (in `generation`, else the newest generation that has it;
/// a live table before a dropped one) and plans its restore to `at`.
pub fn plan_restore(
    tables: &[ArchivedTable],
    source: &str,
    generation: Option<&str>,
    live: Option<&str>,
    at: RestoreAt,
) -> Result<RestorePlan, ArchiveError> {
    let mut found: Vec<&ArchivedTable> = tables
        .iter()
        .filter(|t| t.meta.name == source && generation.is_none_or(|g| t.generation == g))
        .filter(|t| matches!(t.meta.status, TableStatus::Active | TableStatus::Dropped))
        .collect();
    // The generation holding the lease first, then the newest.
    found.sort_by_key(|t| {
        (
            Some(t.generation.as_str()) != live,
            std::cmp::Reverse(t.generation.clone()),
            t.meta.status != TableStatus::Active,
            std::cmp::Reverse(t.meta.id),
        )
    });
    let Some(t) = found.first() else {
        return Err(ArchiveError::Plan(format!(
            "the archive holds no table named '{source}'{} (rewind inspect --archive lists them)",
            generation
                .map(|g| format!(" in generation {g}"))
                .unwrap_or_default()
        )));
    };
    let empty = ShardObjects::default();
    let shard = |k: u32| t.shards.get(&k).unwrap_or(&empty);
    let empty_start = from_empty(&t.meta);
    let (at_us, shard_at) = match (t.window, at) {
        (Some((_, latest)), RestoreAt::Latest) => (latest, latest),
        (Some((earliest, latest)), RestoreAt::Time(us)) if us < earliest || us > latest => {
            return Err(ArchiveError::Plan(format!(
                "{} is outside what the archive can restore of '{source}': {} .. {} (--latest restores everything it holds)",
                crate::restore::format_time(us),
                crate::restore::format_time(earliest),
                crate::restore::format_time(latest)
            )))
        }
        (Some(_), RestoreAt::Time(us)) => (us, us),
        // Some shard has nothing archived, or a log that stops short: no moment can be
        // promised, but everything archived can still be had.
        (None, RestoreAt::Latest) => {
            let newest = (0..t.meta.shards)
                .filter_map(|k| shard(k).window(empty_start).map(|(_, l)| l))
                .max()
                .ok_or_else(|| {
                    ArchiveError::Plan(format!(
                        "the archive holds nothing restorable of '{source}' (generation {})",
                        t.generation
                    ))
                })?;
            (newest, u64::MAX)
        }
        (None, RestoreAt::Time(_)) => {
            let why = (0..t.meta.shards)
                .find(|&k| shard(k).window(empty_start).is_none())
                .map(|k| {
                    if shard(k).is_empty() {
                        format!("shard {k} has nothing in it (no write yet, or none shipped)")
                    } else {
                        format!("shard {k}'s archived log does not run to its end")
                    }
                })
                .unwrap_or_default();
            return Err(ArchiveError::Plan(format!(
                "no moment of '{source}' (generation {}) can be restored exactly from the archive: {why}; --latest restores everything it holds",
                t.generation
            )));
        }
    };
    let mut shards = Vec::new();
    for k in 0..t.meta.shards {
        let s = shard(k);
        // An empty shard of a table that started empty is restored empty; a restored table's
        // shard starts from its image, which the archive must hold.
        let p = if s.is_empty() && empty_start {
            ShardPlan {
                checkpoint: None,
                segments: Vec::new(),
                bytes: 0,
            }
        } else {
            s.plan(shard_at, empty_start)
                .map_err(|why| ArchiveError::Plan(format!("shard {k} of '{source}': {why}")))?
        };
        shards.push(p);
    }
    let bytes = shards.iter().map(|p| p.bytes).sum();
    Ok(RestorePlan {
        table: (*t).clone(),
        at_us,
        shards,
        bytes,
    })
}

enum Job {
    Checkpoint {
        shard: u32,
        name: String,
        end_seq: u64,
    },
    Part {
        shard: u32,
        segment_seq: u64,
        name: String,
        part: PartName,
    },
    Index {
        shard: u32,
        segment_seq: u64,
        name: String,
    },
}

/// Downloads the plan into `staging/shard-<k>/`; `done` counts bytes as they arrive. Returns
/// the shard directories.
pub async fn download(
    archive: &Archive,
    plan: &RestorePlan,
    staging: &Path,
    done: &AtomicU64,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let t = &plan.table;
    let (gen, id) = (&t.generation, t.meta.id);
    let l = &archive.layout;
    let mut jobs = Vec::new();
    let mut dirs = Vec::new();
    for (k, p) in plan.shards.iter().enumerate() {
        let k = k as u32;
        let dir = crate::shard::shard_dir(staging, k);
        crate::log::fsutil::create_private_dir(&dir)?;
        dirs.push(dir);
        if let Some(c) = p.checkpoint {
            jobs.push(Job::Checkpoint {
                shard: k,
                name: l.checkpoint(gen, id, k, &c),
                end_seq: c.end_seq,
            });
        }
        for (seg, parts, whole) in &p.segments {
            for part in parts {
                jobs.push(Job::Part {
                    shard: k,
                    segment_seq: *seg,
                    name: l.part(gen, id, k, *seg, part),
                    part: *part,
                });
            }
            if *whole {
                jobs.push(Job::Index {
                    shard: k,
                    segment_seq: *seg,
                    name: l.index(gen, id, k, *seg),
                });
            }
        }
    }
    let pieces: Vec<Option<Written>> = futures::stream::iter(
        jobs.into_iter()
            .map(|job| fetch_one(archive, job, id, &dirs, done)),
    )
    .buffer_unordered(PARALLEL_GETS)
    .try_collect()
    .await?;
    // Each rebuilt segment must be whole from its start: every part begins where the one
    // before it ended.
    #[allow(clippy::type_complexity)]
    let mut by_segment: BTreeMap<(u32, u64), Vec<(u64, u64, String)>> = BTreeMap::new();
    for (shard, seg, offset, len, name) in pieces.into_iter().flatten() {
        by_segment
            .entry((shard, seg))
            .or_default()
            .push((offset, len, name));
    }
    for ((shard, seg), mut parts) in by_segment {
        parts.sort();
        let mut end = 0;
        for (offset, len, name) in parts {
            if offset != end {
                return Err(ArchiveError::Plan(format!(
                    "{name} starts at byte {offset} of segment {seg} (shard {shard}), but the parts before it end at {end}"
                )));
            }
            end = offset + len;
        }
    }
    Ok(dirs)
}

/// The furthest into a segment file a part may claim to start (a segment holds at most a
/// block of 1 GiB past its size limit).
const MAX_PART_OFFSET: u64 = 8 << 30;

async fn fetch_one(
    archive: &Archive,
    job: Job,
    table_id: u64,
    dirs: &[PathBuf],
    done: &AtomicU64,
) -> Result<Option<Written>, ArchiveError> {
    match job {
        Job::Checkpoint {
            shard,
            name,
            end_seq,
        } => {
            let b = archive.get(&name).await?;
            done.fetch_add(b.len() as u64, Ordering::Relaxed);
            let path = dirs[shard as usize].join(checkpoint::file_name(end_seq));
            std::fs::write(&path, &b).map_err(|e| ArchiveError::io(&path, e))?;
        }
        Job::Index {
            shard,
            segment_seq,
            name,
        } => {
            let b = archive.get(&name).await?;
            let path = dirs[shard as usize].join(index_name(segment_seq));
            std::fs::write(&path, &b).map_err(|e| ArchiveError::io(&path, e))?;
        }
        Job::Part {
            shard,
            segment_seq,
            name,
            part: p,
        } => {
            let b = archive.get(&name).await?;
            done.fetch_add(b.len() as u64, Ordering::Relaxed);
            let (h, payload) = part::decode(&b).map_err(|source| ArchiveError::Damaged {
                name: name.clone(),
                source,
            })?;
            let claimed = (table_id, shard, segment_seq, p.first_seq, p.last_seq);
            if (h.table_id, h.shard, h.segment_seq, h.first_seq, h.last_seq) != claimed {
                return Err(ArchiveError::Damaged {
                    name,
                    source: crate::log::FormatError::Malformed {
                        what: "archive part",
                        detail: format!(
                            "holds table {} shard {} segment {} sequences {}..={}, not what its name says",
                            h.table_id, h.shard, h.segment_seq, h.first_seq, h.last_seq
                        ),
                    },
                });
            }
            if h.offset > MAX_PART_OFFSET {
                return Err(ArchiveError::Damaged {
                    name,
                    source: crate::log::FormatError::Malformed {
                        what: "archive part",
                        detail: format!("offset {} past any segment", h.offset),
                    },
                });
            }
            let path = dirs[shard as usize].join(segment::file_name(segment_seq));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| ArchiveError::io(&path, e))?;
            f.write_all_at(payload, h.offset)
                .map_err(|e| ArchiveError::io(&path, e))?;
            return Ok(Some((
                shard,
                segment_seq,
                h.offset,
                payload.len() as u64,
                name,
            )));
        }
    }
    Ok(None)
}

fn index_name(segment_seq: u64) -> String {
    let p = PathBuf::from(segment::file_name(segment_seq));
    p.with_extension("idx").display().to_string()
}

/// Which object kinds a listing holds, for `inspect`.
pub fn describe_object(o: &Object) -> &'static str {
    match o {
        Object::Catalog { .. } => "catalog",
        Object::Meta { .. } => "meta",
        Object::Part { .. } => "part",
        Object::Index { .. } => "index",
        Object::Checkpoint { .. } => "checkpoint",
    }
}
