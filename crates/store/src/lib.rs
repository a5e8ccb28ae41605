//! Yatai's storage: the metadata database (SQLite or PostgreSQL, one schema and one set of
//! queries) and the object storage for archives (a local directory or an S3 bucket).

pub mod db;
pub mod objects;

pub use db::{Db, DbBackend};
pub use objects::{ObjectStorage, ObjectStorageConfig};

/// Makes a new random unique identifier (32 lower-case hex digits).
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
