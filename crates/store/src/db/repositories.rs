//! Bento and model repositories.

use sqlx::{Any, Executor};
use yatai_domain::registry::Kind;
use yatai_domain::{time::now_micros, Error};

use yatai_domain::paging::Page;

use std::collections::HashMap;

use super::query::{from_json, limit_offset, prefixed, Args, JsonSql};
use super::related::Related;
use super::versions::{self, Version};
use super::{counts, db_error, db_error_named, Db};

/// A repository: the versions of one bento or model name in an organization.
#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct Repository {
    pub uid: String,
    pub organization_uid: String,
    #[sqlx(try_from = "String")]
    #[serde(deserialize_with = "super::query::from_text")]
    pub kind: Kind,
    pub name: String,
    pub description: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

pub(crate) const COLUMNS: &str =
    "uid, organization_uid, kind, name, description, creator_uid, created_at, updated_at";

impl Repository {
    /// Reads a repository from the columns named `{prefix}uid`, `{prefix}name`, ... of a row (a
    /// query joining repositories to another table names them with [`prefixed_columns`]).
    pub(crate) fn from_columns(row: &sqlx::any::AnyRow, prefix: &str) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let col = |c: &str| format!("{prefix}{c}");
        let kind: String = row.try_get(col("kind").as_str())?;
        Ok(Repository {
            uid: row.try_get(col("uid").as_str())?,
            organization_uid: row.try_get(col("organization_uid").as_str())?,
            kind: Kind::try_from(kind).map_err(|e| sqlx::Error::ColumnDecode {
                index: col("kind"),
                source: e.into(),
            })?,
            name: row.try_get(col("name").as_str())?,
            description: row.try_get(col("description").as_str())?,
            creator_uid: row.try_get(col("creator_uid").as_str())?,
            created_at: row.try_get(col("created_at").as_str())?,
            updated_at: row.try_get(col("updated_at").as_str())?,
        })
    }
}

/// The columns of `repositories` under the table alias `alias`, each renamed
/// `{prefix}{column}` (for [`Repository::from_columns`]).
pub(crate) fn prefixed_columns(alias: &str, prefix: &str) -> String {
    super::query::renamed(alias, COLUMNS, prefix)
}

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

/// A page of repositories, its total, the newest version of each and what an answer shows
/// beside those versions.
#[derive(Debug, Clone)]
pub struct RepositoryPage {
    pub repositories: Vec<Repository>,
    /// How many repositories the filter selects in all.
    pub total: i64,
    /// The newest version of each repository of the page that has one (the first of a
    /// [`versions::VersionOrder::NewestFirst`] list), by repository uid.
    pub latest: HashMap<String, Version>,
    /// How many versions each repository of the page has, by repository uid.
    pub n_versions: HashMap<String, i64>,
    /// The rows shown beside the newest versions (and the page's creators).
    pub related: Related,
}

