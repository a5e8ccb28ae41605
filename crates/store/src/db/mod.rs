//! The metadata database. One schema (`migrations/`) and one set of queries serve SQLite and
//! PostgreSQL through sqlx's `Any` driver; a query is written once with `$N` placeholders.

pub mod api_tokens;
pub mod bento_models;
pub mod cli_logins;
pub mod clusters;
pub mod counts;
pub mod deployments;
pub mod events;
pub mod generation;
pub mod image_builds;
pub mod labels;
pub mod members;
pub mod organizations;
pub mod query;
pub mod related;
pub mod repositories;
pub mod sessions;
pub mod settings;
pub mod uploads;
pub mod users;
pub mod versions;

use std::num::NonZeroU32;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use yatai_domain::Error;

/// A transaction of the metadata database (so that layers above need not name sqlx).
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Tables the server keeps for itself beside the migrations' own, made from the data and left out
/// of backups and comparisons of data: the registry's generation, the counts of versions, the
/// index of labelled versions and the trigrams of version strings.
pub const BOOKKEEPING: &[&str] = &[
    generation::TABLE,
    counts::VERSIONS,
    counts::LABELS,
    counts::LABELLED,
    counts::TRIGRAMS,
    counts::POSITIONS,
];

/// PostgreSQL advisory lock keys, one per kind of work that must take turns across connections
/// and replicas; listed together so that no two share a key.
pub(crate) mod lock_keys {
    /// Installing the registry's change tracking (session lock, see `generation`).
    pub const GENERATION_INSTALL: i64 = 7274301;
    /// Installing the counts' triggers and recount (session lock, see `counts`).
    pub const COUNTS_INSTALL: i64 = 7274302;
    /// Creating a user (transaction lock, see `users::create`).
    pub const USER_CREATION: i64 = 7274303;
}

/// What [`lock_row`] holds off until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// Other writers of the row (PostgreSQL `FOR NO KEY UPDATE`, what an `UPDATE` takes).
    Writers,
    /// Other writers, and inserts of rows that refer to it (`FOR UPDATE`: a foreign key check
    /// takes a share of the row it refers to): for a delete that takes those rows along.
    WritersAndReferences,
}

impl RowLock {
    /// The clause that ends a `SELECT` of the rows to lock, on the engine of `tx`: nothing on
    /// SQLite, whose write transactions take turns already (`Db::begin`).
    pub(crate) fn clause(self, tx: &sqlx::AnyConnection) -> &'static str {
        match (DbBackend::of(tx), self) {
            (DbBackend::Sqlite, _) => "",
            (DbBackend::Postgres, RowLock::Writers) => " FOR NO KEY UPDATE",
            (DbBackend::Postgres, RowLock::WritersAndReferences) => " FOR UPDATE",
        }
    }
}

/// Locks the row of `table` whose uid is `uid` until `tx` ends, so that what the transaction
/// checks after this sees whatever an earlier holder committed; a row deleted while this waited
/// for it is not found (`what` names it in the error).
///
/// Why: on PostgreSQL, a statement sees the rows committed when it started. A check and the write
/// it allows, even in one statement (`WHERE NOT EXISTS`, a count, a delete then inserts), miss
/// what a concurrent transaction has written and not yet committed, and both go through. After
/// the lock, which the other one held, the next statement starts later and sees its rows. On
/// SQLite the row is only looked up (see [`RowLock::clause`]).
pub(crate) async fn lock_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &'static str,
    what: &str,
    uid: &str,
    lock: RowLock,
) -> Result<(), Error> {
    let sql = format!("SELECT 1 FROM {table} WHERE uid = $1{}", lock.clause(tx));
    let found = sqlx::query(&sql)
        .bind(uid)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    match found {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("the {what} was deleted meanwhile"))),
    }
}

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbBackend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl DbBackend {
    /// The engine behind a connection (a transaction's, where no [`Db`] is at hand).
    pub fn of(conn: &sqlx::AnyConnection) -> DbBackend {
        if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            DbBackend::Postgres
        } else {
            DbBackend::Sqlite
        }
    }
}

