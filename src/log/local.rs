//! A net thread's flusher: the writes its connections gathered in one tick of the thread's
//! single-threaded runtime are committed by the thread itself, once, at the end of the tick.
//!
//! A connection that submits does not write: it marks the shard's log pending here and
//! waits. The flusher task, woken by the first mark, runs after every connection the runtime
//! woke in the same tick (they were queued before it), then leads each pending log
//! (`leader.rs`): one block per shard for everything the tick gathered, written, synced and
//! answered on this thread. While it syncs, new requests wait in the sockets, as Redis's
//! `beforeSleep` makes them wait for its `fsync`; they form the next tick's block.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Notify;

use super::leader::Shared;

struct Local {
    pending: Vec<Arc<Shared>>,
    notify: Arc<Notify>,
}

thread_local! {
    static FLUSHER: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Clears the thread's flusher when its task ends, so later submissions on this thread go to
/// the shards' background threads instead of waiting for a flusher that is gone.
struct Uninstall;

impl Drop for Uninstall {
    fn drop(&mut self) {
        let left = FLUSHER.with(|f| f.borrow_mut().take());
        // Marked but not led: hand them to their background threads.
        for s in left.map(|l| l.pending).unwrap_or_default() {
            s.wake_background();
        }
    }
}

/// Installs a flusher on this thread and returns its task, which must be spawned on this
/// thread's single-threaded runtime (it never moves to another thread).
pub fn flusher() -> impl Future<Output = ()> {
    let notify = Arc::new(Notify::new());
    FLUSHER.with(|f| {
        *f.borrow_mut() = Some(Local {
            pending: Vec::new(),
            notify: notify.clone(),
        })
    });
    async move {
        let _uninstall = Uninstall;
        loop {
            notify.notified().await;
            let logs = FLUSHER.with(|f| {
                f.borrow_mut()
                    .as_mut()
                    .map(|l| std::mem::take(&mut l.pending))
                    .unwrap_or_default()
            });
            for s in logs {
                s.lead();
            }
        }
    }
}

/// Marks `shared` for this thread's flusher. False when the thread has none.
pub(crate) fn defer(shared: &Arc<Shared>) -> bool {
    FLUSHER.with(|f| {
        let mut f = f.borrow_mut();
        let Some(l) = f.as_mut() else {
            return false;
        };
        if !l.pending.iter().any(|p| Arc::ptr_eq(p, shared)) {
            l.pending.push(shared.clone());
            if l.pending.len() == 1 {
                l.notify.notify_one();
            }
        }
        true
    })
}
