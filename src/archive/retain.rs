//! The archive's retention: its window follows each table's PITR window. Per shard it keeps
//! the newest checkpoint at or before the window's start and everything after that
//! checkpoint's start, like local retention; a dropped table goes once its window has ended,
//! and a table the catalog no longer names (expired locally) goes with it. Only this
//! server's generation is touched.

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
        let meta = catalog.by_id(id);
        let whole = match meta {
            None => true,
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
                            if s.indexes.contains(&seg) {
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