/// How many connections a server opens at most by default, for `cpus` CPUs it may use (cgroup
/// quotas count): one more than the CPUs on PostgreSQL (3 to 16), two per CPU on SQLite (4 to 8).
/// `--db-max-connections` sets it otherwise (see [`Db::connect_with_pool`]).
///
/// Each PostgreSQL connection is a backend process, and each SQLite connection a thread of its
/// own; both compete for the CPUs with the server's request threads. On 2 CPUs, with PostgreSQL on
/// the same machine, fresh list pages of 20 at 10,000 bentos (wrk, 16 clients, interleaved rounds)
/// ran fastest with these: PostgreSQL 3 connections against 4 (the former default), +20 % req/s
/// and p99 -15 %; 16 connections, the one before it, had the throughput of 4 and a p99 a third
/// higher. SQLite 4 against 8 (the former size): +35-45 % req/s, p99 -30 %; 3 and 6 were slower
/// than 4, and 2 slower still. A request waits for a free connection in turn (for at most the
/// acquire timeout), and none is held across a transfer. A PostgreSQL farther away (a statement
/// waits on the network, not on a CPU) is better served by more: the setting is there for it.
pub fn default_pool_size(backend: DbBackend, cpus: usize) -> u32 {
    let cpus = u32::try_from(cpus).unwrap_or(u32::MAX);
    match backend {
        DbBackend::Postgres => cpus.saturating_add(1).clamp(3, 16),
        DbBackend::Sqlite => cpus.saturating_mul(2).clamp(4, 8),
    }
}

/// A pool of connections to the metadata database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: DbBackend,
}

impl Db {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://...`), failing fast with a
    /// one-line message when the database cannot be reached, with a pool of the default size
    /// ([`default_pool_size`]).
    pub async fn connect(url: &str) -> Result<Db, Error> {
        Self::connect_with_pool(url, None).await
    }

