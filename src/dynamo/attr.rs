//! DynamoDB attribute values in their wire form (`{"S":"x"}`, `{"N":"1.5"}`, ...), checked as
//! DynamoDB checks them, and numbers brought to one canonical form so that `1`, `1.0` and
//! `10E-1` name the same key.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::DynamoError;

/// An item: attribute name to value.
pub type Item = BTreeMap<String, AttributeValue>;

/// One attribute value exactly as the JSON protocol carries it. Binary values stay in their
/// base64 text (checked to decode); numbers stay as sent (checked to be numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum AttributeValue {
    S(String),
    N(String),
    B(String),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    L(Vec<AttributeValue>),
    M(BTreeMap<String, AttributeValue>),
    SS(Vec<String>),
    NS(Vec<String>),
    BS(Vec<String>),
}

/// Deepest nesting of lists and maps DynamoDB accepts.
pub const MAX_DEPTH: usize = 32;
/// Most significant digits of a DynamoDB number.
const MAX_DIGITS: usize = 38;

fn invalid(msg: impl Into<String>) -> DynamoError {
    DynamoError::Validation(msg.into())
}

pub fn decode_b64(s: &str) -> Result<Vec<u8>, DynamoError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| invalid(format!("Invalid binary value (base64): {e}")))
}

/// A number as `(negative, digits, exponent)` with value `±digits × 10^exponent`, the digits
/// without leading or trailing zeros (zero is `(false, "", 0)`).
pub(crate) fn parse_number(s: &str) -> Result<(bool, String, i64), DynamoError> {
    let bad = || {
        invalid(format!(
            "The parameter cannot be converted to a numeric value: {s}"
        ))
    };
    if s.is_empty() || s.len() > 200 {
        return Err(bad());
    }
    let (neg, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    let exp_digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if exp_digits.is_empty()
        || exp_digits.len() > 6
        || !exp_digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let mut exponent: i64 = exp.parse().map_err(|_| bad())?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    exponent -= frac.len() as i64;
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    exponent += (digits.len() - trimmed.len()) as i64;
    if trimmed.is_empty() {
        return Ok((false, String::new(), 0));
    }
    if trimmed.len() > MAX_DIGITS {
        return Err(invalid(format!(
            "Attempting to store more than 38 significant digits in a Number: {s}"
        )));
    }
    // DynamoDB's range: magnitudes from 1E-130 up to 9.9999...E+125.
    let magnitude = exponent + trimmed.len() as i64 - 1;
    if !(-130..=125).contains(&magnitude) {
        return Err(invalid(format!(
            "Number overflow or underflow: {s} is outside 1E-130 to 9.9999999999999999999999999999999999999E+125"
        )));
    }
    Ok((neg, trimmed.to_string(), exponent))
}

/// The canonical text of a number: equal numbers give equal text, different ones different
/// text (`-15E-1` for -1.50, `0` for zero).
pub fn canonical_number(s: &str) -> Result<String, DynamoError> {
    let (neg, digits, exp) = parse_number(s)?;
    if digits.is_empty() {
        return Ok("0".into());
    }
    let sign = if neg { "-" } else { "" };
    Ok(if exp == 0 {
        format!("{sign}{digits}")
    } else {
        format!("{sign}{digits}E{exp}")
    })
}

fn check_set<T: Ord>(
    kind: &str,
    items: &[String],
    key: impl Fn(&String) -> Result<T, DynamoError>,
) -> Result<(), DynamoError> {
    if items.is_empty() {
        return Err(invalid(format!(
            "One or more parameter values were invalid: An {kind} may not be empty"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in items {
        if !seen.insert(key(v)?) {
            return Err(invalid(format!(
                "One or more parameter values were invalid: Input collection contains duplicates ({kind})"
            )));
        }
    }
    Ok(())
}

impl AttributeValue {
    /// Checks the value as DynamoDB does: numbers are numbers, binaries decode, `NULL` is
    /// `true`, sets are non-empty without duplicates, nesting is at most 32 deep.
    pub fn validate(&self, depth: usize) -> Result<(), DynamoError> {
        if depth > MAX_DEPTH {
            return Err(invalid("Nesting Levels have exceeded supported limits"));
        }
        match self {
            AttributeValue::S(_) | AttributeValue::Bool(_) => Ok(()),
            AttributeValue::N(n) => parse_number(n).map(|_| ()),
            AttributeValue::B(b) => decode_b64(b).map(|_| ()),
            AttributeValue::Null(true) => Ok(()),
            AttributeValue::Null(false) => Err(invalid(
                "One or more parameter values were invalid: Null attribute value types must have the value of true",
            )),
            AttributeValue::L(l) => l.iter().try_for_each(|v| v.validate(depth + 1)),
            AttributeValue::M(m) => m.values().try_for_each(|v| v.validate(depth + 1)),
            AttributeValue::SS(s) => check_set("string set", s, |v| Ok(v.clone())),
            AttributeValue::NS(s) => check_set("number set", s, |v| canonical_number(v)),
            AttributeValue::BS(s) => check_set("binary set", s, |v| decode_b64(v)),
        }
    }

    /// The type letter(s) DynamoDB uses for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null(_) => "NULL",
            AttributeValue::L(_) => "L",
            AttributeValue::M(_) => "M",
            AttributeValue::SS(_) => "SS",
            AttributeValue::NS(_) => "NS",
            AttributeValue::BS(_) => "BS",
        }
    }
}

/// Checks every attribute of an item.
pub fn validate_item(item: &Item) -> Result<(), DynamoError> {
    for (name, v) in item {
        if name.is_empty() {
            return Err(invalid(
                "One or more parameter values were invalid: An attribute name may not be empty",
            ));
        }
        v.validate(1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_numbers_have_one_canonical_form() {
        for (a, b) in [
            ("1", "1.0"),
            ("1", "10E-1"),
            ("1500", "1.5e3"),
            ("-0.05", "-5E-2"),
            ("0", "-0.000"),
            ("+7", "007"),
        ] {
            assert_eq!(
                canonical_number(a).unwrap(),
                canonical_number(b).unwrap(),
                "{a} {b}"
            );
        }
        assert_eq!(canonical_number("-1.50").unwrap(), "-15E-1");
        assert_ne!(
            canonical_number("1").unwrap(),
            canonical_number("-1").unwrap()
        );
        assert_ne!(
            canonical_number("15").unwrap(),
            canonical_number("1.5").unwrap()
        );
        for bad in [
            "",
            "abc",
            "1e",
            "1.2.3",
            ".",
            "-",
            "1e1000000",
            "--1",
            "0x10",
            "1 ",
        ] {
            assert!(canonical_number(bad).is_err(), "{bad}");
        }
        assert!(canonical_number("1E126").is_err());
        assert!(canonical_number("1E-131").is_err());
        assert!(canonical_number(&"9".repeat(39)).is_err());
        assert!(canonical_number(&"9".repeat(38)).is_ok());
    }

    #[test]
    fn wire_form_parses_and_bad_values_are_refused() {
        let item: Item = serde_json::from_str(
            r#"{"s":{"S":"x"},"n":{"N":"1"},"b":{"B":"AAE="},"t":{"BOOL":true},"z":{"NULL":true},
               "l":{"L":[{"S":"a"},{"N":"2"}]},"m":{"M":{"k":{"SS":["a","b"]}}},
               "ns":{"NS":["1","2"]},"bs":{"BS":["AA=="]}}"#,
        )
        .unwrap();
        validate_item(&item).unwrap();
        assert!(serde_json::from_str::<AttributeValue>(r#"{"S":"x","N":"1"}"#).is_err());
        assert!(serde_json::from_str::<AttributeValue>(r#"{"X":"x"}"#).is_err());
        for bad in [
            r#"{"N":"one"}"#,
            r#"{"B":"***"}"#,
            r#"{"NULL":false}"#,
            r#"{"SS":[]}"#,
            r#"{"SS":["a","a"]}"#,
            r#"{"NS":["1","1.0"]}"#,
        ] {
            let v: AttributeValue = serde_json::from_str(bad).unwrap();
            assert!(v.validate(1).is_err(), "{bad}");
        }
        let mut deep = AttributeValue::S("x".into());
        for _ in 0..40 {
            deep = AttributeValue::L(vec![deep]);
        }
        assert!(deep.validate(1).is_err());
    }
}
