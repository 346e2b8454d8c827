//! `CreateTable`, `DeleteTable`, `DescribeTable` and `ListTables`.
//!
//! A DynamoDB table is a rewind table whose key schema is stored inside it under a reserved
//! key, written through the durable write path before `CreateTable` answers. Tables made
//! either way are listed by both `ListTables` and `TABLE.LIST`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::blocking::off_listener;
use super::describe::describe;
use super::error::DynamoError;
use super::item::{encode_schema, SCHEMA_KEY};
use super::schema::StoredSchema;
use super::store::{self, check_name};
use super::wire::{parse, refuse, CreateTableInput, ListTablesInput, TableNameInput};
use crate::shard::Db;

pub async fn create_table(db: &Arc<Db>, body: &[u8]) -> Result<Value, DynamoError> {
    let req: CreateTableInput = parse(body)?;
    check_name(&req.table_name)?;
    refuse(
        &req.global_secondary_indexes,
        "GlobalSecondaryIndexes",
        "CreateTable",
    )?;
    refuse(
        &req.local_secondary_indexes,
        "LocalSecondaryIndexes",
        "CreateTable",
    )?;
    if req.stream_specification.is_some_and(|s| s.stream_enabled) {
        return Err(DynamoError::Validation(
            "StreamSpecification with StreamEnabled is not supported by rewind (no streams)".into(),
        ));
    }
    let stored = StoredSchema {
        key_schema: req.key_schema,
        attribute_definitions: req.attribute_definitions,
    };
    stored.schema()?;
    // Created, given its schema (or taken away again) and described as a task of its own on
    // the listener's runtime (its one thread): a client that hangs up mid-request drops this
    // future, not that task, so it does not leave a table without its schema behind (a
    // shutdown between the create and the schema's write still can).
    let create = create_with_schema(db.clone(), req.table_name, stored);
    tokio::spawn(create)
        .await
        .map_err(|e| DynamoError::Internal(format!("CreateTable did not finish: {e}")))?
}

async fn create_with_schema(
    db: Arc<Db>,
    name: String,
    stored: StoredSchema,
) -> Result<Value, DynamoError> {
    let (d, n) = (db.clone(), name.clone());
    let table = off_listener(move || d.create_table(n.as_bytes()))
        .await?
        .map_err(DynamoError::from_db)?;
    if let Err(e) = store::write(&table, SCHEMA_KEY, Some(&encode_schema(&stored))).await {
        // Without its schema the table would look like a Redis one: take it away again.
        drop(table);
        let (d, n) = (db.clone(), name.clone());
        let dropped = off_listener(move || d.drop_table(n.as_bytes())).await;
        if let Err(drop_err) = dropped.and_then(|r| r.map_err(DynamoError::from_db)) {
            tracing::error!("CreateTable {name}: schema write failed ({e}) and so did dropping the table: {drop_err}");
        }
        return Err(e);
    }
    Ok(json!({ "TableDescription": describe(&db, &name, true)? }))
}

pub async fn delete_table(db: &Arc<Db>, body: &[u8]) -> Result<Value, DynamoError> {
    let req: TableNameInput = parse(body)?;
    let mut desc = describe(db, &req.table_name, false)?;
    let (d, n) = (db.clone(), req.table_name.clone());
    off_listener(move || d.drop_table(n.as_bytes()))
        .await?
        .map_err(DynamoError::from_db)?;
    desc.table_status = "DELETING";
    Ok(json!({ "TableDescription": desc }))
}

pub fn describe_table(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: TableNameInput = parse(body)?;
    Ok(json!({ "Table": describe(db, &req.table_name, true)? }))
}

pub fn list_tables(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: ListTablesInput = parse(body)?;
    let limit = match req.limit {
        None => 100,
        Some(n @ 1..=100) => n as usize,
        Some(n) => {
            return Err(DynamoError::Validation(format!(
                "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"
            )))
        }
    };
    let names: Vec<String> = db
        .table_names()
        .into_iter()
        .filter(|n| {
            req.exclusive_start_table_name
                .as_ref()
                .is_none_or(|start| n > start)
        })
        .collect();
    let more = names.len() > limit;
    let page = &names[..names.len().min(limit)];
    let mut out = json!({ "TableNames": page });
    if more {
        out["LastEvaluatedTableName"] = json!(page.last());
    }
    Ok(out)
}
