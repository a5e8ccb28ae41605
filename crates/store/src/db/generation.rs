//! The registry's generation: a number that grows with every committed change to the rows the
//! registry's read answers are made of (repositories, versions, their labels, image builds and
//! model links, and the users shown as creators). A reader that read the generation before its
//! queries knows its answer holds until the generation moves, so an answer can be reused while it
//! has not (see `yatai_service::read_cache`).
//!
//! Triggers keep it, not the code that writes: every write counts, whichever function, replica,
//! import or restore made it. They are engine-specific, so they are installed here after the
//! migrations (one SQL file serves both engines there). The table is bookkeeping, like the
//! migrations' own: backup and restore leave it out.

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

fn trigger_name(table: &str, op: &str) -> String {
    format!("{TABLE}_{table}_{op}")
}

/// Creates the table, its row and the triggers where missing. Idempotent; run at every start
/// (a migration that rebuilds a table drops its triggers, this puts them back).
pub async fn install(db: &Db) -> Result<(), Error> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, txid BIGINT)"
    );
    let row = format!("INSERT INTO {TABLE} (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING");
    match db.backend() {
        DbBackend::Sqlite => {
            // SQLite writes one transaction at a time: a row trigger bumping the counter inside
            // the writing transaction commits with it and can wait on nothing.
            let mut sql = vec![create, row];
            for table in WATCHED {
                for op in ["INSERT", "UPDATE", "DELETE"] {
                    sql.push(format!(
                        "CREATE TRIGGER IF NOT EXISTS {name} AFTER {op} ON {table} BEGIN \
                         UPDATE {TABLE} SET n = n + 1 WHERE id = 1; END",
                        name = trigger_name(table, &op.to_lowercase())
                    ));
                }
            }
            let mut tx = db.begin().await?;
            for s in sql {
                sqlx::raw_sql(&s)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
        }
        DbBackend::Postgres => {
            // Deferred to the commit: the counter's row is locked last, after every row lock the
            // transaction takes, so two writers cannot each hold what the other waits for (a
            // trigger at the statement would lock it in the middle of a transaction). A
            // transaction bumps it once, however many rows it wrote (`txid`).
            let mut tx = db.begin().await?;
            // Replicas starting together install once.
            sqlx::raw_sql("SELECT pg_advisory_xact_lock(7274301)")
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            for s in [create, row] {
                sqlx::raw_sql(&s)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            sqlx::raw_sql(&format!(
                "CREATE OR REPLACE FUNCTION {TABLE}_bump() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN \
                   UPDATE {TABLE} SET n = n + 1, txid = txid_current() \
                    WHERE id = 1 AND txid IS DISTINCT FROM txid_current(); \
                   RETURN NULL; \
                 END $$"
            ))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let present: Vec<String> = sqlx::query_scalar(
                "SELECT tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                 WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            for table in WATCHED {
                let name = trigger_name(table, "change");
                if present.contains(&name) {
                    continue;
                }
                sqlx::raw_sql(&format!(
                    "CREATE CONSTRAINT TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} \
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {TABLE}_bump()"
                ))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
        }
    }
    Ok(())
}

/// The current generation.
pub async fn current<'c>(ex: impl Executor<'c, Database = Any>) -> Result<i64, Error> {
    sqlx::query_scalar(&format!("SELECT n FROM {TABLE} WHERE id = 1"))
        .fetch_one(ex)
        .await
        .map_err(db_error)
}
