//! Uploads of versions: one row per upload (proxy, presigned single PUT or presigned multipart),
//! each writing its own object, from its start to its end (committed or failed, with a reason).

use sqlx::{Any, Executor};
use yatai_domain::registry::{Transfer, UploadState};
use yatai_domain::{time::now_micros, Error};

use super::db_error;

/// One upload of a version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    pub uid: String,
    pub version_uid: String,
    #[sqlx(try_from = "String")]
    pub transfer: Transfer,
    pub object_key: String,
    pub upload_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: UploadState,
    pub reason: String,
    pub manifest: String,
    pub base_object_key: Option<String>,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub active_at: i64,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "uid, version_uid, transfer, object_key, upload_id, status, reason, manifest, base_object_key, creator_uid, created_at, active_at, finished_at";

/// The fields of a new upload.
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    pub version_uid: &'a str,
    pub transfer: Transfer,
    pub object_key: &'a str,
    pub upload_id: Option<&'a str>,
    pub manifest: &'a str,
    pub base_object_key: Option<&'a str>,
    pub creator_uid: &'a str,
}

/// Records an upload that starts now; it is `uploading` until committed or failed.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    new: &NewUpload<'_>,
) -> Result<Upload, Error> {
    let now = now_micros();
    let u = Upload {
        uid: crate::new_uid(),
        version_uid: new.version_uid.to_string(),
        transfer: new.transfer,
        object_key: new.object_key.to_string(),
        upload_id: new.upload_id.map(str::to_string),
        status: UploadState::Uploading,
        reason: String::new(),
        manifest: new.manifest.to_string(),
        base_object_key: new.base_object_key.map(str::to_string),
        creator_uid: Some(new.creator_uid.to_string()),
        created_at: now,
        active_at: now,
        finished_at: None,
    };
    sqlx::query(&format!(
        "INSERT INTO uploads ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)"
    ))
    .bind(&u.uid)
    .bind(&u.version_uid)
    .bind(u.transfer.as_str())
    .bind(&u.object_key)
    .bind(&u.upload_id)
    .bind(u.status.as_str())
    .bind(&u.reason)
    .bind(&u.manifest)
    .bind(&u.base_object_key)
    .bind(new.creator_uid)
    .bind(u.created_at)
    .bind(u.active_at)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(u)
}

/// The upload that writes `object_key`.
pub async fn find_by_key<'c>(
    ex: impl Executor<'c, Database = Any>,
    object_key: &str,
) -> Result<Option<Upload>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE object_key = $1"
    ))
    .bind(object_key)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// The multipart upload `upload_id` of a version, in any state.
pub async fn find_multipart<'c>(
    ex: impl Executor<'c, Database = Any>,
    version_uid: &str,
    upload_id: &str,
) -> Result<Option<Upload>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE version_uid = $1 AND upload_id = $2"
    ))
    .bind(version_uid)
    .bind(upload_id)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// The uploads of a version still `uploading`, newest first.
pub async fn uploading_of_version<'c>(
    ex: impl Executor<'c, Database = Any>,
    version_uid: &str,
) -> Result<Vec<Upload>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE version_uid = $1 AND status = 'uploading' ORDER BY created_at DESC, uid"
    ))
    .bind(version_uid)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// Every upload of a version, newest first.
pub async fn of_version<'c>(
    ex: impl Executor<'c, Database = Any>,
    version_uid: &str,
) -> Result<Vec<Upload>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE version_uid = $1 ORDER BY created_at DESC, uid"
    ))
    .bind(version_uid)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// Records a sign of life of an upload.
pub async fn touch<'c>(ex: impl Executor<'c, Database = Any>, uid: &str) -> Result<(), Error> {
    sqlx::query("UPDATE uploads SET active_at = $1 WHERE uid = $2 AND status = 'uploading'")
        .bind(now_micros())
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Ends an upload that is still `uploading` (committed, or failed with a reason); returns whether
/// this call ended it (false when something else ended it first).
pub async fn finish<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    status: UploadState,
    reason: &str,
) -> Result<bool, Error> {
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE uploads SET status = $1, reason = $2, finished_at = $3, active_at = $3 WHERE uid = $4 AND status = 'uploading'",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(now)
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Uploads still `uploading` whose last sign of life is older than the limit of their transfer:
/// their client or the server process that received them is gone.
pub async fn stale<'c>(
    ex: impl Executor<'c, Database = Any>,
    proxy_before: i64,
    presigned_before: i64,
) -> Result<Vec<Upload>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE status = 'uploading' AND \
         ((transfer = 'proxy' AND active_at < $1) OR (transfer <> 'proxy' AND active_at < $2)) ORDER BY active_at"
    ))
    .bind(proxy_before)
    .bind(presigned_before)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// The objects and multipart ids of every upload still `uploading` (the janitor leaves them alone).
pub async fn uploading_keys<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<(String, Option<String>)>, Error> {
    sqlx::query_as("SELECT object_key, upload_id FROM uploads WHERE status = 'uploading'")
        .fetch_all(ex)
        .await
        .map_err(db_error)
}

/// Forgets uploads that ended before `before` (their outcome was kept for a while to be looked at).
pub async fn purge_finished<'c>(
    ex: impl Executor<'c, Database = Any>,
    before: i64,
) -> Result<u64, Error> {
    let done = sqlx::query("DELETE FROM uploads WHERE status <> 'uploading' AND finished_at < $1")
        .bind(before)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected())
}

/// Uploads that ended at or after `since`.
pub async fn ended_since<'c>(
    ex: impl Executor<'c, Database = Any>,
    since: i64,
) -> Result<Vec<Upload>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM uploads WHERE status <> 'uploading' AND finished_at >= $1"
    ))
    .bind(since)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}
