//! Evaluating expressions over an item: document paths, comparisons (numbers numerically,
//! strings and binaries by bytes, sets without order), the functions, and projections.
//! A comparison with a missing attribute, or between different types, is false, as in
//! DynamoDB; an operand a function cannot take (`size` of a number) is a validation error.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::number::Dec;
use super::{CmpOp, Cond, Operand, Path, PathElem};
use crate::dynamo::attr::{canonical_number, decode_b64, AttributeValue, Item};
use crate::dynamo::error::DynamoError;

/// Bytes one condition may examine for one item (decoding, parsing and comparing values).
/// A condition's work is linear in the item and its constants except where a list's
/// elements are each compared with a constant; this bound keeps any of them, on any item,
/// to a fraction of a second.
pub const EVAL_WORK_LIMIT_BYTES: u64 = 64 << 20;

thread_local! {
    /// Bytes the running condition has examined ([`eval_condition`] starts it at 0).
    static WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn charge(bytes: usize) -> Result<(), DynamoError> {
    WORK.with(|w| {
        let v = w.get().saturating_add(bytes as u64);
        w.set(v);
        if v > EVAL_WORK_LIMIT_BYTES {
            Err(invalid(format!(
                "Invalid expression: evaluating it on one item examines more than {} MiB of values (rewind's limit)",
                EVAL_WORK_LIMIT_BYTES >> 20
            )))
        } else {
            Ok(())
        }
    })
}

/// Bytes the last [`eval_condition`] on this thread examined: a Scan page adds them up.
pub fn last_eval_work_bytes() -> u64 {
    WORK.with(|w| w.get())
}

fn b64(x: &str) -> Result<Vec<u8>, DynamoError> {
    charge(x.len())?;
    decode_b64(x)
}

fn canon(x: &str) -> Result<String, DynamoError> {
    charge(x.len())?;
    canonical_number(x)
}

fn dec(x: &str) -> Result<Dec, DynamoError> {
    charge(x.len())?;
    Dec::parse(x)
}

fn invalid(msg: String) -> DynamoError {
    DynamoError::Validation(msg)
}

/// The value at `path` in `item`, if there is one.
pub fn resolve_path<'a>(item: &'a Item, path: &Path) -> Option<&'a AttributeValue> {
    let mut elems = path.0.iter();
    let mut cur = match elems.next()? {
        PathElem::Name(n) => item.get(n)?,
        PathElem::Index(_) => return None,
    };
    for e in elems {
        cur = match (e, cur) {
            (PathElem::Name(n), AttributeValue::M(m)) => m.get(n)?,
            (PathElem::Index(i), AttributeValue::L(l)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn size_of(v: &AttributeValue, path: &Path) -> Result<usize, DynamoError> {
    Ok(match v {
        AttributeValue::S(s) => s.chars().count(),
        AttributeValue::B(b) => b64(b)?.len(),
        AttributeValue::SS(x) | AttributeValue::NS(x) | AttributeValue::BS(x) => x.len(),
        AttributeValue::L(l) => l.len(),
        AttributeValue::M(m) => m.len(),
        other => {
            return Err(invalid(format!(
                "Invalid expression: Incorrect operand type for operator or function; operator or function: size, operand type: {} (path {path})",
                other.type_name()
            )))
        }
    })
}

/// An operand's value (`None`: a path with nothing there).
pub fn operand<'a>(
    item: &'a Item,
    o: &'a Operand,
) -> Result<Option<Cow<'a, AttributeValue>>, DynamoError> {
    Ok(match o {
        Operand::Path(p) => resolve_path(item, p).map(Cow::Borrowed),
        Operand::Const(v) => Some(Cow::Borrowed(v)),
        Operand::Size(p) => match resolve_path(item, p) {
            Some(v) => Some(Cow::Owned(AttributeValue::N(size_of(v, p)?.to_string()))),
            None => None,
        },
        Operand::ValueRef(v) => {
            return Err(invalid(format!(
                "unresolved expression attribute value {v}"
            )))
        }
    })
}

/// Numbers numerically, strings and binaries by their bytes; `None` across types.
fn order(a: &AttributeValue, b: &AttributeValue) -> Result<Option<Ordering>, DynamoError> {
    Ok(match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(dec(x)?.cmp(&dec(y)?)),
        (AttributeValue::S(x), AttributeValue::S(y)) => {
            charge(x.len().min(y.len()))?;
            Some(x.as_bytes().cmp(y.as_bytes()))
        }
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(b64(x)?.cmp(&b64(y)?)),
        _ => None,
    })
}

