//! What start-up does with the catalog and the table directories, and what it refuses.
//!
//! Nothing here deletes table data. A missing catalog while `tables/` holds anything, or a
//! damaged one, stops start-up with the way out (`rewind recover-catalog`). A table directory
//! that the catalog does not name (a crash between making it and naming it, or between
//! un-naming and deleting it) is moved aside to `<data-dir>/lost+found/`, never deleted.
//! Each named table's `table.meta` is brought up to date with its catalog entry.

use std::path::{Path, PathBuf};

use super::DbError;
use crate::catalog::{self, encode_table_file, read_table_file, Catalog, TableMeta, TABLE_FILE};
use crate::log::fsutil::{sync_dir, write_atomic};

pub const LOST_AND_FOUND: &str = "lost+found";

/// Reads the catalog. `Ok(None)`: there is none and `tables/` is empty or absent (a new data
/// directory).
pub fn load_catalog(dir: &Path) -> Result<Option<Catalog>, DbError> {
    let path = dir.join("catalog");
    match std::fs::read(&path) {
        Ok(bytes) => catalog::decode(&bytes)
            .map(Some)
            .map_err(|source| DbError::Catalog {
                path,
                dir: dir.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entries = table_dirs(&dir.join("tables"))?;
            if entries.is_empty() {
                Ok(None)
            } else {
                Err(DbError::CatalogMissing {
                    path,
                    dir: dir.to_path_buf(),
                    tables: entries.len(),
                })
            }
        }
        Err(e) => Err(DbError::io(&path, e)),
    }
}

/// The entries of `tables/` (every name, numeric or not), sorted; none if it is absent.
pub fn table_dirs(tables_dir: &Path) -> Result<Vec<(String, PathBuf)>, DbError> {
    let rd = match std::fs::read_dir(tables_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DbError::io(tables_dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| DbError::io(tables_dir, e))?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

/// Moves table directories that no catalog entry names to `lost+found/`; returns their ids.
pub fn move_orphans_aside(dir: &Path, catalog: &Catalog, now_us: u64) -> Result<Vec<u64>, DbError> {
    let tables_dir = dir.join("tables");
    let mut moved = Vec::new();
    for (name, path) in table_dirs(&tables_dir)? {
        let Ok(id) = name.parse::<u64>() else {
            continue; // not a table directory of ours: leave it alone
        };
        if catalog.tables.iter().any(|t| t.id == id) {
            continue;
        }
        let why = match read_table_file(&path) {
            Ok(Some(m)) => format!("its {TABLE_FILE} names table '{}' ({:?})", m.name, m.status),
            Ok(None) => format!("it has no {TABLE_FILE} (left by a crash while creating it?)"),
            Err(e) => format!("its {TABLE_FILE} cannot be read: {e}"),
        };
        let lost = dir.join(LOST_AND_FOUND);
        super::db::mkdir(&lost)?;
        let to = lost.join(format!("table-{id}-{now_us}"));
        std::fs::rename(&path, &to).map_err(|e| DbError::io(&path, e))?;
        sync_dir(&tables_dir)?;
        sync_dir(&lost)?;
        tracing::warn!(
            "{} is named by no catalog entry; {why}. Moved to {} (nothing deleted)",
            path.display(),
            to.display()
        );
        moved.push(id);
    }
    Ok(moved)
}

/// Writes `table.meta` for every catalog entry whose directory exists and whose file is
/// missing, unreadable or different (a data directory from before the file existed gets
/// them here). Returns the entries now on disk; a failure is logged and retried on the next
/// change of that table and at the next start.
pub fn sync_table_files(dir: &Path, catalog: &Catalog) -> Vec<TableMeta> {
    let mut on_disk = Vec::new();
    for meta in &catalog.tables {
        match write_table_file_if_changed(dir, meta, None) {
            Ok(true) => on_disk.push(meta.clone()),
            Ok(false) => {}
            Err(e) => tracing::error!("{e} (the catalog still holds this table)"),
        }
    }
    on_disk
}

/// Writes `tables/<id>/table.meta` unless the directory is missing (`Ok(false)`) or the file
/// already holds `meta` (`known`: what was last written, when the caller knows).
pub fn write_table_file_if_changed(
    dir: &Path,
    meta: &TableMeta,
    known: Option<&TableMeta>,
) -> Result<bool, DbError> {
    let tdir = dir.join("tables").join(meta.id.to_string());
    if known == Some(meta) {
        return Ok(true);
    }
    if !tdir.is_dir() {
        return Ok(false);
    }
    if known.is_none() {
        if let Ok(Some(m)) = read_table_file(&tdir) {
            if &m == meta {
                return Ok(true);
            }
        }
    }
    write_atomic(&tdir.join(TABLE_FILE), &encode_table_file(meta))?;
    Ok(true)
}
