//! LEB128 unsigned varints, as used inside block payloads.

/// The longest encoding of a `u64`.
pub const MAX_VARINT_LEN: usize = 10;

pub fn encoded_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a varint from the front of `buf`: `(value, bytes used)`, or `None` when the slice
/// ends mid-varint or the encoding is longer than ten bytes or overflows.
#[inline]
pub fn get(buf: &[u8]) -> Option<(u64, usize)> {
    // Fast path: one byte (lengths under 128 are the common case).
    let &first = buf.first()?;
    if first < 0x80 {
        return Some((first as u64, 1));
    }
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = (b & 0x7f) as u64;
        if i == 9 && b > 1 {
            return None; // would overflow 64 bits
        }
        v |= bits << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges_round_trip() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), encoded_len(v));
            assert_eq!(get(&out), Some((v, out.len())));
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(get(&[]), None);
        assert_eq!(get(&[0x80]), None);
        assert_eq!(get(&[0xff; 11]), None);
        // Ten bytes whose last one carries more than the top bit of a u64.
        let mut v = vec![0xff; 9];
        v.push(0x02);
        assert_eq!(get(&v), None);
    }

    proptest! {
        #[test]
        fn any_u64_round_trips(v: u64) {
            let mut out = Vec::new();
            put(&mut out, v);
            prop_assert_eq!(get(&out), Some((v, out.len())));
        }
    }
}
