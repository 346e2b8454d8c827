//! Running the shipper: its own thread and runtime, the pass loop with backoff, lease checks
//! and retention, and a bounded last pass at shutdown.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::ArchiveError;
use super::lease;
use super::ship::Shipper;
use super::store::Archive;
use crate::shard::{ArchiveState, Db};

/// The longest pause between retries while the archive fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest the last pass on shutdown may take.
const SHUTDOWN_PASS: Duration = Duration::from_secs(15);
/// How often the archive's retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// How often a running server checks it still holds the lease.
const LEASE_CHECK: Duration = Duration::from_secs(10);
/// How long start-up waits for the archive before serving without it (and retrying).
const START_WAIT: Duration = Duration::from_secs(10);

/// Starts archiving on its own thread (with its own runtime: the HTTP client's connections
/// live there). Another generation holding the lease is returned as an error; an archive that
/// cannot be reached is not: the server starts, reports it, and keeps trying, while local
/// retention keeps everything the archive has not got.
pub fn spawn(
    archive: Archive,
    db: Arc<Db>,
    takeover: bool,
    lag: Duration,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ArchiveError> {
    let mut shipper = Shipper::new(archive, db)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::Builder::new()
        .name("archive".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(ArchiveError::io(Path::new("tokio runtime"), e)));
                    return;
                }
            };
            rt.block_on(async {
                let first = tokio::time::timeout(START_WAIT, shipper.acquire(takeover)).await;
                let acquired = match first {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) if e.is_fencing() => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Ok(Err(e)) => {
                        report(shipper.state(), &e);
                        false
                    }
                    Err(_) => {
                        let state = shipper.state();
                        state.add(&state.errors, 1);
                        state.set_status("error: the archive did not answer within 10 s; retrying");
                        false
                    }
                };
                let _ = tx.send(Ok(()));
                let state = shipper.state().clone();
                let passes = run(&mut shipper, acquired, takeover, lag, &stop);
                // A bug in a pass must not leave the server reporting "ok" while nothing
                // ships: it stops archiving, says so, and local retention keeps everything.
                if let Err(p) =
                    futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(passes)).await
                {
                    let why = crate::log::error::panic_message(p.as_ref());
                    tracing::error!("the archive shipper panicked and stopped: {why}");
                    state.add(&state.errors, 1);
                    state.set_status(format!(
                        "error: the shipper stopped after a panic ({why}); restart the server"
                    ));
                }
            });
        })
        .map_err(|e| ArchiveError::io(Path::new("archive thread"), e))?;
    match rx.recv() {
        Ok(Ok(())) => Ok(t),
        Ok(Err(e)) => {
            let _ = t.join();
            Err(e)
        }
        Err(_) => Err(ArchiveError::Plan(
            "the archive thread stopped while starting".into(),
        )),
    }
}

fn report(state: &ArchiveState, e: &ArchiveError) {
    state.add(&state.errors, 1);
    state.set_status(format!("error: {e}"));
}

/// Runs `fut` unless `stop` is set first (checked every 50 ms). A pass cut short keeps what
/// it shipped: cursors move only after each object is stored.
async fn unless_stopped<T>(
    stop: &AtomicBool,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return Some(r),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
            }
        }
    }
}

async fn run(
    shipper: &mut Shipper,
    mut acquired: bool,
    takeover: bool,
    lag: Duration,
    stop: &AtomicBool,
) {
    let state = shipper.state().clone();
    let mut backoff = Duration::ZERO;
    let mut last_lease = Instant::now();
    let mut last_retention = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result = if acquired {
            unless_stopped(stop, pass(shipper, &mut last_lease, &mut last_retention)).await
        } else {
            unless_stopped(stop, shipper.acquire(takeover))
                .await
                .inspect(|r| acquired = r.is_ok())
        };
        let Some(result) = result else { break };
        match result {
            Ok(()) => {
                backoff = Duration::ZERO;
                state.set_status("ok");
            }
            Err(e) if e.is_fencing() => {
                tracing::error!("archiving stopped: {e}");
                state.add(&state.errors, 1);
                state.set_status(format!("fenced: {e}"));
                return;
            }
            // The store failing: back off. A local problem with one table (a damaged file, a
            // diverged history) is reported on every pass without slowing the others.
            Err(e @ ArchiveError::Store { .. }) => {
                backoff = (backoff * 2)
                    .max(lag.max(Duration::from_millis(100)))
                    .min(MAX_BACKOFF.max(lag));
                tracing::warn!("archive: {e}; retrying in {:.1} s", backoff.as_secs_f64());
                report(&state, &e);
            }
            Err(e) => {
                backoff = Duration::ZERO;
                report(&state, &e);
            }
        }
        let pause = lag.max(backoff).saturating_sub(started.elapsed());
        let until = Instant::now() + pause;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50).min(until - Instant::now())).await;
        }
    }
    if !acquired {
        return;
    }
    // A last pass on the way out, so a clean stop leaves the archive current; bounded, so an
    // unreachable archive does not hold the shutdown up (the next start ships the rest). Only
    // while this server still holds the lease.
    let last = async {
        lease::check(&shipper.archive, &shipper.generation).await?;
        shipper.tick().await
    };
    match tokio::time::timeout(SHUTDOWN_PASS, last).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("archive: last pass on shutdown failed: {e}"),
        Err(_) => tracing::warn!(
            "archive: last pass on shutdown gave up after {} s; the next start ships the rest",
            SHUTDOWN_PASS.as_secs()
        ),
    }
}

/// One pass: ship, and every so often check the lease and run retention; those two run even
/// when some table failed to ship, so a server with one broken table is still fenced and
/// still trims the others.
async fn pass(
    shipper: &mut Shipper,
    last_lease: &mut Instant,
    last_retention: &mut Instant,
) -> Result<(), ArchiveError> {
    let shipped = shipper.tick().await.map(|_| ());
    if last_lease.elapsed() >= LEASE_CHECK {
        lease::check(&shipper.archive, &shipper.generation).await?;
        *last_lease = Instant::now();
    }
    if last_retention.elapsed() >= RETENTION_EVERY {
        // Once a minute even when it fails (no DELETE permission, say): it lists the whole
        // generation.
        *last_retention = Instant::now();
        super::retain::run(shipper).await?;
    }
    shipped
}
