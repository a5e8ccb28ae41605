//! What the metadata database holds, read from its own catalog (so a table or column added by a
//! later migration is backed up without changing this code): tables in dependency order, their
//! columns and types, primary keys; and the portable JSON form of a row.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};
use yatai_store::DbBackend;

/// The migrations' own bookkeeping table, never backed up as data.
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The portable type of a column (the schema uses only these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// BIGINT: times in microseconds, flags, sizes.
    Int,
    /// TEXT.
    Text,
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// A table: its columns, primary key, and the tables its foreign keys point at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub references: Vec<String>,
}

/// Reads every table of the database, referenced tables before the tables that refer to them.
pub async fn tables(conn: &mut AnyConnection, backend: DbBackend) -> anyhow::Result<Vec<Table>> {
    let names: Vec<String> = match backend {
        DbBackend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ),
        DbBackend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        ),
    }
    .fetch_all(&mut *conn)
    .await
    .context("cannot list the tables of the database")?;
    let mut tables = Vec::new();
    // Bookkeeping is not data: the migrations' table, and what the target makes for itself from
    // the data (the registry's generation, the counts of versions).
    for name in names
        .into_iter()
        .filter(|n| n != MIGRATIONS_TABLE && !yatai_store::db::BOOKKEEPING.contains(&n.as_str()))
    {
        tables.push(table(conn, backend, &name).await?);
    }
    sort_by_dependencies(tables)
}

async fn table(conn: &mut AnyConnection, backend: DbBackend, name: &str) -> anyhow::Result<Table> {
    let (columns, primary_key, references) = match backend {
        DbBackend::Sqlite => {
            let rows = sqlx::query("SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
            let mut columns = Vec::new();
            let mut pk = Vec::new();
            for r in &rows {
                let col: String = r.try_get(0)?;
                let ty: String = r.try_get(1)?;
                let pos: i64 = r.try_get(2)?;
                columns.push(Column {
                    ty: column_type(name, &col, &ty)?,
                    name: col.clone(),
                });
                if pos > 0 {
                    pk.push((pos, col));
                }
            }
            pk.sort();
            let refs: Vec<String> =
                sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?;
            (columns, pk.into_iter().map(|(_, c)| c).collect(), refs)
        }
        DbBackend::Postgres => {
            let rows = sqlx::query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
            let mut columns = Vec::new();
            for r in &rows {
                let col: String = r.try_get(0)?;
                let ty: String = r.try_get(1)?;
                columns.push(Column {
                    ty: column_type(name, &col, &ty)?,
                    name: col,
                });
            }
            let pk: Vec<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            )
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
            let refs: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT t.relname::text FROM pg_constraint c JOIN pg_class t ON t.oid = c.confrelid \
                 WHERE c.contype = 'f' AND c.conrelid = $1::text::regclass",
            )
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
            (columns, pk, refs)
        }
    };
    if columns.is_empty() {
        bail!("table {name} has no columns");
    }
    Ok(Table {
        name: name.to_string(),
        columns,
        primary_key,
        references: references.into_iter().filter(|r| r != name).collect(),
    })
}

fn column_type(table: &str, column: &str, declared: &str) -> anyhow::Result<ColumnType> {
    let d = declared.to_ascii_lowercase();
    if d.contains("int") {
        Ok(ColumnType::Int)
    } else if d.contains("text") || d.contains("char") || d.is_empty() {
        Ok(ColumnType::Text)
    } else {
        bail!("column {table}.{column} has type {declared:?}, which backup and restore do not know")
    }
}

/// Orders tables so that every table comes after the tables it refers to.
fn sort_by_dependencies(tables: Vec<Table>) -> anyhow::Result<Vec<Table>> {
    let names: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    let mut pending: BTreeMap<String, Table> =
        tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .values()
            .filter(|t| {
                t.references
                    .iter()
                    .all(|r| done.contains(r) || !names.contains(r))
            })
            .map(|t| t.name.clone())
            .collect();
        if ready.is_empty() {
            bail!(
                "the foreign keys of tables {:?} form a cycle",
                pending.keys().collect::<Vec<_>>()
            );
        }
        for name in ready {
            let t = pending.remove(&name).expect("pending");
            done.insert(name);
            ordered.push(t);
        }
    }
    Ok(ordered)
}

