//! Organizations: the unit of ownership and isolation of everything in the registry.

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error};

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
