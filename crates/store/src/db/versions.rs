//! Bento and model versions: manifest, labels, upload life cycle and the archive they point to.

use sqlx::{Any, Executor};
use yatai_domain::registry::{Kind, UploadStatus};
use yatai_domain::{time::now_micros, Error};

use super::repositories::escape_like;
use super::{db_error, db_error_named};

/// A bento or model version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Version {
    pub uid: String,
    pub repository_uid: String,
    pub kind: String,
    pub version: String,
    pub description: String,
    /// The manifest as the client sent it (JSON text).
    pub manifest: String,
    pub build_at: i64,
    pub upload_status: String,
    pub upload_finished_reason: String,
    pub upload_started_at: Option<i64>,
    pub upload_finished_at: Option<i64>,
    pub image_build_status: String,
    pub object_key: Option<String>,
    pub pending_object_key: Option<String>,
    pub upload_id: Option<String>,
    pub archive_size: Option<i64>,
    pub archive_sha256: Option<String>,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl Version {
    /// The upload status (rows hold only valid ones).
    pub fn status(&self) -> UploadStatus {
        UploadStatus::parse(&self.upload_status).unwrap_or(UploadStatus::Failed)
    }
}

const COLUMNS: &str = "uid, repository_uid, kind, version, description, manifest, build_at, upload_status, upload_finished_reason, \
    upload_started_at, upload_finished_at, image_build_status, object_key, pending_object_key, upload_id, archive_size, archive_sha256, \
    creator_uid, created_at, updated_at";

fn columns_of(alias: &str) -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fields of a new version.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub repository_uid: &'a str,
    pub kind: Kind,
    pub version: &'a str,
    pub description: &'a str,
    pub manifest: &'a str,
    pub build_at: i64,
    pub creator_uid: &'a str,
}

/// Inserts a version in `pending` state; an existing version is a conflict.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    new: &NewVersion<'_>,
) -> Result<Version, Error> {
    let v = Version {
        uid: crate::new_uid(),
        repository_uid: new.repository_uid.to_string(),
        kind: new.kind.as_str().to_string(),
        version: new.version.to_string(),
        description: new.description.to_string(),
        manifest: new.manifest.to_string(),
        build_at: new.build_at,
        upload_status: UploadStatus::Pending.as_str().to_string(),
        upload_finished_reason: String::new(),
        upload_started_at: None,
        upload_finished_at: None,
        image_build_status: "pending".into(),
        object_key: None,
        pending_object_key: None,
        upload_id: None,
        archive_size: None,
        archive_sha256: None,
        creator_uid: Some(new.creator_uid.to_string()),
        created_at: now_micros(),
        updated_at: None,
    };
    sqlx::query(
        "INSERT INTO versions (uid, repository_uid, kind, version, description, manifest, build_at, upload_status, creator_uid, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&v.uid)
    .bind(&v.repository_uid)
    .bind(&v.kind)
    .bind(&v.version)
    .bind(&v.description)
    .bind(&v.manifest)
    .bind(v.build_at)
    .bind(&v.upload_status)
    .bind(new.creator_uid)
    .bind(v.created_at)
    .execute(ex)
    .await
    .map_err(db_error_named(format!("{} version {:?}", new.kind.as_str(), new.version)))?;
    Ok(v)
}

/// Finds a version of a repository.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    repository_uid: &str,
    version: &str,
) -> Result<Option<Version>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM versions WHERE repository_uid = $1 AND version = $2"
    ))
    .bind(repository_uid)
    .bind(version)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// Finds a version by uid.
pub async fn find_by_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<Option<Version>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM versions WHERE uid = $1"))
        .bind(uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// Sort orders of version lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionOrder {
    /// Newest build first (what "latest" means to the clients).
    #[default]
    NewestFirst,
    OldestFirst,
    /// By repository name, then newest first.
    Name,
}

/// Filters of a version list.
#[derive(Debug, Clone, Default)]
pub struct VersionFilter {
    /// Only this repository.
    pub repository_uid: Option<String>,
    /// A substring of the repository name or the version.
    pub search: String,
    /// Every `(key, value)` label must be present.
    pub labels: Vec<(String, String)>,
    /// Only versions in this upload status.
    pub upload_status: Option<UploadStatus>,
    pub order: VersionOrder,
}