    /// [`Self::connect`] with a pool of at most `max_connections`, or of the default size.
    pub async fn connect_with_pool(
        url: &str,
        max_connections: Option<NonZeroU32>,
    ) -> Result<Db, Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            DbBackend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            DbBackend::Postgres
        } else {
            return Err(Error::invalid(format!(
                "database URL must start with sqlite:// or postgres://, got {:?}",
                redact_url(url)
            )));
        };
        let options: AnyConnectOptions = url.parse().map_err(|e| {
            Error::invalid(format!("invalid database URL {:?}: {e}", redact_url(url)))
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.map_or_else(
                || {
                    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
                    default_pool_size(backend, cpus)
                },
                NonZeroU32::get,
            ))
            .acquire_timeout(Duration::from_secs(10))
            // The pool pings a connection as it takes it back (sqlx always does), and by
            // default again as it hands it out: two round trips to PostgreSQL besides each
            // statement, and a request takes a connection twice (its caller, its read). And a
            // request dropped during that second ping (its client went away) dropped the
            // connection with it: requests cut short closed every pooled connection, and each
            // new one prepared and planned its statements again. A connection back for less
            // than a quarter of a second answered a ping then and is handed out as it is (under
            // load, every one); one idle longer (PostgreSQL may have restarted, or ended it) is
            // still pinged, and replaced if dead. One ended within that quarter of a second
            // fails its next statement with a 503, which the client may retry.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= Duration::from_millis(250) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // `case_sensitive_like`: a search matches as on PostgreSQL (and in Yatai
                    // 1.x): SQLite's LIKE otherwise ignores the case of ASCII letters, so the
                    // same search found `Rc1` for `rc1` on the embedded default only. The
                    // pragma is deprecated upstream but compiled into the bundled SQLite; the
                    // search tests check both engines agree.
                    if backend == DbBackend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA case_sensitive_like = ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to the database at {}: {}", redact_url(url), one_line(&e))))?;
        Ok(Db { pool, backend })
    }

    /// Applies every pending migration; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, Error> {
        let before = self.applied_migrations().await.unwrap_or(0);
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::Internal(format!("database migration failed: {}", one_line(&e))))?;
        let applied = self.applied_migrations().await?.saturating_sub(before);
        generation::install(self, applied > 0).await?;
        counts::install(self, applied > 0).await?;
        Ok(applied)
    }

    async fn applied_migrations(&self) -> Result<usize, Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as usize)
    }

    /// The connection pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind this pool.
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// Runs `statements` in one transaction.
    pub(crate) async fn run_in_transaction(&self, statements: &[String]) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        for s in statements {
            sqlx::raw_sql(s).execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Starts a transaction (to write: every caller writes).
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`). A deferred transaction
    /// that reads and then writes fails at its first write, without waiting, when another
    /// connection has committed since its read (`SQLITE_BUSY_SNAPSHOT`: the busy timeout does
    /// not apply), which a request then answered with a 500. Taken at the start, the lock is
    /// waited for like any other (the busy timeout), and the transaction reads what it writes
    /// over. PostgreSQL's transactions see each statement's own snapshot and wait on row locks.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, Error> {
        match self.backend {
            DbBackend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DbBackend::Postgres => self.pool.begin().await,
        }
        .map_err(db_error)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Closes every connection (used before exit so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Builds a PostgreSQL URL from Yatai's `PG_*` settings.
pub fn postgres_url(
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
    database: &str,
    sslmode: Option<&str>,
) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let auth = match password {
        Some(p) if !p.is_empty() => format!("{}:{}", enc(user), enc(p)),
        _ => enc(user),
    };
    let mut url = format!("postgres://{auth}@{host}:{port}/{}", enc(database));
    if let Some(mode) = sslmode.filter(|m| !m.is_empty()) {
        url.push_str("?sslmode=");
        url.push_str(&enc(mode));
    }
    url
}

/// Hides the password of a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The stored form of a high-entropy secret (API token, session, CLI login code): its SHA-256 in
/// hex. The server and the import of Yatai 1.x tokens both store secrets this way.
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Maps a database error to the domain error: unique violations are conflicts, the rest internal.
pub fn db_error(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Error::Conflict("a resource with this name exists already".into())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            Error::Conflict("the resource is still referenced".into())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => {
            Error::Unavailable(format!("database unavailable: {}", one_line(&e)))
        }
        // Data the database cannot take (a NUL byte in text, say): the request is at fault.
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("22")) => {
            Error::invalid(
                "the request holds characters or values the database cannot store (a NUL byte?)",
            )
        }
        // SQLite busy or locked past the busy timeout (5 SQLITE_BUSY, 6 SQLITE_LOCKED and their
        // extended codes): another writer held the database; the request may be retried.
        sqlx::Error::Database(d)
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && d.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|n| matches!(n & 0xff, 5 | 6)) =>
        {
            Error::Unavailable(format!("database busy, retry: {}", one_line(&e)))
        }
        // The server ended the connection (an administrator, a restart, a failover): the request
        // may be retried as soon as the pool has reconnected.
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
        {
            Error::Unavailable(format!("database unavailable: {}", one_line(&e)))
        }
        _ => Error::Internal(format!("database error: {}", one_line(&e))),
    }
}

/// Like [`db_error`], but names what conflicted.
pub fn db_error_named(what: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict(format!("{what} exists already")),
        other => other,
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pool_follows_the_cpus_within_bounds() {
        let sizes = |backend| {
            [1, 2, 4, 8, 64]
                .map(|cpus| default_pool_size(backend, cpus))
                .to_vec()
        };
        assert_eq!(sizes(DbBackend::Postgres), vec![3, 3, 5, 9, 16]);
        assert_eq!(sizes(DbBackend::Sqlite), vec![4, 4, 8, 8, 8]);
    }
}
