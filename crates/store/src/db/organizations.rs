//! Organizations: the unit of ownership and isolation of everything in the registry.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use yatai_domain::{time::now_micros, Error, Role};

use super::{db_error, db_error_named};

/// An organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    pub uid: String,
    pub name: String,
    pub description: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

const COLUMNS: &str = "uid, name, description, creator_uid, created_at, updated_at";

/// Inserts an organization; a taken name is a conflict.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    name: &str,
    description: &str,
    creator_uid: &str,
) -> Result<Organization, Error> {
    let org = Organization {
        uid: crate::new_uid(),
        name: name.to_string(),
        description: description.to_string(),
        creator_uid: Some(creator_uid.to_string()),
        created_at: now_micros(),
        updated_at: None,
    };
    sqlx::query("INSERT INTO organizations (uid, name, description, creator_uid, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&org.uid)
        .bind(&org.name)
        .bind(&org.description)
        .bind(creator_uid)
        .bind(org.created_at)
        .execute(ex)
        .await
        .map_err(db_error_named(format!("an organization named {name:?}")))?;
    Ok(org)
}

/// Finds an organization by name.
pub async fn find_by_name<'c>(
    ex: impl Executor<'c, Database = Any>,
    name: &str,
) -> Result<Option<Organization>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// Finds an organization by uid.
pub async fn find_by_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<Option<Organization>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations WHERE uid = $1"
    ))
    .bind(uid)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

impl Organization {
    /// Reads an organization from the columns named `{prefix}uid`, `{prefix}name`, ... of a
    /// row (a query joining organizations to another table names them with
    /// [`prefixed_columns`]).
    pub(crate) fn from_columns(row: &AnyRow, prefix: &str) -> Result<Self, sqlx::Error> {
        let col = |c: &str| format!("{prefix}{c}");
        Ok(Organization {
            uid: row.try_get(col("uid").as_str())?,
            name: row.try_get(col("name").as_str())?,
            description: row.try_get(col("description").as_str())?,
            creator_uid: row.try_get(col("creator_uid").as_str())?,
            created_at: row.try_get(col("created_at").as_str())?,
            updated_at: row.try_get(col("updated_at").as_str())?,
        })
    }
}

/// The columns of `organizations` under the table alias `alias`, each renamed
/// `{prefix}{column}` (for [`Organization::from_columns`]).
pub(crate) fn prefixed_columns(alias: &str, prefix: &str) -> String {
    super::query::renamed(alias, COLUMNS, prefix)
}

/// The organization whose columns a joined row holds under `prefix` (`None` when the join found
/// none), with the role read as `member_role` (`None`: not a member).
pub(crate) fn with_role_from_row(
    row: &AnyRow,
    prefix: &str,
) -> Result<Option<(Organization, Option<Role>)>, Error> {
    let uid: Option<String> = row
        .try_get(format!("{prefix}uid").as_str())
        .map_err(db_error)?;
    if uid.is_none() {
        return Ok(None);
    }
    let organization = Organization::from_columns(row, prefix).map_err(db_error)?;
    let role = row
        .try_get::<Option<String>, _>("member_role")
        .map_err(db_error)?
        .map(Role::try_from)
        .transpose()
        .map_err(|e| Error::Internal(format!("a stored member role is invalid: {e}")))?;
    Ok(Some((organization, role)))
}

/// Finds an organization by uid, with the role `user_uid` has in it (`None`: not a member): what
/// a request of a browser session needs, in one query.
pub async fn find_with_role<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    user_uid: &str,
) -> Result<Option<(Organization, Option<Role>)>, Error> {
    let sql = format!(
        "SELECT {}, m.role AS member_role \
         FROM organizations o LEFT JOIN members m ON m.organization_uid = o.uid AND m.user_uid = $2 \
         WHERE o.uid = $1",
        prefixed_columns("o", "o_")
    );
    let row = sqlx::query(&sql)
        .bind(uid)
        .bind(user_uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)?;
    match row {
        Some(row) => with_role_from_row(&row, "o_"),
        None => Ok(None),
    }
}

/// Lists the organizations a user is a member of, oldest membership first.
pub async fn list_for_user<'c>(
    ex: impl Executor<'c, Database = Any>,
    user_uid: &str,
) -> Result<Vec<Organization>, Error> {
    sqlx::query_as(
        "SELECT o.uid, o.name, o.description, o.creator_uid, o.created_at, o.updated_at \
         FROM organizations o JOIN members m ON m.organization_uid = o.uid \
         WHERE m.user_uid = $1 ORDER BY m.created_at, o.name",
    )
    .bind(user_uid)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// Changes an organization's description.
pub async fn set_description<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    description: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE organizations SET description = $1, updated_at = $2 WHERE uid = $3")
        .bind(description)
        .bind(now_micros())
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}
