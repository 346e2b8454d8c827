//! A net thread's commits: the thread that parsed a write also writes and syncs the log for
//! it, through its own io_uring ring, and goes on serving while the block is in flight.
//!
//! A connection that submits to a shard whose log nobody leads takes the lead at once
//! (`leader.rs`): it gathers what is queued, stages one block (`writer_stage.rs`) and hands
//! it to this thread's ring, without waiting. Whatever is submitted while that block is in
//! flight queues behind it. The thread's flusher task waits on the ring's eventfd; when the
//! block is durable it applies it, answers every producer, and starts the next block with
//! everything that queued meanwhile, or lets go of the log when nothing did. So each log has
//! at most one write in flight, batches form by themselves, and no request crosses a thread.
//!
//! Where io_uring cannot be set up, the flusher leads with blocking I/O instead, once per
//! tick of the runtime, for the logs its connections marked (as Redis's `beforeSleep` syncs
//! before it answers).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::Notify;

use super::io::async_ring::{self, Append, AsyncRing, Progress, MAX_APPENDS};
use super::io::IoFailure;
use super::leader::{end_batch, gather, Lead, Shared};
use super::writer::Submission;
use super::writer_core::WriterCore;
use super::writer_stage::Staged;

/// A block on its way to the disk through this thread's ring.
struct Flight {
    lead: Lead,
    batch: Vec<Submission>,
    st: Staged,
    prog: Progress,
}

fn op(st: &Staged) -> Append<'_> {
    Append {
        fd: st.fd,
        buf: st.io_bytes(),
        offset: st.io_offset(),
        sync: st.io_fdatasync(),
        dsync: st.io_dsync(),
    }
}

struct Local {
    notify: Arc<Notify>,
    /// This thread's ring, once the flusher made it (`None`: blocking commits).
    ring: Option<Rc<AsyncRing>>,
    /// Logs marked for a blocking lead at the end of the tick (no ring).
    pending: Vec<Arc<Shared>>,
    /// Blocks in flight, by ring slot.
    flights: Vec<Option<Flight>>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// What staging the next block of a led log came to.
enum Step {
    /// Nothing queued.
    Idle,
    /// Committed without asynchronous I/O (read-modify-writes that wrote nothing, an error,
    /// or a failpoint's blocking I/O): look again.
    Done,
    Staged(Vec<Submission>, Staged),
    /// The writer's state is gone (a panic); the lead was let go.
    Broken,
}

/// The staged block's I/O with the writer's own blocking engine, then its answers.
fn commit_blocking(core: &mut WriterCore, batch: &mut Vec<Submission>, mut st: Staged) {
    let outcome = core.write_staged(&mut st);
    let r = core.complete(st, outcome);
    core.settle(batch, r);
}

fn stage_next(lead: &Lead) -> Step {
    let Some(mut core) = lead.core() else {
        return Step::Broken;
    };
    let shared = lead.shared();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(mut batch) = gather(shared, &mut core) else {
            end_batch(shared, &mut core);
            return Step::Idle;
        };
        if batch.is_empty() || core.answer_if_empty(&mut batch) {
            end_batch(shared, &mut core);
            return Step::Done;
        }
        match core.stage(&batch) {
            Ok(st) if st.needs_blocking_io() => {
                commit_blocking(&mut core, &mut batch, st);
                end_batch(shared, &mut core);
                Step::Done
            }
            Ok(st) => Step::Staged(batch, st),
            Err(e) => {
                core.settle(&mut batch, Err(e));
                end_batch(shared, &mut core);
                Step::Done
            }
        }
    }));
    match caught {
        Ok(step) => step,
        Err(p) => {
            drop(core);
            let why = super::error::panic_message(p.as_ref());
            tracing::error!("log writer panicked: {why}; the shard refuses writes");
            shared.fail_all(&format!("the log writer panicked: {why}"));
            Step::Broken
        }
    }
}

/// Settles a block whose I/O came back; the lead, to go on with, unless the state is gone.
fn land(f: Flight) -> Option<Lead> {
    let Flight {
        lead,
        mut batch,
        st,
        mut prog,
    } = f;
    let outcome = prog.take_result().unwrap_or_else(|| {
        Err(IoFailure::Broken(std::io::Error::other(
            "io_uring append came back without a result",
        )))
    });
    let caught = {
        let mut core = lead.core()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let r = core.complete(st, outcome);
            if r.is_ok() {
                core.note_net_block();
            }
            core.settle(&mut batch, r);
            end_batch(lead.shared(), &mut core);
        }))
    };
    if let Err(p) = caught {
        let why = super::error::panic_message(p.as_ref());
        tracing::error!("log writer panicked: {why}; the shard refuses writes");
        lead.shared()
            .fail_all(&format!("the log writer panicked: {why}"));
        return None;
    }
    Some(lead)
}

