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
