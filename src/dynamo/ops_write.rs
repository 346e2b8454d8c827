//! `PutItem`, `DeleteItem` and `UpdateItem`, with `ConditionExpression`, `ReturnValues` and
//! `ReturnValuesOnConditionCheckFailure`. Each is a read-modify-write decided in the shard's
//! commit order (`store::read_modify_write`): the condition, the update and the old values
//! returned all see the item exactly as the write before it left it, so two concurrent
//! conditional writes never both succeed and an update never loses another.

use serde_json::{json, Value};

use super::attr::{validate_item, Item};
use super::error::DynamoError;
use super::expr::{self, Cond, Kind, Placeholders};
use super::item::{item_key, item_size, MAX_ITEM_BYTES};
use super::store::{self, Change};
use super::wire::{parse, Conditions, DeleteItemInput, PutItemInput, UpdateItemInput};
use crate::shard::Db;

/// `ReturnValues`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Returns {
    None,
    AllOld,
    UpdatedOld,
    AllNew,
    UpdatedNew,
}

fn returns(rv: &Option<String>, op: &str) -> Result<Returns, DynamoError> {
    let r = match rv.as_deref() {
        None | Some("NONE") => Returns::None,
        Some("ALL_OLD") => Returns::AllOld,
        Some("UPDATED_OLD") => Returns::UpdatedOld,
        Some("ALL_NEW") => Returns::AllNew,
        Some("UPDATED_NEW") => Returns::UpdatedNew,
        Some(other) => {
            return Err(DynamoError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
            )))
        }
    };
    if op != "UpdateItem" && !matches!(r, Returns::None | Returns::AllOld) {
        return Err(DynamoError::Validation(
            "Return values set to invalid value".into(),
        ));
    }
    Ok(r)
}

/// The condition of a write, resolved (`None`: none was given).
fn condition(c: &Conditions, ph: &mut Placeholders<'_>) -> Result<Option<Cond>, DynamoError> {
    c.condition_expression
        .as_deref()
        .map(|e| ph.condition(e, Kind::Condition))
        .transpose()
}

/// Checks `cond` against the item as it is; a failure carries it when asked.
fn check(cond: &Option<Cond>, old: Option<&Item>, with_old: bool) -> Result<(), DynamoError> {
    let Some(c) = cond else { return Ok(()) };
    if expr::eval_condition(old, c)? {
        return Ok(());
    }
    Err(DynamoError::ConditionalCheckFailed {
        message: "The conditional request failed".into(),
        item: if with_old {
            old.cloned().map(Box::new)
        } else {
            None
        },
    })
}

fn attributes(item: Option<Item>) -> Value {
    match item {
        Some(i) if !i.is_empty() => json!({ "Attributes": i }),
        _ => json!({}),
    }
}

fn check_size(item: &Item) -> Result<(), DynamoError> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(DynamoError::Validation(format!(
            "Item size has exceeded the maximum allowed size ({size} bytes; the limit is {MAX_ITEM_BYTES})"
        )));
    }
    Ok(())
}

pub async fn put_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: PutItemInput = parse(body)?;
    req.conditions.refuse_legacy("PutItem")?;
    let ret = returns(&req.return_values, "PutItem")?;
    let with_old = req.conditions.old_on_failure()?;
    let mut ph = Placeholders::new(
        req.conditions.expression_attribute_names.as_ref(),
        req.conditions.expression_attribute_values.as_ref(),
    );
    let cond = condition(&req.conditions, &mut ph)?;
    ph.check_all_used()?;
    let t = store::open(db, &req.table_name)?;
    validate_item(&req.item)?;
    let key = item_key(&t.schema, &req.item, false)?;
    check_size(&req.item)?;
    if cond.is_none() && ret == Returns::None {
        // Nothing to read first: a plain write.
        store::write(&t.table, &key, Some(&super::item::encode_item(&req.item))).await?;
        return Ok(json!({}));
    }
    let item = req.item;
    let old = store::read_modify_write(&t.table, &key, move |old| {
        check(&cond, old.as_ref(), with_old)?;
        Ok((Change::Put(item), old))
    })
    .await?;
    Ok(if ret == Returns::AllOld {
        attributes(old)
    } else {
        json!({})
    })
}

pub async fn delete_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: DeleteItemInput = parse(body)?;
    req.conditions.refuse_legacy("DeleteItem")?;
    let ret = returns(&req.return_values, "DeleteItem")?;
    let with_old = req.conditions.old_on_failure()?;
    let mut ph = Placeholders::new(
        req.conditions.expression_attribute_names.as_ref(),
        req.conditions.expression_attribute_values.as_ref(),
    );
    let cond = condition(&req.conditions, &mut ph)?;
    ph.check_all_used()?;
    let t = store::open(db, &req.table_name)?;
    let key = item_key(&t.schema, &req.key, true)?;
    let old = store::read_modify_write(&t.table, &key, move |old| {
        check(&cond, old.as_ref(), with_old)?;
        let change = if old.is_some() {
            Change::Delete
        } else {
            Change::Keep
        };
        Ok((change, old))
    })
    .await?;
    Ok(if ret == Returns::AllOld {
        attributes(old)
    } else {
        json!({})
    })
}

pub async fn update_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: UpdateItemInput = parse(body)?;
    req.conditions.refuse_legacy("UpdateItem")?;
    super::wire::refuse(
        &req.attribute_updates,
        "AttributeUpdates (use UpdateExpression)",
        "UpdateItem",
    )?;
    let ret = returns(&req.return_values, "UpdateItem")?;
    let with_old = req.conditions.old_on_failure()?;
    let mut ph = Placeholders::new(
        req.conditions.expression_attribute_names.as_ref(),
        req.conditions.expression_attribute_values.as_ref(),
    );
    let update = req
        .update_expression
        .as_deref()
        .map(|u| ph.update(u))
        .transpose()?
        .unwrap_or_default();
    let cond = condition(&req.conditions, &mut ph)?;
    ph.check_all_used()?;
    let t = store::open(db, &req.table_name)?;
    let key = item_key(&t.schema, &req.key, true)?;
    let key_names: Vec<String> = std::iter::once(t.schema.hash.name.clone())
        .chain(t.schema.range.as_ref().map(|r| r.name.clone()))
        .collect();
    for p in update
        .set
        .iter()
        .map(|(p, _)| p)
        .chain(&update.remove)
        .chain(update.add.iter().map(|(p, _)| p))
        .chain(update.delete.iter().map(|(p, _)| p))
    {
        if key_names.iter().any(|k| k == p.top()) {
            return Err(DynamoError::Validation(format!(
                "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                p.top()
            )));
        }
    }
    let key_item = req.key;
    let (old, new, paths) = store::read_modify_write(&t.table, &key, move |old| {
        check(&cond, old.as_ref(), with_old)?;
        // An update of a missing item starts from its key.
        let base = old.clone().unwrap_or_else(|| key_item.clone());
        let (new, paths) = expr::apply_update(&base, &update)?;
        check_size(&new)?;
        validate_item(&new)?;
        Ok((Change::Put(new.clone()), (old, new, paths)))
    })
    .await?;
    let empty = Item::new();
    Ok(match ret {
        Returns::None => json!({}),
        Returns::AllOld => attributes(old),
        Returns::AllNew => attributes(Some(new)),
        Returns::UpdatedOld => {
            attributes(Some(expr::project(old.as_ref().unwrap_or(&empty), &paths)))
        }
        Returns::UpdatedNew => attributes(Some(expr::project(&new, &paths))),
    })
}
