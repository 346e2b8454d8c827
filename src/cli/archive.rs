//! `rewind restore --archive` and `rewind inspect --archive`: the archive without a server.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::archive::fetch::{self, ArchivedTable};
use crate::archive::{Archive, ArchiveError};
use crate::log::{Clock, SystemClock};
use crate::restore::format_time;
use crate::shard::{Db, EngineConfig, RestoreAt, DEFAULT_TABLE};

fn runtime() -> Result<tokio::runtime::Runtime, ArchiveError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| ArchiveError::io(Path::new("tokio runtime"), e))
}

/// Lists the archived tables with their restorable windows.
pub fn inspect_archive(url: &str) -> Result<String, ArchiveError> {
    use std::fmt::Write;
    let archive = Archive::open(url)?;
    let rt = runtime()?;
    let fetch::Holdings {
        tables,
        live,
        problems,
    } = rt.block_on(fetch::catalog(&archive, SystemClock.now_us()))?;
    let mut out = String::new();
    let _ = writeln!(out, "archive {url}");
    let _ = writeln!(
        out,
        "lease held by generation {}",
        live.as_deref().unwrap_or("(none)")
    );
    let mut gen = "";
    for t in &tables {
        if t.generation != gen {
            gen = &t.generation;
            let _ = writeln!(out, "generation {gen}");
        }
        let window = match t.window {
            Some((e, l)) => format!("{} .. {}", format_time(e), format_time(l)),
            None => "not restorable (no checkpoint or log from a shard's start)".into(),
        };
        let _ = writeln!(
            out,
            "  table '{}' id {} {} {} shards, PITR {} days: {} objects, {:.1} MB; restorable {window}",
            t.meta.name,
            t.meta.id,
            t.meta.status.as_str(),
            t.meta.shards,
            t.meta.pitr_days,
            t.objects,
            t.bytes as f64 / 1e6
        );
    }
    if tables.is_empty() {
        let _ = writeln!(out, "no archived tables");
    }
    for p in &problems {
        let _ = writeln!(out, "problem: {p}");
    }
    Ok(out)
}

/// Restores `source` from the archive at `url` into a new table `target` of `data_dir`
/// (created if missing; an existing data directory gains the table).
pub fn restore_from_archive(
    url: &str,
    data_dir: &Path,
    source: &str,
    target: &str,
    at: RestoreAt,
    generation: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let archive = Archive::open(url)?;
    let rt = runtime()?;
    let fetch::Holdings {
        tables,
        live,
        problems,
    } = rt.block_on(fetch::catalog(&archive, SystemClock.now_us()))?;
    for p in &problems {
        eprintln!("warning: {p}");
    }
    let plan = fetch::plan_restore(&tables, source, generation, live.as_deref(), at)?;
    describe(&plan.table, plan.at_us, plan.bytes);
    let fresh_default = target == DEFAULT_TABLE && prepare_for_default(data_dir)?;
    let (db, _) = Db::open(data_dir, EngineConfig::default(), Arc::new(SystemClock))?;
    let db = Arc::new(db);
    if db.meta(target).is_some() {
        return Err(format!("table '{target}' already exists in {}", data_dir.display()).into());
    }
    // Our own scratch space, removed on every way out.
    let staging = data_dir.join(format!("restore-staging-{}", SystemClock.now_us()));
    let result = (|| -> Result<(u64, f64), Box<dyn std::error::Error>> {
        let done = AtomicU64::new(0);
        let bar = ProgressBar::new(plan.bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) downloading",
            )
            .expect("valid template"),
        );
        let dirs = rt.block_on(async {
            let dl = fetch::download(&archive, &plan, &staging, &done);
            tokio::pin!(dl);
            loop {
                tokio::select! {
                    r = &mut dl => break r,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        bar.set_position(done.load(Ordering::Relaxed));
                    }
                }
            }
        })?;
        bar.finish_and_clear();
        let downloaded = started.elapsed().as_secs_f64();
        // The source had PITR on (only such tables are archived): so has the copy, so a
        // server on the new host archives it again.
        let mut handle = db.restore_external(
            target.as_bytes(),
            plan.table.meta.id,
            dirs,
            plan.at_us,
            plan.table.meta.pitr_days,
        )?;
        super::restore::wait(&mut handle)?;
        Ok((done.load(Ordering::Relaxed), downloaded))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let items = db.table(target).map(|t| t.len()).unwrap_or(0);
    db.shutdown();
    if result.is_err() && fresh_default {
        eprintln!(
            "{} was made by this restore and now holds a FAILED 'default': remove it before trying again",
            data_dir.display()
        );
    }
    let (bytes, downloaded) = result?;
    println!(
        "restored '{source}' (generation {}, table id {}) as of {} into '{target}' in {}: {items} items, PITR on for {} days; downloaded {:.1} MB in {downloaded:.3} s, total {:.3} s",
        plan.table.generation,
        plan.table.meta.id,
        format_time(plan.at_us),
        data_dir.display(),
        plan.table.meta.pitr_days,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A new data directory for a restore whose target is `default`: it starts with an empty
/// catalog, so the restore makes `default` instead of finding a fresh empty one in the way.
/// Returns whether it did (false: the directory already holds a data directory).
fn prepare_for_default(data_dir: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let catalog = data_dir.join("catalog");
    let tables = data_dir.join("tables");
    let has_tables = std::fs::read_dir(&tables).is_ok_and(|mut d| d.next().is_some());
    if catalog.exists() || has_tables {
        return Ok(false);
    }
    crate::log::fsutil::create_private_dir(data_dir)?;
    let empty = crate::catalog::encode(&crate::catalog::Catalog::default());
    crate::log::fsutil::write_atomic(&catalog, &empty)?;
    Ok(true)
}

fn describe(t: &ArchivedTable, at_us: u64, bytes: u64) {
    eprintln!(
        "restoring '{}' (generation {}, id {}, {} shards) as of {}: {:.1} MB to download",
        t.meta.name,
        t.generation,
        t.meta.id,
        t.meta.shards,
        format_time(at_us),
        bytes as f64 / 1e6
    );
}
