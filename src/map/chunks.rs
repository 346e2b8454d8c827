//! A map handed out in chunks of whole lock stripes, for writing it as a checkpoint on
//! several threads (`log::checkpoint::ChunkSource`). Chunks follow stripe order, the order
//! `KvMap::try_for_each` walks, and each holds about `target_bytes` of keys and values (one
//! stripe, however large, is never split).

use std::ops::Range;

use super::kv::KvMap;
use crate::log::checkpoint::ChunkSource;

pub struct MapChunks<'a> {
    map: &'a KvMap,
    /// Per chunk: its stripes and the entries they held when the chunks were cut.
    chunks: Vec<(Range<usize>, u64)>,
}

impl KvMap {
    /// Cuts the map into chunks of about `target_bytes` of keys and values. For a map nothing
    /// writes to until the chunks are walked: a walk that finds a different count fails.
    pub fn stripe_chunks(&self, target_bytes: usize) -> MapChunks<'_> {
        let target = target_bytes.max(1) as u64;
        let mut chunks = Vec::new();
        let (mut start, mut entries, mut bytes) = (0usize, 0u64, 0u64);
        for i in 0..KvMap::stripes() {
            let (e, b) = self.stripe_size(i);
            if entries > 0 && bytes + b > target {
                chunks.push((start..i, entries));
                (start, entries, bytes) = (i, 0, 0);
            }
            entries += e;
            bytes += b;
        }
        chunks.push((start..KvMap::stripes(), entries));
        MapChunks { map: self, chunks }
    }
}

impl ChunkSource for MapChunks<'_> {
    fn chunks(&self) -> usize {
        self.chunks.len()
    }

    fn entries(&self, chunk: usize) -> u64 {
        self.chunks[chunk].1
    }

    fn walk(&self, chunk: usize, put: &mut dyn FnMut(&[u8], &[u8])) {
        for i in self.chunks[chunk].0.clone() {
            self.map.for_each_in_stripe(i, &mut *put);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_stripe_once_in_order_and_stay_near_the_target() {
        let map = crate::map::new_map();
        let empty = map.stripe_chunks(1 << 20);
        assert_eq!(
            (empty.chunks(), empty.entries(0)),
            (1, 0),
            "one empty chunk"
        );
        for i in 0..20_000u32 {
            map.put(format!("key-{i}").as_bytes(), &[b'v'; 100]);
        }
        let c = map.stripe_chunks(64 << 10);
        assert!(c.chunks() > 20, "{} chunks of ~64 KiB", c.chunks());
        let mut next = 0;
        let mut total = 0;
        let mut walked = Vec::new();
        for (k, (range, entries)) in c.chunks.iter().enumerate() {
            assert_eq!(range.start, next, "chunks are contiguous");
            next = range.end;
            let mut n = 0u64;
            let mut bytes = 0usize;
            c.walk(k, &mut |key, value| {
                n += 1;
                bytes += key.len() + value.len();
                walked.push(key.to_vec());
            });
            assert_eq!(n, *entries);
            assert_eq!(n, c.entries(k));
            // Only a chunk of one stripe may pass the target.
            assert!(
                bytes <= 64 << 10 || range.len() == 1,
                "chunk {k}: {bytes} bytes"
            );
            total += n;
        }
        assert_eq!((next, total), (KvMap::stripes(), 20_000));
        let mut order = Vec::new();
        map.for_each(|k, _| order.push(k.to_vec()));
        assert_eq!(walked, order, "the order try_for_each walks");
    }
}
