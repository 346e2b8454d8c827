//! Work that may block on the disk (catalog fsyncs, joining a dropped table's writer threads,
//! deleting its files) runs on tokio's blocking pool, never on a net thread: the other
//! connections of that thread keep being served meanwhile.

/// Runs `f` on the blocking pool and waits for it without blocking the net thread. A panic
/// in `f` becomes an error message.
pub async fn off_net_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        if e.is_panic() {
            format!(
                "internal error: {}",
                crate::log::error::panic_message(e.into_panic().as_ref())
            )
        } else {
            "internal error: the task was cancelled".to_string()
        }
    })
}
