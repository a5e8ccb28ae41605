//! Members: which users belong to which organization, and with which role.

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error, Role};

use yatai_domain::paging::Page;

use super::db_error;
use super::query::{self, Args};

/// A membership row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub organization_uid: String,
    pub user_uid: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl Member {
    /// The member's role.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// Adds a user to an organization with a role, or changes the role of an existing member.
pub async fn upsert<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    user_uid: &str,
    role: Role,
) -> Result<(), Error> {
    let now = now_micros();
    sqlx::query(
        "INSERT INTO members (organization_uid, user_uid, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organization_uid, user_uid) DO UPDATE SET role = excluded.role, updated_at = $4",
    )
    .bind(organization_uid)
    .bind(user_uid)
    .bind(role.as_str())
    .bind(now)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Finds the membership of a user in an organization.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    user_uid: &str,
) -> Result<Option<Member>, Error> {
    sqlx::query_as("SELECT organization_uid, user_uid, role, created_at, updated_at FROM members WHERE organization_uid = $1 AND user_uid = $2")
        .bind(organization_uid)
        .bind(user_uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// A page of the members of an organization, oldest first; returns the page and the total.
pub async fn list<'c, E>(
    ex: E,
    organization_uid: &str,
    page: Page,
) -> Result<(Vec<Member>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let mut args = Args::default();
    let from = format!(
        "FROM members WHERE organization_uid = {}",
        args.push(organization_uid)
    );
    query::page(
        ex,
        "organization_uid, user_uid, role, created_at, updated_at",
        &from,
        "created_at, user_uid",
        &args,
        page,
    )
    .await
}

/// Serialises changes to an organization's members, as the first statement of a transaction
/// that checks a rule over all of them (at least one admin). On PostgreSQL two demotions of two
/// admins at once each counted the other admin and both committed, leaving none (each changed
/// a different row, so no row lock met the other); writing the organization's row makes the
/// second wait for the first and count after it. SQLite runs one write transaction at a time.
pub async fn lock_organization<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE uid = $1")
        .bind(organization_uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Counts the admins of an organization.
pub async fn count_admins<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE organization_uid = $1 AND role = $2")
        .bind(organization_uid)
        .bind(Role::Admin.as_str())
        .fetch_one(ex)
        .await
        .map_err(db_error)
}

/// Removes a user from an organization; returns whether they were a member.
pub async fn delete<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    user_uid: &str,
) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM members WHERE organization_uid = $1 AND user_uid = $2")
        .bind(organization_uid)
        .bind(user_uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}
