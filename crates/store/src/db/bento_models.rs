//! The models each bento version uses, by tag (taken from the bento's manifest).

use sqlx::{Any, Executor};
use yatai_domain::Error;

use super::db_error;

/// Replaces the model tags of a bento version.
pub async fn replace(
    tx: &mut sqlx::AnyConnection,
    organization_uid: &str,
    bento_uid: &str,
    tags: &[(String, String)],
) -> Result<(), Error> {
    sqlx::query("DELETE FROM bento_models WHERE bento_uid = $1")
        .bind(bento_uid)
        .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The model tags a bento version uses.
pub async fn models_of<'c>(
    ex: impl Executor<'c, Database = Any>,
    bento_uid: &str,
) -> Result<Vec<(String, String)>, Error> {
    sqlx::query_as("SELECT model_name, model_version FROM bento_models WHERE bento_uid = $1 ORDER BY model_name, model_version")
        .bind(bento_uid)
        .fetch_all(ex)
        .await
        .map_err(db_error)
}

/// The uids of the bento versions that use a model version.
pub async fn bentos_using<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    model_name: &str,
    model_version: &str,
) -> Result<Vec<String>, Error> {
    sqlx::query_scalar("SELECT bento_uid FROM bento_models WHERE organization_uid = $1 AND model_name = $2 AND model_version = $3 ORDER BY bento_uid")
        .bind(organization_uid)
        .bind(model_name)
        .bind(model_version)
        .fetch_all(ex)
        .await
        .map_err(db_error)
}
