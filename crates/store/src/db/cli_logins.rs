//! Browser login codes of the BentoML CLI (`/api/v1/auth/code`, `/api/v1/auth/token`).

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error};

use super::db_error;

/// Stores a new code (by hash) that expires at `expires_at`; drops expired codes on the way.
pub async fn create<'c, E>(ex: E, code_hash: &str, expires_at: i64) -> Result<(), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let now = now_micros();
    sqlx::query("DELETE FROM cli_login_codes WHERE expires_at <= $1")
        .bind(now)
        .execute(ex)
        .await
        .map_err(db_error)?;
    sqlx::query(
        "INSERT INTO cli_login_codes (code_hash, created_at, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(code_hash)
    .bind(now)
    .bind(expires_at)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Whether a code is live and still waiting for authorization.
pub async fn is_pending<'c>(
    ex: impl Executor<'c, Database = Any>,
    code_hash: &str,
) -> Result<bool, Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cli_login_codes WHERE code_hash = $1 AND expires_at > $2 AND token_secret IS NULL")
        .bind(code_hash)
        .bind(now_micros())
        .fetch_one(ex)
        .await
        .map_err(db_error)?;
    Ok(n == 1)
}

/// Attaches the token made for a live, pending code; false when the code is not (any more).
pub async fn authorize<'c>(
    ex: impl Executor<'c, Database = Any>,
    code_hash: &str,
    user_uid: &str,
    token_secret: &str,
) -> Result<bool, Error> {
    let done = sqlx::query("UPDATE cli_login_codes SET user_uid = $1, token_secret = $2 WHERE code_hash = $3 AND expires_at > $4 AND token_secret IS NULL")
        .bind(user_uid)
        .bind(token_secret)
        .bind(code_hash)
        .bind(now_micros())
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Hands out the token of an authorized code once, deleting the code.
pub async fn take_token<'c>(
    ex: impl Executor<'c, Database = Any>,
    code_hash: &str,
) -> Result<Option<String>, Error> {
    sqlx::query_scalar("DELETE FROM cli_login_codes WHERE code_hash = $1 AND token_secret IS NOT NULL AND expires_at > $2 RETURNING token_secret")
        .bind(code_hash)
        .bind(now_micros())
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}
