//! One key and its value in a single heap allocation, behind a thin (8-byte) pointer.
//!
//! ```text
//! offset  size   field
//! 0       4      key length   (u32, native endian)
//! 4       4      value length (u32, native endian)
//! 8       klen   key bytes
//! 8+klen  vlen   value bytes
//! ```
//!
//! Against a map of `Box<[u8]>` key to `Box<[u8]>` value this saves one allocation per key
//! and shrinks the hash-table slot from 32 to 8 bytes: the difference between using more
//! memory per key than Redis and less (see docs/BENCHMARKS.md). In memory only; never on disk.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

const HEADER: usize = 8;

pub struct Entry {
    ptr: NonNull<u8>,
}

// SAFETY: an Entry owns its allocation exclusively, like a Box<[u8]>; shared access only
// reads it.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

fn layout(klen: usize, vlen: usize) -> Layout {
    Layout::from_size_align(HEADER + klen + vlen, 4).expect("entry size fits a Layout")
}

impl Entry {
    /// Copies `key` and `value` into one allocation. Lengths are bounded by the server's
    /// limits far below `u32::MAX`; longer ones are a programmer error.
    pub fn new(key: &[u8], value: &[u8]) -> Entry {
        let klen = u32::try_from(key.len()).expect("key under 4 GiB");
        let vlen = u32::try_from(value.len()).expect("value under 4 GiB");
        let layout = layout(key.len(), value.len());
        // SAFETY: the layout is never zero-sized (the header is 8 bytes); every byte of the
        // allocation is written below before it is read.
        unsafe {
            let p = alloc(layout);
            let Some(ptr) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            p.cast::<u32>().write(klen);
            p.add(4).cast::<u32>().write(vlen);
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(HEADER), key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), p.add(HEADER + key.len()), value.len());
            Entry { ptr }
        }
    }

    #[inline]
    fn lens(&self) -> (usize, usize) {
        // SAFETY: the header was written by `new` and the pointer is 4-aligned.
        unsafe {
            let p = self.ptr.as_ptr();
            (
                p.cast::<u32>().read() as usize,
                p.add(4).cast::<u32>().read() as usize,
            )
        }
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        let (klen, _) = self.lens();
        // SAFETY: bytes 8..8+klen are the key, initialised by `new`, alive as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(HEADER), klen) }
    }

    #[inline]
    pub fn value(&self) -> &[u8] {
        let (klen, vlen) = self.lens();
        // SAFETY: the value follows the key, initialised by `new`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(HEADER + klen), vlen) }
    }

    /// The value's bytes, writable: an overwrite of the same length reuses them.
    #[inline]
    pub fn value_mut(&mut self) -> &mut [u8] {
        let (klen, vlen) = self.lens();
        // SAFETY: as `value`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(HEADER + klen), vlen) }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let (klen, vlen) = self.lens();
        // SAFETY: allocated by `new` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout(klen, vlen)) }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value_len", &self.value().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_of_every_size_round_trip() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
        for (k, v) in [
            (&b""[..], &b""[..]),
            (b"k", b""),
            (b"", b"v"),
            (b"key:000000000001", &[7u8; 100][..]),
        ] {
            let e = Entry::new(k, v);
            assert_eq!(e.key(), k);
            assert_eq!(e.value(), v);
        }
        let big = vec![3u8; 1 << 20];
        let e = Entry::new(&big[..1000], &big);
        assert_eq!((e.key().len(), e.value().len()), (1000, 1 << 20));
    }

    #[test]
    fn value_mut_changes_only_the_value() {
        let mut e = Entry::new(b"key", b"abc");
        e.value_mut().copy_from_slice(b"xyz");
        assert_eq!((e.key(), e.value()), (&b"key"[..], &b"xyz"[..]));
    }
}
