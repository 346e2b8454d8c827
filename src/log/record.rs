//! Records: the logical writes inside a block's payload.
//!
//! Grammar of a raw (decompressed) payload, repeated `record_count` times:
//!
//! ```text
//! record  := op:u8 key_len:varint key:[u8; key_len] (value_len:varint value:[u8; value_len])?
//! op      := 1 (put, has a value) | 2 (delete, no value)
//! ```
//!
//! Records carry no sequence number of their own: record `i` of a block has sequence
//! `block.first_seq + i`.

use bytes::Bytes;

use super::error::FormatError;
use super::varint;

pub const OP_PUT: u8 = 1;
pub const OP_DELETE: u8 = 2;

/// An owned write, as producers hand it to the log. `Bytes` lets a server pass slices of its
/// receive buffer without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Put { key: Bytes, value: Bytes },
    Delete { key: Bytes },
}

impl Record {
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Record::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn delete(key: impl Into<Bytes>) -> Self {
        Record::Delete { key: key.into() }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            Record::Put { key, .. } | Record::Delete { key } => key,
        }
    }

    /// Bytes this record takes in a raw payload.
    pub fn encoded_len(&self) -> usize {
        let k = self.key().len();
        let base = 1 + varint::encoded_len(k as u64) + k;
        match self {
            Record::Put { value, .. } => {
                base + varint::encoded_len(value.len() as u64) + value.len()
            }
            Record::Delete { .. } => base,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Put { key, value } => encode_parts(out, OP_PUT, key, Some(value)),
            Record::Delete { key } => encode_parts(out, OP_DELETE, key, None),
        }
    }

    pub fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Put { key, value } => RecordRef::Put { key, value },
            Record::Delete { key } => RecordRef::Delete { key },
        }
    }
}

fn encode_parts(out: &mut Vec<u8>, op: u8, key: &[u8], value: Option<&[u8]>) {
    out.push(op);
    varint::put(out, key.len() as u64);
    out.extend_from_slice(key);
    if let Some(value) = value {
        varint::put(out, value.len() as u64);
        out.extend_from_slice(value);
    }
}

/// Records already encoded in the payload format, as a producer builds them: one buffer for a
/// whole pipeline, no allocation or reference count per record. The writer copies the bytes
/// into a block as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBatch {
    buf: Vec<u8>,
    count: u32,
}

impl RecordBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `bytes` of encoded records.
    pub fn with_capacity(bytes: usize) -> Self {
        RecordBatch {
            buf: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// Bytes the batch's buffer can hold before it grows.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Empties the batch, keeping its buffer for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        encode_parts(&mut self.buf, OP_PUT, key, Some(value));
        self.count += 1;
    }

    pub fn delete(&mut self, key: &[u8]) {
        encode_parts(&mut self.buf, OP_DELETE, key, None);
        self.count += 1;
    }

    pub fn push(&mut self, r: &Record) {
        r.encode(&mut self.buf);
        self.count += 1;
    }

    /// Number of records.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded records, taken out of the batch.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded records.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter::new(&self.buf)
    }
}

impl<'a> FromIterator<&'a Record> for RecordBatch {
    fn from_iter<I: IntoIterator<Item = &'a Record>>(iter: I) -> Self {
        let mut b = RecordBatch::new();
        for r in iter {
            b.push(r);
        }
        b
    }
}

/// A record borrowed from a decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRef<'a> {
    Put { key: &'a [u8], value: &'a [u8] },
    Delete { key: &'a [u8] },
}

impl<'a> RecordRef<'a> {
    pub fn key(&self) -> &'a [u8] {
        match *self {
            RecordRef::Put { key, .. } | RecordRef::Delete { key } => key,
        }
    }

    pub fn to_owned(&self) -> Record {
        match *self {
            RecordRef::Put { key, value } => Record::put(key.to_vec(), value.to_vec()),
            RecordRef::Delete { key } => Record::delete(key.to_vec()),
        }
    }
}

/// Walks the records of a raw payload. Yields an error (once, then stops) on malformed input.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        RecordIter {
            buf,
            pos: 0,
            failed: false,
        }
    }

    fn bad(&mut self, detail: String) -> Option<Result<RecordRef<'a>, FormatError>> {
        self.failed = true;
        Some(Err(FormatError::Malformed {
            what: "record",
            detail: format!("at payload offset {}: {detail}", self.pos),
        }))
    }

    fn take_bytes(&mut self, at: usize) -> Result<(&'a [u8], usize), String> {
        let rest = &self.buf[at..];
        let (len, used) = varint::get(rest).ok_or("bad length varint")?;
        let start = used;
        let end = (len as usize)
            .checked_add(start)
            .filter(|&end| len <= rest.len() as u64 && end <= rest.len())
            .ok_or_else(|| format!("length {len} runs past the payload end"))?;
        Ok((&rest[start..end], at + end))
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordRef<'a>, FormatError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let op = self.buf[self.pos];
        let (key, after_key) = match self.take_bytes(self.pos + 1) {
            Ok(v) => v,
            Err(e) => return self.bad(format!("key: {e}")),
        };
        match op {
            OP_PUT => match self.take_bytes(after_key) {
                Ok((value, end)) => {
                    self.pos = end;
                    Some(Ok(RecordRef::Put { key, value }))
                }
                Err(e) => self.bad(format!("value: {e}")),
            },
            OP_DELETE => {
                self.pos = after_key;
                Some(Ok(RecordRef::Delete { key }))
            }
            other => self.bad(format!("unknown op {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            (bytes(), bytes()).prop_map(|(k, v)| Record::put(k, v)),
            bytes().prop_map(Record::delete),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(arb_record(), 0..40)) {
            let mut buf = Vec::new();
            for r in &records {
                let before = buf.len();
                r.encode(&mut buf);
                prop_assert_eq!(buf.len() - before, r.encoded_len());
            }
            let back: Vec<Record> = RecordIter::new(&buf).map(|r| r.unwrap().to_owned()).collect();
            prop_assert_eq!(back, records);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for r in RecordIter::new(&bytes) {
                let _ = r;
            }
        }
    }

    #[test]
    fn batches_encode_like_records() {
        let records = vec![Record::put(&b"a"[..], &b"1"[..]), Record::delete(&b"b"[..])];
        let mut batch = RecordBatch::new();
        batch.put(b"a", b"1");
        batch.delete(b"b");
        assert_eq!(batch, records.iter().collect::<RecordBatch>());
        assert_eq!(batch.len(), 2);
        let back: Vec<Record> = batch.iter().map(|r| r.unwrap().to_owned()).collect();
        assert_eq!(back, records);
    }

    #[test]
    fn length_past_end_is_malformed() {
        let mut buf = Vec::new();
        Record::put(&b"key"[..], &b"value"[..]).encode(&mut buf);
        buf.truncate(buf.len() - 1);
        let got: Vec<_> = RecordIter::new(&buf).collect();
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0], Err(FormatError::Malformed { .. })));
    }

    #[test]
    fn unknown_op_is_malformed() {
        let got: Vec<_> = RecordIter::new(&[9, 0]).collect();
        assert!(matches!(got[..], [Err(FormatError::Malformed { .. })]));
    }
}
