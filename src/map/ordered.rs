//! The ordered index of a table shard's DynamoDB items: every item key (first byte 0x01,
//! layout in FORMAT.md, "DynamoDB items inside a table") under an *order key* that sorts
//! items as DynamoDB sorts them, by partition key then sort key, so `Query` reads one
//! partition's items in sort-key order and `Scan` pages through a table in a stable order.
//!
//! The order key is the storage key itself when the sort key is a string or binary (their
//! bytes already sort as DynamoDB sorts them); a number sort key is re-encoded so its bytes
//! sort numerically:
//!
//! ```text
//! zero      0x02
//! positive  0x03  (magnitude + 200): u16 BE  digit+1 ...  0x00
//! negative  0x01  (65535 - (magnitude + 200)): u16 BE  (254 - digit) ...  0xFF
//! ```
//!
//! (`magnitude` is the power of ten of the leading digit; digits have no trailing zeros.) It
//! is kept beside the map in memory only: built from the map when a shard opens (start-up,
//! a restore's target), then kept up to date by the shard's commit hook, in log order.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use super::kv::KvMap;

/// First byte of every DynamoDB item key.
pub const ITEM_KEY_TAG: u8 = 0x01;

/// An item's order key and its storage key (empty when they are the same).
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
pub struct OrderedKeys {
    inner: RwLock<Entries>,
}

/// A number's canonical text (`-15E-1`) as `(negative, digits, exponent)`; `None` for any
/// other text (`00`, `-0`, `1.5`, `10`, `1E0`, ...), so that two texts of one number (a key
/// a Redis client wrote, say) can never share an order key.
fn canonical_parts(s: &str) -> Option<(bool, &str, i64)> {
    if s == "0" {
        return Some((false, "0", 0));
    }
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (digits, exp) = match rest.split_once('E') {
        Some((d, e)) => {
            let exp = e.parse::<i64>().ok()?;
            // `E` only with a non-zero exponent, written as i64 writes it.
            if exp == 0 || exp.to_string() != e {
                return None;
            }
            (d, exp)
        }
        None => (rest, 0),
    };
    let canonical_digits = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && !digits.ends_with('0');
    canonical_digits.then_some((neg, digits, exp))
}

/// Bytes that sort as the number does; `None` for text that is not a canonical number or
/// whose magnitude is far outside DynamoDB's (1E-130 to 1E126).
pub fn number_order(canonical: &str) -> Option<Vec<u8>> {
    let (neg, digits, exp) = canonical_parts(canonical)?;
    if digits == "0" {
        return Some(vec![0x02]);
    }
    let magnitude = exp.checked_add(i64::try_from(digits.len()).ok()? - 1)?;
    if !(-1000..=1000).contains(&magnitude) {
        return None;
    }
    let m = u16::try_from(magnitude + 200).ok()?;
    let mut out = Vec::with_capacity(4 + digits.len());
    if neg {
        out.push(0x01);
        out.extend_from_slice(&(u16::MAX - m).to_be_bytes());
        out.extend(digits.bytes().map(|d| 254 - (d - b'0')));
        out.push(0xFF);
    } else {
        out.push(0x03);
        out.extend_from_slice(&m.to_be_bytes());
        out.extend(digits.bytes().map(|d| d - b'0' + 1));
        out.push(0x00);
    }
    Some(out)
}

/// The order key of an item key; `None` for a key that is not one.
pub fn order_key(storage: &[u8]) -> Option<Vec<u8>> {
    let (&[tag, _ty, l0, l1], rest) = storage.split_first_chunk::<4>()?;
    if tag != ITEM_KEY_TAG {
        return None;
    }
    let len = u16::from_be_bytes([l0, l1]) as usize;
    let after = rest.get(len..)?;
    match after {
        [b'N', sk @ ..] => {
            let n = number_order(std::str::from_utf8(sk).ok()?)?;
            let mut out = storage[..4 + len + 1].to_vec();
            out.extend(n);
            Some(out)
        }
        _ => Some(storage.to_vec()),
    }
}

