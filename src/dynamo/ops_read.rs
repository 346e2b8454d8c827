//! `GetItem`, `Scan` and `Query`: reads straight from the table's map (always strongly
//! consistent), in DynamoDB's item order from the shards' ordered indexes
//! (`map/ordered.rs`), merged across shards. `Limit` counts the items read before the
//! filter, a page stops at 1 MB of items read, and `LastEvaluatedKey` resumes after the last
//! item read, as in DynamoDB.

use std::ops::Bound;

use serde_json::{json, Value};

use super::attr::{AttributeValue, Item};
use super::error::DynamoError;
use super::expr::{self, CmpOp, Cond, Kind, Operand, Path, Placeholders};
use super::item::{decode_item, decode_key, item_key, item_size};
use super::schema::{KeyAttr, Schema};
use super::store::{self, DynTable};
use super::wire::{parse, refuse, GetItemInput, ReadInput};
use crate::map::ordered::{number_order, order_key};
use crate::shard::Db;

/// Item bytes one page reads at most.
const PAGE_BYTES: usize = 1 << 20;
/// Index entries fetched from a shard at a time while merging.
const FETCH: usize = 256;
/// Index entries one page may pass over without reading them (a parallel scan's other
/// segments): past it the page ends with the last entry passed as `LastEvaluatedKey`, so a
/// request's work is bounded whatever `TotalSegments` is.
const MAX_SKIPPED: usize = 100_000;
/// Bytes of values a page's FilterExpression may examine ([`expr::last_eval_work_bytes`]):
/// past it the page ends early with a `LastEvaluatedKey`, as it does at 1 MB of items.
const PAGE_WORK_BYTES: u64 = 256 << 20;

fn invalid(m: impl Into<String>) -> DynamoError {
    DynamoError::Validation(m.into())
}

