//! Operations on a Yatai installation, behind the `yatai` subcommands: checking the S3
//! connection (`s3check`), and backing up / restoring the metadata database with every archive it
//! refers to (`backup`, `restore`; the archive format is described in `manifest`).

pub mod backup;
pub mod import;
pub mod manifest;
pub mod restore;
pub mod s3check;
pub mod schema;
pub mod sigv4;
pub mod util;

/// The last schema migration this build knows.
pub fn latest_schema_version() -> i64 {
    yatai_store::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}
