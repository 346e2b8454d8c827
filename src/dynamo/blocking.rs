//! Disk work of the DynamoDB operations (catalog fsyncs, joining a dropped table's writers,
//! deleting its files) goes to tokio's blocking pool, not the listener's one thread, as the
//! Redis front door's `src/server/blocking.rs` does for its commands (which this module
//! cannot call: `server` depends on `dynamo`, not the other way round).

use super::error::DynamoError;

/// Runs `f` on tokio's blocking pool and waits for it without holding the listener's thread.
pub async fn off_listener<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DynamoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DynamoError::Internal(format!("the operation did not finish: {e}")))
}
