//! Image builds of bento versions: the status (`versions.image_build_status`, as in Yatai 1.x),
//! the image reference of the last successful build and the reason of the last failure.

use std::collections::HashMap;

use sqlx::{Any, AnyPool, Transaction};
use yatai_domain::{time::now_micros, Error};

use super::db_error;

/// What is known about the image of a version besides its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Deserialize)]
pub struct ImageBuild {
    pub version_uid: String,
    pub image_reference: String,
    pub reason: String,
    pub updated_at: i64,
}

/// The columns of `image_builds`, as [`ImageBuild`] reads them.
pub(crate) const COLUMNS: &str = "version_uid, image_reference, reason, updated_at";

/// Sets the status of a version's image, with the image reference (kept when `None`) and the
/// failure reason (cleared when empty).
pub async fn set(
    tx: &mut Transaction<'_, Any>,
    version_uid: &str,
    status: &str,
    image_reference: Option<&str>,
    reason: &str,
) -> Result<(), Error> {
    set_unless_in_progress(tx, version_uid, status, image_reference, reason, None).await?;
    Ok(())
}

/// [`set`], but when `in_progress_since` is given, only if no build of the version is in
/// progress: a build is, when its status is `pending` or `building` and was set (recorded in
/// `image_builds`) at or after `in_progress_since` (older ones are builds that died). One
/// statement decides, after the version's row is locked (on PostgreSQL the statement's
/// `EXISTS` would not see a build row another request inserted and has not yet committed, and
/// both started a build). Returns whether the status was set.
pub async fn set_unless_in_progress(
    tx: &mut Transaction<'_, Any>,
    version_uid: &str,
    status: &str,
    image_reference: Option<&str>,
    reason: &str,
    in_progress_since: Option<i64>,
) -> Result<bool, Error> {
    super::versions::lock(tx, version_uid, super::RowLock::Writers).await?;
    let now = now_micros();
    let updated = match in_progress_since {
        None => sqlx::query(
            "UPDATE versions SET image_build_status = $1, updated_at = $2 WHERE uid = $3",
        )
        .bind(status)
        .bind(now)
        .bind(version_uid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?,
        Some(since) => sqlx::query(
            "UPDATE versions SET image_build_status = $1, updated_at = $2 WHERE uid = $3 \
             AND NOT (image_build_status IN ('pending', 'building') AND EXISTS \
             (SELECT 1 FROM image_builds WHERE version_uid = $3 AND updated_at >= $4))",
        )
        .bind(status)
        .bind(now)
        .bind(version_uid)
        .bind(since)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?,
    };
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO image_builds (version_uid, image_reference, reason, updated_at) VALUES ($1, COALESCE($2, ''), $3, $4) \
         ON CONFLICT (version_uid) DO UPDATE SET image_reference = COALESCE($2, image_builds.image_reference), \
         reason = excluded.reason, updated_at = excluded.updated_at",
    )
    .bind(version_uid)
    .bind(image_reference)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(true)
}

/// The image builds of the given versions, by version uid.
pub async fn of(
    pool: &AnyPool,
    version_uids: &[String],
) -> Result<HashMap<String, ImageBuild>, Error> {
    if version_uids.is_empty() {
        return Ok(HashMap::new());
    }
    let marks: Vec<String> = (1..=version_uids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM image_builds WHERE version_uid IN ({})",
        marks.join(", ")
    );
    let mut q = sqlx::query_as::<_, ImageBuild>(&sql);
    for uid in version_uids {
        q = q.bind(uid);
    }
    let rows = q.fetch_all(pool).await.map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.version_uid.clone(), r))
        .collect())
}
