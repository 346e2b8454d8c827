//! The catalog: which tables exist, their ids, shard counts, status and PITR settings.
//! Kept in one file, `<data-dir>/catalog`, replaced atomically on every change; each table
//! directory also holds its own entry (`table.meta`), from which a lost catalog is rebuilt.

mod format;
mod names;
mod table_file;

pub use format::{decode, encode, CATALOG_MAGIC, CATALOG_VERSION};

/// Most shards a table may have (a catalog entry or `table.meta` claiming more is damaged).
pub const MAX_SHARDS: u32 = 64;
pub use names::validate_table_name;
pub use table_file::{
    decode_table_file, encode_table_file, read_table_file, ReadTableFileError, TABLE_FILE,
    TABLE_FILE_MAGIC, TABLE_FILE_VERSION,
};

/// A table's lifecycle state, as `TABLE.DESCRIBE` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStatus {
    Active = 0,
    Restoring = 1,
    Failed = 2,
    /// Dropped, kept only so its PITR history stays restorable until its window ends.
    Dropped = 3,
}

impl TableStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Active => "ACTIVE",
            TableStatus::Restoring => "RESTORING",
            TableStatus::Failed => "FAILED",
            TableStatus::Dropped => "DROPPED",
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(TableStatus::Active),
            1 => Some(TableStatus::Restoring),
            2 => Some(TableStatus::Failed),
            3 => Some(TableStatus::Dropped),
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
    /// When the table was dropped (status `DROPPED`), else 0.
    pub dropped_us: u64,
    /// For a table made by a restore: the source table's id and the time restored to.
    pub restore_source_id: u64,
    pub restore_at_us: u64,
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
    /// The live (not dropped) table with this name.
    pub fn get(&self, name: &str) -> Option<&TableMeta> {
        self.tables
            .iter()
            .find(|t| t.name == name && t.status != TableStatus::Dropped)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut TableMeta> {
        self.tables
            .iter_mut()
            .find(|t| t.name == name && t.status != TableStatus::Dropped)
    }

    pub fn by_id(&self, id: u64) -> Option<&TableMeta> {
        self.tables.iter().find(|t| t.id == id)
    }

    /// A restore source: the live table of that name, else the most recently dropped one;
    /// `id:<n>` names any table by id.
    pub fn source(&self, name: &str) -> Option<&TableMeta> {
        if let Some(id) = name.strip_prefix("id:").and_then(|n| n.parse::<u64>().ok()) {
            return self.by_id(id);
        }
        self.get(name).or_else(|| {
            self.tables
                .iter()
                .filter(|t| t.name == name && t.status == TableStatus::Dropped)
                .max_by_key(|t| t.dropped_us)
        })
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
            dropped_us: 0,
            restore_source_id: 0,
            restore_at_us: 0,
        };
        self.next_table_id += 1;
        self.tables.push(meta.clone());
        meta
    }

    /// Removes the live table of that name.
    pub fn remove(&mut self, name: &str) -> Option<TableMeta> {
        let i = self
            .tables
            .iter()
            .position(|t| t.name == name && t.status != TableStatus::Dropped)?;
        Some(self.tables.remove(i))
    }

    pub fn remove_id(&mut self, id: u64) -> Option<TableMeta> {
        let i = self.tables.iter().position(|t| t.id == id)?;
        Some(self.tables.remove(i))
    }
}