/// Deep equality: numbers by value, sets without order.
pub fn equal(a: &AttributeValue, b: &AttributeValue) -> Result<bool, DynamoError> {
    use AttributeValue::*;
    Ok(match (a, b) {
        (N(_), N(_)) | (S(_), S(_)) | (B(_), B(_)) => order(a, b)? == Some(Ordering::Equal),
        (Bool(x), Bool(y)) => x == y,
        (Null(_), Null(_)) => true,
        (SS(x), SS(y)) => {
            x.len() == y.len() && {
                charge(x.iter().chain(y).map(String::len).sum())?;
                x.iter().collect::<BTreeSet<_>>() == y.iter().collect()
            }
        }
        (NS(x), NS(y)) | (BS(x), BS(y)) => {
            let numbers = matches!(a, NS(_));
            let keys = |s: &Vec<String>| -> Result<BTreeSet<Vec<u8>>, DynamoError> {
                s.iter()
                    .map(|v| {
                        charge(v.len())?;
                        set_key(v, numbers, !numbers)
                    })
                    .collect()
            };
            x.len() == y.len() && keys(x)? == keys(y)?
        }
        (L(x), L(y)) => {
            x.len() == y.len() && {
                let mut all = true;
                for (v, w) in x.iter().zip(y) {
                    all &= equal(v, w)?;
                }
                all
            }
        }
        (M(x), M(y)) => {
            x.len() == y.len() && {
                let mut all = true;
                for (k, v) in x {
                    all &= match y.get(k) {
                        Some(w) => equal(v, w)?,
                        None => false,
                    };
                }
                all
            }
        }
        _ => false,
    })
}

/// A set element's identity: numbers by value (`1` and `1.0` are one), binaries by their
/// decoded bytes, strings as they are.
pub fn set_key(v: &str, numbers: bool, binary: bool) -> Result<Vec<u8>, DynamoError> {
    Ok(if numbers {
        canonical_number(v)?.into_bytes()
    } else if binary {
        decode_b64(v)?
    } else {
        v.as_bytes().to_vec()
    })
}

fn compare(
    a: Option<&AttributeValue>,
    op: CmpOp,
    b: Option<&AttributeValue>,
) -> Result<bool, DynamoError> {
    // A missing operand makes every comparison false but `<>`, which holds (DynamoDB's
    // rule: a missing attribute is not equal to anything).
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(op == CmpOp::Ne);
    };
    Ok(match op {
        CmpOp::Eq => equal(a, b)?,
        CmpOp::Ne => {
            a.type_name() == b.type_name() && !equal(a, b)? || a.type_name() != b.type_name()
        }
        _ => match order(a, b)? {
            None => false,
            Some(o) => match op {
                CmpOp::Lt => o.is_lt(),
                CmpOp::Le => o.is_le(),
                CmpOp::Gt => o.is_gt(),
                CmpOp::Ge => o.is_ge(),
                CmpOp::Eq | CmpOp::Ne => unreachable!("handled above"),
            },
        },
    })
}

fn begins_with(a: &AttributeValue, b: &AttributeValue) -> Result<bool, DynamoError> {
    Ok(match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => {
            charge(y.len())?;
            x.as_bytes().starts_with(y.as_bytes())
        }
        (AttributeValue::B(x), AttributeValue::B(y)) => b64(x)?.starts_with(&b64(y)?),
        _ => false,
    })
}