impl OrderedKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of every item key `map` holds.
    pub fn build(map: &KvMap) -> Self {
        let mut e = Entries::new();
        map.for_each(|k, _| {
            if k.first() == Some(&ITEM_KEY_TAG) {
                if let Some(o) = order_key(k) {
                    let stored = if o == k { Vec::new() } else { k.to_vec() };
                    e.insert(o, stored);
                }
            }
        });
        OrderedKeys {
            inner: RwLock::new(e),
        }
    }

    /// Notes puts (`true`) and deletes of keys, in log order; keys that are not item keys
    /// are ignored.
    pub fn note<'a>(&self, changes: impl Iterator<Item = (&'a [u8], bool)>) {
        let mut guard = None;
        for (k, put) in changes {
            if k.first() != Some(&ITEM_KEY_TAG) {
                continue;
            }
            let Some(o) = order_key(k) else { continue };
            let e = guard.get_or_insert_with(|| self.inner.write());
            if put {
                let stored = if o == k { Vec::new() } else { k.to_vec() };
                e.insert(o, stored);
            } else {
                e.remove(&o);
            }
        }
    }

    /// Takes `other`'s entries (the index built from a map, into the one the hook holds).
    pub fn replace_with(&self, other: OrderedKeys) {
        *self.inner.write() = other.inner.into_inner();
    }

    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` (order key, storage key) pairs between the bounds, ascending or (with
    /// `reverse`) descending.
    pub fn range(
        &self,
        (from, to): (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        // BTreeMap::range panics on bounds that cross (start past end, or one key excluded
        // at both ends): those hold nothing.
        let crossed = match (from, to) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a >= b
            }
            _ => false,
        };
        if crossed {
            return Vec::new();
        }
        let e = self.inner.read();
        let pair = |(o, s): (&Vec<u8>, &Vec<u8>)| {
            let storage = if s.is_empty() { o.clone() } else { s.clone() };
            (o.clone(), storage)
        };
        let r = e.range::<[u8], _>((from, to));
        if reverse {
            r.rev().take(limit).map(pair).collect()
        } else {
            r.take(limit).map(pair).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_numbers_get_an_order_key() {
        for bad in [
            "", "00", "-0", "01", "10", "1E0", "1E+2", "1E02", "1.5", "-", "1E", "x",
        ] {
            assert_eq!(number_order(bad), None, "{bad:?}");
        }
        assert_eq!(number_order("11E9223372036854775807"), None, "no overflow");
        assert_eq!(number_order("0"), Some(vec![0x02]));
        assert!(number_order("-15E-1").is_some() && number_order("1E2").is_some());
    }

    #[test]
    fn numbers_order_numerically() {
        let mut v = [
            "-1E2", "-25E-1", "-2", "0", "1", "15E-1", "2", "1E1", "1E2", "-1E-5", "1E-5",
        ];
        let mut sorted = v;
        sorted.sort_by_key(|s| number_order(s).unwrap());
        v.sort_by(|a, b| {
            let f = |s: &str| s.parse::<f64>().unwrap();
            f(a).partial_cmp(&f(b)).unwrap()
        });
        assert_eq!(sorted, v);
    }

    /// `digits` × 10^`exp` as an exact rational comparison key: (sign, value) compared by
    /// scaling both to a common exponent.
    fn cmp_decimal(a: (i64, i32), b: (i64, i32)) -> std::cmp::Ordering {
        let e = a.1.min(b.1);
        let scale = |(m, x): (i64, i32)| i128::from(m) * 10i128.pow((x - e) as u32);
        scale(a).cmp(&scale(b))
    }

    /// The canonical text (FORMAT.md) of `m` × 10^`x`: no trailing zeros, `E` when not 0.
    fn canonical(m: i64, x: i32) -> String {
        if m == 0 {
            return "0".into();
        }
        let (mut digits, mut x) = (m.unsigned_abs(), x);
        while digits % 10 == 0 {
            digits /= 10;
            x += 1;
        }
        let sign = if m < 0 { "-" } else { "" };
        match x {
            0 => format!("{sign}{digits}"),
            x => format!("{sign}{digits}E{x}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn order_bytes_sort_as_the_numbers(a in (-99_999i64..99_999, -12i32..12),
                                           b in (-99_999i64..99_999, -12i32..12)) {
            let text = |(m, x): (i64, i32)| canonical(m, x);
            let (ka, kb) = (number_order(&text(a)).unwrap(), number_order(&text(b)).unwrap());
            proptest::prop_assert_eq!(ka.cmp(&kb), cmp_decimal(a, b), "{} vs {}", text(a), text(b));
        }
    }

    fn key(pk: &str, sk: &str, ty: u8) -> Vec<u8> {
        let mut k = vec![ITEM_KEY_TAG, b'S'];
        k.extend_from_slice(&(pk.len() as u16).to_be_bytes());
        k.extend_from_slice(pk.as_bytes());
        k.push(ty);
        k.extend_from_slice(sk.as_bytes());
        k
    }

    #[test]
    fn items_of_a_partition_in_sort_key_order() {
        let idx = OrderedKeys::new();
        let keys: Vec<Vec<u8>> = ["1E1", "9", "-1", "1E2"]
            .iter()
            .map(|s| key("p", s, b'N'))
            .collect();
        idx.note(keys.iter().map(|k| (k.as_slice(), true)));
        idx.note(
            [
                (key("q", "1", b'N').as_slice(), true),
                (b"redis".as_slice(), true),
            ]
            .into_iter(),
        );
        let prefix = order_key(&key("p", "0", b'N')).unwrap();
        let p = &prefix[..prefix.len() - 1]; // the partition and sort-key type
        let mut hi = p.to_vec();
        hi.push(0xFF);
        let got = idx.range((Bound::Included(p), Bound::Excluded(&hi)), false, 10);
        let sks: Vec<Vec<u8>> = got.into_iter().map(|(_, s)| s).collect();
        let want: Vec<Vec<u8>> = ["-1", "9", "1E1", "1E2"]
            .iter()
            .map(|s| key("p", s, b'N'))
            .collect();
        assert_eq!(sks, want);
        idx.note([(key("p", "9", b'N').as_slice(), false)].into_iter());
        assert_eq!(idx.len(), 4);
    }
}
