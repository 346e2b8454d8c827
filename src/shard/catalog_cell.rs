//! The catalog in memory: one change at a time, and readers that never wait for a save.
//!
//! A change (create, drop, PITR on or off, a restore's start and end, expiry) holds the
//! writer lock across its catalog save, an `fsync` or three. Readers (`TABLE.LIST`,
//! `TABLE.DESCRIBE`, DynamoDB's `DescribeTable` and `ListTables`, `INFO`, the archive
//! shipper, maintenance) read the published copy instead: the catalog as the last finished
//! change left it, swapped in when that change lets go of the writer lock, after its save and
//! after the table map was updated (a drop publishes once more before the table leaves the
//! map, so no reader finds an active entry with no table behind it). So a reader sees a change only once it is durable and
//! whole, never waits for one in progress, and sees every change whose caller has been
//! answered.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::catalog::Catalog;

pub(crate) struct CatalogCell {
    writer: Mutex<Catalog>,
    published: parking_lot::RwLock<Arc<Catalog>>,
}

impl CatalogCell {
    pub fn new(catalog: Catalog) -> CatalogCell {
        let published = parking_lot::RwLock::new(Arc::new(catalog.clone()));
        CatalogCell {
            writer: Mutex::new(catalog),
            published,
        }
    }

    /// The catalog as the last finished change left it.
    pub fn read(&self) -> Arc<Catalog> {
        self.published.read().clone()
    }

    /// Exclusive access for a change; what the guard holds when it is dropped is published.
    pub fn write(&self) -> CatalogGuard<'_> {
        self.guard(self.writer.lock().expect("catalog lock"))
    }

    /// [`CatalogCell::write`] for cleanup after a panic: a poisoned lock is taken anyway.
    pub fn write_even_poisoned(&self) -> CatalogGuard<'_> {
        self.guard(self.writer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn guard<'a>(&'a self, guard: MutexGuard<'a, Catalog>) -> CatalogGuard<'a> {
        CatalogGuard {
            guard,
            published: &self.published,
        }
    }
}

pub(crate) struct CatalogGuard<'a> {
    guard: MutexGuard<'a, Catalog>,
    published: &'a parking_lot::RwLock<Arc<Catalog>>,
}

impl Deref for CatalogGuard<'_> {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        &self.guard
    }
}

impl DerefMut for CatalogGuard<'_> {
    fn deref_mut(&mut self) -> &mut Catalog {
        &mut self.guard
    }
}

impl CatalogGuard<'_> {
    /// Publishes what the guard holds now, before it is dropped (which publishes again): for
    /// a change whose readers must see the new catalog before its next step.
    pub fn publish(&self) {
        // Changes replace the catalog only after their save succeeded, so what is here is
        // what the file holds.
        let now = Arc::new(self.guard.clone());
        *self.published.write() = now;
    }
}

impl Drop for CatalogGuard<'_> {
    fn drop(&mut self) {
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_a_change_once_its_writer_lets_go_and_never_wait_for_it() {
        let cell = Arc::new(CatalogCell::new(Catalog::default()));
        let mut w = cell.write();
        w.add("t", 2, 1);
        // A reader on another thread is answered while the change is held (as during a
        // save), with the catalog before it.
        let c = cell.clone();
        let seen = std::thread::spawn(move || c.read().get("t").is_some())
            .join()
            .unwrap();
        assert!(!seen);
        drop(w);
        assert!(cell.read().get("t").is_some());
    }
}