/// A page of repositories, with its total, the newest version and the number of versions of
/// each, and the [`Related`] rows of those versions, in one statement (one snapshot, one trip;
/// see [`read_page`]).
pub async fn list(
    db: &Db,
    organization_uid: &str,
    kind: Kind,
    filter: &RepositoryFilter,
    order: RepositoryOrder,
    page: Page,
) -> Result<RepositoryPage, Error> {
    let mut args = Args::default();
    let mut wheres = vec![
        format!("r.organization_uid = {}", args.push(organization_uid)),
        format!("r.kind = {}", args.push(kind.as_str())),
    ];
    if !filter.search.is_empty() {
        wheres.push(args.contains(&["r.name"], &filter.search));
    }
    if let [(k, v)] = filter.labels.as_slice() {
        // One label: whether any version of the repository carries it, counted per repository.
        wheres.push(counts::has_label("r.uid", (&args.push(k), &args.push(v))));
    } else if let Some(((k, v), rest)) = filter.labels.split_first() {
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
    // Each order is written twice: for the page and for its rows' aggregate.
    let (order_by, rows_order) = match order {
        RepositoryOrder::NewestFirst => ("r.created_at DESC, r.name", "p.created_at DESC, p.name"),
        RepositoryOrder::OldestFirst => ("r.created_at, r.name", "p.created_at, p.name"),
        RepositoryOrder::Name => ("r.name", "p.name"),
    };
    let wheres = wheres.join(" AND ");
    let (count, start) = limit_offset(page);
    let (limit, offset) = (args.push(count), args.push(start));
    read_page(
        db,
        &args,
        &format!(
            "SELECT {} FROM repositories r WHERE {wheres} ORDER BY {order_by} LIMIT {limit} OFFSET {offset}",
            prefixed("r", COLUMNS)
        ),
        rows_order,
        &format!("SELECT COUNT(*) FROM repositories r WHERE {wheres}"),
    )
    .await
}

/// One repository, as a page of it: its newest version, its number of versions and the
/// [`Related`] rows of that version, in one statement.
pub async fn one(db: &Db, repository: &Repository) -> Result<RepositoryPage, Error> {
    let mut args = Args::default();
    let uid = args.push(&repository.uid);
    read_page(
        db,
        &args,
        &format!(
            "SELECT {} FROM repositories r WHERE r.uid = {uid}",
            prefixed("r", COLUMNS)
        ),
        "p.uid",
        &format!("SELECT COUNT(*) FROM repositories r WHERE r.uid = {uid}"),
    )
    .await
}

/// The head row of a PostgreSQL page of repositories: `part`, the total, the repositories and
/// their counts (JSON), and the related rows (see [`versions::rows_after_head`]).
type PageHead = (i32, i64, String, String, String, String, String, String);

/// Reads the page `page_select` selects (in `rows_order` over its alias `p`), with its total
/// (`total_select`), the newest version (the first of a [`versions::VersionOrder::NewestFirst`]
/// list) and the number of versions of each of its repositories, and their [`Related`] rows,
/// in one statement. Per repository, one seek in `versions_by_repository_newest` and one row of
/// [`counts`].
async fn read_page(
    db: &Db,
    args: &Args,
    page_select: &str,
    rows_order: &str,
    total_select: &str,
) -> Result<RepositoryPage, Error> {
    let json = JsonSql(db.backend());
    let ctes = format!(
        "WITH page AS ({page_select}), \
         latest AS (SELECT {version_columns} FROM page p JOIN versions v ON v.uid = (SELECT w.uid FROM versions w \
           WHERE w.repository_uid = p.uid ORDER BY w.build_at DESC, w.created_at DESC, w.uid DESC LIMIT 1))",
        version_columns = prefixed("v", versions::COLUMNS),
    );
    let head = format!(
        "({total_select}), {rows}, {counts}",
        rows = json.rows(&json.row("p", COLUMNS), "FROM page p", rows_order),
        counts = json.rows_unordered(
            &json.array("p.uid, COALESCE(c.n, 0)"),
            &counts::joined_versions("page"),
        ),
    );
    let related = Related::columns_beside_repositories(json, "latest", "page");
    // The newest versions as rows on PostgreSQL, as JSON on SQLite (see `versions::rows_after_head`).
    let (total, rows, counts, latest, r, l, b, u) = match db.backend() {
        super::DbBackend::Sqlite => {
            let sql = format!(
                "{ctes} SELECT {head}, {latest}, {related}",
                latest = json.rows_unordered(&json.row("v", versions::COLUMNS), "FROM latest v"),
            );
            let (total, rows, counts, latest, r, l, b, u): (
                i64,
                String,
                String,
                String,
                String,
                String,
                String,
                String,
            ) = args.fetch_one(db, &sql).await?;
            let latest: Vec<Version> = from_json("newest versions", &latest)?;
            (total, rows, counts, latest, r, l, b, u)
        }
        super::DbBackend::Postgres => {
            let ((_, total, rows, counts, r, l, b, u), latest): (PageHead, Vec<Version>) =
                versions::rows_after_head(
                    db,
                    args,
                    versions::AfterHead {
                        ctes: &ctes,
                        head: &format!("{head}, {related}"),
                        names: &[
                            &["total", "page_rows", "version_counts"][..],
                            &Related::NAMES,
                        ]
                        .concat(),
                        relation: "latest",
                        extra: &[],
                        order: "x.uid",
                    },
                )
                .await?;
            (total, rows, counts, latest, r, l, b, u)
        }
    };
    let repositories: Vec<Repository> = from_json("repositories", &rows)?;
    let counts: Vec<(String, i64)> = from_json("version counts", &counts)?;
    Ok(RepositoryPage {
        total,
        latest: latest
            .into_iter()
            .map(|v| (v.repository_uid.clone(), v))
            .collect(),
        n_versions: counts.into_iter().collect(),
        related: Related::from_columns(json, &(r, l, b, u))?
            .with_repositories(repositories.iter().cloned()),
        repositories,
    })
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

/// Locks a repository's row until `tx` ends, against versions being created in it too (see
/// [`super::lock_row`]): one created meanwhile is waited for, and one created later waits. A
/// repository deleted meanwhile is not found.
pub async fn lock_for_delete(tx: &mut sqlx::Transaction<'_, Any>, uid: &str) -> Result<(), Error> {
    let lock = super::RowLock::WritersAndReferences;
    super::lock_row(tx, "repositories", "repository", uid, lock).await
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
