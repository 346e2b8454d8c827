//! `rewind restore`: a point-in-time restore without a running server, with a progress bar.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::log::SystemClock;
use crate::restore::{format_time, Phase};
use crate::shard::{Db, DbError, EngineConfig, RestoreAt};

/// Restores `source` at `at` into a new table `target` in `data_dir` (taking its lock).
pub fn restore(data_dir: &Path, source: &str, target: &str, at: RestoreAt) -> Result<(), DbError> {
    let (db, _) = Db::open(data_dir, EngineConfig::default(), Arc::new(SystemClock))?;
    let db = Arc::new(db);
    let mut handle = db.begin_restore(source, target.as_bytes(), at)?;
    let result = wait(&mut handle);
    let s = handle.progress.snapshot();
    db.shutdown();
    match result {
        Ok(()) => {
            let items = db.table(target).map(|t| t.len()).unwrap_or(0);
            println!(
                "restored '{source}' as of {} into '{target}': {items} items, {} records replayed ({:.1} MB of log) in {:.3} s",
                format_time(handle.progress.at_us),
                s.records,
                s.bytes_done as f64 / 1e6,
                s.elapsed_s
            );
            Ok(())
        }
        Err(why) => Err(DbError::BadTime(format!("restore failed: {why}"))),
    }
}

/// Shows the restore's progress until it ends.
pub(super) fn wait(handle: &mut crate::shard::RestoreHandle) -> Result<(), String> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
        )
        .expect("valid template"),
    );
    let result = loop {
        let s = handle.progress.snapshot();
        bar.set_length(s.bytes_total);
        bar.set_position(s.bytes_done);
        let phase = if s.phase == Phase::Writing {
            "writing the target"
        } else {
            "replaying"
        };
        bar.set_message(format!(
            "{phase}: {} records, log at {}",
            s.records,
            format_time(s.replay_us)
        ));
        match handle.done.try_recv() {
            Ok(r) => break r,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(_) => break Err("the restore thread stopped".into()),
        }
    };
    bar.finish_and_clear();
    result
}