fn contains(a: &AttributeValue, b: &AttributeValue) -> Result<bool, DynamoError> {
    use AttributeValue::*;
    Ok(match (a, b) {
        (S(x), S(y)) => {
            charge(x.len() + y.len())?;
            x.contains(y.as_str())
        }
        (B(x), B(y)) => memchr::memmem::find(&b64(x)?, &b64(y)?).is_some(),
        (SS(x), S(y)) => {
            charge(x.iter().map(|v| v.len().min(y.len())).sum())?;
            x.iter().any(|v| v == y)
        }
        (NS(x), N(y)) => {
            let y = canon(y)?;
            let mut found = false;
            for v in x {
                found |= canon(v)? == y;
            }
            found
        }
        (BS(x), B(y)) => {
            let y = b64(y)?;
            let mut found = false;
            for v in x {
                found |= b64(v)? == y;
            }
            found
        }
        (L(x), y) => {
            let mut found = false;
            for v in x {
                found |= equal(v, y)?;
            }
            found
        }
        _ => false,
    })
}

const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"];

/// Whether `c` holds for `item` (`None`: there is no item), examining at most
/// [`EVAL_WORK_LIMIT_BYTES`] of values.
pub fn eval_condition(item: Option<&Item>, c: &Cond) -> Result<bool, DynamoError> {
    WORK.with(|w| w.set(0));
    eval(item, c)
}

fn eval(item: Option<&Item>, c: &Cond) -> Result<bool, DynamoError> {
    let empty = Item::new();
    let item = item.unwrap_or(&empty);
    let val = |o| operand(item, o);
    Ok(match c {
        Cond::Cmp(a, op, b) => compare(val(a)?.as_deref(), *op, val(b)?.as_deref())?,
        Cond::Between(a, lo, hi) => {
            let (lo, hi) = (val(lo)?, val(hi)?);
            if let (Some(l), Some(h)) = (lo.as_deref(), hi.as_deref()) {
                if order(l, h)?.is_some_and(|o| o.is_gt()) {
                    return Err(invalid(
                        "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound".into(),
                    ));
                }
            }
            let a = val(a)?;
            compare(a.as_deref(), CmpOp::Ge, lo.as_deref())?
                && compare(a.as_deref(), CmpOp::Le, hi.as_deref())?
        }
        Cond::In(a, list) => {
            let a = val(a)?;
            let mut any = false;
            for o in list {
                any |= compare(a.as_deref(), CmpOp::Eq, val(o)?.as_deref())?;
            }
            any
        }
        Cond::Exists(p) => resolve_path(item, p).is_some(),
        Cond::NotExists(p) => resolve_path(item, p).is_none(),
        Cond::Type(p, t) => {
            let t = match val(t)?.as_deref() {
                Some(AttributeValue::S(s)) if TYPES.contains(&s.as_str()) => s.clone(),
                other => {
                    return Err(invalid(format!(
                        "Invalid ConditionExpression: Invalid attribute type name found; type: {}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}",
                        match other {
                            Some(AttributeValue::S(s)) => s.clone(),
                            Some(v) => v.type_name().to_string(),
                            None => "(none)".into(),
                        }
                    )))
                }
            };
            resolve_path(item, p).is_some_and(|v| v.type_name() == t)
        }
        Cond::BeginsWith(a, b) => match (val(a)?, val(b)?) {
            (Some(a), Some(b)) => begins_with(&a, &b)?,
            _ => false,
        },
        Cond::Contains(a, b) => match (val(a)?, val(b)?) {
            (Some(a), Some(b)) => contains(&a, &b)?,
            _ => false,
        },
        Cond::And(a, b) => eval(Some(item), a)? && eval(Some(item), b)?,
        Cond::Or(a, b) => eval(Some(item), a)? || eval(Some(item), b)?,
        Cond::Not(a) => !eval(Some(item), a)?,
    })
}

