//! Users: accounts that log in with a password and own API tokens.

use sqlx::{Any, Executor};
use yatai_domain::{time::now_micros, Error};

use yatai_domain::paging::Page;

use super::query::{self, prefixed, Args};
use super::{db_error, db_error_named};

/// A user account.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct User {
    pub uid: String,
    pub name: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Empty where only what answers show was read ([`SHOWN_COLUMNS`]).
    #[serde(default)]
    pub password_hash: String,
    /// Whether the user administers the whole installation.
    #[serde(deserialize_with = "super::query::from_flag")]
    pub is_site_admin: bool,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

// Written out because flags are stored as 0/1 integers (sqlx's `Any` driver decodes no SQLite
// booleans) and read as `bool`.
impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for User {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        User::from_columns(row, "")
    }
}

impl User {
    /// Reads a user from the columns named `{prefix}uid`, `{prefix}name`, ... of a row (a
    /// query joining users to another table names them with [`prefixed_columns`]).
    pub(crate) fn from_columns(row: &sqlx::any::AnyRow, prefix: &str) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let col = |c: &str| format!("{prefix}{c}");
        Ok(User {
            uid: row.try_get(col("uid").as_str())?,
            name: row.try_get(col("name").as_str())?,
            email: row.try_get(col("email").as_str())?,
            first_name: row.try_get(col("first_name").as_str())?,
            last_name: row.try_get(col("last_name").as_str())?,
            password_hash: row.try_get(col("password_hash").as_str())?,
            is_site_admin: row.try_get::<i64, _>(col("is_site_admin").as_str())? != 0,
            created_at: row.try_get(col("created_at").as_str())?,
            updated_at: row.try_get(col("updated_at").as_str())?,
        })
    }
}

/// The columns of `users` under the table alias `alias`, each renamed `{prefix}{column}` (for
/// [`User::from_columns`]).
pub(crate) fn prefixed_columns(alias: &str, prefix: &str) -> String {
    super::query::renamed(alias, COLUMNS, prefix)
}

/// The fields of a new user.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub password_hash: &'a str,
    pub is_site_admin: bool,
}

pub(crate) const COLUMNS: &str =
    "uid, name, email, first_name, last_name, password_hash, is_site_admin, created_at, updated_at";

/// The columns of `users` that answers show (all but the password hash).
pub(crate) const SHOWN_COLUMNS: &str =
    "uid, name, email, first_name, last_name, is_site_admin, created_at, updated_at";

/// Inserts a user in `tx`; a taken name or e-mail, in any letter case (`ADMIN` beside `admin`
/// would be told apart by nobody), is a conflict.
///
/// Creations take turns until `tx` ends. The check for a taken name is made in the insert's own
/// snapshot, which cannot see a user another transaction has inserted and not yet committed: on
/// PostgreSQL, `Alice` and `alice` created at once were both committed. There a transaction lock
/// makes the next creation wait, and its insert then sees the first one's user; SQLite's write
/// transactions take turns already (`Db::begin`). Not a unique index on `lower(name)`: Yatai 1.x
/// told names apart by case, and `yatai import` keeps its users as they were.
pub async fn create(tx: &mut sqlx::Transaction<'_, Any>, new: &NewUser<'_>) -> Result<User, Error> {
    if super::DbBackend::of(tx) == super::DbBackend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::lock_keys::USER_CREATION)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    let user = User {
        uid: crate::new_uid(),
        name: new.name.to_string(),
        email: new.email.to_string(),
        first_name: new.first_name.to_string(),
        last_name: new.last_name.to_string(),
        password_hash: new.password_hash.to_string(),
        is_site_admin: new.is_site_admin,
        created_at: now_micros(),
        updated_at: None,
    };
    let inserted = sqlx::query(
        "INSERT INTO users (uid, name, email, first_name, last_name, password_hash, is_site_admin, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(name) = lower($2) OR lower(email) = lower($3))",
    )
    .bind(&user.uid)
    .bind(&user.name)
    .bind(&user.email)
    .bind(&user.first_name)
    .bind(&user.last_name)
    .bind(&user.password_hash)
    .bind(i64::from(user.is_site_admin))
    .bind(user.created_at)
    .execute(&mut **tx)
    .await
    .map_err(db_error_named(format!("a user named {:?} or with e-mail {:?}", new.name, new.email)))?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "a user named {:?} or with e-mail {:?} exists already (names and e-mail addresses are compared without letter case)",
            new.name, new.email
        )));
    }
    Ok(user)
}

/// Finds a user by name or by e-mail address.
pub async fn find_by_name_or_email<'c>(
    ex: impl Executor<'c, Database = Any>,
    name_or_email: &str,
) -> Result<Option<User>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE name = $1 OR email = $1"
    ))
    .bind(name_or_email)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// Finds a user by uid.
pub async fn find_by_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<Option<User>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE uid = $1"))
        .bind(uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// Finds a user by name.
pub async fn find_by_name<'c>(
    ex: impl Executor<'c, Database = Any>,
    name: &str,
) -> Result<Option<User>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
        .bind(name)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// A page of the users that are members of an organization, by name; returns the page and
/// the total.
pub async fn list_in_organization<'c, E>(
    ex: E,
    organization_uid: &str,
    page: Page,
) -> Result<(Vec<User>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let mut args = Args::default();
    let from = format!(
        "FROM users u JOIN members m ON m.user_uid = u.uid WHERE m.organization_uid = {}",
        args.push(organization_uid)
    );
    query::page(ex, &prefixed("u", COLUMNS), &from, "u.name", &args, page).await
}

/// Finds users by uid.
pub async fn find_many<'c>(
    ex: impl Executor<'c, Database = Any>,
    uids: &[String],
) -> Result<Vec<User>, Error> {
    let mut args = Args::default();
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE uid IN ({})",
        args.list(uids)
    );
    args.fetch_all(ex, &sql).await
}

/// Locks a user's row until `tx` ends (as [`super::lock_row`], in the statement that reads the
/// hash) and tells whether their password hash is still `password_hash`: a password reset or
/// change, which holds the row until it commits, is either seen here or waits for `tx`. A user
/// deleted meanwhile has no hash.
pub async fn lock_if_password_is(
    tx: &mut sqlx::Transaction<'_, Any>,
    uid: &str,
    password_hash: &str,
) -> Result<bool, Error> {
    let sql = format!(
        "SELECT password_hash FROM users WHERE uid = $1{}",
        super::RowLock::Writers.clause(tx)
    );
    let now: Option<String> = sqlx::query_scalar(&sql)
        .bind(uid)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(now.as_deref() == Some(password_hash))
}

/// Replaces a user's password hash.
pub async fn set_password_hash<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    password_hash: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE uid = $3")
        .bind(password_hash)
        .bind(now_micros())
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Counts every user.
pub async fn count<'c>(ex: impl Executor<'c, Database = Any>) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(ex)
        .await
        .map_err(db_error)
}
