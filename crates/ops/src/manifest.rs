//! The backup archive format.
//!
//! A tar file (gzip-compressed when its name ends in `.gz` or `.tgz`; restore recognises either)
//! holding, in this order:
//!
//! - `tables/<table>.jsonl`: one JSON object per row (column name -> number, string or null),
//!   ordered by primary key; tables in dependency order (a table after those it refers to);
//! - `objects/<key>`: every archive the snapshot's `versions.object_key` names, byte for byte;
//! - `manifest.json`, last, since it holds the SHA-256 of everything before it: the format
//!   version, the schema migration version, and for each table its columns, row count, size and
//!   SHA-256 of its file, and for each object its key, size and SHA-256.
//!
//! A restore accepts an archive only when every entry the manifest lists is there with its size
//! and SHA-256, nothing else is, and the tar ends with its end-of-archive marker.

use serde::{Deserialize, Serialize};

use crate::schema::Table;

/// The `format` field of every manifest.
pub const FORMAT: &str = "yatai-backup";
/// The version of the archive layout written by this build (restore reads versions up to it).
pub const FORMAT_VERSION: u32 = 1;
/// The name of the manifest entry.
pub const MANIFEST_ENTRY: &str = "manifest.json";
/// Where table files live in the archive.
pub const TABLES_DIR: &str = "tables/";
/// Where objects live in the archive.
pub const OBJECTS_DIR: &str = "objects/";

/// The manifest of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// RFC 3339 time the snapshot was taken.
    pub created_at: String,
    /// Version of the `yatai` that wrote it.
    pub yatai_version: String,
    /// What the source installation ran on.
    pub source: Source,
    /// The last schema migration applied to the source database.
    pub schema_version: i64,
    /// Tables in restore order.
    pub tables: Vec<TableEntry>,
    /// Objects, by key.
    pub objects: Vec<ObjectEntry>,
}

/// The backends of the source installation (informative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Where the objects were, e.g. `directory ./yatai-data/objects`.
    pub objects: String,
}

/// A table file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    #[serde(flatten)]
    pub table: Table,
    pub rows: u64,
    pub size: u64,
    pub sha256: String,
}

impl TableEntry {
    /// The entry name in the archive.
    pub fn path(&self) -> String {
        table_path(&self.table.name)
    }
}

/// An object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

impl ObjectEntry {
    /// The entry name in the archive.
    pub fn path(&self) -> String {
        object_path(&self.key)
    }
}

/// The entry name of a table file.
pub fn table_path(table: &str) -> String {
    format!("{TABLES_DIR}{table}.jsonl")
}

/// The entry name of an object.
pub fn object_path(key: &str) -> String {
    format!("{OBJECTS_DIR}{key}")
}

impl Manifest {
    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Total bytes of the objects.
    pub fn object_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}
