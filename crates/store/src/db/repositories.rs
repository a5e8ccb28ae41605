//! Bento and model repositories.

use sqlx::{Any, Executor};
use yatai_domain::registry::Kind;
use yatai_domain::{time::now_micros, Error};

use yatai_domain::paging::Page;

use super::query::{self, prefixed, Args};
use super::{db_error, db_error_named};

/// A repository: the versions of one bento or model name in an organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Repository {
    pub uid: String,
    pub organization_uid: String,
    #[sqlx(try_from = "String")]
    pub kind: Kind,
    pub name: String,
    pub description: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

const COLUMNS: &str =
    "uid, organization_uid, kind, name, description, creator_uid, created_at, updated_at";

/// Sort orders of repository lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepositoryOrder {
    #[default]
    NewestFirst,
    OldestFirst,
    Name,
}

/// Creates a repository; an existing one of that name is returned unchanged (clients race on this).
pub async fn create_or_get<'c, E>(
    ex: E,
    organization_uid: &str,
    kind: Kind,
    name: &str,
    description: &str,
    creator_uid: &str,
) -> Result<Repository, Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let now = now_micros();
    sqlx::query(
        "INSERT INTO repositories (uid, organization_uid, kind, name, description, creator_uid, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (organization_uid, kind, name) DO NOTHING",
    )
    .bind(crate::new_uid())
    .bind(organization_uid)
    .bind(kind.as_str())
    .bind(name)
    .bind(description)
    .bind(creator_uid)
    .bind(now)
    .execute(ex)
    .await
    .map_err(db_error_named(format!("a {} repository named {name:?}", kind.as_str())))?;
    find(ex, organization_uid, kind, name)
        .await?
        .ok_or_else(|| Error::Internal("repository vanished after creation".into()))
}

/// Finds a repository by name.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<Repository>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM repositories WHERE organization_uid = $1 AND kind = $2 AND name = $3"))
        .bind(organization_uid)
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// Finds repositories by uid.
pub async fn find_many<'c>(
    ex: impl Executor<'c, Database = Any>,
    uids: &[String],
) -> Result<Vec<Repository>, Error> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = Args::default();
    let sql = format!(
        "SELECT {COLUMNS} FROM repositories WHERE uid IN ({})",
        args.list(uids)
    );
    args.fetch_all(ex, &sql).await
}

/// Filters of a repository list.
#[derive(Debug, Clone, Default)]
pub struct RepositoryFilter {
    /// A substring of the name.
    pub search: String,
    /// Only repositories with a version that has every `(key, value)` label.
    pub labels: Vec<(String, String)>,
}

/// A page of repositories; returns the page and the total.
pub async fn list<'c, E>(
    ex: E,
    organization_uid: &str,
    kind: Kind,
    filter: &RepositoryFilter,
    order: RepositoryOrder,
    page: Page,
) -> Result<(Vec<Repository>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let mut args = Args::default();
    let mut wheres = vec![
        format!("r.organization_uid = {}", args.push(organization_uid)),
        format!("r.kind = {}", args.push(kind.as_str())),
    ];
    if !filter.search.is_empty() {
        wheres.push(args.contains(&["r.name"], &filter.search));
    }
    if let Some(((k, v), rest)) = filter.labels.split_first() {
        // The repositories of the versions that carry the first label (`labels_by_pair`, then
        // `versions_by_uid_repository`), checked for the others: one set, read once.
        let mut conditions = vec![
            format!("l.label_key = {}", args.push(k)),
            format!("l.label_value = {}", args.push(v)),
        ];
        for (k, v) in rest {
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM labels m WHERE m.resource_uid = v.uid AND m.label_key = {} AND m.label_value = {})",
                args.push(k),
                args.push(v)
            ));
        }
        wheres.push(format!(
            "r.uid IN (SELECT DISTINCT v.repository_uid FROM labels l JOIN versions v ON v.uid = l.resource_uid WHERE {})",
            conditions.join(" AND ")
        ));
    }
    let order_by = match order {
        RepositoryOrder::NewestFirst => "r.created_at DESC, r.name",
        RepositoryOrder::OldestFirst => "r.created_at, r.name",
        RepositoryOrder::Name => "r.name",
    };
    let from = format!("FROM repositories r WHERE {}", wheres.join(" AND "));
    query::page(ex, &prefixed("r", COLUMNS), &from, order_by, &args, page).await
}

/// Changes a repository's description.
pub async fn set_description<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    description: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE repositories SET description = $1, updated_at = $2 WHERE uid = $3")
        .bind(description)
        .bind(now_micros())
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes a repository (its versions go with it).
pub async fn delete<'c>(ex: impl Executor<'c, Database = Any>, uid: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM repositories WHERE uid = $1")
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}
