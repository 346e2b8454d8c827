//! How DynamoDB items live in a rewind table (documented in `docs/DYNAMODB.md` and
//! `docs/FORMAT.md`):
//!
//! ```text
//! schema key  0x00 "rewind.dynamodb.schema"          value 0xD8 0x01 xxh3 JSON{KeySchema, AttributeDefinitions}
//! item key    0x01 T(pk) len(pk):u16be pk [T(sk) sk]  value 0xD7 0x01 xxh3 JSON{name: AttributeValue...}
//! ```
//!
//! `T` is `S`, `N` or `B`; string keys are their UTF-8 bytes, binary keys the decoded bytes,
//! number keys their canonical text (so `1` and `1.0` are one key). The partition key carries
//! its length and the sort key runs to the end, so no two different keys encode alike, and
//! the reserved schema key (first byte 0x00) can never be an item key (first byte 0x01).
//! `xxh3` is the xxh3-64 of the JSON (u64 little-endian): a value changed behind the API's
//! back (a Redis client's `SET`, damage) is refused, not misread.

use xxhash_rust::xxh3::xxh3_64;

use super::attr::{canonical_number, decode_b64, AttributeValue, Item};
use super::error::DynamoError;
use super::schema::{KeyAttr, KeyType, Schema, StoredSchema};

/// The reserved key holding a DynamoDB table's key schema.
pub const SCHEMA_KEY: &[u8] = b"\x00rewind.dynamodb.schema";
/// First byte of every item key.
pub const ITEM_KEY_TAG: u8 = 0x01;
/// Magic and version of an item value.
pub const ITEM_MAGIC: [u8; 2] = [0xD7, 0x01];
/// Magic and version of the schema value.
pub const SCHEMA_MAGIC: [u8; 2] = [0xD8, 0x01];
/// DynamoDB's largest partition key value, in bytes.
pub const MAX_HASH_KEY_BYTES: usize = 2048;
/// DynamoDB's largest sort key value, in bytes.
pub const MAX_RANGE_KEY_BYTES: usize = 1024;
/// DynamoDB's largest item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One key attribute's value, as encoded in the item key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    S(String),
    /// Canonical text of the number.
    N(String),
    B(Vec<u8>),
}

impl KeyPart {
    fn tag(&self) -> u8 {
        match self {
            KeyPart::S(_) => b'S',
            KeyPart::N(_) => b'N',
            KeyPart::B(_) => b'B',
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            KeyPart::S(s) | KeyPart::N(s) => s.as_bytes(),
            KeyPart::B(b) => b,
        }
    }
}

/// The key of an item: partition value and optional sort value.
pub fn encode_key(hash: &KeyPart, range: Option<&KeyPart>) -> Vec<u8> {
    let h = hash.bytes();
    let mut out = Vec::with_capacity(4 + h.len() + range.map_or(0, |r| 1 + r.bytes().len()));
    out.push(ITEM_KEY_TAG);
    out.push(hash.tag());
    out.extend_from_slice(&(h.len() as u16).to_be_bytes());
    out.extend_from_slice(h);
    if let Some(r) = range {
        out.push(r.tag());
        out.extend_from_slice(r.bytes());
    }
    out
}

fn part(tag: u8, bytes: &[u8]) -> Option<KeyPart> {
    match tag {
        b'S' => String::from_utf8(bytes.to_vec()).ok().map(KeyPart::S),
        b'N' => String::from_utf8(bytes.to_vec()).ok().map(KeyPart::N),
        b'B' => Some(KeyPart::B(bytes.to_vec())),
        _ => None,
    }
}

/// The inverse of [`encode_key`]; `None` for a key that is not an item key.
pub fn decode_key(key: &[u8]) -> Option<(KeyPart, Option<KeyPart>)> {
    let (&[tag, ty, l0, l1], rest) = key.split_first_chunk::<4>()?;
    if tag != ITEM_KEY_TAG {
        return None;
    }
    let len = u16::from_be_bytes([l0, l1]) as usize;
    let hash = part(ty, rest.get(..len)?)?;
    let range = match rest.get(len..)? {
        [] => None,
        [ty, sk @ ..] => Some(part(*ty, sk)?),
    };
    Some((hash, range))
}