/// What a projection keeps of one value: all of it, or some of its map entries or list
/// elements.
#[derive(Default)]
struct Pick {
    whole: bool,
    names: BTreeMap<String, Pick>,
    indexes: BTreeMap<usize, Pick>,
}

impl Pick {
    fn add(&mut self, rest: &[PathElem]) {
        let Some((first, rest)) = rest.split_first() else {
            self.whole = true;
            return;
        };
        let next = match first {
            PathElem::Name(n) => self.names.entry(n.clone()).or_default(),
            PathElem::Index(i) => self.indexes.entry(*i).or_default(),
        };
        next.add(rest);
    }

    /// The picked part of `v`; `None` when nothing picked is there.
    fn take(&self, v: &AttributeValue) -> Option<AttributeValue> {
        if self.whole {
            return Some(v.clone());
        }
        match v {
            AttributeValue::M(m) if !self.names.is_empty() => {
                let out: BTreeMap<_, _> = self
                    .names
                    .iter()
                    .filter_map(|(n, p)| Some((n.clone(), p.take(m.get(n)?)?)))
                    .collect();
                (!out.is_empty()).then(|| AttributeValue::M(out.into_iter().collect()))
            }
            AttributeValue::L(l) if !self.indexes.is_empty() => {
                let out: Vec<_> = self
                    .indexes
                    .iter()
                    .filter_map(|(i, p)| p.take(l.get(*i)?))
                    .collect();
                (!out.is_empty()).then_some(AttributeValue::L(out))
            }
            _ => None,
        }
    }
}

