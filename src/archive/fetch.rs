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
use super::plan::{self, ShardObjects, ShardPlan, TableObjects};
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

/// What an archive holds: every table of every generation, newest generation first; the
/// generation holding the lease; and what could not be read (one table's damaged metadata
/// does not hide the others).
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub tables: Vec<ArchivedTable>,
    pub live: Option<String>,
    pub problems: Vec<String>,
}

/// Largest metadata, index or lease object read whole (they are a few hundred bytes; an
/// index of a full hour's segment is under 60 KiB).
const MAX_SMALL_OBJECT: u64 = 16 << 20;

/// Reads the archive's listing and every table's newest readable metadata.
pub async fn catalog(archive: &Archive, now_us: u64) -> Result<Holdings, ArchiveError> {
    let listed = archive.list(&archive.layout.generations()).await?;
    let groups = plan::group(&archive.layout, &listed);
    let sizes: std::collections::HashMap<&str, u64> =
        listed.iter().map(|o| (o.name.as_str(), o.size)).collect();
    let mut out = Holdings::default();
    for (gen, g) in groups.iter().rev() {
        for (&id, t) in &g.tables {
            // The newest metadata that reads back and names this table; older ones stand in
            // for a damaged newest one, and the damage is reported.
            let mut found = None;
            for &at in t.metas.iter().rev() {
                let name = archive.layout.meta(gen, id, at);
                let size = sizes.get(name.as_str()).copied().unwrap_or(0);
                let why = if size > MAX_SMALL_OBJECT {
                    format!("{name}: {size} bytes, more than any table metadata")
                } else {
                    match decode_table_file(&archive.get(&name).await?) {
                        Ok(meta) if meta.id == id => {
                            found = Some(meta);
                            break;
                        }
                        Ok(meta) => format!("{name} holds table id {}, not {id}", meta.id),
                        Err(e) => format!("{name}: {e}"),
                    }
                };
                out.problems.push(why);
            }
            match found {
                Some(meta) => out.tables.push(table(gen, t, meta, now_us)),
                None if t.metas.is_empty() => out.problems.push(format!(
                    "generation {gen}: table id {id} has objects but no metadata"
                )),
                None => out.problems.push(format!(
                    "generation {gen}: table id {id} has no readable metadata; it is left out"
                )),
            }
        }
    }
    out.live = match archive.get_versioned(&archive.layout.lease()).await? {
        Some((b, _)) => lease::Lease::decode(&b).ok().map(|l| l.generation),
        None => None,
    };
    Ok(out)
}

/// Whether the table started empty (not from a restore's image).
fn from_empty(meta: &TableMeta) -> bool {
    meta.restore_source_id == 0 && meta.restore_at_us == 0
}

fn table(gen: &str, t: &TableObjects, meta: TableMeta, now_us: u64) -> ArchivedTable {
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
        // A shard with nothing archived of a table that started empty holds nothing back: it
        // restores empty at any moment (what it took in its last --archive-lag before the
        // host went is lost with it, as every shard's unshipped tail is). A shard whose log
        // does not run to its newest part, or a restored table's shard without its image:
        // no moment can be promised for the table.
        if s.is_empty() && from_empty(&meta) {
            continue;
        }
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
    // The live generation lacks the table while an older one has it: restoring the older
    // copy (frozen when its server stopped) must be asked for by name, never done quietly.
    if let (None, Some(live), Some(first)) = (generation, live, found.first()) {
        if first.generation != live {
            let mut gens: Vec<&str> = found.iter().map(|t| t.generation.as_str()).collect();
            gens.dedup();
            return Err(ArchiveError::Plan(format!(
                "the generation holding the lease ({live}) has no table named '{source}'; older generations have it: {}; pass --generation to restore one of those",
                gens.join(", ")
            )));
        }
    }
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
        (Some((earliest, latest)), RestoreAt::Time(us)) if us < earliest || us > latest => {
            return Err(ArchiveError::Plan(format!(
                "{} is outside what the archive can restore of '{source}': {} .. {} (--latest restores everything it holds)",
                crate::restore::format_time(us),
                crate::restore::format_time(earliest),
                crate::restore::format_time(latest)
            )))
        }
        (Some(_), RestoreAt::Time(us)) => (us, us),
        // Everything archived, each shard to its newest archived write: on a table with a
        // quiet shard that is past the newest moment promised for the table as a whole (the
        // quiet shard holds that back), and it is what a host replacement wants. Also when
        // some shard's log stops short and no moment can be promised.
        (_, RestoreAt::Latest) => {
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
                .find(|&k| {
                    shard(k).window(empty_start).is_none() && !(shard(k).is_empty() && empty_start)
                })
                .map(|k| {
                    if shard(k).is_empty() {
                        format!("shard {k} has nothing in it (no write yet, or none shipped)")
                    } else {
                        format!("shard {k}'s archived log does not run to its end")
                    }
                })
                .unwrap_or_else(|| {
                    format!(
                        "its newest archived write is older than its {}-day PITR window reaches back",
                        t.meta.pitr_days
                    )
                });
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
        /// As listed.
        size: u64,
    },
    Index {
        shard: u32,
        segment_seq: u64,
        name: String,
        size: u64,
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
        let listed = t.shards.get(&k);
        for (seg, parts, whole) in &p.segments {
            for part in parts {
                let size = listed
                    .and_then(|s| s.segments.get(seg))
                    .and_then(|ps| ps.get(&part.first_seq))
                    .map_or(u64::MAX, |(_, n)| *n);
                jobs.push(Job::Part {
                    shard: k,
                    segment_seq: *seg,
                    name: l.part(gen, id, k, *seg, part),
                    part: *part,
                    size,
                });
            }
            if *whole {
                let name = l.index(gen, id, k, *seg);
                jobs.push(Job::Index {
                    shard: k,
                    segment_seq: *seg,
                    size: listed
                        .and_then(|s| s.indexes.get(seg))
                        .copied()
                        .unwrap_or(0),
                    name,
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
            // A checkpoint can be gigabytes: streamed to its file, checked when replayed.
            let path = dirs[shard as usize].join(checkpoint::file_name(end_seq));
            archive.get_to_file(&name, &path, done).await?;
        }
        Job::Index {
            shard,
            segment_seq,
            name,
            size,
        } => {
            too_large(&name, size, MAX_SMALL_OBJECT)?;
            let b = archive.get(&name).await?;
            let path = dirs[shard as usize].join(index_name(segment_seq));
            std::fs::write(&path, &b).map_err(|e| ArchiveError::io(&path, e))?;
        }
        Job::Part {
            shard,
            segment_seq,
            name,
            part: p,
            size,
        } => {
            too_large(&name, size, MAX_PART_OBJECT)?;
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

/// The largest part object a shipper writes: its header, then up to `MAX_PART_BYTES` of
/// blocks plus the one block that crossed that limit (at most a block's payload limit).
const MAX_PART_OBJECT: u64 = part::PART_HEADER_LEN as u64
    + super::ship::MAX_PART_BYTES
    + crate::log::block::MAX_BLOCK_PAYLOAD
    + 4096;

/// Refuses to read an object whose listed size no shipper writes, before holding any of it.
fn too_large(name: &str, size: u64, limit: u64) -> Result<(), ArchiveError> {
    if size <= limit {
        return Ok(());
    }
    Err(ArchiveError::Damaged {
        name: name.to_string(),
        source: crate::log::FormatError::Malformed {
            what: "archive object",
            detail: format!("{size} bytes listed, more than the {limit} any shipper writes"),
        },
    })
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