/// A page of the versions of one kind in an organization; returns the page and the total.
pub async fn list<'c, E>(
    ex: E,
    organization_uid: &str,
    kind: Kind,
    filter: &VersionFilter,
    start: i64,
    count: i64,
) -> Result<(Vec<Version>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let mut binds: Vec<String> = vec![organization_uid.to_string(), kind.as_str().to_string()];
    let mut bind = |v: String| {
        binds.push(v);
        format!("${}", binds.len())
    };
    let mut wheres = vec![
        "r.organization_uid = $1".to_string(),
        "v.kind = $2".to_string(),
    ];
    if let Some(repo) = &filter.repository_uid {
        wheres.push(format!("v.repository_uid = {}", bind(repo.clone())));
    }
    if !filter.search.is_empty() {
        let p = bind(format!("%{}%", escape_like(&filter.search)));
        wheres.push(format!(
            "(r.name LIKE {p} ESCAPE '\\' OR v.version LIKE {p} ESCAPE '\\')"
        ));
    }
    for (k, v) in &filter.labels {
        let (k, v) = (bind(k.clone()), bind(v.clone()));
        wheres.push(format!("EXISTS (SELECT 1 FROM labels l WHERE l.resource_uid = v.uid AND l.label_key = {k} AND l.label_value = {v})"));
    }
    if let Some(s) = filter.upload_status {
        wheres.push(format!(
            "v.upload_status = {}",
            bind(s.as_str().to_string())
        ));
    }
    let from = format!(
        "FROM versions v JOIN repositories r ON r.uid = v.repository_uid WHERE {}",
        wheres.join(" AND ")
    );
    let order = match filter.order {
        VersionOrder::NewestFirst => "v.build_at DESC, v.created_at DESC, v.uid",
        VersionOrder::OldestFirst => "v.build_at, v.created_at, v.uid",
        VersionOrder::Name => "r.name, v.build_at DESC, v.uid",
    };
    let count_sql = format!("SELECT COUNT(*) {from}");
    let mut total_q = sqlx::query_scalar(&count_sql).persistent(false);
    for b in &binds {
        total_q = total_q.bind(b.clone());
    }
    let total: i64 = total_q.fetch_one(ex).await.map_err(db_error)?;
    let sql = format!(
        "SELECT {} {from} ORDER BY {order} LIMIT {} OFFSET {}",
        columns_of("v"),
        count.max(0),
        start.max(0)
    );
    let mut q = sqlx::query_as(&sql).persistent(false);
    for b in &binds {
        q = q.bind(b.clone());
    }
    Ok((q.fetch_all(ex).await.map_err(db_error)?, total))
}

/// The newest version of each of the given repositories.
pub async fn latest_of<'c>(
    ex: impl Executor<'c, Database = Any>,
    repository_uids: &[String],
) -> Result<Vec<Version>, Error> {
    if repository_uids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=repository_uids.len())
        .map(|i| format!("${i}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM versions v WHERE v.repository_uid IN ({}) AND NOT EXISTS (SELECT 1 FROM versions w WHERE w.repository_uid = v.repository_uid \
         AND (w.build_at > v.build_at OR (w.build_at = v.build_at AND w.created_at > v.created_at) OR (w.build_at = v.build_at AND w.created_at = v.created_at AND w.uid > v.uid)))",
        columns_of("v"),
        placeholders.join(", ")
    );
    let mut q = sqlx::query_as(&sql).persistent(false);
    for uid in repository_uids {
        q = q.bind(uid);
    }
    q.fetch_all(ex).await.map_err(db_error)
}

/// Counts the versions of a repository.
pub async fn count_in_repository<'c>(
    ex: impl Executor<'c, Database = Any>,
    repository_uid: &str,
) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM versions WHERE repository_uid = $1")
        .bind(repository_uid)
        .fetch_one(ex)
        .await
        .map_err(db_error)
}

/// Replaces description and manifest.
pub async fn update_meta<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    description: &str,
    manifest: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE versions SET description = $1, manifest = $2, updated_at = $3 WHERE uid = $4",
    )
    .bind(description)
    .bind(manifest)
    .bind(now_micros())
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Marks an upload as started, recording where its bytes will go (and its multipart id).
pub async fn start_upload<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    pending_key: Option<&str>,
    upload_id: Option<&str>,
) -> Result<(), Error> {
    let now = now_micros();
    sqlx::query(
        "UPDATE versions SET upload_status = $1, upload_started_at = $2, upload_finished_at = NULL, upload_finished_reason = '', \
         pending_object_key = COALESCE($3, pending_object_key), upload_id = COALESCE($4, upload_id), updated_at = $2 WHERE uid = $5",
    )
    .bind(UploadStatus::Uploading.as_str())
    .bind(now)
    .bind(pending_key)
    .bind(upload_id)
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Makes `new_key` the served archive if the served one is still `expected_old_key` (so two
/// uploads finishing at once cannot both win); returns whether it did.
pub async fn finish_success<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    expected_old_key: Option<&str>,
    new_key: &str,
    size: i64,
    sha256: &str,
) -> Result<bool, Error> {
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE versions SET upload_status = $1, upload_finished_at = $2, upload_finished_reason = '', object_key = $3, \
         pending_object_key = CASE WHEN pending_object_key = $3 THEN NULL ELSE pending_object_key END, upload_id = NULL, \
         archive_size = $4, archive_sha256 = $5, updated_at = $2 WHERE uid = $6 AND COALESCE(object_key, '') = $7",
    )
    .bind(UploadStatus::Success.as_str())
    .bind(now)
    .bind(new_key)
    .bind(size)
    .bind(sha256)
    .bind(uid)
    .bind(expected_old_key.unwrap_or(""))
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Marks an upload as failed with a reason.
pub async fn finish_failed<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    reason: &str,
) -> Result<(), Error> {
    let now = now_micros();
    sqlx::query("UPDATE versions SET upload_status = $1, upload_finished_at = $2, upload_finished_reason = $3, upload_id = NULL, pending_object_key = NULL, updated_at = $2 WHERE uid = $4")
        .bind(UploadStatus::Failed.as_str())
        .bind(now)
        .bind(reason)
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes a version row.
pub async fn delete<'c>(ex: impl Executor<'c, Database = Any>, uid: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM versions WHERE uid = $1")
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Every archive key the database refers to (served and pending).
pub async fn all_object_keys<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<String>, Error> {
    let rows: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT object_key, pending_object_key FROM versions")
            .fetch_all(ex)
            .await
            .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .flatten()
        .collect())
}