/// The parts of `item` the paths name, nested as in the item: several paths into one map or
/// list element share it, and list elements keep the list's order and close up, as DynamoDB
/// projects.
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut top: BTreeMap<&str, Pick> = BTreeMap::new();
    for p in paths {
        if let Some((PathElem::Name(n), rest)) = p.0.split_first() {
            top.entry(n.as_str()).or_default().add(rest);
        }
    }
    top.iter()
        .filter_map(|(n, pick)| Some((n.to_string(), pick.take(item.get(*n)?)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::expr::{Kind, Placeholders};
    use std::collections::BTreeMap;

    fn item(j: &str) -> Item {
        serde_json::from_str(j).unwrap()
    }

    fn holds(it: &Item, cond: &str, values: &str) -> bool {
        let values: BTreeMap<String, AttributeValue> = serde_json::from_str(values).unwrap();
        let mut ph = Placeholders::new(None, Some(&values));
        let c = ph.condition(cond, Kind::Condition).unwrap();
        eval_condition(Some(it), &c).unwrap()
    }

    #[test]
    fn limits_on_in_and_on_placeholder_copies() {
        let values: BTreeMap<String, AttributeValue> =
            serde_json::from_str(r#"{":x":{"N":"1"}}"#).unwrap();
        let mut ph = Placeholders::new(None, Some(&values));
        let many = format!("a IN ({})", [":x"; 101].join(", "));
        let e = ph
            .condition(&many, Kind::Condition)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("too many operands; number of operands: 101"),
            "{e}"
        );
        let hundred = format!("a IN ({})", [":x"; 100].join(", "));
        assert!(ph.condition(&hundred, Kind::Condition).is_ok());
        // A 1 MiB value named 10 times is 10 MiB of copies: refused.
        let big = format!(r#"{{":v":{{"S":"{}"}}}}"#, "x".repeat(1 << 20));
        let values: BTreeMap<String, AttributeValue> = serde_json::from_str(&big).unwrap();
        let mut ph = Placeholders::new(None, Some(&values));
        let e = ph
            .condition(&["a = :v"; 10].join(" OR "), Kind::Condition)
            .unwrap_err()
            .to_string();
        assert!(e.contains("placeholders stand for more than"), "{e}");
    }

    #[test]
    fn comparisons_and_functions() {
        let it = item(
            r#"{"n":{"N":"10"},"s":{"S":"hello"},"tags":{"SS":["a","b"]},"l":{"L":[{"N":"1"},{"S":"x"}]},
                "m":{"M":{"k":{"N":"2"}}},"z":{"NULL":true}}"#,
        );
        assert!(holds(&it, "n = :v", r#"{":v":{"N":"10.0"}}"#));
        assert!(holds(&it, "n > :v", r#"{":v":{"N":"9"}}"#));
        assert!(
            !holds(&it, "n > :v", r#"{":v":{"S":"9"}}"#),
            "across types: false"
        );
        assert!(!holds(&it, "missing = :v", r#"{":v":{"N":"1"}}"#));
        assert!(
            holds(&it, "missing <> :v", r#"{":v":{"N":"1"}}"#),
            "missing: not equal"
        );
        assert!(!holds(&it, "missing < :v", r#"{":v":{"N":"1"}}"#));
        assert!(holds(
            &it,
            "n BETWEEN :a AND :b",
            r#"{":a":{"N":"1"},":b":{"N":"10"}}"#
        ));
        assert!(holds(
            &it,
            "n IN (:a, :b)",
            r#"{":a":{"N":"3"},":b":{"N":"10"}}"#
        ));
        assert!(holds(&it, "begins_with(s, :p)", r#"{":p":{"S":"he"}}"#));
        assert!(holds(&it, "contains(s, :p)", r#"{":p":{"S":"ll"}}"#));
        assert!(holds(&it, "contains(tags, :p)", r#"{":p":{"S":"b"}}"#));
        assert!(holds(&it, "contains(l, :p)", r#"{":p":{"S":"x"}}"#));
        assert!(holds(&it, "size(s) = :five", r#"{":five":{"N":"5"}}"#));
        assert!(holds(&it, "size(tags) < :three", r#"{":three":{"N":"3"}}"#));
        assert!(holds(
            &it,
            "m.k = :two AND l[0] = :one",
            r#"{":two":{"N":"2"},":one":{"N":"1"}}"#
        ));
        assert!(holds(
            &it,
            "attribute_type(z, :t)",
            r#"{":t":{"S":"NULL"}}"#
        ));
        assert!(holds(
            &it,
            "attribute_exists(m.k) AND attribute_not_exists(m.q)",
            "{}"
        ));
        assert!(holds(
            &it,
            "NOT (n < :v OR s = :s)",
            r#"{":v":{"N":"1"},":s":{"S":"no"}}"#
        ));
    }

    #[test]
    fn projections_nest() {
        let it = item(
            r#"{"a":{"N":"1"},"m":{"M":{"x":{"N":"1"},"y":{"N":"2"}}},"l":{"L":[{"N":"5"},{"N":"6"},{"N":"7"}]}}"#,
        );
        let mut ph = Placeholders::new(None, None);
        let paths = ph.projection("m.y, l[2], l[0], nope").unwrap();
        let got = project(&it, &paths);
        let want = item(r#"{"m":{"M":{"y":{"N":"2"}}},"l":{"L":[{"N":"5"},{"N":"7"}]}}"#);
        assert_eq!(got, want, "list elements in the list's order");
        let it =
            item(r#"{"l":{"L":[{"M":{"a":{"N":"1"},"b":{"N":"2"},"c":{"N":"3"}}},{"N":"9"}]}}"#);
        let paths = ph.projection("l[0].a, l[0].b, l[5]").unwrap();
        let want = item(r#"{"l":{"L":[{"M":{"a":{"N":"1"},"b":{"N":"2"}}}]}}"#);
        assert_eq!(project(&it, &paths), want, "two paths share one element");
        assert!(ph.projection("l[0], l[0].a").is_err(), "overlapping paths");
        assert!(ph.projection("a, a").is_err(), "the same path twice");
    }
}
