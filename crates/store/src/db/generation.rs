//! The registry's generation: a number that changes with every committed change to the rows the
//! registry's read answers are made of (repositories, versions, their labels, image builds and
//! model links, and the users shown as creators). A reader that read the generation before its
//! queries knows its answer holds while the generation is still that number, so an answer can be
//! reused until it changes (see `yatai_service::read_cache`).
//!
//! Triggers keep it, not the code that writes: every write counts, whichever function, replica,
//! import or restore made it (`TRUNCATE` and bulk loads with triggers disabled do not: the
//! server never uses them, and an operator who does restarts the servers). They are
//! engine-specific, so they are installed here after the migrations (one SQL file serves both
//! engines there). The table is bookkeeping, like the migrations' own: backup and restore leave
//! it out.
//!
//! A new generation is the later of the old one plus one and the time in microseconds, so that
//! a number never comes back with other data behind it: after a failover to a replica that was
//! behind, or a database restored under a running server, the next write still makes a number
//! no reader has seen.

use sqlx::{Any, Executor};
use yatai_domain::Error;

use super::{db_error, Db, DbBackend};

/// The table holding the generation (one row).
pub const TABLE: &str = "_yatai_generation";

/// The tables whose rows make up the registry's read answers.
pub const WATCHED: &[&str] = &[
    "repositories",
    "versions",
    "labels",
    "image_builds",
    "bento_models",
    "users",
];

// A trigger or function whose body changes needs a new name: install keeps existing ones.
fn trigger_name(table: &str, op: &str) -> String {
    format!("{TABLE}_{table}_{op}")
}

const PG_FUNCTION: &str = "_yatai_generation_bump";

/// The next generation, in each engine's SQL.
fn next(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => {
            "MAX(n + 1, CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER))"
        }
        DbBackend::Postgres => {
            "GREATEST(n + 1, (extract(epoch from clock_timestamp()) * 1000000)::bigint)"
        }
    }
}

/// The statement that moves the generation (for a change the triggers do not see).
pub(crate) fn bump(backend: DbBackend) -> String {
    format!("UPDATE {TABLE} SET n = {} WHERE id = 1", next(backend))
}

/// Creates the table, its row and the triggers where missing, and moves the generation when
/// anything was missing or `migrated` (a migration may have changed rows without triggers).
/// Idempotent; run at every start, where it costs one query when everything is in place.
pub async fn install(db: &Db, migrated: bool) -> Result<(), Error> {
    let backend = db.backend();
    if !migrated && installed(db).await? {
        return Ok(());
    }
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, txid BIGINT)"
    );
    let row = format!("INSERT INTO {TABLE} (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING");
    let bump = bump(backend);
    match backend {
        DbBackend::Sqlite => {
            // SQLite writes one transaction at a time: a row trigger moving the generation
            // inside the writing transaction commits with it and can wait on nothing.
            let mut sql = vec![create, row];
            for table in WATCHED {
                for op in ["INSERT", "UPDATE", "DELETE"] {
                    sql.push(format!(
                        "CREATE TRIGGER IF NOT EXISTS {name} AFTER {op} ON {table} BEGIN {bump}; END",
                        name = trigger_name(table, &op.to_lowercase())
                    ));
                }
            }
            sql.push(bump.clone());
            db.run_in_transaction(&sql).await?;
        }
        DbBackend::Postgres => install_postgres(db, &create, &row, &bump).await?,
    }
    Ok(())
}

/// Whether the table, the function (PostgreSQL, with its current body) and every trigger are
/// in place, in one query.
async fn installed(db: &Db) -> Result<bool, Error> {
    let found: i64 = match db.backend() {
        DbBackend::Sqlite => {
            let names: Vec<String> = WATCHED
                .iter()
                .flat_map(|t| ["insert", "update", "delete"].map(|op| trigger_name(t, op)))
                .chain([TABLE.to_string()])
                .collect();
            let mut args = super::query::Args::default();
            let sql = format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ({})",
                args.list(&names)
            );
            let n = args.fetch_count(db.pool(), &sql).await?;
            i64::from(n == names.len() as i64)
        }
        DbBackend::Postgres => {
            let names: Vec<String> = WATCHED.iter().map(|t| trigger_name(t, "change")).collect();
            let mut args = super::query::Args::default();
            let sql = format!(
                "SELECT CASE WHEN to_regclass({table}) IS NOT NULL \
                   AND (SELECT prosrc FROM pg_proc WHERE proname = {function} \
                        AND pronamespace = current_schema()::regnamespace) = {body} \
                   AND (SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                        WHERE c.relnamespace = current_schema()::regnamespace \
                        AND t.tgname IN ({triggers})) = {n} THEN 1::bigint ELSE 0::bigint END",
                table = args.push(TABLE),
                function = args.push(PG_FUNCTION),
                body = args.push(pg_body()),
                triggers = args.list(&names),
                n = names.len(),
            );
            args.fetch_count(db.pool(), &sql).await?
        }
    };
    Ok(found == 1)
}