/// `SELECT "a", "b" FROM "t" ORDER BY <primary key>`.
pub fn select_all(table: &Table) -> String {
    let cols = table
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let order = if table.primary_key.is_empty() {
        cols.clone()
    } else {
        table
            .primary_key
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("SELECT {cols} FROM {} ORDER BY {order}", quote(&table.name))
}

/// Quotes an identifier (both engines accept double quotes).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A row as one JSON object, column name -> number, string or null.
pub fn row_to_json(table: &Table, row: &AnyRow) -> anyhow::Result<serde_json::Value> {
    let values = row_values(&table.name, &table.columns, row)?;
    let mut map = serde_json::Map::with_capacity(values.len());
    for (col, value) in table.columns.iter().zip(values) {
        let value = match value {
            Value::Int(i) => i.map(serde_json::Value::from),
            Value::Text(s) => s.map(serde_json::Value::from),
        };
        map.insert(col.name.clone(), value.unwrap_or(serde_json::Value::Null));
    }
    Ok(serde_json::Value::Object(map))
}

/// One value ready to be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Reads column `i` of `row` as `columns[i]`'s type: the one way a row becomes values, whether
/// it comes from our own database (backup) or from a Yatai 1.x one (import, whose rows are
/// PostgreSQL rows rather than `AnyRow`s).
pub fn row_values<R>(table: &str, columns: &[Column], row: &R) -> anyhow::Result<Vec<Value>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    columns
        .iter()
        .enumerate()
        .map(|(i, col)| {
            match col.ty {
                ColumnType::Int => row.try_get::<Option<i64>, _>(i).map(Value::Int),
                ColumnType::Text => row.try_get::<Option<String>, _>(i).map(Value::Text),
            }
            .map_err(|e| anyhow!("{table}.{}: {e}", col.name))
        })
        .collect()
}

/// Binds `values` in order: the one place a row's values meet a statement.
pub fn bind_values<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    values: impl IntoIterator<Item = Value>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for v in values {
        query = match v {
            Value::Int(i) => query.bind(i),
            Value::Text(s) => query.bind(s),
        };
    }
    query
}

/// `INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4)` for `rows` rows of `columns`.
pub fn insert_sql(table: &str, columns: &[Column], rows: usize) -> String {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(table),
        columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    sql
}

/// Parses one JSON line of a table file into values in the order of `columns`; every column
/// must be present with its type, and no other.
pub fn json_to_values(columns: &[Column], line: &str) -> Result<Vec<Value>, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err("not a JSON object".into());
    };
    let mut out = Vec::with_capacity(columns.len());
    for col in columns {
        let v = map
            .remove(&col.name)
            .ok_or_else(|| format!("column {} is missing", col.name))?;
        out.push(match (col.ty, v) {
            (ColumnType::Int, serde_json::Value::Null) => Value::Int(None),
            (ColumnType::Text, serde_json::Value::Null) => Value::Text(None),
            (ColumnType::Int, serde_json::Value::Number(n)) => {
                Value::Int(Some(n.as_i64().ok_or_else(|| {
                    format!("column {}: {n} is not a 64-bit integer", col.name)
                })?))
            }
            (ColumnType::Text, serde_json::Value::String(s)) => Value::Text(Some(s)),
            (_, other) => {
                return Err(format!(
                    "column {}: {other} does not fit the column type",
                    col.name
                ))
            }
        });
    }
    if let Some(extra) = map.keys().next() {
        return Err(format!("unknown column {extra}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, refs: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: vec![Column {
                name: "uid".into(),
                ty: ColumnType::Text,
            }],
            primary_key: vec!["uid".into()],
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tables_come_after_what_they_refer_to() {
        let sorted = sort_by_dependencies(vec![
            t("versions", &["repositories", "users"]),
            t("repositories", &["organizations", "users"]),
            t("users", &[]),
            t("organizations", &["users"]),
        ])
        .unwrap();
        let names: Vec<_> = sorted.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["users", "organizations", "repositories", "versions"]
        );
        assert!(sort_by_dependencies(vec![t("a", &["b"]), t("b", &["a"])]).is_err());
    }

    #[test]
    fn inserts_name_every_column_and_number_every_value() {
        let cols = [
            Column {
                name: "uid".into(),
                ty: ColumnType::Text,
            },
            Column {
                name: "size".into(),
                ty: ColumnType::Int,
            },
        ];
        assert_eq!(
            insert_sql("versions", &cols, 2),
            r#"INSERT INTO "versions" ("uid", "size") VALUES ($1, $2), ($3, $4)"#
        );
    }

    #[test]
    fn rows_are_checked_against_the_columns() {
        let cols = vec![
            Column {
                name: "n".into(),
                ty: ColumnType::Int,
            },
            Column {
                name: "s".into(),
                ty: ColumnType::Text,
            },
        ];
        assert_eq!(
            json_to_values(&cols, r#"{"n": 9007199254740993, "s": null}"#).unwrap(),
            vec![Value::Int(Some(9007199254740993)), Value::Text(None)]
        );
        assert!(json_to_values(&cols, r#"{"n": "1", "s": null}"#).is_err());
        assert!(json_to_values(&cols, r#"{"n": 1}"#).is_err());
        assert!(json_to_values(&cols, r#"{"n": 1, "s": "x", "z": 1}"#).is_err());
        assert!(json_to_values(&cols, r#"{"n": 1.5, "s": "x"}"#).is_err());
    }
}
