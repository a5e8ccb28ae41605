//! Events: who did what to which resource, and when.

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error};

use super::db_error;

/// An event row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub uid: String,
    pub organization_uid: String,
    pub user_uid: Option<String>,
    pub user_name: String,
    pub api_token_name: String,
    pub resource_type: String,
    pub resource_name: String,
    pub operation_name: String,
    pub status: String,
    pub created_at: i64,
}

/// The fields of a new event.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub organization_uid: &'a str,
    pub user_uid: Option<&'a str>,
    pub user_name: &'a str,
    pub api_token_name: &'a str,
    pub resource_type: &'a str,
    pub resource_name: &'a str,
    pub operation_name: &'a str,
}

/// Records an event.
pub async fn record<'c>(
    ex: impl Executor<'c, Database = Any>,
    e: &NewEvent<'_>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO events (uid, organization_uid, user_uid, user_name, api_token_name, resource_type, resource_name, operation_name, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'success', $9)",
    )
    .bind(crate::new_uid())
    .bind(e.organization_uid)
    .bind(e.user_uid)
    .bind(e.user_name)
    .bind(e.api_token_name)
    .bind(e.resource_type)
    .bind(e.resource_name)
    .bind(e.operation_name)
    .bind(now_micros())
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Filters of the event list (empty strings match everything).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub resource_type: String,
    pub operation_name: String,
    pub user_name: String,
    /// Only events of the resource of this name (with `resource_type`, one resource).
    pub resource_name: String,
    /// Only events at or after this time (microseconds).
    pub since: Option<i64>,
    /// Only events before this time (microseconds).
    pub until: Option<i64>,
}

/// A page of an organization's events, newest first; returns the page and the total.
pub async fn list<'c, E>(
    ex: E,
    organization_uid: &str,
    f: &EventFilter,
    start: i64,
    count: i64,
) -> Result<(Vec<Event>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let filter = "organization_uid = $1 AND ($2 = '' OR resource_type = $2) AND ($3 = '' OR operation_name = $3) AND ($4 = '' OR user_name = $4) \
                  AND created_at >= $5 AND created_at < $6 AND ($7 = '' OR resource_name = $7)";
    let (since, until) = (f.since.unwrap_or(i64::MIN), f.until.unwrap_or(i64::MAX));
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM events WHERE {filter}"))
        .bind(organization_uid)
        .bind(&f.resource_type)
        .bind(&f.operation_name)
        .bind(&f.user_name)
        .bind(since)
        .bind(until)
        .bind(&f.resource_name)
        .fetch_one(ex)
        .await
        .map_err(db_error)?;
    let items = sqlx::query_as(&format!(
        "SELECT uid, organization_uid, user_uid, user_name, api_token_name, resource_type, resource_name, operation_name, status, created_at \
         FROM events WHERE {filter} ORDER BY created_at DESC, uid LIMIT $8 OFFSET $9"
    ))
    .bind(organization_uid)
    .bind(&f.resource_type)
    .bind(&f.operation_name)
    .bind(&f.user_name)
    .bind(since)
    .bind(until)
    .bind(&f.resource_name)
    .bind(count)
    .bind(start)
    .fetch_all(ex)
    .await
    .map_err(db_error)?;
    Ok((items, total))
}

/// The distinct operation names recorded in an organization.
pub async fn operation_names<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
) -> Result<Vec<String>, Error> {
    sqlx::query_scalar("SELECT DISTINCT operation_name FROM events WHERE organization_uid = $1 ORDER BY operation_name")
        .bind(organization_uid)
        .fetch_all(ex)
        .await
        .map_err(db_error)
}