/// The item stored under `key`, if any.
pub fn read(t: &DynTable, key: &[u8]) -> Result<Option<Item>, DynamoError> {
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

/// An item a Scan or Query comes to: a value under an item key that is not an item at all
/// (no item magic: a Redis client wrote it) is passed over, as keys that are not item keys
/// are, so one such value cannot make a whole table unscannable. A value with the magic that
/// does not decode (a bad checksum) is an error naming the key.
fn read_listed(t: &DynTable, key: &[u8]) -> Result<Option<Item>, DynamoError> {
    let Some(value) = t.table.map_for(key).get(key).map(|v| v.to_vec()) else {
        return Ok(None);
    };
    if !value.starts_with(&super::item::ITEM_MAGIC) {
        return Ok(None);
    }
    decode_item(&value).map(Some).map_err(|why| {
        DynamoError::Internal(format!(
            "the item stored under key {} in table {} is damaged: {why}",
            key.escape_ascii(),
            t.table.name()
        ))
    })
}

/// A projection from `ProjectionExpression` or the legacy `AttributesToGet` names.
fn projection(
    expression: Option<&str>,
    legacy: Option<&[String]>,
    ph: &mut Placeholders<'_>,
) -> Result<Option<Vec<Path>>, DynamoError> {
    match (expression, legacy) {
        (Some(_), Some(_)) => Err(invalid("Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}")),
        (Some(e), None) => ph.projection(e).map(Some),
        (None, Some(names)) => Ok(Some(
            names
                .iter()
                .map(|n| Path(vec![expr::PathElem::Name(n.clone())]))
                .collect(),
        )),
        (None, None) => Ok(None),
    }
}

pub fn get_item(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: GetItemInput = parse(body)?;
    let mut ph = Placeholders::new(req.expression_attribute_names.as_ref(), None);
    let wanted = projection(
        req.projection_expression.as_deref(),
        req.attributes_to_get.as_deref(),
        &mut ph,
    )?;
    ph.check_all_used()?;
    let t = store::open(db, &req.table_name)?;
    let key = item_key(&t.schema, &req.key, true)?;
    Ok(match read(&t, &key)? {
        None => json!({}),
        Some(item) => {
            let item = match &wanted {
                Some(p) => expr::project(&item, p),
                None => item,
            };
            json!({ "Item": item })
        }
    })
}

/// The key attributes an item key encodes (for a `LastEvaluatedKey` of an entry not read),
/// if it is an item key of this table's schema that a request could give back as an
/// `ExclusiveStartKey` (a Redis client may have written any bytes under the item prefix).
fn key_from_storage(schema: &Schema, storage: &[u8]) -> Option<Item> {
    let k = key_attrs_from_storage(schema, storage)?;
    (item_key(schema, &k, true).ok()? == storage).then_some(k)
}

fn key_attrs_from_storage(schema: &Schema, storage: &[u8]) -> Option<Item> {
    use super::item::KeyPart;
    let (hash, range) = decode_key(storage)?;
    let value = |p: KeyPart| match p {
        KeyPart::S(s) => AttributeValue::S(s),
        KeyPart::N(n) => AttributeValue::N(n),
        KeyPart::B(b) => {
            use base64::Engine;
            AttributeValue::B(base64::engine::general_purpose::STANDARD.encode(b))
        }
    };
    let mut k = Item::new();
    k.insert(schema.hash.name.clone(), value(hash));
    match (&schema.range, range) {
        (Some(a), Some(r)) => {
            k.insert(a.name.clone(), value(r));
        }
        (None, None) => {}
        _ => return None,
    }
    Some(k)
}

/// An item's key attributes (its `LastEvaluatedKey`).
fn key_of(schema: &Schema, item: &Item) -> Item {
    let mut k = Item::new();
    for a in std::iter::once(&schema.hash).chain(schema.range.as_ref()) {
        if let Some(v) = item.get(&a.name) {
            k.insert(a.name.clone(), v.clone());
        }
    }
    k
}

/// Where a read goes: bounds on order keys.
struct Span {
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
}

/// The order key of one sort-key value in the partition whose prefix is `pk_prefix`.
fn sk_order(pk_prefix: &[u8], attr: &KeyAttr, v: &AttributeValue) -> Result<Vec<u8>, DynamoError> {
    let mut k = pk_prefix.to_vec();
    match (attr.ty, v) {
        (super::schema::KeyType::S, AttributeValue::S(s)) => {
            k.push(b'S');
            k.extend_from_slice(s.as_bytes());
        }
        (super::schema::KeyType::B, AttributeValue::B(b)) => {
            k.push(b'B');
            k.extend(super::attr::decode_b64(b)?);
        }
        (super::schema::KeyType::N, AttributeValue::N(n)) => {
            k.push(b'N');
            let canon = super::attr::canonical_number(n)?;
            k.extend(number_order(&canon).ok_or_else(|| invalid("bad number"))?);
        }
        _ => {
            return Err(invalid(format!(
                "One or more parameter values were invalid: Condition parameter type does not match schema type (key {})",
                attr.name
            )))
        }
    }
    Ok(k)
}

fn is_key_path(o: &Operand, name: &str) -> bool {
    matches!(o, Operand::Path(p) if p.0.len() == 1 && p.top() == name)
}

fn const_of(o: &Operand) -> Option<&AttributeValue> {
    match o {
        Operand::Const(v) => Some(v),
        _ => None,
    }
}

/// The span of a `KeyConditionExpression`: `pk = :v`, optionally `AND` one sort-key
/// condition (`= < <= > >=`, `BETWEEN`, `begins_with`).
fn key_span(schema: &Schema, cond: &Cond) -> Result<Span, DynamoError> {
    let bad = || {
        invalid("Query key condition not supported: the KeyConditionExpression must be `partition_key = :value`, optionally AND one condition on the sort key")
    };
    let (pk_cond, sk_cond) = match cond {
        Cond::And(a, b) => {
            let pk_first =
                matches!(&**a, Cond::Cmp(l, CmpOp::Eq, _) if is_key_path(l, &schema.hash.name));
            if pk_first {
                (&**a, Some(&**b))
            } else {
                (&**b, Some(&**a))
            }
        }
        c => (c, None),
    };
    let pk = match pk_cond {
        Cond::Cmp(l, CmpOp::Eq, r) if is_key_path(l, &schema.hash.name) => {
            const_of(r).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    let mut key = Item::new();
    key.insert(schema.hash.name.clone(), pk.clone());
    let Some(range) = &schema.range else {
        if sk_cond.is_some() {
            return Err(bad());
        }
        let only = order_key(&item_key(
            &Schema {
                hash: schema.hash.clone(),
                range: None,
            },
            &key,
            true,
        )?)
        .ok_or_else(bad)?;
        return Ok(Span {
            lo: Bound::Included(only.clone()),
            hi: Bound::Included(only),
        });
    };
    // The partition's prefix: the storage key of the partition key alone.
    let hash_only = Schema {
        hash: schema.hash.clone(),
        range: None,
    };
    let prefix = item_key(&hash_only, &key, true)?;
    let tag = match range.ty {
        super::schema::KeyType::S => b'S',
        super::schema::KeyType::N => b'N',
        super::schema::KeyType::B => b'B',
    };
    let mut start = prefix.clone();
    start.push(tag);
    let mut end = prefix.clone();
    end.push(tag + 1);
    let whole = Span {
        lo: Bound::Included(start),
        hi: Bound::Excluded(end),
    };
    let Some(sk) = sk_cond else { return Ok(whole) };
    let name = &range.name;
    let at = |o: &Operand| -> Result<Vec<u8>, DynamoError> {
        sk_order(&prefix, range, const_of(o).ok_or_else(bad)?)
    };
    Ok(match sk {
        Cond::Cmp(l, op, r) if is_key_path(l, name) => {
            let k = at(r)?;
            match op {
                CmpOp::Eq => Span {
                    lo: Bound::Included(k.clone()),
                    hi: Bound::Included(k),
                },
                CmpOp::Lt => Span {
                    hi: Bound::Excluded(k),
                    ..whole
                },
                CmpOp::Le => Span {
                    hi: Bound::Included(k),
                    ..whole
                },
                CmpOp::Gt => Span {
                    lo: Bound::Excluded(k),
                    ..whole
                },
                CmpOp::Ge => Span {
                    lo: Bound::Included(k),
                    ..whole
                },
                CmpOp::Ne => return Err(bad()),
            }
        }
        Cond::Between(x, a, b) if is_key_path(x, name) => {
            let (a, b) = (at(a)?, at(b)?);
            if a > b {
                return Err(invalid("Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound"));
            }
            Span {
                lo: Bound::Included(a),
                hi: Bound::Included(b),
            }
        }
        Cond::BeginsWith(x, p) if is_key_path(x, name) => {
            if range.ty == super::schema::KeyType::N {
                return Err(invalid("Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"));
            }
            let k = at(p)?;
            let hi = match prefix_end(&k) {
                Some(e) => Bound::Excluded(e),
                None => whole.hi,
            };
            Span {
                lo: Bound::Included(k),
                hi,
            }
        }
        _ => return Err(bad()),
    })
}

/// The smallest byte string after every string that starts with `p` (`None`: there is none).
fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xFF {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Walks the items of `span` in order (or in reverse) across every shard, merging: each
/// shard is read `FETCH` entries at a time. Calls `visit(storage_key)` until it returns false.
fn walk(t: &DynTable, span: &Span, reverse: bool, mut visit: impl FnMut(&[u8]) -> bool) {
    let shards = &t.table.shards;
    let mut lo: Vec<Bound<Vec<u8>>> = vec![span.lo.clone(); shards.len()];
    let mut hi: Vec<Bound<Vec<u8>>> = vec![span.hi.clone(); shards.len()];
    let mut bufs: Vec<std::collections::VecDeque<(Vec<u8>, Vec<u8>)>> =
        vec![Default::default(); shards.len()];
    let mut done = vec![false; shards.len()];
    loop {
        for k in 0..shards.len() {
            if bufs[k].is_empty() && !done[k] {
                let got =
                    shards[k]
                        .ordered
                        .range((bound_ref(&lo[k]), bound_ref(&hi[k])), reverse, FETCH);
                if got.len() < FETCH {
                    done[k] = true;
                }
                if let Some((last, _)) = got.last() {
                    if reverse {
                        hi[k] = Bound::Excluded(last.clone());
                    } else {
                        lo[k] = Bound::Excluded(last.clone());
                    }
                }
                bufs[k].extend(got);
            }
        }
        let next = (0..shards.len())
            .filter(|&k| !bufs[k].is_empty())
            .min_by(|&a, &b| {
                let o = bufs[a][0].0.cmp(&bufs[b][0].0);
                if reverse {
                    o.reverse()
                } else {
                    o
                }
            });
        let Some(k) = next else { return };
        let (_, storage) = bufs[k].pop_front().expect("not empty");
        if !visit(&storage) {
            return;
        }
    }
}

/// What a read needs besides its span.
struct ReadPlan {
    filter: Option<Cond>,
    projection: Option<Vec<Path>>,
    count_only: bool,
    limit: usize,
    segment: Option<(u64, u64)>,
}

fn plan(req: &ReadInput, ph: &mut Placeholders<'_>, op: &str) -> Result<ReadPlan, DynamoError> {
    refuse(
        &req.index_name,
        "IndexName (rewind tables have no secondary indexes)",
        op,
    )?;
    refuse(
        &req.attributes_to_get,
        "AttributesToGet (use ProjectionExpression)",
        op,
    )?;
    refuse(&req.scan_filter, "ScanFilter (use FilterExpression)", op)?;
    refuse(&req.query_filter, "QueryFilter (use FilterExpression)", op)?;
    refuse(
        &req.key_conditions,
        "KeyConditions (use KeyConditionExpression)",
        op,
    )?;
    refuse(&req.conditional_operator, "ConditionalOperator", op)?;
    let limit = match req.limit {
        None => usize::MAX,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )))
        }
    };
    let filter = req
        .filter_expression
        .as_deref()
        .map(|f| ph.condition(f, Kind::Filter))
        .transpose()?;
    let projection = req
        .projection_expression
        .as_deref()
        .map(|p| ph.projection(p))
        .transpose()?;
    let count_only = match req.select.as_deref() {
        None | Some("ALL_ATTRIBUTES") => false,
        Some("SPECIFIC_ATTRIBUTES") if projection.is_some() => false,
        Some("COUNT") if projection.is_none() => true,
        Some("SPECIFIC_ATTRIBUTES") | Some("COUNT") | Some("ALL_PROJECTED_ATTRIBUTES") => {
            return Err(invalid(format!(
                "Select {} does not go with the request's ProjectionExpression (or needs an index)",
                req.select.as_deref().unwrap_or_default()
            )))
        }
        Some(other) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
            )))
        }
    };
    let segment = match (req.segment, req.total_segments) {
        (None, None) => None,
        (Some(s), Some(n)) if (1..=1_000_000).contains(&n) && (0..n).contains(&s) => {
            Some((s as u64, n as u64))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "The Segment parameter must be at least 0 and less than TotalSegments, which is 1 to 1000000",
            ))
        }
        _ => {
            return Err(invalid(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present (and the other way round)",
            ))
        }
    };
    Ok(ReadPlan {
        filter,
        projection,
        count_only,
        limit,
        segment,
    })
}