impl Local {
    /// Stages the next block of `lead`'s log and hands it to the ring, or lets go of the
    /// log when nothing is queued.
    fn start(&mut self, mut lead: Lead) {
        let ring = self.ring.clone().expect("start runs with a ring");
        loop {
            match stage_next(&lead) {
                Step::Idle => match lead.finish() {
                    None => return,
                    Some(l) => lead = l, // something arrived meanwhile
                },
                Step::Done => {}
                Step::Broken => return,
                Step::Staged(mut batch, st) => {
                    let slot = match self.flights.iter().position(Option::is_none) {
                        Some(s) => s,
                        None if self.flights.len() < MAX_APPENDS => {
                            self.flights.push(None);
                            self.flights.len() - 1
                        }
                        None => {
                            // More logs in flight than the ring has room for: this one
                            // commits with blocking I/O.
                            let Some(mut core) = lead.core() else {
                                return;
                            };
                            let caught =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    commit_blocking(&mut core, &mut batch, st);
                                    end_batch(lead.shared(), &mut core);
                                }));
                            drop(core);
                            if caught.is_err() {
                                lead.shared().fail_all("the log writer panicked");
                                return;
                            }
                            continue;
                        }
                    };
                    let mut f = Flight {
                        lead,
                        batch,
                        st,
                        prog: Progress::default(),
                    };
                    // SAFETY: the bytes written stay in `f.st` (`block`, or with a direct
                    // write its aligned buffer: heap buffers that do not move with `f`) until
                    // its completions are reaped: `land` and `Uninstall` only take them after
                    // that, `abandon` leaks them.
                    unsafe { ring.push(slot, &op(&f.st), &mut f.prog) };
                    self.flights[slot] = Some(f);
                    if let Err(e) = ring.submit() {
                        tracing::error!(
                            "io_uring submit failed on a net thread: {e}; its logs refuse writes until a restart"
                        );
                        self.abandon_all();
                    }
                    return;
                }
            }
        }
    }

    /// Takes the ring's completions and lands every block that is done, starting each
    /// log's next block.
    fn drain(&mut self) {
        let Some(ring) = self.ring.clone() else {
            return;
        };
        let mut cq = Vec::new();
        ring.reap(&mut cq);
        for (slot, is_sync, res) in cq {
            match self.flights.get_mut(slot).and_then(Option::as_mut) {
                Some(f) => f.prog.note(is_sync, res),
                None => {
                    tracing::error!("io_uring: a completion for no block (slot {slot})");
                    ring.set_broken();
                }
            }
        }
        if ring.is_broken() {
            return self.abandon_all();
        }
        let mut resubmit = false;
        for slot in 0..self.flights.len() {
            let landed = match &mut self.flights[slot] {
                Some(f) if !f.prog.in_flight() => {
                    if async_ring::settle(&op(&f.st), &mut f.prog) {
                        // A short write: the rest goes in again.
                        // SAFETY: as in `start`.
                        unsafe { ring.push(slot, &op(&f.st), &mut f.prog) };
                        resubmit = true;
                        false
                    } else {
                        true
                    }
                }
                _ => false,
            };
            if landed {
                let f = self.flights[slot].take().expect("just seen");
                if let Some(lead) = land(f) {
                    self.start(lead);
                }
            }
        }
        // `start` above may have found the ring broken and given it up.
        if resubmit && self.ring.is_some() && ring.submit().is_err() {
            self.abandon_all();
        }
    }

    /// The ring can no longer be trusted: every block in flight is given up (its log
    /// refuses writes until a restart; its producers hear an error) and later commits on
    /// this thread are blocking.
    fn abandon_all(&mut self) {
        self.ring = None;
        for f in self.flights.iter_mut().filter_map(Option::take) {
            let mut f = f;
            // Every entry back and the block durable: it lands as usual (its producers are
            // answered with success; a restart would replay it anyway).
            // Every entry back: it lands as usual, durable or with its own error (its
            // producers hear which; a durable one would be replayed by a restart anyway).
            if !f.prog.in_flight() {
                let more =
                    f.prog.peek_result().is_none() && async_ring::settle(&op(&f.st), &mut f.prog);
                if !more {
                    drop(land(f));
                    continue;
                }
            }
            let Flight {
                lead,
                mut batch,
                st,
                ..
            } = f;
            match lead.core() {
                Some(mut core) => {
                    let e = core.abandon(st);
                    core.settle(&mut batch, Err(e));
                }
                // The kernel may still read the block's buffers (the direct one too): leak
                // all of it.
                None => std::mem::forget(st),
            };
        }
    }

    fn in_flight(&self) -> bool {
        self.flights.iter().any(Option::is_some)
    }
}

