//! The DynamoDB-compatible HTTP API (`rewind serve --dynamodb-listen ADDR`): the JSON
//! protocol of DynamoDB (`POST /`, `X-Amz-Target: DynamoDB_20120810.<Operation>`), enough
//! for the AWS SDKs' table, item and point-in-time-recovery calls. Items live in the same
//! tables the Redis protocol serves; `docs/DYNAMODB.md` describes the operations, the
//! encoding and the limits.
//!
//! - `http.rs`: listener, connections, auth check, body limit
//! - `wire.rs`: request shapes and body parsing
//! - `error.rs`: DynamoDB error types and statuses
//! - `attr.rs`, `schema.rs`, `item.rs`: attribute values, key schemas, storage encoding
//! - `store.rs`: table lookup and the durable write
//! - `describe.rs`: `TableDescription` and `ContinuousBackupsDescription`
//! - `expr/`: the expression language (conditions, updates, projections, key conditions)
//! - `ops_tables.rs`, `ops_write.rs`, `ops_read.rs`, `ops_batch.rs`, `ops_pitr.rs`: the
//!   operations

mod attr;
mod blocking;
mod describe;
mod error;
mod expr;
mod http;
mod item;
mod ops_batch;
mod ops_pitr;
mod ops_read;
mod ops_tables;
mod ops_write;
mod schema;
mod sigv4;
mod store;
mod wire;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde_json::Value;

pub use error::DynamoError;
pub use http::spawn;
pub use item::{decode_item, decode_key, encode_item, encode_key, KeyPart, SCHEMA_KEY};

use crate::shard::Db;

/// Largest request body accepted (DynamoDB's items are at most 400 KB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The operations rewind answers.
pub const SUPPORTED: [&str; 15] = [
    "CreateTable",
    "DeleteTable",
    "DescribeTable",
    "ListTables",
    "PutItem",
    "GetItem",
    "DeleteItem",
    "UpdateItem",
    "Scan",
    "Query",
    "BatchWriteItem",
    "BatchGetItem",
    "UpdateContinuousBackups",
    "DescribeContinuousBackups",
    "RestoreTableToPointInTime",
];

/// What the DynamoDB listener shares between its connections.
pub struct Dynamo {
    pub db: Arc<Db>,
    /// `--dynamodb-access-keys`: (key id, secret); when not empty, every request's SigV4
    /// signature must verify with one of them.
    pub access_keys: Vec<(String, String)>,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// Request counter, for `x-amzn-RequestId`.
    pub requests: AtomicU64,
    /// `--commit inline`: the listener's thread writes and syncs the logs for its requests.
    pub inline_commit: bool,
}

/// Runs operation `op` on a request body; the JSON answer or a DynamoDB error.
pub async fn dispatch(db: &Arc<Db>, op: &str, body: &[u8]) -> Result<Value, DynamoError> {
    match op {
        "CreateTable" => ops_tables::create_table(db, body).await,
        "DeleteTable" => ops_tables::delete_table(db, body).await,
        "DescribeTable" => ops_tables::describe_table(db, body),
        "ListTables" => ops_tables::list_tables(db, body),
        "PutItem" => ops_write::put_item(db, body).await,
        "GetItem" => ops_read::get_item(db, body),
        "DeleteItem" => ops_write::delete_item(db, body).await,
        "UpdateItem" => ops_write::update_item(db, body).await,
        "Scan" => ops_read::scan(db, body),
        "Query" => ops_read::query(db, body),
        "BatchWriteItem" => ops_batch::batch_write_item(db, body).await,
        "BatchGetItem" => ops_batch::batch_get_item(db, body),
        "UpdateContinuousBackups" => ops_pitr::update_continuous_backups(db, body).await,
        "DescribeContinuousBackups" => ops_pitr::describe_continuous_backups(db, body),
        "RestoreTableToPointInTime" => ops_pitr::restore_table_to_point_in_time(db, body).await,
        other => Err(DynamoError::UnknownOperation(format!(
            "Operation {other} is not supported by rewind's DynamoDB API (supported: {})",
            SUPPORTED.join(", ")
        ))),
    }
}

/// The storage key (the rewind key) of a DynamoDB key, given as the JSON of its key
/// attributes (`{"artist":{"S":"A"},"song":{"S":"B"}}`), in a table whose schema value (the
/// value of [`SCHEMA_KEY`]) is `schema_value`: what `PITR.HISTORY`/`PITR.GET` take.
pub fn storage_key(schema_value: &[u8], key_json: &str) -> Result<Vec<u8>, String> {
    let schema = item::decode_schema(schema_value)?
        .schema()
        .map_err(|e| e.to_string())?;
    let key: attr::Item =
        serde_json::from_str(key_json).map_err(|e| format!("not a DynamoDB key: {e}"))?;
    item::item_key(&schema, &key, true).map_err(|e| e.to_string())
}

/// An item value as DynamoDB JSON (`{"not_an_item": why}` for a value that is not one).
pub fn item_json(value: &[u8]) -> serde_json::Value {
    match item::decode_item(value) {
        Ok(item) => serde_json::to_value(item).unwrap_or(serde_json::Value::Null),
        Err(e) => serde_json::json!({ "not_an_item": e }),
    }
}