/// Reads `span` under `p` (items from `start` on, exclusive): the response.
fn run(t: &DynTable, span: Span, reverse: bool, p: &ReadPlan) -> Result<Value, DynamoError> {
    let mut items: Vec<Item> = Vec::new();
    let (mut count, mut scanned, mut bytes) = (0usize, 0usize, 0usize);
    let mut last: Option<Item> = None;
    let mut error = None;
    let mut stopped = false;
    let mut skipped = 0usize;
    let mut work = 0u64;
    walk(t, &span, reverse, |storage| {
        if scanned >= p.limit || bytes >= PAGE_BYTES || work >= PAGE_WORK_BYTES {
            stopped = true;
            return false;
        }
        // An entry passed over unread (another segment's, deleted since the index was read,
        // not an item): after MAX_SKIPPED of them the page ends there, so a page's work is
        // bounded however few of the entries it walks are its items.
        let mut pass_over = |last: &mut Option<Item>, stopped: &mut bool| {
            skipped += 1;
            if skipped >= MAX_SKIPPED {
                if let Some(k) = key_from_storage(&t.schema, storage) {
                    *last = Some(k);
                    *stopped = true;
                    return false;
                }
            }
            true
        };
        if let Some((seg, total)) = p.segment {
            if xxhash_rust::xxh3::xxh3_64(storage) % total != seg {
                return pass_over(&mut last, &mut stopped);
            }
        }
        let item = match read_listed(t, storage) {
            Ok(Some(i)) => i,
            // Deleted since the index was read, or not an item (a Redis client's value).
            Ok(None) => return pass_over(&mut last, &mut stopped),
            Err(e) => {
                error = Some(e);
                return false;
            }
        };
        scanned += 1;
        bytes += item_size(&item);
        last = Some(key_of(&t.schema, &item));
        let keep = match &p.filter {
            None => true,
            Some(f) => match expr::eval_condition(Some(&item), f) {
                Ok(k) => {
                    work += expr::last_eval_work_bytes();
                    k
                }
                Err(e) => {
                    error = Some(e);
                    return false;
                }
            },
        };
        if keep {
            count += 1;
            if !p.count_only {
                items.push(match &p.projection {
                    Some(paths) => expr::project(&item, paths),
                    None => item,
                });
            }
        }
        true
    });
    if let Some(e) = error {
        return Err(e);
    }
    let mut out = json!({ "Count": count, "ScannedCount": scanned });
    if !p.count_only {
        out["Items"] = serde_json::to_value(&items).unwrap_or_default();
    }
    if stopped {
        if let Some(k) = last {
            out["LastEvaluatedKey"] = serde_json::to_value(k).unwrap_or_default();
        }
    }
    Ok(out)
}

