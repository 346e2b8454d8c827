//! The catalog: which tables exist, their ids, shard counts, status and PITR settings.
//! Kept in one file, `<data-dir>/catalog`, replaced atomically on every change.

mod format;
mod names;

pub use format::{decode, encode, CATALOG_MAGIC, CATALOG_VERSION};
pub use names::validate_table_name;

/// A table's lifecycle state, as `TABLE.DESCRIBE` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStatus {
    Active = 0,
    Restoring = 1,
    Failed = 2,
}

impl TableStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Active => "ACTIVE",
            TableStatus::Restoring => "RESTORING",
            TableStatus::Failed => "FAILED",
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(TableStatus::Active),
            1 => Some(TableStatus::Restoring),
            2 => Some(TableStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    pub id: u64,
    pub name: String,
    pub shards: u32,
    pub status: TableStatus,
    pub created_us: u64,
    /// PITR recovery period in days; 0 when PITR is off.
    pub pitr_days: u8,
    /// When PITR was last enabled (Unix µs); 0 when off.
    pub pitr_since_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The id the next table gets. Ids are never reused.
    pub next_table_id: u64,
    pub tables: Vec<TableMeta>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            next_table_id: 1,
            tables: Vec::new(),
        }
    }
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&TableMeta> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Adds a table with a fresh id and returns it.
    pub fn add(&mut self, name: &str, shards: u32, created_us: u64) -> TableMeta {
        let meta = TableMeta {
            id: self.next_table_id,
            name: name.to_string(),
            shards,
            status: TableStatus::Active,
            created_us,
            pitr_days: 0,
            pitr_since_us: 0,
        };
        self.next_table_id += 1;
        self.tables.push(meta.clone());
        meta
    }

    pub fn remove(&mut self, name: &str) -> Option<TableMeta> {
        let i = self.tables.iter().position(|t| t.name == name)?;
        Some(self.tables.remove(i))
    }
}