/// The body of the PostgreSQL trigger function.
fn pg_body() -> String {
    format!(
        " BEGIN UPDATE {TABLE} SET n = {}, txid = txid_current() \
         WHERE id = 1 AND txid IS DISTINCT FROM txid_current(); RETURN NULL; END ",
        next(DbBackend::Postgres)
    )
}

/// PostgreSQL: deferred constraint triggers, run at commit, so the generation's row is locked
/// last, after every row lock the transaction takes (a trigger at the statement would lock it in
/// the middle of a transaction, and two writers could each hold what the other waits for). A
/// transaction moves it once, however many rows it wrote (`txid`).
async fn install_postgres(db: &Db, create: &str, row: &str, bump: &str) -> Result<(), Error> {
    // Each step below is its own short transaction.
    pg_installing(db, super::lock_keys::GENERATION_INSTALL, async |conn| {
        for s in [create, row] {
            sqlx::raw_sql(s)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        let body = pg_body();
        // Replaced only when it differs: a role that may not own functions starts as long as
        // the function is already the right one.
        let present: Option<String> = sqlx::query_scalar(
            "SELECT prosrc FROM pg_proc WHERE proname = $1 AND pronamespace = current_schema()::regnamespace",
        )
        .bind(PG_FUNCTION)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        if present.as_deref() != Some(body.as_str()) {
            sqlx::raw_sql(&format!(
                "CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$"
            ))
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
        let present = pg_triggers(&mut *conn).await?;
        for table in WATCHED {
            let name = trigger_name(table, "change");
            if present.contains(&name) {
                continue;
            }
            // Creating a trigger locks its table against writes until it commits: each one
            // alone, waiting at most a few seconds for writers in flight, so that a server
            // starting beside busy replicas neither stalls them nor deadlocks with them.
            let create = format!(
                "SET LOCAL lock_timeout = '5s'; \
                 CREATE CONSTRAINT TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} \
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            );
            let mut last = None;
            for _ in 0..5 {
                match sqlx::raw_sql(&format!("BEGIN; {create}; COMMIT"))
                    .execute(&mut *conn)
                    .await
                {
                    Ok(_) => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                        last = Some(e);
                    }
                }
            }
            if let Some(e) = last {
                return Err(Error::Unavailable(format!(
                    "cannot install the registry's change tracking on table {table} (busy?): {e}"
                )));
            }
        }
        sqlx::raw_sql(bump)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(())
    })
    .await
}

/// PostgreSQL: runs `install` on one connection holding the session's advisory lock `key`, so
/// that replicas starting together install once.
pub(super) async fn pg_installing(
    db: &Db,
    key: i64,
    install: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut conn = db.pool().acquire().await.map_err(db_error)?;
    sqlx::raw_sql(&format!("SELECT pg_advisory_lock({key})"))
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    let result = install(&mut conn).await;
    let unlock = sqlx::raw_sql(&format!("SELECT pg_advisory_unlock({key})"))
        .execute(&mut *conn)
        .await;
    result?;
    unlock.map_err(db_error)?;
    Ok(())
}

/// PostgreSQL: the names of the triggers in the current schema.
pub(super) async fn pg_triggers(conn: &mut sqlx::AnyConnection) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(
        "SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE c.relnamespace = current_schema()::regnamespace",
    )
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// The current generation (`None`: the table holds no row, so nothing can be kept).
pub async fn current<'c>(ex: impl Executor<'c, Database = Any>) -> Result<Option<i64>, Error> {
    sqlx::query_scalar(&format!("SELECT n FROM {TABLE} WHERE id = 1"))
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}