/// Whether this thread has a committer (a net thread with `--commit inline`).
pub(crate) fn installed() -> bool {
    LOCAL.with(|l| l.try_borrow().map_or(true, |l| l.is_some()))
}

/// Runs `f` on this thread's state, if it has a flusher.
fn with_local<T>(f: impl FnOnce(&mut Local) -> T) -> Option<T> {
    LOCAL.with(|l| l.borrow_mut().as_mut().map(f))
}

/// Clears the thread's flusher when its task ends: blocks in flight are waited for and
/// landed, marked logs go to their background threads.
struct Uninstall;

impl Drop for Uninstall {
    fn drop(&mut self) {
        let Some(mut local) = LOCAL.with(|l| l.borrow_mut().take()) else {
            return;
        };
        if let Some(ring) = local.ring.clone() {
            while local.in_flight() && !ring.is_broken() {
                if local.flights.iter().flatten().all(|f| !f.prog.in_flight()) {
                    break;
                }
                ring.wait_blocking();
                let mut cq = Vec::new();
                ring.reap(&mut cq);
                for (slot, is_sync, res) in cq {
                    if let Some(f) = local.flights.get_mut(slot).and_then(Option::as_mut) {
                        f.prog.note(is_sync, res);
                    }
                }
            }
            if ring.is_broken() {
                local.abandon_all();
            }
            for f in local.flights.iter_mut().filter_map(Option::take) {
                let mut f = f;
                if async_ring::settle(&op(&f.st), &mut f.prog) {
                    // A short write on the way out: not resubmitted; nothing acknowledged.
                    f.prog = Progress::default();
                }
                drop(land(f));
            }
        }
        for s in local.pending {
            s.wake_background();
        }
    }
}

/// Installs this thread's committer and returns its flusher task, which must be spawned on
/// this thread's single-threaded runtime (it never moves to another thread).
pub fn flusher() -> impl Future<Output = ()> {
    let notify = Arc::new(Notify::new());
    LOCAL.with(|l| {
        *l.borrow_mut() = Some(Local {
            notify: notify.clone(),
            ring: None,
            pending: Vec::new(),
            flights: Vec::new(),
        })
    });
    async move {
        let _uninstall = Uninstall;
        // Made inside the runtime: its eventfd is registered with this thread's reactor.
        let ring = match AsyncRing::new() {
            Ok(r) => Some(Rc::new(r)),
            Err(e) => {
                tracing::warn!(
                    "io_uring unavailable on a net thread ({e}); it commits with blocking pwrite + fdatasync"
                );
                None
            }
        };
        with_local(|l| l.ring = ring.clone());
        loop {
            let (flying, pending) =
                with_local(|l| (l.in_flight(), std::mem::take(&mut l.pending))).unwrap_or_default();
            // Without a (working) ring: blocking commits, once per tick.
            for s in pending {
                s.lead();
            }
            match (&ring, flying) {
                (Some(r), true) => {
                    r.readable().await;
                    with_local(Local::drain);
                }
                _ => notify.notified().await,
            }
        }
    }
}

/// Makes sure the log in `shared`, just given a submission that nobody leads, gets led on
/// this thread: at once through the ring, else by the flusher at the end of the tick. False
/// when the thread has no flusher.
pub(crate) fn defer(shared: &Arc<Shared>) -> bool {
    with_local(|l| {
        if l.ring.as_ref().is_some_and(|r| !r.is_broken()) {
            if let Some(lead) = Lead::try_begin(shared) {
                l.start(lead);
            }
            l.notify.notify_one();
            return;
        }
        if !l.pending.iter().any(|p| Arc::ptr_eq(p, shared)) {
            l.pending.push(shared.clone());
            if l.pending.len() == 1 {
                l.notify.notify_one();
            }
        }
    })
    .is_some()
}
