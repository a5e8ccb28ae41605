//! Browser sessions: a random cookie value whose SHA-256 is stored with its user and expiry.

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error};

use super::db_error;

/// Stores a new session.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
    user_uid: &str,
    expires_at: i64,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO sessions (token_hash, user_uid, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(user_uid)
        .bind(now_micros())
        .bind(expires_at)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The user of a live session.
pub async fn find_user_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<String>, Error> {
    sqlx::query_scalar("SELECT user_uid FROM sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(token_hash)
        .bind(now_micros())
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// Ends a session.
pub async fn delete<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Ends every session of a user (after a password change).
pub async fn delete_for_user<'c>(
    ex: impl Executor<'c, Database = Any>,
    user_uid: &str,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM sessions WHERE user_uid = $1")
        .bind(user_uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}
