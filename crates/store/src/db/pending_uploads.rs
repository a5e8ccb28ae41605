//! Uploads in progress: each presigned upload writes its own object and is tracked here until
//! it is committed, superseded or abandoned.

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error};

use super::db_error;

/// An upload in progress.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingUpload {
    pub object_key: String,
    pub version_uid: String,
    /// The multipart upload id, for multipart uploads.
    pub upload_id: Option<String>,
    pub created_at: i64,
}

/// Records an upload that will write `object_key`.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    version_uid: &str,
    object_key: &str,
    upload_id: Option<&str>,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO pending_uploads (object_key, version_uid, upload_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(object_key)
        .bind(version_uid)
        .bind(upload_id)
        .bind(now_micros())
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The uploads in progress for a version, newest first.
pub async fn of_version<'c>(
    ex: impl Executor<'c, Database = Any>,
    version_uid: &str,
) -> Result<Vec<PendingUpload>, Error> {
    sqlx::query_as("SELECT object_key, version_uid, upload_id, created_at FROM pending_uploads WHERE version_uid = $1 ORDER BY created_at DESC, object_key")
        .bind(version_uid)
        .fetch_all(ex)
        .await
        .map_err(db_error)
}

/// The multipart upload `upload_id` of a version.
pub async fn find_multipart<'c>(
    ex: impl Executor<'c, Database = Any>,
    version_uid: &str,
    upload_id: &str,
) -> Result<Option<PendingUpload>, Error> {
    sqlx::query_as("SELECT object_key, version_uid, upload_id, created_at FROM pending_uploads WHERE version_uid = $1 AND upload_id = $2")
        .bind(version_uid)
        .bind(upload_id)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// Forgets an upload (committed, superseded or abandoned).
pub async fn delete<'c>(
    ex: impl Executor<'c, Database = Any>,
    object_key: &str,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM pending_uploads WHERE object_key = $1")
        .bind(object_key)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}