/// Narrows `span` to what comes after `ExclusiveStartKey`.
fn after_start(
    t: &DynTable,
    mut span: Span,
    start: &Option<Item>,
    reverse: bool,
) -> Result<Span, DynamoError> {
    let Some(start) = start else { return Ok(span) };
    let storage = item_key(&t.schema, start, true).map_err(|_| {
        invalid("The provided starting key is invalid: The provided key element does not match the schema")
    })?;
    let k = order_key(&storage).ok_or_else(|| invalid("The provided starting key is invalid"))?;
    let above_lo = match &span.lo {
        Bound::Included(lo) => k >= *lo,
        Bound::Excluded(lo) => k > *lo,
        Bound::Unbounded => true,
    };
    let below_hi = match &span.hi {
        Bound::Included(hi) => k <= *hi,
        Bound::Excluded(hi) => k < *hi,
        Bound::Unbounded => true,
    };
    if !(above_lo && below_hi) {
        return Err(invalid(
            "The provided starting key is outside query boundaries based on provided conditions",
        ));
    }
    if reverse {
        span.hi = Bound::Excluded(k);
    } else {
        span.lo = Bound::Excluded(k);
    }
    Ok(span)
}

pub fn scan(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: ReadInput = parse(body)?;
    refuse(
        &req.key_condition_expression,
        "KeyConditionExpression (Scan takes none)",
        "Scan",
    )?;
    let mut ph = Placeholders::new(
        req.expression_attribute_names.as_ref(),
        req.expression_attribute_values.as_ref(),
    );
    let p = plan(&req, &mut ph, "Scan")?;
    ph.check_all_used()?;
    let t = store::open(db, &req.table_name)?;
    // Every item key starts with 0x01; nothing else is in the index.
    let span = Span {
        lo: Bound::Included(vec![crate::map::ordered::ITEM_KEY_TAG]),
        hi: Bound::Excluded(vec![crate::map::ordered::ITEM_KEY_TAG + 1]),
    };
    let span = after_start(&t, span, &req.exclusive_start_key, false)?;
    run(&t, span, false, &p)
}

pub fn query(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: ReadInput = parse(body)?;
    let mut ph = Placeholders::new(
        req.expression_attribute_names.as_ref(),
        req.expression_attribute_values.as_ref(),
    );
    let kc = req
        .key_condition_expression
        .as_deref()
        .ok_or_else(|| invalid("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request."))?;
    let kc = ph.condition(kc, Kind::KeyCondition)?;
    let p = plan(&req, &mut ph, "Query")?;
    if p.segment.is_some() {
        return Err(invalid("Segment and TotalSegments are Scan parameters"));
    }
    ph.check_all_used()?;
    let t = store::open(db, &req.table_name)?;
    let reverse = req.scan_index_forward == Some(false);
    let span = key_span(&t.schema, &kc)?;
    let span = after_start(&t, span, &req.exclusive_start_key, reverse)?;
    run(&t, span, reverse, &p)
}