fn key_part(attr: &KeyAttr, v: &AttributeValue, limit: usize) -> Result<KeyPart, DynamoError> {
    let mismatch = || {
        DynamoError::Validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {} expected: {} actual: {}",
            attr.name,
            attr.ty.as_str(),
            v.type_name()
        ))
    };
    let part = match (attr.ty, v) {
        (KeyType::S, AttributeValue::S(s)) => KeyPart::S(s.clone()),
        (KeyType::N, AttributeValue::N(n)) => KeyPart::N(canonical_number(n)?),
        (KeyType::B, AttributeValue::B(b)) => KeyPart::B(decode_b64(b)?),
        _ => return Err(mismatch()),
    };
    let len = part.bytes().len();
    if len == 0 {
        return Err(DynamoError::Validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
            if attr.ty == KeyType::B { "binary" } else { "string" },
            attr.name
        )));
    }
    if len > limit {
        return Err(DynamoError::Validation(format!(
            "One or more parameter values were invalid: Size of key {} is {len} bytes, over the limit of {limit} bytes",
            attr.name
        )));
    }
    Ok(part)
}

/// The storage key of `item` (an item to put, or with `exact` a `Key` parameter, which
/// must hold the key attributes and nothing else).
pub fn item_key(schema: &Schema, item: &Item, exact: bool) -> Result<Vec<u8>, DynamoError> {
    let get = |a: &KeyAttr| {
        item.get(&a.name).ok_or_else(|| {
            DynamoError::Validation(if exact {
                "The provided key element does not match the schema".to_string()
            } else {
                format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    a.name
                )
            })
        })
    };
    let hash = key_part(&schema.hash, get(&schema.hash)?, MAX_HASH_KEY_BYTES)?;
    let range = match &schema.range {
        Some(r) => Some(key_part(r, get(r)?, MAX_RANGE_KEY_BYTES)?),
        None => None,
    };
    let wanted = 1 + schema.range.is_some() as usize;
    if exact && item.len() != wanted {
        return Err(DynamoError::Validation(
            "The provided key element does not match the schema".into(),
        ));
    }
    Ok(encode_key(&hash, range.as_ref()))
}

/// `magic(2) xxh3_64(json) as u64 LE (8) json`.
fn with_magic(magic: [u8; 2], json: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + json.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&xxh3_64(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

fn strip_magic<'a>(magic: [u8; 2], what: &str, value: &'a [u8]) -> Result<&'a [u8], String> {
    match value.split_first_chunk::<2>() {
        Some((m, rest)) if *m == magic => {
            let (sum, json) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| format!("{what} value is truncated"))?;
            if u64::from_le_bytes(*sum) != xxh3_64(json) {
                return Err(format!("{what} value is damaged (checksum mismatch)"));
            }
            Ok(json)
        }
        Some(([m, v], _)) if *m == magic[0] => Err(format!(
            "{what} has format version {v}; this rewind reads version {}",
            magic[1]
        )),
        _ => Err(format!(
            "{what} is not a rewind DynamoDB {what} (bad magic byte)"
        )),
    }
}

pub fn encode_item(item: &Item) -> Vec<u8> {
    with_magic(
        ITEM_MAGIC,
        serde_json::to_vec(item).expect("items serialize"),
    )
}

/// Reads an item value back; anything else (a value a Redis client wrote, damage) is an
/// error, never a panic.
pub fn decode_item(value: &[u8]) -> Result<Item, String> {
    let json = strip_magic(ITEM_MAGIC, "item", value)?;
    serde_json::from_slice(json).map_err(|e| format!("item value is damaged: {e}"))
}

pub fn encode_schema(s: &StoredSchema) -> Vec<u8> {
    with_magic(
        SCHEMA_MAGIC,
        serde_json::to_vec(s).expect("schemas serialize"),
    )
}

pub fn decode_schema(value: &[u8]) -> Result<StoredSchema, String> {
    let json = strip_magic(SCHEMA_MAGIC, "schema", value)?;
    serde_json::from_slice(json).map_err(|e| format!("schema value is damaged: {e}"))
}

pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.len() * 3 / 4,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::SS(s) => s.iter().map(String::len).sum(),
        AttributeValue::NS(s) => s.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::BS(s) => s.iter().map(|b| b.len() * 3 / 4).sum(),
    }
}

