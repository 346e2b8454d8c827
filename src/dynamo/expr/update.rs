//! Applying an update expression to an item, as DynamoDB does: every right-hand side is
//! read from the item as it was before the update; `SET` writes a path (its parent must
//! exist; an index past a list's end appends), `REMOVE` deletes one (list elements close
//! up), `ADD` adds to a number or a set (or creates it), `DELETE` takes elements out of a
//! set (a set left empty goes). `ADD` and `DELETE` take top-level attributes only. Two paths
//! that overlap are refused.

use std::collections::HashSet;

use super::eval::{operand, resolve_path, set_key};
use super::number::Dec;
use super::{Path, PathElem, SetValue, Update, UpdateOperand};
use crate::dynamo::attr::{AttributeValue, Item};
use crate::dynamo::error::DynamoError;
use crate::dynamo::item::{value_size, MAX_ITEM_BYTES};

/// A value an update computes is refused once it alone outgrows an item, before more copies
/// of the item's attributes are made (`SET a=b, c=b, ...`, nested `list_append`s).
fn within_item_size(bytes: usize) -> Result<(), DynamoError> {
    if bytes > MAX_ITEM_BYTES {
        return Err(invalid(format!(
            "Item size has exceeded the maximum allowed size (the update computes {bytes} bytes of values; the limit is {MAX_ITEM_BYTES})"
        )));
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> DynamoError {
    DynamoError::Validation(msg.into())
}

fn bad_type(op: &str) -> DynamoError {
    invalid(format!(
        "An operand in the update expression has an incorrect data type (in {op})"
    ))
}

fn bad_path(p: &Path) -> DynamoError {
    invalid(format!(
        "The document path provided in the update expression is invalid for update ({p})"
    ))
}

/// Whether one path is the other or lies inside it.
fn overlap(a: &Path, b: &Path) -> bool {
    a.0.iter().zip(&b.0).all(|(x, y)| x == y)
}

fn value_of(item: &Item, u: &UpdateOperand) -> Result<AttributeValue, DynamoError> {
    match u {
        UpdateOperand::Operand(o) => operand(item, o)?.map(|v| v.into_owned()).ok_or_else(|| {
            invalid(
                "The provided expression refers to an attribute that does not exist in the item",
            )
        }),
        UpdateOperand::IfNotExists(p, d) => match resolve_path(item, p) {
            Some(v) => Ok(v.clone()),
            None => value_of(item, d),
        },
        UpdateOperand::ListAppend(a, b) => match (value_of(item, a)?, value_of(item, b)?) {
            (AttributeValue::L(mut x), AttributeValue::L(y)) => {
                x.extend(y);
                let joined = AttributeValue::L(x);
                within_item_size(value_size(&joined))?;
                Ok(joined)
            }
            _ => Err(bad_type("list_append")),
        },
    }
}

fn number(v: &AttributeValue, op: &str) -> Result<Dec, DynamoError> {
    match v {
        AttributeValue::N(n) => Dec::parse(n),
        _ => Err(bad_type(op)),
    }
}

fn set_value(item: &Item, v: &SetValue) -> Result<AttributeValue, DynamoError> {
    Ok(match v {
        SetValue::Value(a) => value_of(item, a)?,
        SetValue::Plus(a, b) => {
            let s = number(&value_of(item, a)?, "+")?.add(&number(&value_of(item, b)?, "+")?)?;
            AttributeValue::N(s.to_text())
        }
        SetValue::Minus(a, b) => {
            let d = number(&value_of(item, a)?, "-")?
                .add(&number(&value_of(item, b)?, "-")?.negated())?;
            AttributeValue::N(d.to_text())
        }
    })
}

/// The container that holds the last element of `p`, and that element.
fn parent_mut<'a, 'p>(
    item: &'a mut Item,
    p: &'p Path,
) -> Option<(&'a mut AttributeValue, &'p PathElem)> {
    let (last, init) = p.0.split_last()?;
    let mut iter = init.iter();
    let PathElem::Name(top) = iter.next()? else {
        return None;
    };
    let mut cur = item.get_mut(top)?;
    for e in iter {
        cur = match (e, cur) {
            (PathElem::Name(n), AttributeValue::M(m)) => m.get_mut(n)?,
            (PathElem::Index(i), AttributeValue::L(l)) => l.get_mut(*i)?,
            _ => return None,
        };
    }
    Some((cur, last))
}

fn put_path(item: &mut Item, p: &Path, v: AttributeValue) -> Result<(), DynamoError> {
    if p.0.len() == 1 {
        let PathElem::Name(n) = &p.0[0] else {
            return Err(bad_path(p));
        };
        item.insert(n.clone(), v);
        return Ok(());
    }
    match parent_mut(item, p) {
        Some((AttributeValue::M(m), PathElem::Name(n))) => {
            m.insert(n.clone(), v);
            Ok(())
        }
        Some((AttributeValue::L(l), PathElem::Index(i))) => {
            if *i < l.len() {
                l[*i] = v;
            } else {
                l.push(v);
            }
            Ok(())
        }
        _ => Err(bad_path(p)),
    }
}

/// Paths element by element: names by their text, list indexes by number.
fn path_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (x, y) in a.0.iter().zip(&b.0) {
        let o = match (x, y) {
            (PathElem::Name(x), PathElem::Name(y)) => x.cmp(y),
            (PathElem::Index(x), PathElem::Index(y)) => x.cmp(y),
            (PathElem::Name(_), PathElem::Index(_)) => Ordering::Less,
            (PathElem::Index(_), PathElem::Name(_)) => Ordering::Greater,
        };
        if o.is_ne() {
            return o;
        }
    }
    a.0.len().cmp(&b.0.len())
}

/// Removing a missing leaf does nothing; a path whose parent is missing, or is not the map
/// or list the path names, is refused as DynamoDB refuses it.
fn remove_path(item: &mut Item, p: &Path) -> Result<(), DynamoError> {
    if p.0.len() == 1 {
        if let PathElem::Name(n) = &p.0[0] {
            item.remove(n);
        }
        return Ok(());
    }
    match parent_mut(item, p) {
        Some((AttributeValue::M(m), PathElem::Name(n))) => {
            m.remove(n);
        }
        Some((AttributeValue::L(l), PathElem::Index(i))) => {
            if *i < l.len() {
                l.remove(*i);
            }
        }
        _ => return Err(bad_path(p)),
    }
    Ok(())
}

/// A set's elements, the other set's, whether they are numbers or binaries, and how to
/// make the set again.
type SetParts<'a> = (
    Vec<String>,
    &'a Vec<String>,
    bool,
    bool,
    fn(Vec<String>) -> AttributeValue,
);

