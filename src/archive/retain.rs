//! The archive's retention: its window follows each table's PITR window. Per shard it keeps
//! the newest checkpoint at or before the window's start and everything after that
//! checkpoint's start, like local retention; a dropped table goes once its window has ended.
//! A table the local catalog does not name (expired locally, or a data directory rolled back
//! to an old snapshot) is judged by its own newest archived metadata, never by its absence.
//! Only this server's generation is touched.

use super::error::ArchiveError;
use super::plan;
use super::ship::Shipper;
use crate::catalog::TableStatus;
use crate::shard::US_PER_DAY;

/// Objects deleted in one pass.
pub async fn run(shipper: &Shipper) -> Result<u64, ArchiveError> {
    let archive = &shipper.archive;
    let gen = &shipper.generation;
    let db = shipper.db();
    let now = db.clock().now_us();
    let catalog = db.catalog_snapshot();
    let listed = archive.list(&archive.layout.generation(gen)).await?;
    let groups = plan::group(&archive.layout, &listed);
    let Some(g) = groups.get(gen.as_str()) else {
        return Ok(0);
    };
    let mut doomed: Vec<String> = Vec::new();
    let layout = &archive.layout;
    for (&id, t) in &g.tables {
        let archived_meta;
        let meta = match catalog.by_id(id) {
            Some(m) => Some(m),
            None => {
                archived_meta = newest_meta(shipper, id, t).await?;
                archived_meta.as_ref()
            }
        };
        let whole = match meta {
            None => false,
            Some(m) if m.pitr_days == 0 => false,
            Some(m) => {
                let earliest = m
                    .pitr_since_us
                    .max(now.saturating_sub(m.pitr_days as u64 * US_PER_DAY));
                if m.status == TableStatus::Dropped && earliest > m.dropped_us {
                    true
                } else {
                    for (&k, s) in &t.shards {
                        let (ckps, segs) = s.expired(earliest);
                        for c in ckps {
                            doomed.push(layout.checkpoint(gen, id, k, &c));
                        }
                        for seg in segs {
                            for (p, _) in s.segments[&seg].values() {
                                doomed.push(layout.part(gen, id, k, seg, p));
                            }
                            if s.indexes.contains_key(&seg) {
                                doomed.push(layout.index(gen, id, k, seg));
                            }
                        }
                    }
                    false
                }
            }
        };
        if whole {
            let prefix = layout.table(gen, id);
            doomed.extend(
                listed
                    .iter()
                    .filter(|o| o.name.starts_with(&format!("{prefix}/")))
                    .map(|o| o.name.clone()),
            );
        }
    }
    // Catalog versions: the newest, and those inside the longest window.
    let oldest = now.saturating_sub(crate::shard::MAX_DAYS * US_PER_DAY);
    if let Some((_, older)) = g.catalogs.split_last() {
        doomed.extend(
            older
                .iter()
                .filter(|&&at| at < oldest)
                .map(|&at| layout.catalog(gen, at)),
        );
    }
    let n = doomed.len() as u64;
    for name in doomed {
        archive.delete(&name).await?;
        shipper.state().add(&shipper.state().deletes, 1);
    }
    if n > 0 {
        tracing::info!("archive retention deleted {n} objects");
    }
    Ok(n)
}

/// A table's newest archived metadata, if it has any that reads.
async fn newest_meta(
    shipper: &Shipper,
    id: u64,
    t: &plan::TableObjects,
) -> Result<Option<crate::catalog::TableMeta>, ArchiveError> {
    let Some(&at) = t.metas.last() else {
        return Ok(None);
    };
    let archive = &shipper.archive;
    let bytes = archive
        .get(&archive.layout.meta(&shipper.generation, id, at))
        .await?;
    Ok(crate::catalog::decode_table_file(&bytes)
        .ok()
        .filter(|m| m.id == id))
}
