//! The DynamoDB view of a rewind table: finding a table and its key schema, and writing
//! through the same durable path as the Redis commands (a record batch submitted to the
//! owning shard's log, answered only once the block holding it is written and synced and the
//! map updated).

use std::sync::Arc;

use super::error::DynamoError;
use super::item::{decode_schema, SCHEMA_KEY};
use super::schema::{Schema, StoredSchema};
use crate::catalog::validate_table_name;
use crate::log::record::RecordBatch;
use crate::log::CommitError;
use crate::shard::{Db, Table};

/// A live table with a DynamoDB key schema.
pub struct DynTable {
    pub table: Arc<Table>,
    pub schema: Schema,
}

/// Checks a table name as DynamoDB does (rewind's rules are the same: 3 to 255 of
/// `a-z A-Z 0-9 _ - .`).
pub fn check_name(name: &str) -> Result<(), DynamoError> {
    validate_table_name(name.as_bytes())
        .map(|_| ())
        .map_err(DynamoError::Validation)
}

/// The schema stored in a table; `None` for a table made through the Redis protocol.
pub fn load_schema(table: &Table) -> Option<Result<StoredSchema, String>> {
    let value = table.map_for(SCHEMA_KEY).get(SCHEMA_KEY)?;
    Some(decode_schema(&value))
}

/// The message for a table that has no key schema.
pub fn no_schema(name: &str) -> DynamoError {
    DynamoError::Validation(format!(
        "Table {name} has no DynamoDB key schema (it was made through the Redis protocol); create a table with CreateTable to use it here"
    ))
}

/// A live table for an item operation.
pub fn open(db: &Db, name: &str) -> Result<DynTable, DynamoError> {
    check_name(name)?;
    // A table that is being restored is not there yet for item operations, as in DynamoDB.
    let table = db.table(name).ok_or_else(|| DynamoError::not_found(name))?;
    let stored = match load_schema(&table) {
        None => return Err(no_schema(name)),
        Some(Err(why)) => {
            return Err(DynamoError::Internal(format!(
                "the key schema of table {name} cannot be read: {why}"
            )))
        }
        Some(Ok(s)) => s,
    };
    let schema = stored
        .schema()
        .map_err(|e| DynamoError::Internal(format!("stored key schema of {name}: {e}")))?;
    Ok(DynTable { table, schema })
}

/// Puts (`Some`) or deletes (`None`) one key and waits until it is durable.
pub async fn write(table: &Table, key: &[u8], value: Option<&[u8]>) -> Result<(), DynamoError> {
    if table.is_dropped() {
        return Err(DynamoError::not_found(table.name()));
    }
    let mut batch = RecordBatch::new();
    match value {
        Some(v) => batch.put(key, v),
        None => batch.delete(key),
    }
    let shard = table.shard_for(key);
    let rx = table.shards[shard].log.submit_batch(batch);
    match rx.await.unwrap_or(Err(CommitError::Closed)) {
        Ok(_) => Ok(()),
        Err(CommitError::Closed) if table.is_dropped() => Err(DynamoError::not_found(table.name())),
        Err(e) => Err(DynamoError::Internal(format!("write not committed: {e}"))),
    }
}

/// What a read-modify-write does to its item.
pub enum Change {
    Put(super::attr::Item),
    Delete,
    Keep,
}

/// Reads the item under `key` and decides what to write, in the shard's commit order with
/// every other write to the key from either front door (the decision runs on the log's
/// leader, between the writes before it and those after it), then waits until what it
/// wrote is durable. `decide` sees the item (`None`: absent) and returns the change and an
/// answer for the caller, or an error (nothing is written).
pub async fn read_modify_write<T: Send + 'static>(
    table: &Table,
    key: &[u8],
    decide: impl FnOnce(Option<super::attr::Item>) -> Result<(Change, T), DynamoError> + Send + 'static,
) -> Result<T, DynamoError> {
    use crate::log::{RmwDecision, RmwOp};
    if table.is_dropped() {
        return Err(DynamoError::not_found(table.name()));
    }
    let slot: Arc<std::sync::Mutex<Option<Result<T, DynamoError>>>> = Arc::default();
    let out = slot.clone();
    let name = table.name().to_string();
    let op = RmwOp::new(key, move |cur| {
        let item = match cur {
            None => Ok(None),
            Some(bytes) => super::item::decode_item(bytes).map(Some).map_err(|why| {
                DynamoError::Internal(format!(
                    "the value stored for this key in table {name} is not a DynamoDB item: {why}"
                ))
            }),
        };
        let (decision, answer) = match item.and_then(decide) {
            Ok((Change::Put(i), t)) => (RmwDecision::Put(super::item::encode_item(&i)), Ok(t)),
            Ok((Change::Delete, t)) => (RmwDecision::Delete, Ok(t)),
            Ok((Change::Keep, t)) => (RmwDecision::Keep, Ok(t)),
            Err(e) => (RmwDecision::Keep, Err(e)),
        };
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
        decision
    });
    let shard = table.shard_for(key);
    let rx = table.shards[shard].log.submit_rmw(vec![op]);
    match rx.await.unwrap_or(Err(CommitError::Closed)) {
        Ok(_) => {}
        Err(CommitError::Closed) if table.is_dropped() => {
            return Err(DynamoError::not_found(table.name()))
        }
        Err(e) => return Err(DynamoError::Internal(format!("write not committed: {e}"))),
    }
    let answer = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    answer.unwrap_or_else(|| Err(DynamoError::Internal("the write was not decided".into())))
}
