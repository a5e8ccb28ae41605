//! Installation-wide settings: small key/value facts such as "setup is done".

use sqlx::{Any, Executor};
use yatai_domain::Error;

use super::db_error;

/// The key whose presence closes setup for good.
pub const SETUP_COMPLETED: &str = "setup_completed";

/// Reads a setting.
pub async fn get<'c>(
    ex: impl Executor<'c, Database = Any>,
    key: &str,
) -> Result<Option<String>, Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// Writes a setting that must not exist yet; returns false when it did (nothing is changed then).
pub async fn insert_new<'c>(
    ex: impl Executor<'c, Database = Any>,
    key: &str,
    value: &str,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(value)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}