fn set_op(
    old: &AttributeValue,
    arg: &AttributeValue,
    union: bool,
) -> Result<Option<AttributeValue>, DynamoError> {
    use AttributeValue::*;
    let (mut items, other, numbers, binary, wrap): SetParts<'_> = match (old, arg) {
        (SS(a), SS(b)) => (a.clone(), b, false, false, SS),
        (NS(a), NS(b)) => (a.clone(), b, true, false, NS),
        (BS(a), BS(b)) => (a.clone(), b, false, true, BS),
        _ => return Err(bad_type(if union { "ADD" } else { "DELETE" })),
    };
    // Each element's key computed once, looked up in a hash set: linear in both sets (this
    // runs on the shard's writer thread).
    let mut keys = HashSet::with_capacity(items.len());
    let mut item_keys = Vec::with_capacity(items.len());
    for v in &items {
        let k = set_key(v, numbers, binary)?;
        keys.insert(k.clone());
        item_keys.push(k);
    }
    if union {
        for v in other {
            if keys.insert(set_key(v, numbers, binary)?) {
                items.push(v.clone());
            }
        }
    } else {
        let mut gone = HashSet::with_capacity(other.len());
        for v in other {
            gone.insert(set_key(v, numbers, binary)?);
        }
        let mut k = item_keys.iter();
        items.retain(|_| !k.next().is_some_and(|k| gone.contains(k)));
    }
    Ok((!items.is_empty()).then(|| wrap(items)))
}

