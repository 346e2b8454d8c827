//! `PutItem`, `GetItem` and `DeleteItem`: one key of the table's map, read straight from it
//! and written through the shard's log (answered only once durable). Reads are always
//! strongly consistent. Conditions and update expressions are refused by name.

use serde_json::{json, Value};

use super::attr::{validate_item, Item};
use super::error::DynamoError;
use super::item::{decode_item, encode_item, item_key, item_size, MAX_ITEM_BYTES};
use super::store::{self, DynTable};
use super::wire::{parse, DeleteItemInput, GetItemInput, PutItemInput};
use crate::shard::Db;

/// Whether `ReturnValues` asks for the old item (`ALL_OLD`); `NONE` or absent does not.
fn wants_old(rv: &Option<String>) -> Result<bool, DynamoError> {
    match rv.as_deref() {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(DynamoError::Validation(format!(
            "Return values set to invalid value: {other} (rewind's PutItem and DeleteItem take NONE or ALL_OLD)"
        ))),
    }
}

/// The item stored under `key`, if any.
fn read(t: &DynTable, key: &[u8]) -> Result<Option<Item>, DynamoError> {
    let Some(value) = t.table.map_for(key).get(key).map(|v| v.to_vec()) else {
        return Ok(None);
    };
    decode_item(&value).map(Some).map_err(|why| {
        DynamoError::Internal(format!(
            "the value stored for this key in table {} is not a DynamoDB item: {why}",
            t.table.name()
        ))
    })
}

fn old_attributes(old: Option<Item>) -> Value {
    match old {
        Some(item) => json!({ "Attributes": item }),
        None => json!({}),
    }
}

pub async fn put_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: PutItemInput = parse(body)?;
    req.conditions.refuse("PutItem")?;
    let want_old = wants_old(&req.return_values)?;
    let t = store::open(db, &req.table_name)?;
    validate_item(&req.item)?;
    let key = item_key(&t.schema, &req.item, false)?;
    let size = item_size(&req.item);
    if size > MAX_ITEM_BYTES {
        return Err(DynamoError::Validation(format!(
            "Item size has exceeded the maximum allowed size ({size} bytes; the limit is {MAX_ITEM_BYTES})"
        )));
    }
    let old = if want_old { read(&t, &key)? } else { None };
    store::write(&t.table, &key, Some(&encode_item(&req.item))).await?;
    Ok(old_attributes(old))
}

pub async fn delete_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: DeleteItemInput = parse(body)?;
    req.conditions.refuse("DeleteItem")?;
    let want_old = wants_old(&req.return_values)?;
    let t = store::open(db, &req.table_name)?;
    let key = item_key(&t.schema, &req.key, true)?;
    if !t.table.map_for(&key).contains_key(&key[..]) {
        return Ok(json!({}));
    }
    let old = if want_old { read(&t, &key)? } else { None };
    store::write(&t.table, &key, None).await?;
    Ok(old_attributes(old))
}

/// The attribute names a `GetItem` asks for, or `None` for all of them.
fn projection(req: &GetItemInput) -> Result<Option<Vec<String>>, DynamoError> {
    fn invalid<T>(m: &str) -> Result<T, DynamoError> {
        Err(DynamoError::Validation(m.to_string()))
    }
    let names = req.expression_attribute_names.as_ref();
    match (&req.attributes_to_get, &req.projection_expression) {
        (Some(_), Some(_)) => invalid("Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}"),
        (_, None) if names.is_some() => invalid("Value provided in ExpressionAttributeNames unused in expressions"),
        (Some(a), None) => Ok(Some(a.clone())),
        (None, None) => Ok(None),
        (None, Some(expr)) => expr
            .split(',')
            .map(|p| {
                let p = p.trim();
                if p.is_empty() {
                    return invalid("Invalid ProjectionExpression: an attribute name is empty");
                }
                if p.contains(['.', '[']) {
                    return invalid("Nested attribute paths in ProjectionExpression are not supported by rewind (top-level attribute names only)");
                }
                match p.strip_prefix('#') {
                    Some(_) => names
                        .and_then(|n| n.get(p))
                        .cloned()
                        .map_or_else(|| invalid(&format!("An expression attribute name used in the document path is not defined; attribute name: {p}")), Ok),
                    None => Ok(p.to_string()),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

pub fn get_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: GetItemInput = parse(body)?;
    let wanted = projection(&req)?;
    let t = store::open(db, &req.table_name)?;
    let key = item_key(&t.schema, &req.key, true)?;
    Ok(match read(&t, &key)? {
        None => json!({}),
        Some(mut item) => {
            if let Some(w) = wanted {
                item.retain(|name, _| w.contains(name));
            }
            json!({ "Item": item })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(j: &str) -> GetItemInput {
        parse(j.as_bytes()).unwrap()
    }

    #[test]
    fn projections_of_top_level_names() {
        let r = get(
            r##"{"TableName":"t","Key":{},"ProjectionExpression":"a, #b","ExpressionAttributeNames":{"#b":"bee"}}"##,
        );
        assert_eq!(projection(&r).unwrap().unwrap(), ["a", "bee"]);
        let r = get(r#"{"TableName":"t","Key":{},"AttributesToGet":["x"]}"#);
        assert_eq!(projection(&r).unwrap().unwrap(), ["x"]);
        for bad in [
            r#"{"TableName":"t","Key":{},"ProjectionExpression":"a.b"}"#,
            r##"{"TableName":"t","Key":{},"ProjectionExpression":"#x"}"##,
            r#"{"TableName":"t","Key":{},"ProjectionExpression":"a,,b"}"#,
            r#"{"TableName":"t","Key":{},"ProjectionExpression":"a","AttributesToGet":["a"]}"#,
        ] {
            assert!(projection(&get(bad)).is_err(), "{bad}");
        }
        assert!(wants_old(&Some("UPDATED_NEW".into())).is_err());
        assert!(wants_old(&Some("ALL_OLD".into())).unwrap());
    }
}
