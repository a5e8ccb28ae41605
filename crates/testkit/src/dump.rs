//! An independent dump of an installation, to compare two of them: every row of every table
//! (found in the database's own catalog, ordered by primary key, read with the engine's native
//! driver) and every object (key, size, SHA-256). It shares no code with the backup.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{Column, Connection, Row, TypeInfo};
use yatai_store::ObjectStorage;

/// One value, decoded by the engine's own type of the column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// Rows of every table (but the bookkeeping of the migrations and what the server makes from the
/// data, `yatai_store::db::BOOKKEEPING`), each row a column -> value map.
pub type Tables = BTreeMap<String, Vec<BTreeMap<String, Cell>>>;

/// Dumps every table of the database at `url` (sqlite:// or postgres://).
pub async fn dump_database(url: &str) -> Tables {
    if url.starts_with("sqlite:") {
        dump_sqlite(url).await
    } else {
        dump_postgres(url).await
    }
}

/// The bookkeeping tables, as a list of SQL literals.
fn bookkeeping() -> String {
    yatai_store::db::BOOKKEEPING
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn dump_sqlite(url: &str) -> Tables {
    let mut conn = sqlx::SqliteConnection::connect(url)
        .await
        .expect("open sqlite");
    let tables: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' AND name NOT IN ({}) ORDER BY name",
        bookkeeping()
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Tables::new();
    for table in tables {
        let pk: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let rows = sqlx::query(&format!(
            "SELECT * FROM \"{table}\" ORDER BY {}",
            order(&pk)
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut dumped = Vec::new();
        for row in rows {
            let mut m = BTreeMap::new();
            for (i, col) in row.columns().iter().enumerate() {
                let raw = sqlx::Row::try_get_raw(&row, i).unwrap();
                let cell = if sqlx::ValueRef::is_null(&raw) {
                    Cell::Null
                } else {
                    match sqlx::ValueRef::type_info(&raw).name() {
                        "INTEGER" => Cell::Int(row.get::<i64, _>(i)),
                        "TEXT" => Cell::Text(row.get::<String, _>(i)),
                        other => panic!(
                            "{table}.{}: unexpected SQLite value type {other}",
                            col.name()
                        ),
                    }
                };
                m.insert(col.name().to_string(), cell);
            }
            dumped.push(m);
        }
        out.insert(table, dumped);
    }
    conn.close().await.ok();
    out
}

async fn dump_postgres(url: &str) -> Tables {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("open postgres");
    let tables: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' AND table_name NOT IN ({}) ORDER BY 1",
        bookkeeping()
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Tables::new();
    for table in tables {
        let pk: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let rows = sqlx::query(&format!(
            "SELECT * FROM \"{table}\" ORDER BY {}",
            order(&pk)
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut dumped = Vec::new();
        for row in rows {
            let mut m = BTreeMap::new();
            for (i, col) in row.columns().iter().enumerate() {
                let cell = match col.type_info().name() {
                    "INT8" => row.get::<Option<i64>, _>(i).map(Cell::Int),
                    "TEXT" => row.get::<Option<String>, _>(i).map(Cell::Text),
                    other => panic!("{table}.{}: unexpected PostgreSQL type {other}", col.name()),
                }
                .unwrap_or(Cell::Null);
                m.insert(col.name().to_string(), cell);
            }
            dumped.push(m);
        }
        out.insert(table, dumped);
    }
    conn.close().await.ok();
    out
}

fn order(pk: &[String]) -> String {
    assert!(!pk.is_empty(), "every table has a primary key");
    pk.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every object of a storage (but in-flight multipart parts): key -> (size, SHA-256).
pub async fn dump_objects(storage: &ObjectStorage) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    for key in storage.list_keys(None).await.unwrap() {
        if key.starts_with(".uploads/") {
            continue;
        }
        let reader = storage.get(&key, None).await.unwrap();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = reader.stream;
        while let Some(chunk) = stream.try_next().await.unwrap() {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        out.insert(key, (size, hex::encode(hasher.finalize())));
    }
    out
}
