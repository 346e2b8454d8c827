//! `rewind recover-catalog`: rebuilds a lost or damaged catalog from each table directory's
//! own `table.meta`, on a stopped server's data directory.

use std::path::{Path, PathBuf};

use super::lock::DirLock;
use super::startup::{table_dirs, LOST_AND_FOUND};
use super::{DbError, DEFAULT_TABLE};
use crate::catalog::{self, read_table_file, Catalog, TableMeta, TableStatus, TABLE_FILE};
use crate::log::fsutil::{sync_dir, write_atomic};

/// What a recovery found and wrote.
#[derive(Debug)]
pub struct Recovered {
    /// The tables now in the catalog, by id.
    pub tables: Vec<TableMeta>,
    /// Table directories whose metadata is missing or unreadable, and why: start-up moves
    /// them to `lost+found/`.
    pub skipped: Vec<(PathBuf, String)>,
    /// Where the damaged catalog was kept, if there was one.
    pub damaged_kept: Option<PathBuf>,
    /// Whether an empty `default` table had to be added (its directory was not found).
    pub added_default: bool,
}

/// Rebuilds `<dir>/catalog` from `tables/*/table.meta`. Refuses while another process holds
/// the directory, when the catalog is present and readable (nothing to recover), and, unless
/// `force`, when a table directory has no readable metadata (the next start would set it
/// aside).
pub fn recover_catalog(
    dir: &Path,
    shards: u32,
    now_us: u64,
    force: bool,
) -> Result<Recovered, DbError> {
    let _lock = DirLock::acquire(dir)?;
    let path = dir.join("catalog");
    let mut damaged_kept = None;
    match std::fs::read(&path) {
        Ok(bytes) => match catalog::decode(&bytes) {
            Ok(c) => {
                return Err(DbError::Recover(format!(
                    "{} is readable ({} tables): nothing to recover. Move it aside first to rebuild it anyway",
                    path.display(),
                    c.tables.len()
                )))
            }
            Err(e) => damaged_kept = Some((dir.join(format!("catalog.damaged-{now_us}")), e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DbError::io(&path, e)),
    }
    let mut tables: Vec<TableMeta> = Vec::new();
    let mut skipped = Vec::new();
    let mut max_id = 0;
    for (name, tdir) in table_dirs(&dir.join("tables"))? {
        let Ok(id) = name.parse::<u64>() else {
            continue;
        };
        max_id = max_id.max(id);
        match read_table_file(&tdir) {
            Ok(Some(m)) if m.id == id => {
                max_id = max_id.max(m.restore_source_id);
                tables.push(m)
            }
            Ok(Some(m)) => skipped.push((
                tdir,
                format!("its {TABLE_FILE} names table id {}, not {id}", m.id),
            )),
            Ok(None) => skipped.push((tdir, format!("no {TABLE_FILE}"))),
            Err(e) => skipped.push((tdir, e.to_string())),
        }
    }
    // Ids are never reused: not those of directories set aside either.
    for (name, _) in table_dirs(&dir.join(LOST_AND_FOUND))? {
        if let Some(id) = name
            .strip_prefix("table-")
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse::<u64>().ok())
        {
            max_id = max_id.max(id);
        }
    }
    if !skipped.is_empty() && !force {
        let list: Vec<String> = skipped
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        return Err(DbError::Recover(format!(
            "{} table directories have no readable metadata: {}. Nothing was changed. Run again with --force to rebuild the catalog without them (the next start then moves them to {LOST_AND_FOUND}/, deleting nothing)",
            skipped.len(),
            list.join("; ")
        )));
    }
    tables.sort_by_key(|t| t.id);
    for (i, a) in tables.iter().enumerate() {
        if a.status == TableStatus::Dropped {
            continue;
        }
        if let Some(b) = tables[i + 1..]
            .iter()
            .find(|b| b.name == a.name && b.status != TableStatus::Dropped)
        {
            return Err(DbError::Recover(format!(
                "tables {} and {} both claim the live name '{}'; move one of their directories out of {} and run again",
                a.id,
                b.id,
                a.name,
                dir.join("tables").display()
            )));
        }
    }
    let mut c = Catalog {
        next_table_id: max_id + 1,
        tables,
    };
    let added_default = c.get(DEFAULT_TABLE).is_none();
    if added_default {
        c.add(DEFAULT_TABLE, shards, now_us);
    }
    let damaged_kept = match damaged_kept {
        Some((keep, why)) => {
            std::fs::rename(&path, &keep).map_err(|e| DbError::io(&path, e))?;
            sync_dir(dir)?;
            tracing::warn!(
                "{} is damaged ({why}); kept as {}",
                path.display(),
                keep.display()
            );
            Some(keep)
        }
        None => None,
    };
    write_atomic(&path, &catalog::encode(&c))?;
    Ok(Recovered {
        tables: c.tables,
        skipped,
        damaged_kept,
        added_default,
    })
}