/// An item's size as DynamoDB counts it (names plus values), closely enough for its 400 KB
/// limit.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key_part() -> impl Strategy<Value = KeyPart> {
        prop_oneof![
            ".{0,12}".prop_map(KeyPart::S),
            "-?[1-9][0-9]{0,5}(E-?[1-9])?".prop_map(KeyPart::N),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(KeyPart::B),
        ]
    }

    proptest! {
        #[test]
        fn keys_round_trip_and_never_collide(
            a in (key_part(), proptest::option::of(key_part())),
            b in (key_part(), proptest::option::of(key_part())),
        ) {
            let ka = encode_key(&a.0, a.1.as_ref());
            let kb = encode_key(&b.0, b.1.as_ref());
            prop_assert_eq!(decode_key(&ka), Some(a.clone()));
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_ne!(&ka[..], SCHEMA_KEY);
        }
    }

    #[test]
    fn shifting_bytes_between_partition_and_sort_key_changes_the_key() {
        let s = |x: &str| KeyPart::S(x.into());
        assert_ne!(
            encode_key(&s("ab"), Some(&s("c"))),
            encode_key(&s("a"), Some(&s("bc")))
        );
        assert_ne!(encode_key(&s("a"), Some(&s(""))), encode_key(&s("a"), None));
        assert_ne!(
            encode_key(&s("1"), None),
            encode_key(&KeyPart::N("1".into()), None)
        );
    }

    #[test]
    fn items_round_trip_and_garbage_is_refused() {
        let item: Item = serde_json::from_str(
            r#"{"pk":{"S":"a"},"n":{"N":"-1.5"},"m":{"M":{"l":{"L":[{"NULL":true},{"BS":["AQ=="]}]}}}}"#,
        )
        .unwrap();
        let bytes = encode_item(&item);
        assert_eq!(&bytes[..2], &ITEM_MAGIC);
        assert_eq!(decode_item(&bytes).unwrap(), item);
        // A flipped bit anywhere is refused.
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(decode_item(&bad).is_err(), "flip of bit {bit} at {i}");
            }
        }
        assert!(decode_item(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut v2 = bytes.clone();
        v2[1] = 2;
        assert!(decode_item(&v2).unwrap_err().contains("version 2"));
        for garbage in [
            &b""[..],
            b"hello",
            b"\xD7",
            b"\xD7\x01{",
            b"\xD7\x01[1]",
            b"\xD8\x01{}",
        ] {
            assert!(decode_item(garbage).is_err(), "{garbage:?}");
        }
        assert!(decode_schema(&bytes).is_err(), "an item is not a schema");
        // A sound checksum over JSON that is not an item is refused too.
        for json in [&b"[1]"[..], br#"{"a":{"Q":"x"}}"#, b"{"] {
            assert!(decode_item(&with_magic(ITEM_MAGIC, json.to_vec())).is_err());
        }
    }

    #[test]
    fn key_attributes_are_checked_against_the_schema() {
        let schema = StoredSchema {
            key_schema: serde_json::from_str(
                r#"[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}]"#,
            )
            .unwrap(),
            attribute_definitions: serde_json::from_str(
                r#"[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"N"}]"#,
            )
            .unwrap(),
        };
        let back = decode_schema(&encode_schema(&schema)).unwrap();
        assert_eq!(back, schema);
        let schema = schema.schema().unwrap();
        let item = |j: &str| -> Item { serde_json::from_str(j).unwrap() };
        let k1 = item_key(
            &schema,
            &item(r#"{"pk":{"S":"a"},"sk":{"N":"1.0"},"x":{"S":"y"}}"#),
            false,
        )
        .unwrap();
        let k2 = item_key(&schema, &item(r#"{"pk":{"S":"a"},"sk":{"N":"1"}}"#), true).unwrap();
        assert_eq!(k1, k2, "numbers compare by value");
        for (bad, exact) in [
            (r#"{"pk":{"S":"a"}}"#, false),
            (r#"{"pk":{"N":"1"},"sk":{"N":"1"}}"#, false),
            (r#"{"pk":{"S":""},"sk":{"N":"1"}}"#, false),
            (r#"{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"S":"y"}}"#, true),
            (r#"{"pk":{"S":"a"},"sk":{"N":"x"}}"#, false),
        ] {
            assert!(
                matches!(
                    item_key(&schema, &item(bad), exact),
                    Err(DynamoError::Validation(_))
                ),
                "{bad}"
            );
        }
    }
}