/// The item after `u`, and the paths it changed (for `UPDATED_OLD`/`UPDATED_NEW`).
pub fn apply_update(item: &Item, u: &Update) -> Result<(Item, Vec<Path>), DynamoError> {
    let mut paths: Vec<&Path> = Vec::new();
    paths.extend(u.set.iter().map(|(p, _)| p));
    paths.extend(u.remove.iter());
    paths.extend(u.add.iter().map(|(p, _)| p));
    paths.extend(u.delete.iter().map(|(p, _)| p));
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            if overlap(a, b) {
                return Err(invalid(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [{a}], path two: [{b}]"
                )));
            }
        }
    }
    for (p, _) in u.add.iter().chain(&u.delete) {
        if p.0.len() != 1 {
            return Err(invalid(format!(
                "Invalid UpdateExpression: ADD and DELETE take top-level attributes only; path: {p}"
            )));
        }
    }
    // Every right-hand side reads the item as it was.
    // SET targets do not overlap, so the new item holds every computed value: their sizes
    // add up to at most an item's.
    let mut computed = 0usize;
    let mut sets: Vec<(Path, AttributeValue)> = Vec::with_capacity(u.set.len());
    for (p, v) in &u.set {
        let v = set_value(item, v)?;
        computed += value_size(&v);
        within_item_size(computed)?;
        sets.push((p.clone(), v));
    }
    let mut adds = Vec::new();
    for (p, v) in &u.add {
        let arg = operand(item, v)?
            .map(|c| c.into_owned())
            .ok_or_else(|| bad_type("ADD"))?;
        let new = match (resolve_path(item, p), &arg) {
            (
                None,
                AttributeValue::N(_)
                | AttributeValue::SS(_)
                | AttributeValue::NS(_)
                | AttributeValue::BS(_),
            ) => Some(arg.clone()),
            (Some(AttributeValue::N(old)), AttributeValue::N(n)) => Some(AttributeValue::N(
                Dec::parse(old)?.add(&Dec::parse(n)?)?.to_text(),
            )),
            (Some(old), _) => set_op(old, &arg, true)?,
            (None, _) => return Err(bad_type("ADD")),
        };
        adds.push((p.clone(), new));
    }
    let mut deletes = Vec::new();
    for (p, v) in &u.delete {
        let arg = operand(item, v)?
            .map(|c| c.into_owned())
            .ok_or_else(|| bad_type("DELETE"))?;
        if !matches!(
            arg,
            AttributeValue::SS(_) | AttributeValue::NS(_) | AttributeValue::BS(_)
        ) {
            return Err(bad_type("DELETE"));
        }
        let new = match resolve_path(item, p) {
            None => continue,
            Some(old) => set_op(old, &arg, false)?,
        };
        deletes.push((p.clone(), new));
    }
    let mut out = item.clone();
    for (p, v) in sets {
        put_path(&mut out, &p, v)?;
    }
    // Every REMOVE path names what it named in the item as it was: removed last path first
    // (list indexes highest first), so removing `l[1]` cannot shift what `l[2]` names.
    let mut removes: Vec<&Path> = u.remove.iter().collect();
    removes.sort_by(|a, b| path_order(b, a));
    for p in removes {
        remove_path(&mut out, p)?;
    }
    for (p, v) in adds.into_iter().chain(deletes) {
        match v {
            Some(v) => put_path(&mut out, &p, v)?,
            None => remove_path(&mut out, &p)?,
        }
    }
    Ok((out, paths.into_iter().cloned().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::expr::Placeholders;
    use std::collections::BTreeMap;

    fn run(item: &str, expr: &str, values: &str) -> Result<Item, DynamoError> {
        let item: Item = serde_json::from_str(item).unwrap();
        let values: BTreeMap<String, AttributeValue> = serde_json::from_str(values).unwrap();
        let mut ph = Placeholders::new(None, Some(&values));
        let u = ph.update(expr)?;
        apply_update(&item, &u).map(|(i, _)| i)
    }

    fn item(j: &str) -> Item {
        serde_json::from_str(j).unwrap()
    }

    #[test]
    fn set_arithmetic_and_functions() {
        let got = run(
            r#"{"n":{"N":"1"},"l":{"L":[{"N":"1"}]}}"#,
            "SET n = n + :one, m = if_not_exists(m, :zero), l = list_append(l, :more), s.t = :x",
            r#"{":one":{"N":"1"},":zero":{"N":"0"},":more":{"L":[{"N":"2"}]},":x":{"S":"y"}}"#,
        );
        assert!(got.is_err(), "s does not exist: its member cannot be set");
        let got = run(
            r#"{"n":{"N":"1"},"l":{"L":[{"N":"1"}]}}"#,
            "SET n = n + :one, m = if_not_exists(m, :zero), l = list_append(l, :more)",
            r#"{":one":{"N":"1"},":zero":{"N":"0"},":more":{"L":[{"N":"2"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            item(r#"{"n":{"N":"2"},"m":{"N":"0"},"l":{"L":[{"N":"1"},{"N":"2"}]}}"#)
        );
    }

    #[test]
    fn remove_add_delete() {
        let got = run(
            r#"{"a":{"N":"5"},"s":{"SS":["x","y"]},"l":{"L":[{"N":"1"},{"N":"2"},{"N":"3"}]},"gone":{"S":"g"}}"#,
            "REMOVE gone, l[1] ADD a :two, t :set, s :more DELETE z :set",
            r#"{":two":{"N":"2"},":set":{"SS":["q"]},":more":{"SS":["y","w"]}}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            item(
                r#"{"a":{"N":"7"},"s":{"SS":["x","y","w"]},"t":{"SS":["q"]},"l":{"L":[{"N":"1"},{"N":"3"}]}}"#
            )
        );
        let got = run(
            r#"{"s":{"NS":["1","2"]}}"#,
            "DELETE s :v",
            r#"{":v":{"NS":["1.0","2"]}}"#,
        )
        .unwrap();
        assert!(got.is_empty(), "an emptied set goes");
        assert!(run(r#"{"a":{"S":"x"}}"#, "ADD a :n", r#"{":n":{"N":"1"}}"#).is_err());
        assert!(run(
            "{}",
            "SET a = :x, a = :y",
            r#"{":x":{"N":"1"},":y":{"N":"2"}}"#
        )
        .is_err());
        assert!(run("{}", "SET a = :x REMOVE a.b", r#"{":x":{"N":"1"}}"#).is_err());
        assert!(run("{}", "SET a = b", "{}").is_err(), "b does not exist");
        let err = run("{}", "REMOVE m.l[0]", "{}").unwrap_err();
        assert!(err.to_string().contains("invalid for update"), "{err}");
        assert!(run(r#"{"m":{"S":"x"}}"#, "REMOVE m.b", "{}").is_err());
        let got = run(
            r#"{"l":{"L":[{"S":"a"},{"S":"b"},{"S":"c"},{"L":[{"S":"x"},{"S":"y"}]}]}}"#,
            "REMOVE l[1], l[2], l[3][0]",
            "{}",
        )
        .unwrap();
        assert_eq!(
            got,
            item(r#"{"l":{"L":[{"S":"a"},{"L":[{"S":"y"}]}]}}"#),
            "each index names the element of the list as it was"
        );
        let got = run(r#"{"m":{"M":{}},"l":{"L":[]}}"#, "REMOVE m.b, l[3]", "{}").unwrap();
        assert_eq!(
            got,
            item(r#"{"m":{"M":{}},"l":{"L":[]}}"#),
            "missing leaves"
        );
    }
}
