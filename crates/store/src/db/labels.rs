//! Key/value labels on bentos and models.

use yatai_domain::Error;

use super::db_error;

/// Replaces the labels of a version. Replacements of one version take turns: on PostgreSQL, two
/// at once each deleted only the labels committed before them and kept their own, so the
/// version ended with both sets (past the limit of labels per version).
pub async fn replace(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organization_uid: &str,
    resource_uid: &str,
    labels: &[(String, String)],
) -> Result<(), Error> {
    super::versions::lock(tx, resource_uid, super::RowLock::Writers).await?;
    sqlx::query("DELETE FROM labels WHERE resource_uid = $1")
        .bind(resource_uid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for (k, v) in labels {
        // An upsert, so that two clients setting labels at once cannot collide.
        sqlx::query(
            "INSERT INTO labels (resource_uid, organization_uid, label_key, label_value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (resource_uid, label_key) DO UPDATE SET label_value = excluded.label_value",
        )
            .bind(resource_uid)
            .bind(organization_uid)
            .bind(k)
            .bind(v)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
