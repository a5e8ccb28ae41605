//! The models each bento version uses, by tag (taken from the bento's manifest).

use yatai_domain::Error;

use super::db_error;

/// Replaces the model tags of a bento version; replacements take turns (as `labels::replace`:
/// otherwise two manifests at once left the union of their tags).
pub async fn replace(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organization_uid: &str,
    bento_uid: &str,
    tags: &[(String, String)],
) -> Result<(), Error> {
    super::versions::lock(tx, bento_uid, super::RowLock::Writers).await?;
    sqlx::query("DELETE FROM bento_models WHERE bento_uid = $1")
        .bind(bento_uid)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for (name, version) in tags {
        sqlx::query(
            "INSERT INTO bento_models (bento_uid, organization_uid, model_name, model_version) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (bento_uid, model_name, model_version) DO NOTHING",
        )
            .bind(bento_uid)
            .bind(organization_uid)
            .bind(name)
            .bind(version)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
