//! `BatchWriteItem` (up to 25 puts and deletes) and `BatchGetItem` (up to 100 keys), over
//! any tables. Every write is carried out (durable before the answer), so `UnprocessedItems`
//! is always empty; `UnprocessedKeys` is empty unless the items found pass 16 MB, when the
//! keys not read are returned there, as DynamoDB does. As in DynamoDB, a batch is not
//! atomic: each write is its own.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::attr::validate_item;
use super::error::DynamoError;
use super::expr::{self, Placeholders};
use super::item::{encode_item, item_key, item_size, MAX_ITEM_BYTES};
use super::ops_read::read;
use super::store;
use super::wire::{parse, refuse, BatchGetItemInput, BatchWriteItemInput};
use crate::shard::Db;

pub const MAX_BATCH_WRITES: usize = 25;
pub const MAX_BATCH_GETS: usize = 100;
/// Items one BatchGetItem answer holds at most (DynamoDB's 16 MB).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

fn invalid(m: impl Into<String>) -> DynamoError {
    DynamoError::Validation(m.into())
}

pub async fn batch_write_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: BatchWriteItemInput = parse(body)?;
    let total: usize = req.request_items.values().map(Vec::len).sum();
    if total == 0 || total > MAX_BATCH_WRITES {
        return Err(invalid(format!(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1] ({total} requests)"
        )));
    }
    // Check everything before writing anything.
    let mut writes = Vec::with_capacity(total);
    for (name, list) in &req.request_items {
        let t = store::open(db, name)?;
        let mut keys = BTreeSet::new();
        for w in list {
            let (key, value) = match (&w.put_request, &w.delete_request) {
                (Some(p), None) => {
                    validate_item(&p.item)?;
                    let size = item_size(&p.item);
                    if size > MAX_ITEM_BYTES {
                        return Err(invalid(format!(
                            "Item size has exceeded the maximum allowed size ({size} bytes)"
                        )));
                    }
                    (item_key(&t.schema, &p.item, false)?, Some(encode_item(&p.item)))
                }
                (None, Some(d)) => (item_key(&t.schema, &d.key, true)?, None),
                _ => {
                    return Err(invalid(
                        "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes (each request is a PutRequest or a DeleteRequest)",
                    ))
                }
            };
            if !keys.insert(key.clone()) {
                return Err(invalid("Provided list of item keys contains duplicates"));
            }
            writes.push((t.table.clone(), key, value));
        }
    }
    let done = futures::future::join_all(
        writes
            .iter()
            .map(|(t, k, v)| store::write(t, k, v.as_deref())),
    )
    .await;
    for r in done {
        r?;
    }
    Ok(json!({ "UnprocessedItems": {} }))
}

pub fn batch_get_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: BatchGetItemInput = parse(body)?;
    let total: usize = req.request_items.values().map(|k| k.keys.len()).sum();
    if total == 0 || total > MAX_BATCH_GETS {
        return Err(invalid(format!(
            "Too many items requested for the BatchGetItem call ({total}; 1 to {MAX_BATCH_GETS})"
        )));
    }
    let mut responses: BTreeMap<String, Vec<super::attr::Item>> = BTreeMap::new();
    // Past 16 MB of items, as DynamoDB does, the rest go back in UnprocessedKeys.
    let mut unprocessed = serde_json::Map::new();
    let mut bytes = 0usize;
    for (name, ka) in &req.request_items {
        refuse(
            &ka.attributes_to_get,
            "AttributesToGet (use ProjectionExpression)",
            "BatchGetItem",
        )?;
        let mut ph = Placeholders::new(ka.expression_attribute_names.as_ref(), None);
        let paths = ka
            .projection_expression
            .as_deref()
            .map(|p| ph.projection(p))
            .transpose()?;
        ph.check_all_used()?;
        let t = store::open(db, name)?;
        let mut seen = BTreeSet::new();
        let out = responses.entry(name.clone()).or_default();
        let mut left = Vec::new();
        for k in &ka.keys {
            let key = item_key(&t.schema, k, true)?;
            if !seen.insert(key.clone()) {
                return Err(invalid("Provided list of item keys contains duplicates"));
            }
            if bytes >= MAX_RESPONSE_BYTES {
                left.push(k.clone());
                continue;
            }
            if let Some(item) = read(&t, &key)? {
                let item = match &paths {
                    Some(p) => expr::project(&item, p),
                    None => item,
                };
                bytes += item_size(&item);
                out.push(item);
            }
        }
        if !left.is_empty() {
            let mut again = json!({ "Keys": left });
            if let Some(p) = &ka.projection_expression {
                again["ProjectionExpression"] = json!(p);
            }
            if let Some(n) = &ka.expression_attribute_names {
                again["ExpressionAttributeNames"] = json!(n);
            }
            unprocessed.insert(name.clone(), again);
        }
    }
    Ok(json!({ "Responses": responses, "UnprocessedKeys": unprocessed }))
}
