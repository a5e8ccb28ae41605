//! API tokens: secrets that authenticate the CLI and scripts. Only a SHA-256 of the secret is stored.

use sqlx::{Any, Executor, FromRow, Row};
use yatai_domain::{time::now_micros, Error, Role, Scope};

use yatai_domain::paging::Page;

use super::generation;
use super::organizations::{self, Organization};
use super::query::{self, prefixed, Args};
use super::users::{self, User};
use super::{db_error, db_error_named};

/// An API token row (without its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiToken {
    pub uid: String,
    pub name: String,
    pub description: String,
    pub organization_uid: String,
    pub user_uid: String,
    /// Scopes, comma separated.
    pub scopes: String,
    pub token_hash: String,
    pub expired_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl ApiToken {
    /// The token's scopes (rows hold only valid scopes).
    pub fn scopes(&self) -> Vec<Scope> {
        self.scopes
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expired_at.is_some_and(|t| t <= now)
    }
}

/// The fields of a new token.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub organization_uid: &'a str,
    pub user_uid: &'a str,
    pub scopes: &'a [Scope],
    pub token_hash: &'a str,
    pub expired_at: Option<i64>,
}

/// What an update may change.
#[derive(Debug, Clone, Default)]
pub struct ApiTokenChanges {
    pub description: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    pub expired_at: Option<Option<i64>>,
}

const COLUMNS: &str = "uid, name, description, organization_uid, user_uid, scopes, token_hash, expired_at, last_used_at, created_at, updated_at";

/// Joins scopes into their stored form.
pub fn join_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Inserts a token; the same name twice for one user in one organization is a conflict.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    new: &NewApiToken<'_>,
) -> Result<ApiToken, Error> {
    let token = ApiToken {
        uid: crate::new_uid(),
        name: new.name.to_string(),
        description: new.description.to_string(),
        organization_uid: new.organization_uid.to_string(),
        user_uid: new.user_uid.to_string(),
        scopes: join_scopes(new.scopes),
        token_hash: new.token_hash.to_string(),
        expired_at: new.expired_at,
        last_used_at: None,
        created_at: now_micros(),
        updated_at: None,
    };
    sqlx::query(&format!(
        "INSERT INTO api_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&token.uid)
    .bind(&token.name)
    .bind(&token.description)
    .bind(&token.organization_uid)
    .bind(&token.user_uid)
    .bind(&token.scopes)
    .bind(&token.token_hash)
    .bind(token.expired_at)
    .bind(token.last_used_at)
    .bind(token.created_at)
    .bind(token.updated_at)
    .execute(ex)
    .await
    .map_err(db_error_named(format!("an API token named {:?}", new.name)))?;
    Ok(token)
}

/// A token found by its secret, with what a request made with it acts as.
#[derive(Debug, Clone)]
pub struct TokenHolder {
    pub token: ApiToken,
    /// The token's user (`None`: the user is gone).
    pub user: Option<User>,
    /// The token's organization with the user's role there (`None`: the organization is gone;
    /// a `None` role: the user is no longer a member).
    pub organization: Option<(Organization, Option<Role>)>,
    /// The registry's generation when the token was read (see [`super::generation`]): a read
    /// the request makes afterwards is at least as new.
    pub registry_generation: Option<i64>,
}

/// Finds a token by the hash of its secret, with its user, its organization and the user's role
/// there, and the registry's generation: what authenticating a request needs, in one query.
pub async fn find_by_hash_with_holder<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<TokenHolder>, Error> {
    let sql = format!(
        "SELECT {}, {}, {}, m.role AS member_role, \
         (SELECT g.n FROM {} g WHERE g.id = 1) AS registry_generation FROM api_tokens t \
         LEFT JOIN users u ON u.uid = t.user_uid \
         LEFT JOIN organizations o ON o.uid = t.organization_uid \
         LEFT JOIN members m ON m.organization_uid = t.organization_uid AND m.user_uid = t.user_uid \
         WHERE t.token_hash = $1",
        prefixed("t", COLUMNS),
        users::prefixed_columns("u", "u_"),
        organizations::prefixed_columns("o", "o_"),
        generation::TABLE
    );
    let Some(row) = sqlx::query(&sql)
        .bind(token_hash)
        .fetch_optional(ex)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let token = ApiToken::from_row(&row).map_err(db_error)?;
    let user = match row
        .try_get::<Option<String>, _>("u_uid")
        .map_err(db_error)?
    {
        Some(_) => Some(User::from_columns(&row, "u_").map_err(db_error)?),
        None => None,
    };
    let organization = organizations::with_role_from_row(&row, "o_")?;
    let registry_generation = row.try_get("registry_generation").map_err(db_error)?;
    Ok(Some(TokenHolder {
        token,
        user,
        organization,
        registry_generation,
    }))
}

/// Finds a token by uid inside an organization.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    uid: &str,
) -> Result<Option<ApiToken>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE organization_uid = $1 AND uid = $2"
    ))
    .bind(organization_uid)
    .bind(uid)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// A page of the tokens of an organization (of one user when `user_uid` is given), newest
/// first; returns the page and the total.
pub async fn list<'c, E>(
    ex: E,
    organization_uid: &str,
    user_uid: Option<&str>,
    page: Page,
) -> Result<(Vec<ApiToken>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let mut args = Args::default();
    let mut from = format!(
        "FROM api_tokens WHERE organization_uid = {}",
        args.push(organization_uid)
    );
    if let Some(user) = user_uid {
        from.push_str(&format!(" AND user_uid = {}", args.push(user)));
    }
    query::page(ex, COLUMNS, &from, "created_at DESC, uid", &args, page).await
}

/// Applies changes to a token: only the fields given are written. Written from the token as read
/// before, a change of its description made at the same time as a change of its scopes put the
/// scopes read before back (a narrowed token widened again). `None` if the token is gone.
pub async fn update<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    changes: &ApiTokenChanges,
) -> Result<Option<ApiToken>, Error> {
    sqlx::query_as(&format!(
        "UPDATE api_tokens SET description = COALESCE($1, description), scopes = COALESCE($2, scopes), \
         expired_at = CASE WHEN $3 = 1 THEN $4 ELSE expired_at END, updated_at = $5 WHERE uid = $6 \
         RETURNING {COLUMNS}"
    ))
    .bind(changes.description.as_deref())
    .bind(changes.scopes.as_deref().map(join_scopes))
    .bind(i64::from(changes.expired_at.is_some()))
    .bind(changes.expired_at.flatten())
    .bind(now_micros())
    .bind(uid)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// Records that a token was used at `now`.
pub async fn touch<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    now: i64,
) -> Result<(), Error> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE uid = $2")
        .bind(now)
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes a token; returns whether it existed.
pub async fn delete<'c>(ex: impl Executor<'c, Database = Any>, uid: &str) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE uid = $1")
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}
